"""The map: every footprint, the selection on top, the focused sample's phase, draw-to-select.

An ipyleaflet ``Map`` inside Panel, zoomed to the data's extent from the start. Before anything
is selected it shows where the data are: every footprint (merged into one layer per colour, with
a dot at each centre so that small footprints stay visible at a continental zoom), or above
``max_overview`` samples their density on a grid; both coloured like the scatter. The data's
extent box and a graticule need no tiles, so the map is readable offline. The selection's
footprints are drawn on top; clicking one focuses that sample everywhere; a rectangle or polygon
drawn on the map selects the samples whose footprint centre lies inside it. Served, the widget's
JavaScript comes from the app itself (see server.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import panel as pn
import param

from insarexplore.app.data import MAP_DECIMALS
from insarexplore.app.livetext import LiveText
from insarexplore.app.render import png_data_url
from insarexplore.app.state import ExplorerState
from insarexplore.data.accessor import footprint_features, footprint_rings

__all__ = ["MapView", "BASEMAPS", "LocalLeaflet", "fit_view", "graticule_step"]

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
    max_overview = param.Integer(
        default=3_000,
        doc="All samples drawn as footprints and dots up to this many; their density above.",
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
        # no layer-wide style: jupyter-leaflet lets it override each feature's own style
        self.extent = L.GeoJSON(data=_EMPTY, name="extent")
        self.overview = L.GeoJSON(data=_EMPTY, name="all samples", point_style=_DOT)
        self.overview_kind = ""  # "footprints" or "density": how all samples are drawn
        self.footprints = L.GeoJSON(data=_EMPTY, name="selection", hover_style=_HOVER)
        # the selection's centres, ringed: visible where its footprints are sub-pixel
        self.selected_centres = L.GeoJSON(data=_EMPTY, name="selected", point_style=_SEL_DOT)
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
        self.map.add(self.extent)
        self.map.add(self.overview)
        self.map.add(self.selected_centres)
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
        state.param.watch(self._draw_overview, ["version", "color_by"])
        state.param.watch(self._draw_focus, ["focused"])
        self._draw_extent()
        self._draw_overview()
        self._draw_selection()

    # -- view --------------------------------------------------------------------------------
    def data_extent(self) -> tuple[float, float, float, float] | None:
        """``(lon_min, lat_min, lon_max, lat_max)`` of every footprint, or None."""
        t = self.state.table
        boxes = _boxes(t, np.arange(len(t)))
        boxes = boxes[np.isfinite(boxes).all(axis=1)]
        if not len(boxes):
            return None
        return (
            float(boxes[:, 0].min()),
            float(boxes[:, 1].min()),
            float(boxes[:, 2].max()),
            float(boxes[:, 3].max()),
        )

    def _initial_view(self) -> tuple[tuple[float, float], int]:
        box = self.data_extent()
        return fit_view(box) if box is not None else ((20.0, 0.0), 2)

    def _draw_extent(self) -> None:
        """The data's extent as a dashed box, with a graticule inside it (no tiles needed)."""
        box = self.data_extent()
        self.extent.data = _extent_geojson(box) if box is not None else _EMPTY

    def _draw_overview(self, *_: Any) -> None:
        """Every sample: footprints and centre dots, or their density above max_overview."""
        s = self.state
        boxes = _boxes(s.table, np.arange(s.n))
        ok = np.isfinite(boxes).all(axis=1)
        if not ok.any():
            self.overview.data, self.overview_kind = _EMPTY, ""
            return
        if ok.sum() <= self.max_overview:
            colors = s.coloring().colors[ok]
            self.overview.data = _overview_geojson(boxes[ok], colors)
            self.overview_kind = "footprints"
        else:
            self.overview.data = _density_geojson(boxes[ok])
            self.overview_kind = "density"

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
        self.selected_centres.data = _centres_geojson(boxes, colors)
        self.shown = len(pos)
        if not n_sel:
            n_all = int(np.isfinite(_boxes(s.table, np.arange(s.n))).all(axis=1).sum())
            how = "density of " if self.overview_kind == "density" else ""
            note = (
                f"{how}all {n_all:,} footprints · draw a rectangle or polygon to select by place"
                if n_all
                else "no footprints: these samples carry no location (images without "
                "georeferencing or coordinates in their names)"
            )
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
_EXTENT_STYLE = {"color": "#5a6b7b", "weight": 1.5, "fillOpacity": 0, "opacity": 0.8}
_DOT = {"radius": 3, "weight": 0.5, "fillOpacity": 0.8, "opacity": 0.9}
_SEL_DOT = {"radius": 5, "weight": 1.5, "fillOpacity": 0.9, "color": "#000000"}
_BOX_COLUMNS = ["lon_min", "lat_min", "lon_max", "lat_max"]


def _boxes(table: Any, pos: np.ndarray) -> np.ndarray:
    """``(n, 4)`` lon/lat boxes of the rows at ``pos`` (NaN where the table has none)."""
    if not set(_BOX_COLUMNS) <= set(table.columns):
        return np.full((len(pos), 4), np.nan)
    return np.column_stack([table[c].to_numpy(np.float64)[pos] for c in _BOX_COLUMNS])


def graticule_step(span: float) -> float:
    """A round graticule spacing in degrees giving about 3-8 lines across ``span`` degrees."""
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 45, 90):
        if span / step <= 8:
            return float(step)
    return 90.0


