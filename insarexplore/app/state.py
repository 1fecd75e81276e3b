"""The one dashboard state: every view reads and writes this object, never each other.

``ExplorerState`` holds what one browser session is looking at over a shared
:class:`ExplorerData`. It is composed of its parts, one module each:

* :mod:`~insarexplore.app.session`: table, status line, sample-id checks, document plumbing;
* :mod:`~insarexplore.app.selection`: selection and focus;
* :mod:`~insarexplore.app.labels`: classes and labels, written to the SQLite label store the
  moment an action happens; undo, redo, export;
* :mod:`~insarexplore.app.modeljob`: the few-shot model trained in a background thread whose
  results are pushed back onto the session's document, and the suggestion queue.

Here: the colouring, and the actions that span parts (label the selection or a cluster,
keyboard labelling through the queue).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import numpy as np
import pandas as pd
import param

from insarexplore.app import engine
from insarexplore.app.colors import Coloring, coloring
from insarexplore.app.data import ExplorerData, field_kinds
from insarexplore.app.labels import Labels, default_author
from insarexplore.app.modeljob import ModelJob
from insarexplore.app.selection import Selection
from insarexplore.app.session import current_document

__all__ = ["ExplorerState"]


class ExplorerState(Selection, Labels, ModelJob):
    """Selection, focus, colouring, labels, predictions and suggestions of one session."""

    color_by = param.Selector(
        default="label", objects=["label"], doc="Field colouring the scatter."
    )

    def __init__(self, data: ExplorerData, *, label_store: Any = None, **params: Any) -> None:
        params.setdefault("author", default_author())
        params.setdefault("session", uuid.uuid4().hex[:12])
        table = data.table.copy(deep=False)
        table["label"] = pd.Series("", index=table.index, dtype=object)
        table["predicted"] = table.get("predicted", pd.Series("", index=table.index, dtype=object))
        table["confidence"] = table.get("confidence", pd.Series(np.nan, index=table.index))
        super().__init__(data=data, table=table, **params)
        if label_store is None and data.labels_path is not None:
            label_store = engine.open_label_store(data.labels_path, self.author, self.session)
        self.store = label_store
        self._doc = current_document()
        self._owner = threading.current_thread()
        self._coloring: Coloring | None = None
        self._coloring_key: tuple | None = None
        self._refresh_fields()
        self.refresh_labels()
        stored = engine.stored_predictions(data)
        if stored is not None:
            self._set_predictions(stored, recolor=False)
        self.message = f"{data.n:,} samples"

    # -- colouring ---------------------------------------------------------------------------
    @property
    def fields(self) -> dict[str, str]:
        """Colourable fields and their kind (categorical, numeric, date)."""
        return self._fields

    def coloring(self) -> Coloring:
        """Colours of ``color_by`` for every sample (cached until the field or data change)."""
        key = (self.color_by, self.version, tuple(self.classes))
        if self._coloring is None or key != self._coloring_key:
            kind = self._fields.get(self.color_by, "categorical")
            self._coloring = coloring(self.table, self.color_by, kind, classes=self.classes)
            self._coloring_key = key
        return self._coloring

    def _refresh_fields(self) -> None:
        kinds = field_kinds(self.table)
        for name in ("label", "predicted"):
            kinds[name] = "categorical"
        kinds["confidence"] = "numeric"
        order = ["label", "predicted", "confidence", "anomaly", "cluster"]
        names = [f for f in order if f in kinds] + sorted(f for f in kinds if f not in order)
        self._fields = {name: kinds[name] for name in names}
        self.param.color_by.objects = names
        if self.color_by not in names:
            self.color_by = "label"

    # -- actions across parts ----------------------------------------------------------------
    def label_selection(self, label: str | None = None) -> int:
        if not self.selection:
            raise ValueError("nothing is selected")
        return self.assign(self.selection, label)

    def label_cluster(self, label: str | None = None) -> int:
        """Label every sample of the focused sample's cluster."""
        self.select_cluster()
        return self.assign(self.selection, label)

    def key_label(self, key: str) -> bool:
        """Keyboard labelling: digit ``k`` labels the focused sample with class ``k`` (1-based)
        and moves to the next suggestion; ``n`` skips. Returns whether the key was used."""
        if self.focused is None:
            return False
        if key.isdigit() and 1 <= int(key) <= len(self.classes):
            self.assign([self.focused], self.classes[int(key) - 1])
        elif key not in ("n", "ArrowRight"):
            return False
        self._advance()
        return True

    def _advance(self) -> None:
        queue = self.suggestions
        if self.gallery_mode == "suggestions" and self.focused in queue:
            i = queue.index(self.focused)
            self.focused = queue[i + 1] if i + 1 < len(queue) else None
            if self.focused is None:
                self.message = "queue done: train again or ask for more suggestions"
