"""The map: footprints of the selection, the focused sample's phase in place, draw-to-select.

An ipyleaflet ``Map`` inside Panel. Footprints are GeoJSON coloured like the scatter; clicking
one focuses that sample everywhere; a rectangle or polygon drawn on the map selects the samples
whose footprint centre lies inside it. Footprints and the phase overlay need no tiles, so the
map is useful offline; served, the widget's JavaScript comes from the app itself (see server.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import panel as pn
import param

from insarexplore.app.data import footprint_rings
from insarexplore.app.livetext import LiveText
from insarexplore.app.render import png_data_url
from insarexplore.app.state import ExplorerState

__all__ = ["MapView", "BASEMAPS", "LocalLeaflet", "fit_view"]

BASEMAPS = {
    "OpenStreetMap": (
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "&copy; OpenStreetMap contributors",
    ),
    "Satellite (Esri)": (
        "https://server.arcgisonline.com/ArcGIS/rest/services/World_Imagery/"
        "MapServer/tile/{z}/{y}/{x}",
        "Tiles &copy; Esri",
    ),
}


class LocalLeaflet(pn.pane.IPyLeaflet):
    """IPyLeaflet pane that loads the jupyter-leaflet JavaScript from ``widget_cdn``.

    Served with ipywidgets_bokeh, third-party widget code is fetched from a CDN (unpkg) at run
    time; pointing ``cdn`` at the app's own static route makes the map work offline. In
    JupyterLab (comm-based rendering) the widget manager already has the code and nothing
    changes.
    """

    widget_cdn = param.String(default=None, allow_None=True, doc="Base URL of widget bundles.")

    def _get_ipywidget(self, obj: Any, doc: Any, root: Any, comm: Any, **kwargs: Any) -> Any:
        model = super()._get_ipywidget(obj, doc, root, comm, **kwargs)
        if self.widget_cdn and "cdn" in model.properties():
            model.cdn = self.widget_cdn
        return model

    def _process_param_change(self, params: dict[str, Any]) -> dict[str, Any]:
        params.pop("widget_cdn", None)
        return super()._process_param_change(params)


def fit_view(
    box: tuple[float, float, float, float], width_px: int = 640, height_px: int = 420
) -> tuple[tuple[float, float], int]:
    """Centre ``(lat, lon)`` and the largest web-mercator zoom showing ``box`` (lon/lat)."""
    lon0, lat0, lon1, lat1 = box
    span_lon = max(lon1 - lon0, 1e-4)
    span_lat = max(lat1 - lat0, 1e-4) / max(math.cos(math.radians((lat0 + lat1) / 2)), 0.05)
    zoom_x = math.log2(360.0 * width_px / 256.0 / span_lon)
    zoom_y = math.log2(360.0 * height_px / 256.0 / span_lat)
    zoom = int(max(1, min(14, math.floor(min(zoom_x, zoom_y) - 0.3))))
    return ((lat0 + lat1) / 2, (lon0 + lon1) / 2), zoom


class MapView(pn.viewable.Viewer):
    """ipyleaflet map linked to ``state.selection`` and ``state.focused``."""

    state = param.ClassSelector(class_=ExplorerState)
    basemap = param.Selector(default="OpenStreetMap", objects=list(BASEMAPS))
    max_footprints = param.Integer(
        default=500, doc="Footprints drawn one by one at most (hover, click each)."
    )
    max_merged = param.Integer(
        default=2_000, doc="Above max_footprints: footprints drawn, merged by colour (a subset)."
    )
    widget_cdn = param.String(default=None, allow_None=True)
    height = param.Integer(default=440)

    def __init__(self, state: ExplorerState, **params: Any) -> None:
        import ipyleaflet as L

        super().__init__(state=state, **params)
        url, attribution = BASEMAPS[self.basemap]
        self._tiles = L.TileLayer(
            url=url, attribution=attribution, base=True, name=self.basemap, max_zoom=18
        )
        center, zoom = self._initial_view()
        self.map = L.Map(
            center=center,
            zoom=zoom,
            scroll_wheel_zoom=True,
            basemap=self._tiles,
            layout={"height": f"{self.height}px"},
        )
        self.footprints = L.GeoJSON(data=_EMPTY, name="selection", hover_style=_HOVER)
        self.shown = 0  # footprints drawn of the selection
        self.focus_outline = L.GeoJSON(
            data=_EMPTY, name="focused", style={"color": "#e6194b", "weight": 3, "fillOpacity": 0}
        )
        self.overlay: Any = None
        self.draw = L.DrawControl(
            rectangle={"shapeOptions": {"color": "#0b5394", "fillOpacity": 0.1}},
            polygon={"shapeOptions": {"color": "#0b5394", "fillOpacity": 0.1}},
            polyline={},
            circlemarker={},
            marker={},
            circle={},
        )
        self.map.add(self.footprints)
        self.map.add(self.focus_outline)
        self.map.add(self.draw)
        self.map.add(L.ScaleControl(position="bottomleft"))
        self.footprints.on_click(self._on_feature_click)
        self.map.on_interaction(self._on_interaction)
        self.draw.on_draw(self._on_draw)
        self._pane = LocalLeaflet(
            self.map,
            widget_cdn=self.widget_cdn,
            sizing_mode="stretch_width",
            min_height=self.height,
        )
        self._base_select = pn.widgets.Select.from_param(
            self.param.basemap, label="Base map", width=180, margin=(5, 10)
        )
        self._note = LiveText("", margin=(28, 10, 5, 10))
        state.param.watch(self._draw_selection, ["selection", "version", "color_by"])
        state.param.watch(self._draw_focus, ["focused"])
        self._draw_selection()

    # -- view --------------------------------------------------------------------------------
    def _initial_view(self) -> tuple[tuple[float, float], int]:
        t = self.state.table
        cols = ["lon_min", "lat_min", "lon_max", "lat_max"]
        if set(cols) <= set(t.columns):
            box = t[cols].to_numpy(dtype=np.float64)
            box = box[np.isfinite(box).all(axis=1)]
            if len(box):
                return fit_view(
                    (box[:, 0].min(), box[:, 1].min(), box[:, 2].max(), box[:, 3].max())
                )
        return (20.0, 0.0), 2

    @param.depends("basemap", watch=True)
    def _switch_basemap(self) -> None:
        import ipyleaflet as L

        url, attribution = BASEMAPS[self.basemap]
        tiles = L.TileLayer(
            url=url, attribution=attribution, base=True, name=self.basemap, max_zoom=18
        )
        self.map.substitute(self._tiles, tiles)
        self._tiles = tiles

    def _draw_selection(self, *events: Any) -> None:
        s = self.state
        recenter = not events or any(e.name == "selection" for e in events)
        n_sel = len(s.selection)
        pos = s.selection_positions()
        merged = len(pos) > self.max_footprints
        limit = self.max_merged if merged else self.max_footprints
        if len(pos) > limit:  # a spatially representative subset, the same for the same selection
            pos = np.sort(np.random.default_rng(0).choice(pos, limit, replace=False))
        boxes = _boxes(s.table, pos)
        ok = np.isfinite(boxes).all(axis=1)
        pos, boxes = pos[ok], boxes[ok]
        colors = s.coloring().colors[pos]
        if merged:
            geo = _merged_geojson(boxes, colors)
        else:
            ids = s.table.index[pos]
            labels = s.table["label"].to_numpy()[pos]
            geo = _features_geojson(boxes, ids, colors, labels)
        self.footprints.hover_style = {} if merged else _HOVER
        self.footprints.data = geo
        self.shown = len(pos)
        if not n_sel:
            note = "Draw a rectangle or polygon to select by place"
        elif self.shown < n_sel:
            how = ", merged by colour" if merged else ""
            note = f"{self.shown:,} of {n_sel:,} selected footprints drawn{how}"
        else:
            note = f"{self.shown:,} footprints"
        self._note.object = note
        if len(boxes) and recenter:
            center, zoom = fit_view(
                (
                    boxes[:, 0].min(),
                    boxes[:, 1].min(),
                    boxes[:, 2].max(),
                    boxes[:, 3].max(),
                )
            )
            self.map.center, self.map.zoom = center, zoom

    def _draw_focus(self, *_: Any) -> None:
        import ipyleaflet as L

        s = self.state
        sid = s.focused
        box = s.data.footprint(sid) if sid is not None else None
        if box is None:
            self.focus_outline.data = _EMPTY
            self._remove_overlay()
            return
        self.focus_outline.data = s.data.footprints_geojson([sid])
        if not s.data.layers:
            self._remove_overlay()
            return
        lon0, lat0, lon1, lat1 = box
        url = png_data_url(s.data.png(sid, "phase", overlay=True))
        bounds = ((lat0, lon0), (lat1, lon1))
        if self.overlay is None:
            self.overlay = L.ImageOverlay(url=url, bounds=bounds, opacity=0.95, name="phase")
            self.map.add(self.overlay)
        else:
            self.overlay.url, self.overlay.bounds = url, bounds
        # bring the focused footprint into view with some context around it
        center, zoom = fit_view(box)
        self.map.center, self.map.zoom = center, max(int(self.map.zoom), zoom - 2)

    def _remove_overlay(self) -> None:
        if self.overlay is not None:
            self.map.remove(self.overlay)
            self.overlay = None

    # -- interaction -------------------------------------------------------------------------
    def _on_feature_click(
        self, feature: dict | None = None, coordinates: Any = None, **_: Any
    ) -> None:
        sid = (feature or {}).get("properties", {}).get("sample")
        with self.state.batch():
            if sid is not None and self.state.data.has(sid):
                self.select_sample(sid)
            elif coordinates is not None:  # merged footprints: the sample under the click
                self.click(*coordinates)

    def _on_interaction(self, **event: Any) -> None:
        if event.get("type") != "click":
            return
        lat, lon = event.get("coordinates", (None, None))
        if lat is None:
            return
        with self.state.batch():
            self.click(lat, lon)

    def click(self, lat: float, lon: float) -> str | None:
        """A map click at ``(lat, lon)``: focus the selected (else any) sample under it."""
        hits = self.state.samples_at(lon, lat)
        if not hits:
            return None
        selected = set(self.state.selection)
        in_sel = [h for h in hits if h in selected]
        sid = (in_sel or hits)[0]
        self.select_sample(sid)
        return sid

    def select_sample(self, sid: str) -> None:
        """Focus ``sid``; select it alone when it is not part of the current selection."""
        if sid not in set(self.state.selection):
            self.state.selection = [sid]
        self.state.focus(sid)

    def _on_draw(
        self, target: Any = None, action: str = "", geo_json: dict | None = None, **_: Any
    ) -> None:
        if action not in ("created", "edited") or not geo_json:
            return
        ring = np.asarray(geo_json["geometry"]["coordinates"][0], dtype=np.float64)
        with self.state.batch():
            self.state.select_geo(ring[:, 0], ring[:, 1])
        self.draw.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        header = pn.Row(self._base_select, self._note, sizing_mode="stretch_width")
        return pn.Column(header, self._pane, sizing_mode="stretch_width")


_EMPTY: dict = {"type": "FeatureCollection", "features": []}
_HOVER = {"weight": 3, "fillOpacity": 0.35}
_BOX_COLUMNS = ["lon_min", "lat_min", "lon_max", "lat_max"]


def _boxes(table: Any, pos: np.ndarray) -> np.ndarray:
    """``(n, 4)`` lon/lat boxes of the rows at ``pos`` (NaN where the table has none)."""
    if not set(_BOX_COLUMNS) <= set(table.columns):
        return np.full((len(pos), 4), np.nan)
    return np.column_stack([table[c].to_numpy(np.float64)[pos] for c in _BOX_COLUMNS])


def _features_geojson(boxes: np.ndarray, ids: Any, colors: np.ndarray, labels: np.ndarray) -> dict:
    """One clickable feature per footprint, coloured like the scatter."""
    features = [
        {
            "type": "Feature",
            "id": sid,
            "properties": {
                "sample": sid,
                "label": str(label),
                "style": {"color": c, "weight": 1.5, "fillColor": c, "fillOpacity": 0.2},
            },
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }
        for sid, ring, c, label in zip(ids, footprint_rings(boxes), colors, labels)
    ]
    return {"type": "FeatureCollection", "features": features}


def _merged_geojson(boxes: np.ndarray, colors: np.ndarray) -> dict:
    """One MultiPolygon per colour: thousands of footprints as a handful of map layers."""
    rings = footprint_rings(boxes)
    features = []
    for c in dict.fromkeys(colors.tolist()):
        idx = np.flatnonzero(colors == c)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "count": int(len(idx)),
                    "style": {"color": c, "weight": 1, "fillColor": c, "fillOpacity": 0.15},
                },
                "geometry": {"type": "MultiPolygon", "coordinates": [[rings[i]] for i in idx]},
            }
        )
    return {"type": "FeatureCollection", "features": features}
