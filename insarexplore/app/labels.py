"""Labels of one session: classes, the ``label`` column and counts per class, written to the
session's :class:`~insarexplore.explore.labels.LabelStore` the moment an action happens; undo,
redo and CSV/GeoJSON export. The panel over these actions is :mod:`insarexplore.app.labelling`.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence

import pandas as pd
import param

from insarexplore.app import engine
from insarexplore.app.session import SessionBase
from insarexplore.explore.labels import check_label

__all__ = ["Labels", "default_author"]


def default_author() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still record something
        return "unknown"


class Labels(SessionBase):
    """Classes and labels; ``store`` None keeps them in memory only."""

    classes = param.List(default=[], doc="Label classes, in creation order.")
    active_class = param.String(default="", doc="Class applied by the labelling actions.")
    counts = param.Dict(default={}, doc="Current number of samples per class.")
    author = param.String(default="", doc="Recorded with every label.")
    session = param.String(default="", doc="Label-store session (undo/redo scope).")

    def refresh_labels(self) -> None:
        """Re-read current labels from the store (other tabs' labels appear)."""
        labels = self.store.current() if self.store is not None else {}
        col = pd.Series("", index=self.table.index, dtype=object)
        if labels:
            known = pd.Series(labels, dtype=object)
            known = known[known.index.isin(col.index)]
            col.loc[known.index] = known.to_numpy()
        self._set_labels(col)
        found = sorted(set(col[col != ""]))
        declared = self.store.classes() if self.store is not None else []
        self.classes = list(dict.fromkeys([*self.classes, *declared, *found]))
        if not self.active_class and self.classes:
            self.active_class = self.classes[0]

    def _set_labels(self, col: pd.Series) -> None:
        self.table["label"] = col
        vc = col[col != ""].value_counts()
        self.counts = {c: int(vc.get(c, 0)) for c in dict.fromkeys([*self.classes, *vc.index])}
        self.version += 1

    def create_class(self, name: str) -> None:
        name = name.strip()
        if not name:
            raise ValueError("a class name must not be empty")
        name = check_label(name)  # one line, of a legend's length: as the store keeps names
        if name not in self.classes:
            if self.store is not None:
                self.store.add_class(name)
            self.classes = [*self.classes, name]
        self.active_class = name

    def assign(self, ids: Sequence[str], label: str | None = None) -> int:
        """Give ``ids`` the label (default: the active class); written to the store at once."""
        label = (label or self.active_class).strip()
        if not label:
            raise ValueError("pick or create a class first")
        ids = self._known(ids)
        if not ids:
            return 0
        if label not in self.classes:
            self.create_class(label)
        if self.store is not None:
            self.store.assign(ids, label)
        col = self.table["label"].copy()
        col.loc[ids] = label
        self._set_labels(col)
        self.message = f"labelled {len(ids):,} as {label!r}"
        return len(ids)

    def source_labels(self) -> dict[str, str]:
        """The labels the data came with (class folders, annotations), by sample; read from
        the table once (they do not change in a session)."""
        cached = getattr(self, "_source_labels", None)
        if cached is None:
            cached = {}
            if "source_label" in self.table:
                col = self.table["source_label"].astype(str)
                cached = {s: lab for s, lab in col.items() if lab}
            self._source_labels = cached
        return cached

    def waiting_source_labels(self) -> int:
        """How many of them the label store could still take (see :meth:`adopt`); no store
        read when the data came with none (the labelling panel asks after every action)."""
        from insarexplore.explore.labelio import waiting_source_labels

        given = self.source_labels()
        return len(waiting_source_labels(given, self.store)) if given else 0

    def adopt_source_labels(self) -> int:
        """Make the labels the data came with labels of the store (origin ``import``; one
        operation, so one undo), except where a person decided; returns how many."""
        from insarexplore.explore.labelio import adopt_source_labels, waiting_source_labels

        given = self.source_labels()
        if self.store is not None:
            done = adopt_source_labels(given, self.store)
            n, added = sum(done.added.values()), done.added
            self.refresh_labels()
        else:
            pairs = waiting_source_labels(given, None)
            col = self.table["label"].copy()
            pairs = {s: lab for s, lab in pairs.items() if col.at[s] == ""}
            col.loc[list(pairs)] = list(pairs.values())
            new = [lab for lab in dict.fromkeys(pairs.values()) if lab not in self.classes]
            self.classes = [*self.classes, *new]
            self._set_labels(col)
            n, added = len(pairs), pd.Series(list(pairs.values())).value_counts().to_dict()
        shown = ", ".join(f"{k} {v:,}" for k, v in added.items())
        self.message = (
            f"recorded {n:,} labels the data came with ({shown})"
            if n
            else ("no labels of the data left to record")
        )
        if not self.active_class and self.classes:
            self.active_class = self.classes[0]
        return n

    def remove(self, ids: Sequence[str]) -> int:
        if not list(ids):
            raise ValueError("nothing is selected: lasso or box-select samples first")
        ids = [i for i in self._known(ids) if self.table.at[i, "label"] != ""]
        if ids and self.store is not None:
            self.store.remove(ids)
        col = self.table["label"].copy()
        col.loc[ids] = ""
        self._set_labels(col)
        self.message = f"removed {len(ids):,} labels"
        return len(ids)

    def undo(self) -> None:
        if self.store is not None and self.store.undo() is not None:
            self.refresh_labels()
            self.message = "undone"
        else:
            self.message = "nothing to undo"

    def redo(self) -> None:
        if self.store is not None and self.store.redo() is not None:
            self.refresh_labels()
            self.message = "redone"
        else:
            self.message = "nothing to redo"

    def export(self, fmt: str) -> bytes:
        """The current labels as ``csv`` or ``geojson`` bytes."""
        if self.store is None:
            raise ValueError("this explorer has no label store")
        return engine.export(self.store, fmt, self.data)