def _extent_geojson(box: tuple[float, float, float, float]) -> dict:
    """The extent box (dashed) and graticule lines inside it, labelled by their degree."""
    lon0, lat0, lon1, lat1 = box
    pad = max(lon1 - lon0, lat1 - lat0, 0.01) * 0.02
    lon0, lat0 = max(lon0 - pad, -180.0), max(lat0 - pad, -85.0)
    lon1, lat1 = min(lon1 + pad, 180.0), min(lat1 + pad, 85.0)
    ring = [[lon0, lat0], [lon1, lat0], [lon1, lat1], [lon0, lat1], [lon0, lat0]]
    features = [
        {
            "type": "Feature",
            "properties": {
                "kind": "extent",
                "style": {**_EXTENT_STYLE, "dashArray": "6 4"},
            },
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }
    ]
    step = graticule_step(max(lon1 - lon0, lat1 - lat0))
    line = {"color": "#8a99a8", "weight": 0.6, "opacity": 0.7, "dashArray": "2 4"}
    for lon in np.arange(math.ceil(lon0 / step) * step, lon1, step):
        features.append(
            {
                "type": "Feature",
                "properties": {"kind": "graticule", "lon": round(float(lon), 6), "style": line},
                "geometry": {"type": "LineString", "coordinates": [[lon, lat0], [lon, lat1]]},
            }
        )
    for lat in np.arange(math.ceil(lat0 / step) * step, lat1, step):
        features.append(
            {
                "type": "Feature",
                "properties": {"kind": "graticule", "lat": round(float(lat), 6), "style": line},
                "geometry": {"type": "LineString", "coordinates": [[lon0, lat], [lon1, lat]]},
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _centres(boxes: np.ndarray) -> np.ndarray:
    """(lon, lat) of each footprint's centre, rounded as the map's rings are."""
    return np.round(np.column_stack([boxes[:, [0, 2]].mean(1), boxes[:, [1, 3]].mean(1)]), 5)


def _points_feature(points: np.ndarray, kind: str, style: dict) -> dict:
    """One MultiPoint feature of footprint centres, with its kind, count and style."""
    return {
        "type": "Feature",
        "properties": {"kind": kind, "count": int(len(points)), "style": style},
        "geometry": {"type": "MultiPoint", "coordinates": points.tolist()},
    }


def _overview_geojson(boxes: np.ndarray, colors: np.ndarray) -> dict:
    """Every footprint merged by colour, and one dot per footprint centre, faint."""
    rings = footprint_rings(boxes, MAP_DECIMALS)
    centres = _centres(boxes)
    features = []
    for c in dict.fromkeys(colors.tolist()):
        idx = np.flatnonzero(colors == c)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "kind": "footprints",
                    "count": int(len(idx)),
                    "style": {"color": c, "weight": 0.8, "fillColor": c, "fillOpacity": 0.08},
                },
                "geometry": {"type": "MultiPolygon", "coordinates": [[rings[i]] for i in idx]},
            }
        )
        features.append(_points_feature(centres[idx], "centres", {"color": c, "fillColor": c}))
    return {"type": "FeatureCollection", "features": features}


def _centres_geojson(boxes: np.ndarray, colors: np.ndarray) -> dict:
    """One MultiPoint of footprint centres per colour (black-ringed dots of the selection)."""
    if not len(boxes):
        return _EMPTY
    centres = _centres(boxes)
    features = [
        _points_feature(centres[colors == c], "selected", {"color": "#000000", "fillColor": c})
        for c in dict.fromkeys(colors.tolist())
    ]
    return {"type": "FeatureCollection", "features": features}


def _density_geojson(boxes: np.ndarray, cells: int = 64) -> dict:
    """Footprint centres counted on a grid over their extent: one shaded square per cell."""
    from insarexplore.app.colors import RAMP

    cx, cy = boxes[:, [0, 2]].mean(1), boxes[:, [1, 3]].mean(1)
    lon0, lon1, lat0, lat1 = cx.min(), cx.max(), cy.min(), cy.max()
    size = max(lon1 - lon0, lat1 - lat0, 1e-3) / cells
    i = np.minimum(((cx - lon0) / size).astype(int), cells)
    j = np.minimum(((cy - lat0) / size).astype(int), cells)
    keys, counts = np.unique(i * (cells + 1) + j, return_counts=True)
    level = np.log1p(counts) / np.log1p(counts.max())
    features = []
    for key, n, t in zip(keys.tolist(), counts.tolist(), level.tolist()):
        a, b = divmod(key, cells + 1)
        x, y = lon0 + a * size, lat0 + b * size
        col = RAMP[min(len(RAMP) - 1, int(round(t * (len(RAMP) - 1))))]
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "kind": "density",
                    "count": int(n),
                    "style": {
                        "color": col,
                        "weight": 0.5,
                        "fillColor": col,
                        "fillOpacity": 0.25 + 0.5 * t,
                    },
                },
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
                    ],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _features_geojson(boxes: np.ndarray, ids: Any, colors: np.ndarray, labels: np.ndarray) -> dict:
    """One clickable feature per footprint, coloured like the scatter."""
    props = [
        {
            "label": str(label),
            "style": {"color": c, "weight": 1.5, "fillColor": c, "fillOpacity": 0.2},
        }
        for c, label in zip(colors, labels)
    ]
    return footprint_features(ids, boxes, props, decimals=MAP_DECIMALS)


def _merged_geojson(boxes: np.ndarray, colors: np.ndarray) -> dict:
    """One MultiPolygon per colour: thousands of footprints as a handful of map layers."""
    rings = footprint_rings(boxes, MAP_DECIMALS)
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
