"""Selection and focus of one session: box, lasso, map polygon, cluster, ids; the focused
sample; nearest point and the footprints under a map click."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import param

from insarexplore.app.session import SessionBase

__all__ = ["Selection"]


class Selection(SessionBase):
    """Which samples are selected and which one is shown in detail."""

    selection = param.List(default=[], doc="Selected sample ids.")
    focused = param.String(default=None, allow_None=True, doc="The sample shown in detail.")

    #: ``(selection, positions)`` of the last selection, reused while ``selection`` is the same
    _selection_pos: tuple[list[str], np.ndarray] | None = None

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
