"""Read-mostly data behind the dashboard: the per-sample table and server-side image rendering.

One ``ExplorerData`` serves every session (browser tab) of a served workspace, so a new tab does
not reload the table or re-render thumbnails. Per-session things (selection, labels being made,
predictions) live in :class:`insarexplore.app.state.ExplorerState`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insarexplore.app.render import render_sample

__all__ = ["ExplorerData", "field_kinds", "CATEGORICAL_MAX", "MAP_DECIMALS"]

MAP_DECIMALS = 5  # footprint corners drawn on the map are rounded to ~1 m
CATEGORICAL_MAX = 64  # string fields with more distinct values than this are not colourable
_SKIP_FIELDS = {"x", "y", "source", "group", "lon_min", "lat_min", "lon_max", "lat_max"}


def field_kinds(table: pd.DataFrame) -> dict[str, str]:
    """Map each colourable column to ``"categorical"``, ``"numeric"`` or ``"date"``."""
    kinds: dict[str, str] = {}
    for name in table.columns:
        if name in _SKIP_FIELDS:
            continue
        col = table[name]
        kind = col.dtype.kind
        if kind == "M":
            if col.notna().any():
                kinds[name] = "date"
        elif kind in "fiu" and name != "cluster":
            if np.isfinite(col.to_numpy(dtype=np.float64, na_value=np.nan)).any():
                kinds[name] = "numeric"
        elif (
            kind == "b"
            or name == "cluster"
            or kind in "OUT"
            or str(col.dtype) in ("category", "str")
        ):
            if col.nunique(dropna=True) <= CATEGORICAL_MAX:
                kinds[name] = "categorical"
    return kinds


class ExplorerData:
    """The per-sample table (projection ``x``, ``y`` plus metadata) and the images behind it.

    ``table`` is indexed by sample id and must hold float columns ``x`` and ``y``. ``dataset`` is
    the (lazy) data-model Dataset the images are rendered from; ``None`` gives a table-only
    explorer (benchmarks, tests) that shows no images. ``embeddings`` (aligned with ``table``)
    feed few-shot training and suggestions. ``cluster_info``: how the ``cluster`` column was
    made (``method``, ``description``; see :func:`insarexplore.explore.cluster`).
    """

    def __init__(
        self,
        table: pd.DataFrame,
        *,
        dataset: Any = None,
        workspace: Any = None,
        embeddings: np.ndarray | None = None,
        model_version: str | None = None,
        thumb_size: int = 96,
        cache_size: int = 4096,
        cluster_info: dict[str, Any] | None = None,
    ) -> None:
        for col in ("x", "y"):
            if col not in table.columns:
                raise ValueError(f"table must have a {col!r} column (the 2-D projection)")
        if not table.index.is_unique:
            raise ValueError("table index (sample ids) must be unique")
        table = table.copy()
        table.index = pd.Index(table.index.astype(str), name="sample")
        if "label" in table.columns:  # ground truth from the source, not the user's labels
            table = table.rename(columns={"label": "source_label"})
            if not (table["source_label"].astype(str) != "").any():
                table = table.drop(columns="source_label")
        for col in ("cluster", "anomaly"):
            if col not in table.columns:
                table[col] = -1 if col == "cluster" else np.nan
        self.table = table
        self.dataset = dataset
        self.workspace = workspace
        self.embeddings = embeddings
        self.model_version = model_version
        self.cluster_info = dict(cluster_info or {})
        self.thumb_size = int(thumb_size)
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self._cache_size = int(cache_size)
        self._lock = threading.Lock()
        self.positions = pd.Index(self.table.index)
        self.xy = self.table[["x", "y"]].to_numpy(dtype=np.float64)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_workspace(
        cls,
        workspace: Any,
        *,
        projection: str = "auto",
        model_version: str | None = None,
        **kwargs: Any,
    ) -> ExplorerData:
        """Load everything the dashboard needs from a workspace (folder path or ``Workspace``).

        ``projection`` is ``"umap"``, ``"pca"`` or ``"auto"`` (a cached UMAP when there is one,
        else UMAP for small sets and PCA above 200,000 samples). Projections and clusters are
        cached in the workspace by the engine, so only the first start pays for them.
        """
        from insarexplore.app import engine

        ws = engine.open_workspace(workspace)
        ds = ws.open_data(lazy=True)
        meta = ds.insar.sample_table()
        ids, vectors, version = engine.embeddings(ws, model_version)
        method = engine.projection_method(ws, len(ids), projection, version)
        xy = engine.projection(ws, ids, projection=method, model_version=version)
        table = meta.reindex(pd.Index(ids, name="sample"))
        table["x"], table["y"] = xy[:, 0], xy[:, 1]
        columns, info = engine.extras(ws, ids, model_version=version, space=method)
        for name, values in columns.items():
            table[name] = values
        kwargs.setdefault("cluster_info", info)
        return cls(
            table, dataset=ds, workspace=ws, embeddings=vectors, model_version=version, **kwargs
        )

    # -- lookups -----------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.table)

    def index_of(self, ids: Any) -> np.ndarray:
        """Positions of sample ids (``-1`` for unknown ids)."""
        return self.positions.get_indexer(pd.Index(np.atleast_1d(np.asarray(ids, dtype=object))))

    def has(self, sample: str) -> bool:
        return sample in self.positions

    def footprint(self, sample: str) -> tuple[float, float, float, float] | None:
        """``(lon_min, lat_min, lon_max, lat_max)`` of a sample, or None when unknown."""
        cols = ["lon_min", "lat_min", "lon_max", "lat_max"]
        if not set(cols) <= set(self.table.columns):
            return None
        box = self.table.loc[sample, cols].to_numpy(dtype=np.float64)
        return None if not np.isfinite(box).all() else tuple(float(v) for v in box)

    # -- images ------------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        """Image layers the dataset holds, in display order."""
        if self.dataset is None:
            return []
        order = ("phase", "image", "coherence", "displacement")
        return [name for name in order if name in self.dataset.data_vars]

    def _arrays(self, sample: str) -> dict[str, np.ndarray]:
        if self.dataset is None:
            raise LookupError("this explorer has no images (table-only)")
        if not self.has(sample):
            raise KeyError(f"unknown sample id {sample!r}")
        one = self.dataset.isel(sample=int(self.index_of([sample])[0]))
        return {name: np.asarray(one[name].values) for name in self.layers}

    def png(
        self, sample: str, layer: str = "phase", *, size: int | None = None, overlay: bool = False
    ) -> bytes:
        """PNG of one sample's layer, cached (thumbnails: ``size=self.thumb_size``).

        Raises ``KeyError`` for an unknown sample id: ids from the browser are looked up in the
        table and nothing else, so no browser-supplied string reaches the file system.
        """
        key = (sample, layer, size, overlay)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        png = render_sample(self._arrays(sample), layer, size=size, transparent_nodata=overlay)
        with self._lock:
            self._cache[key] = png
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return png

    def prefetch(
        self, samples: list[str], layer: str = "phase", *, size: int | None = None
    ) -> None:
        """Render and cache many samples' PNGs with one read of the store (a gallery page)."""
        if self.dataset is None:
            return
        with self._lock:
            todo = [s for s in samples if (s, layer, size, False) not in self._cache]
        pos = self.index_of(todo)
        todo = [s for s, p in zip(todo, pos) if p >= 0]
        if not todo:
            return
        order = np.argsort(pos[pos >= 0])
        rows = np.asarray(pos[pos >= 0])[order]
        sub = self.dataset[self.layers].isel(sample=rows).load()
        for k, i in enumerate(order):
            arrays = {name: np.asarray(sub[name].values[k]) for name in self.layers}
            png = render_sample(arrays, layer, size=size)
            with self._lock:
                self._cache[(todo[i], layer, size, False)] = png
        with self._lock:
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def thumbnail(self, sample: str) -> bytes:
        return self.png(sample, "phase", size=self.thumb_size)

    def footprints_geojson(self, ids: list[str], properties: dict[str, Any] | None = None) -> dict:
        """GeoJSON FeatureCollection of footprint polygons for the map (samples without one are
        skipped; corners rounded to :data:`MAP_DECIMALS`); ``properties``: extra ones by id."""
        from insarexplore.data.accessor import footprint_features

        cols = ["lon_min", "lat_min", "lon_max", "lat_max"]
        if not ids or not set(cols) <= set(self.table.columns):
            return {"type": "FeatureCollection", "features": []}
        boxes = self.table.loc[ids, cols].to_numpy(dtype=np.float64)
        props = [(properties or {}).get(sid, {}) for sid in ids]
        return footprint_features(ids, boxes, props, decimals=MAP_DECIMALS)

    @property
    def labels_path(self) -> Path | None:
        return None if self.workspace is None else Path(self.workspace.labels_path)
