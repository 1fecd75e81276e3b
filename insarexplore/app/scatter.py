"""The embedding scatter: points for small sets, datashader rasterisation above a threshold.

Selection is geometric and decided on the server (box via ``BoundsXY``, lasso via ``Lasso``,
point-in-polygon on the projected coordinates), so it works the same for 1,000 or 1,000,000
points; ``Selection1D`` would not fire on rasterised output. A tap focuses the nearest sample.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from insarexplore.app.colors import Coloring
from insarexplore.app.livetext import LiveText
from insarexplore.app.state import ExplorerState

__all__ = ["ScatterView"]

_MAX_OVERLAY = 5_000  # selected points ringed on top (a random subset above: 20k cost 0.2 s)


class ScatterView(pn.viewable.Viewer):
    """UMAP/PCA scatter coloured by ``state.color_by``, linked to ``state.selection``."""

    state = param.ClassSelector(class_=ExplorerState)
    threshold = param.Integer(default=10_000, bounds=(1, None), doc="Rasterise above this many.")
    thumb_url = param.String(
        default=None,
        allow_None=True,
        doc="Base URL of served thumbnails (<url>/<id>.png) for hover.",
    )
    height = param.Integer(default=480)

    def __init__(self, state: ExplorerState, **params: Any) -> None:
        import holoviews as hv

        super().__init__(state=state, **params)
        import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend)

        hv.Store.set_current_backend("bokeh")
        self.datashaded = state.n > self.threshold
        self._trigger = hv.streams.Params(state, ["color_by", "version"])
        self._overlays: dict[int, tuple[Any, Any]] = {}  # figure id -> (selection, focus) sources
        if self.datashaded:
            self._range = hv.streams.RangeXY()
            self._size = hv.streams.PlotSize()
            base = hv.DynamicMap(self._raster, streams=[self._trigger, self._range, self._size])
        else:
            base = hv.DynamicMap(self._points, streams=[self._trigger])
        self.box = hv.streams.BoundsXY(source=base, bounds=None)
        self.lasso = hv.streams.Lasso(source=base, geometry=None)
        self.tap = hv.streams.Tap(source=base, x=None, y=None)
        self.box.add_subscriber(self._on_box)
        self.lasso.add_subscriber(self._on_lasso)
        self.tap.add_subscriber(self._on_tap)
        # the selection and focus markers are plain Bokeh glyphs added by a hook and updated
        # in place: no HoloViews re-render (range computation over every point) per selection
        self.plot = base.opts(
            responsive=True,
            min_height=self.height,
            height=self.height,
            toolbar="above",
            active_tools=["box_select", "wheel_zoom"],
            xaxis=None,
            yaxis=None,
            show_legend=False,
            hooks=[self._add_overlay],
        )
        self._pane = pn.pane.HoloViews(
            self.plot, sizing_mode="stretch_width", min_height=self.height, linked_axes=False
        )
        self._legend = pn.pane.HTML(sizing_mode="stretch_width", margin=(0, 10))
        self._color_select = pn.widgets.Select.from_param(
            state.param.color_by, label="Colour by", width=180, margin=(5, 10)
        )
        self._info = LiveText(self._info_text(), margin=(28, 10, 5, 10))
        state.param.watch(self._update_legend, ["color_by", "version"])
        state.param.watch(self._update_overlay, ["selection", "focused"])
        state.param.watch(lambda e: setattr(self._info, "object", self._info_text()), ["selection"])
        self._update_legend()

    # -- colours -----------------------------------------------------------------------------
    def current_coloring(self) -> Coloring:
        return self.state.coloring()

    def _update_legend(self, *_: Any) -> None:
        c = self.current_coloring()
        items = c.legend_items(counts=c.kind == "categorical")
        if c.kind == "numeric":
            lo, hi = items[0][1], items[-1][1]
            grad = ", ".join(_ramp_css())
            html = (
                f"<div style='display:flex;align-items:center;gap:6px;font-size:12px'>"
                f"<span>{lo}</span><span style='width:140px;height:10px;border-radius:2px;"
                f"background:linear-gradient(to right, {grad})'></span><span>{hi}</span></div>"
            )
        else:
            swatches = "".join(
                f"<span style='display:inline-flex;align-items:center;margin-right:10px'>"
                f"<span style='width:10px;height:10px;border-radius:50%;background:{col};"
                f"display:inline-block;margin-right:4px'></span>{_escape(text)}</span>"
                for col, text in items[:24]
            )
            more = f" ... +{len(items) - 24}" if len(items) > 24 else ""
            html = f"<div style='font-size:12px;line-height:1.8'>{swatches}{more}</div>"
            if c.field == "cluster":
                html = _cluster_note(self.state.data.cluster_info, c) + html
        self._legend.object = html

    def _info_text(self) -> str:
        mode = "datashaded" if self.datashaded else "points"
        n, k = self.state.n, len(self.state.selection)
        return f"<b>{n:,}</b> samples ({mode}) · <b>{k:,}</b> selected"

    # -- plot callbacks ----------------------------------------------------------------------
    def _frame(self) -> pd.DataFrame:
        """x, y, a numeric colour value and the sample id (no per-point colour strings: Bokeh
        would validate every one of them)."""
        s, c = self.state, self.current_coloring()
        if c.kind == "categorical":
            value = np.where(c.codes < 0, len(c.categories), c.codes).astype(np.float64)
        else:
            value = c.values
        return pd.DataFrame(
            {
                "x": s.data.xy[:, 0],
                "y": s.data.xy[:, 1],
                "c": value,
                "sample": s.table.index.to_numpy(),
            }
        )

    def _points(self, color_by: str, version: int) -> Any:
        import holoviews as hv
        from bokeh.models import HoverTool

        from insarexplore.app.colors import MISSING, RAMP

        c = self.current_coloring()
        if c.kind == "categorical":
            cmap, clim = [*c.color_key, MISSING], (-0.5, len(c.categories) + 0.5)
        else:
            cmap, clim = RAMP, c.span
        formatters: dict[str, Any] = {}
        if self.thumb_url is not None:
            from bokeh.models import CustomJSHover

            # ids are paths ("deformation/x.png"): the URL needs them percent-encoded
            formatters["@sample"] = CustomJSHover(code="return encodeURIComponent(value)")
            tooltip: Any = (
                f"<div><img src='{self.thumb_url}/@sample{{custom}}.png' width='96' height='96' "
                "style='image-rendering:pixelated'><div>@sample</div></div>"
            )
        else:
            tooltip = [("sample", "@sample")]
        tools = [
            "box_select",
            "lasso_select",
            "tap",
            "wheel_zoom",
            "pan",
            "reset",
            HoverTool(tooltips=tooltip, formatters=formatters),
        ]
        return hv.Points(self._frame(), ["x", "y"], ["c", "sample"]).opts(
            color="c",
            cmap=cmap,
            clim=clim,
            clipping_colors={"NaN": MISSING},
            colorbar=False,
            size=5,
            line_alpha=0,
            alpha=0.85,
            tools=tools,
            default_tools=["save"],
            nonselection_alpha=0.85,
            selection_alpha=0.85,
            selection_line_alpha=0,
        )

    def _raster(
        self,
        color_by: str,
        version: int,
        x_range: Any,
        y_range: Any,
        width: Any,
        height: Any,
        **_: Any,
    ) -> Any:
        import holoviews as hv

        xr_, yr_ = self._extent(x_range, y_range)
        w, h = int(width or 900), int(height or self.height)
        img = raster_image(self.state.data.xy, self.current_coloring(), xr_, yr_, w, h)
        # vdims name the alpha channel: without it HoloViews drops A and empty pixels show
        return hv.RGB(img, bounds=(xr_[0], yr_[0], xr_[1], yr_[1]), vdims=list("RGBA")).opts(
            tools=["box_select", "lasso_select", "tap", "wheel_zoom", "pan", "reset"],
            default_tools=["save"],
        )

    def _extent(
        self, x_range: Any, y_range: Any
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        xy = self.state.data.xy
        if x_range is None or y_range is None:
            lo, hi = np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)
            pad = (hi - lo) * 0.04 + 1e-9
            return (lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1])
        return tuple(map(float, x_range)), tuple(map(float, y_range))

    def _overlay_data(self) -> tuple[dict, dict]:
        s = self.state
        pos = s.selection_positions()
        if len(pos) > _MAX_OVERLAY:
            pos = np.random.default_rng(0).choice(pos, _MAX_OVERLAY, replace=False)
        sel = s.data.xy[pos]
        foc = s.data.xy[s.data.index_of([s.focused])] if s.focused else np.empty((0, 2))
        return ({"x": sel[:, 0], "y": sel[:, 1]}, {"x": foc[:, 0], "y": foc[:, 1]})

    def _add_overlay(self, plot: Any, element: Any) -> None:
        """HoloViews hook: add selection rings and the focus star to a new Bokeh figure."""
        from bokeh.models import ColumnDataSource

        fig = plot.state
        if id(fig) in self._overlays:
            return
        # HoloViews asks for WebGL; for a raster plus a few thousand markers the 2-D canvas is as
        # fast, and WebGL without a GPU (software GL) copied the canvas on every repaint:
        # 0.6 s of browser time per selection at 200,000 samples (measured, headless chromium)
        fig.output_backend = "canvas"
        sel_data, foc_data = self._overlay_data()
        sel, foc = ColumnDataSource(sel_data), ColumnDataSource(foc_data)
        fig.scatter(
            "x",
            "y",
            source=sel,
            size=7,
            fill_alpha=0,
            line_color="black",
            line_width=1.2,
            level="overlay",
        )
        fig.scatter(
            "x",
            "y",
            source=foc,
            marker="star",
            size=18,
            fill_color="#e6194b",
            line_color="white",
            line_width=1.0,
            level="overlay",
        )
        self._overlays[id(fig)] = (sel, foc)

    def _update_overlay(self, *_: Any) -> None:
        sel_data, foc_data = self._overlay_data()
        for sel, foc in self._overlays.values():
            doc = sel.document
            if doc is not None and doc.session_context is not None:
                # served: Bokeh models may only change under the document lock
                doc.add_next_tick_callback(partial(_set_data, sel, foc, sel_data, foc_data))
            else:
                _set_data(sel, foc, sel_data, foc_data)
        doc = pn.state.curdoc
        if self._overlays and (doc is None or doc.session_context is None):  # notebook
            try:
                pn.io.push_notebook(self._pane)
            except Exception:  # nothing displayed yet
                pass

    # -- stream reactions --------------------------------------------------------------------
    def _on_box(self, bounds: Any = None, **_: Any) -> None:
        if bounds is not None:
            with self.state.batch():
                self.state.select_box(*bounds)

    def _on_lasso(self, geometry: Any = None, **_: Any) -> None:
        if geometry is not None and len(geometry) >= 3:
            geometry = np.asarray(geometry)
            with self.state.batch():
                self.state.select_lasso(geometry[:, 0], geometry[:, 1])

    def _on_tap(self, x: float | None = None, y: float | None = None, **_: Any) -> None:
        if x is not None and y is not None:
            with self.state.batch():
                self.state.focus(self.state.nearest(x, y))

    def __panel__(self) -> pn.viewable.Viewable:
        header = pn.Row(self._color_select, self._info, sizing_mode="stretch_width")
        return pn.Column(header, self._legend, self._pane, sizing_mode="stretch_width")


def _cluster_note(info: dict, c: Coloring) -> str:
    """The line above the cluster legend: what made the proposals, or that there are none."""
    n = len(c.categories)
    if not n:
        text = "No cluster proposals: every sample is noise at the settings tried"
    elif info.get("method") == "kmeans":
        text = (
            f"{n} k-means regions of the map: HDBSCAN found no dense clusters, so these are "
            "areas to look at, not groups"
        )
    else:
        params = info.get("params") or {}
        size = (
            f", min cluster size {params['min_cluster_size']}"
            if params.get("min_cluster_size")
            else ""
        )
        space = {"umap": "UMAP map", "pca": "PCA map", "embedding": "embeddings"}.get(
            str(info.get("space", "")), "map"
        )
        text = f"{n} HDBSCAN cluster proposals on the {space}{size}; lasso one to label it"
    return f"<div style='font-size:12px;color:#444'>{_escape(text)}</div>"


def _set_data(sel: Any, foc: Any, sel_data: dict, foc_data: dict) -> None:
    sel.data, foc.data = sel_data, foc_data


def _ramp_css() -> list[str]:
    from insarexplore.app.colors import RAMP

    return RAMP


def _escape(text: str) -> str:
    import html

    return html.escape(str(text))


def raster_image(
    xy: np.ndarray,
    c: Coloring,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
    width: int,
    height: int,
) -> tuple:
    """Datashade ``xy`` coloured by ``c`` into ``(xs, ys, R, G, B, A)`` for ``hv.RGB``."""
    import datashader as ds
    import datashader.transfer_functions as tf

    from insarexplore.app.colors import MISSING, RAMP

    cvs = ds.Canvas(
        plot_width=max(width, 50), plot_height=max(height, 50), x_range=x_range, y_range=y_range
    )
    if c.kind == "categorical":
        import xarray as xr

        cats = [*c.categories, "(none)"]
        codes = np.where(c.codes < 0, len(cats) - 1, c.codes)
        frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]})
        # one count per category, stacked: the same aggregate as ds.count_cat, but numba
        # compiles count_cat anew for every number of categories (0.5 s each time a class is
        # added, measured), and a plain count once
        layers = [cvs.points(frame[codes == k], "x", "y", agg=ds.count()) for k in range(len(cats))]
        agg = xr.concat(layers, dim=pd.Index(cats, name="c")).transpose(*layers[0].dims, "c")
        img = tf.shade(agg, color_key=dict(zip(cats, [*c.color_key, MISSING])), min_alpha=90)
    else:
        frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "v": c.values})
        base = tf.shade(cvs.points(frame, "x", "y", agg=ds.count()), cmap=[MISSING, MISSING])
        agg = cvs.points(frame, "x", "y", agg=ds.mean("v"))
        img = tf.stack(base, tf.shade(agg, cmap=RAMP, how="linear", span=list(c.span)))
    img = tf.dynspread(img, threshold=0.6, max_px=3)
    rgba = np.asarray(img.data).view(np.uint8).reshape(img.shape + (4,))
    xs, ys = np.asarray(img.coords["x"]), np.asarray(img.coords["y"])
    return (xs, ys, rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3])
