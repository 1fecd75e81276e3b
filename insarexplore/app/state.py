"""The one dashboard state: every view reads and writes this object, never each other.

``ExplorerState`` holds what one browser session is looking at (selection, focused sample,
colouring, suggestion queue, progress) over a shared :class:`ExplorerData`. Labels go to the
SQLite label store the moment an action happens; predictions come from a few-shot model trained
in a background thread whose results are pushed back onto the session's document.
"""

from __future__ import annotations

import contextlib
import getpass
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import param

from insarexplore.app import engine
from insarexplore.app.colors import Coloring, coloring
from insarexplore.app.data import ExplorerData, field_kinds

__all__ = ["ExplorerState"]


def _default_author() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still record something
        return "unknown"


class ExplorerState(param.Parameterized):
    """Selection, focus, colouring, labels, predictions and suggestions of one session."""

    data = param.ClassSelector(class_=ExplorerData, constant=True, doc="Shared table and images.")
    table = param.DataFrame(doc="Per-sample table of this session (indexed by sample id).")
    selection = param.List(default=[], doc="Selected sample ids.")
    focused = param.String(default=None, allow_None=True, doc="The sample shown in detail.")
    color_by = param.Selector(
        default="label", objects=["label"], doc="Field colouring the scatter."
    )
    classes = param.List(default=[], doc="Label classes, in creation order.")
    active_class = param.String(default="", doc="Class applied by the labelling actions.")
    counts = param.Dict(default={}, doc="Current number of samples per class.")
    suggestions = param.List(default=[], doc="Active-learning queue (sample ids).")
    reasons = param.Dict(default={}, doc="Sample id -> one-line reason for its suggestion.")
    gallery_mode = param.Selector(default="selection", objects=["selection", "suggestions"])
    busy = param.Boolean(default=False, doc="A background job (training) is running.")
    progress = param.Integer(default=0, bounds=(0, 100))
    message = param.String(default="", doc="Status line shown to the user.")
    version = param.Integer(default=0, doc="Bumped whenever per-sample columns change.")
    author = param.String(default="", doc="Recorded with every label.")
    session = param.String(default="", doc="Label-store session (undo/redo scope).")

    def __init__(self, data: ExplorerData, *, label_store: Any = None, **params: Any) -> None:
        params.setdefault("author", _default_author())
        params.setdefault("session", uuid.uuid4().hex[:12])
        table = data.table.copy(deep=False)
        table["label"] = pd.Series("", index=table.index, dtype=object)
        table["predicted"] = table.get("predicted", pd.Series("", index=table.index, dtype=object))
        table["confidence"] = table.get("confidence", pd.Series(np.nan, index=table.index))
        super().__init__(data=data, table=table, **params)
        if label_store is None and data.labels_path is not None:
            label_store = engine.open_label_store(data.labels_path, self.author, self.session)
        self.store = label_store
        self._doc = _current_document()
        self._owner = threading.current_thread()
        self._thread: threading.Thread | None = None
        self._coloring: Coloring | None = None
        self._proba: np.ndarray | None = None
        self._proba_classes: list[str] | None = None
        self._coloring_key: tuple | None = None
        self._selection_pos: tuple[list[str], np.ndarray] | None = None
        self._refresh_fields()
        self.refresh_labels()
        stored = engine.stored_predictions(data)
        if stored is not None:
            self._set_predictions(stored, recolor=False)
        self.message = f"{data.n:,} samples"

    # -- helpers -----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.table)

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

    def _push(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the session's document (from a background thread), or now."""
        doc = self._doc
        if doc is None or threading.current_thread() is self._owner:
            fn()
            return
        from panel.io.state import set_curdoc

        def run() -> None:
            with set_curdoc(doc):
                fn()

        doc.add_next_tick_callback(run)

    def _known(self, ids: Sequence[str]) -> list[str]:
        ids = [str(i) for i in ids]
        pos = self.data.index_of(ids) if ids else np.empty(0, dtype=int)
        unknown = [i for i, p in zip(ids, pos) if p < 0]
        if unknown:
            raise KeyError(
                f"unknown sample ids: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}"
            )
        return ids

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Send every change made inside to the browser together, as one message.

        Without it each changed Bokeh model is its own websocket message, and the browser lays
        the page out again after each (measured: seconds for one selection). No-op unless
        served.
        """
        doc = self._doc
        if doc is None or threading.current_thread() is not self._owner:
            yield
            return
        from panel.io.document import hold

        with hold(doc, freeze=True):
            yield

    # -- selection and focus -----------------------------------------------------------------
    def selection_positions(self) -> np.ndarray:
        """Row positions of ``selection`` in the table (kept from the last mask selection)."""
        cached = self._selection_pos
        if cached is not None and cached[0] is self.selection:
            return cached[1]
        pos = self.data.index_of(self.selection) if self.selection else np.empty(0, dtype=int)
        self._selection_pos = (self.selection, pos)
        return pos

    def select_mask(self, mask: np.ndarray) -> None:
        pos = np.flatnonzero(np.asarray(mask, dtype=bool))
        ids = self.table.index[pos].tolist()
        self._selection_pos = (ids, pos)
        self.selection = ids

    def select_ids(self, ids: Sequence[str]) -> None:
        self.selection = self._known(ids)

    def select_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Select the samples whose projected point lies in the box (any corner order)."""
        xy = self.data.xy
        (xa, xb), (ya, yb) = sorted((x0, x1)), sorted((y0, y1))
        self.select_mask((xy[:, 0] >= xa) & (xy[:, 0] <= xb) & (xy[:, 1] >= ya) & (xy[:, 1] <= yb))

    def select_lasso(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        """Select the samples whose projected point lies inside the polygon."""
        self.select_mask(_inside(self.data.xy, np.column_stack([xs, ys])))

    def select_geo(self, lons: Sequence[float], lats: Sequence[float]) -> None:
        """Select the samples whose footprint centre lies inside a lon/lat polygon."""
        t = self.table
        if not {"lon_min", "lon_max", "lat_min", "lat_max"} <= set(t.columns):
            self.selection = []
            return
        centres = np.column_stack(
            [(t["lon_min"] + t["lon_max"]) / 2, (t["lat_min"] + t["lat_max"]) / 2]
        )
        self.select_mask(_inside(centres.astype(np.float64), np.column_stack([lons, lats])))

    def select_cluster(self, cluster: int | None = None) -> None:
        """Select the cluster of ``cluster`` (default: the focused sample's cluster)."""
        if cluster is None:
            if self.focused is None:
                raise ValueError("focus a sample first, or give the cluster")
            cluster = int(self.table.at[self.focused, "cluster"])
        if cluster < 0:
            raise ValueError("this sample is not in any cluster (noise)")
        self.select_mask(self.table["cluster"].to_numpy() == cluster)

    def focus(self, sample: str | None) -> None:
        if sample is not None:
            self._known([sample])
        self.focused = sample

    def nearest(self, x: float, y: float) -> str:
        xy = self.data.xy
        i = int(np.argmin((xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2))
        return str(self.table.index[i])

    def samples_at(self, lon: float, lat: float) -> list[str]:
        """Ids of samples whose footprint contains a point (smallest footprint first)."""
        t = self.table
        if not {"lon_min", "lon_max", "lat_min", "lat_max"} <= set(t.columns):
            return []
        hit = (
            (t["lon_min"] <= lon)
            & (t["lon_max"] >= lon)
            & (t["lat_min"] <= lat)
            & (t["lat_max"] >= lat)
        )
        sub = t[hit.to_numpy()]
        area = (sub["lon_max"] - sub["lon_min"]) * (sub["lat_max"] - sub["lat_min"])
        return sub.index[np.argsort(area.to_numpy(), kind="stable")].tolist()

    # -- labels ------------------------------------------------------------------------------
    def refresh_labels(self) -> None:
        """Re-read current labels from the store (other tabs' labels appear)."""
        labels = engine.current_labels(self.store) if self.store is not None else {}
        col = pd.Series("", index=self.table.index, dtype=object)
        if labels:
            known = pd.Series(labels, dtype=object)
            known = known[known.index.isin(col.index)]
            col.loc[known.index] = known.to_numpy()
        self._set_labels(col)
        found = sorted(set(col[col != ""]))
        declared = engine.classes(self.store) if self.store is not None else []
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
        if name not in self.classes:
            if self.store is not None:
                engine.add_class(self.store, name)
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
            engine.assign(self.store, ids, label)
        col = self.table["label"].copy()
        col.loc[ids] = label
        self._set_labels(col)
        self.message = f"labelled {len(ids):,} as {label!r}"
        return len(ids)

    def remove(self, ids: Sequence[str]) -> int:
        ids = [i for i in self._known(ids) if self.table.at[i, "label"] != ""]
        if ids and self.store is not None:
            engine.remove(self.store, ids)
        col = self.table["label"].copy()
        col.loc[ids] = ""
        self._set_labels(col)
        self.message = f"removed {len(ids):,} labels"
        return len(ids)

    def label_selection(self, label: str | None = None) -> int:
        if not self.selection:
            raise ValueError("nothing is selected")
        return self.assign(self.selection, label)

    def label_cluster(self, label: str | None = None) -> int:
        """Label every sample of the focused sample's cluster."""
        self.select_cluster()
        return self.assign(self.selection, label)

    def undo(self) -> None:
        if self.store is not None and engine.undo(self.store):
            self.refresh_labels()
            self.message = "undone"
        else:
            self.message = "nothing to undo"

    def redo(self) -> None:
        if self.store is not None and engine.redo(self.store):
            self.refresh_labels()
            self.message = "redone"
        else:
            self.message = "nothing to redo"

    def export(self, fmt: str) -> bytes:
        """The current labels as ``csv`` or ``geojson`` bytes."""
        if self.store is None:
            raise ValueError("this explorer has no label store")
        return engine.export(self.store, fmt, self.data)

    # -- model -------------------------------------------------------------------------------
    def train(self, method: str = "linear", *, background: bool = True) -> None:
        """Fit a few-shot classifier on the labelled embeddings and predict every sample."""
        if self.busy:
            raise RuntimeError("a training job is already running")
        labels = self.table["label"]
        labels = labels[labels != ""]
        engine.check_trainable(labels, self.data)
        self.busy, self.progress, self.message = (
            True,
            0,
            f"training {method} on {len(labels)} labels",
        )

        def report(fraction: float, text: str) -> None:
            self._push(lambda: self.param.update(progress=int(100 * fraction), message=text))

        def job() -> None:
            try:
                result = engine.train_predict(
                    self.data, labels, method=method, store=self.store, progress=report
                )
            except Exception as exc:  # shown to the user; the UI stays usable
                msg = f"training failed: {exc}"
                self._push(lambda: self.param.update(busy=False, progress=0, message=msg))
                return
            self._push(lambda: self._set_predictions(result))

        if background:
            self._thread = threading.Thread(target=job, name="insarexplore-train", daemon=True)
            self._thread.start()
        else:
            job()

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background training job ends (tests, notebooks)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _set_predictions(self, result: dict[str, Any], *, recolor: bool = True) -> None:
        index = self.table.index
        self.table["predicted"] = pd.Series(
            np.asarray(result["predicted"], dtype=object), index=index
        )
        self.table["confidence"] = pd.Series(
            np.asarray(result["confidence"], np.float64), index=index
        )
        self._proba, self._proba_classes = result["proba"], list(result["classes"])
        self.version += 1
        changes: dict[str, Any] = {"busy": False, "progress": 100 if recolor else 0}
        if recolor:
            changes.update(color_by="predicted", message=f"predictions for {self.n:,} samples")
        self.param.update(**changes)

    @property
    def has_predictions(self) -> bool:
        return bool((self.table["predicted"] != "").any())

    def suggest_next(self, n: int = 12, strategy: str = "margin_balanced") -> list[str]:
        """Load the active-learning queue into the gallery and focus its first sample."""
        ids, reasons = engine.suggest(
            self.data,
            self.table,
            n=n,
            strategy=strategy,
            proba=self._proba,
            classes=self._proba_classes,
        )
        self.reasons = reasons
        self.suggestions = ids
        self.gallery_mode = "suggestions"
        self.focused = ids[0] if ids else None
        self.message = f"{len(ids)} suggestions ({strategy})"
        return ids

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


def _inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Boolean mask of ``points`` (n, 2) inside ``polygon`` (m, 2), vectorised."""
    from matplotlib.path import Path

    polygon = np.asarray(polygon, dtype=np.float64)
    if len(polygon) < 3:
        return np.zeros(len(points), dtype=bool)
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    cand = np.flatnonzero(
        (points[:, 0] >= lo[0])
        & (points[:, 0] <= hi[0])
        & (points[:, 1] >= lo[1])
        & (points[:, 1] <= hi[1])
    )
    mask = np.zeros(len(points), dtype=bool)
    if cand.size:
        mask[cand] = Path(polygon).contains_points(points[cand])
    return mask


def _current_document() -> Any:
    """The Bokeh document of the session being built, when served (None in tests)."""
    try:
        import panel as pn

        doc = pn.state.curdoc
        return doc if doc is not None and doc.session_context is not None else None
    except Exception:
        return None
