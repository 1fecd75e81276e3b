"""Every view's reactions to the state (and the state's to the views), with no browser."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import panel as pn
import pytest

from insarexplore.app.data import ExplorerData
from insarexplore.app.state import ExplorerState


@pytest.fixture
def scatter(state):
    from insarexplore.app.scatter import ScatterView

    return ScatterView(state)


def test_scatter_streams_select_on_the_server(state, scatter):
    assert not scatter.datashaded
    xy = state.data.xy
    x0, x1 = np.percentile(xy[:, 0], [30, 80])
    y0, y1 = np.percentile(xy[:, 1], [0, 100])
    scatter.box.event(bounds=(x0, y0, x1, y1))
    expect = state.table.index[(xy[:, 0] >= x0) & (xy[:, 0] <= x1)]
    assert set(state.selection) == set(expect)
    scatter.lasso.event(geometry=np.array([[x0, y0], [x1, y0], [x1, y1]]))
    assert 0 < len(state.selection) < len(expect)
    scatter.tap.event(x=float(xy[3, 0]), y=float(xy[3, 1]))
    assert state.focused == state.table.index[3]
    assert "selected" in scatter._info.object


def test_scatter_colours_and_legend_follow_color_by(state, scatter):
    pn.panel(scatter).get_root()  # renders without error
    state.create_class("mogi")
    state.assign(list(state.table.index[:4]), "mogi")
    assert "mogi" in scatter._legend.object
    colors = state.coloring().colors
    assert len(set(colors[:4])) == 1 and colors[0] != colors[10]
    state.color_by = "depth_m"
    assert "linear-gradient" in scatter._legend.object
    state.color_by = "primary_date"
    assert "20" in scatter._legend.object  # dates, not day numbers


@pytest.mark.slow  # datashader compiles its numba kernels (about 30 s on 2 cores)
def test_datashaded_scatter_selects_and_rasterises(app_data, tmp_path):
    from insarexplore.app.scatter import ScatterView, raster_image
    from insarexplore.explore.labels import LabelStore

    st = ExplorerState(app_data, label_store=LabelStore(tmp_path / "l.sqlite"))
    view = ScatterView(st, threshold=10)
    assert view.datashaded
    pn.panel(view).get_root()
    xy = app_data.xy
    view.box.event(bounds=(xy[:, 0].min(), xy[:, 1].min(), np.median(xy[:, 0]), xy[:, 1].max()))
    assert abs(len(st.selection) - len(xy) / 2) <= 1
    for field in ("label", "depth_m"):
        st.color_by = field
        xs, ys, r, g, b, a = raster_image(
            xy,
            st.coloring(),
            (xy[:, 0].min(), xy[:, 0].max()),
            (xy[:, 1].min(), xy[:, 1].max()),
            80,
            60,
        )
        assert r.shape == (60, 80) and len(xs) == 80 and len(ys) == 60
        assert (a > 0).sum() >= 20  # points were drawn
    # the plotted element keeps the alpha channel (else empty pixels draw as a grey box)
    element = view._raster("label", st.version, None, None, 80, 60)
    assert [d.name for d in element.vdims] == ["R", "G", "B", "A"]


def test_categorical_raster_matches_count_cat():
    """The per-category stacked counts give datashader's count_cat image, pixel for pixel."""
    import datashader as ds
    import datashader.transfer_functions as tf

    from insarexplore.app.colors import MISSING, Coloring
    from insarexplore.app.scatter import raster_image

    rng = np.random.default_rng(1)
    xy = rng.normal(size=(3000, 2))
    codes = rng.integers(-1, 3, len(xy))
    key = ["#1f77b4", "#ff7f0e", "#2ca02c"]
    c = Coloring("label", "categorical", None, ["a", "b", "c"], key, codes=codes)
    *_, r, g, b, a = raster_image(xy, c, (-3.0, 3.0), (-3.0, 3.0), 60, 50)
    cats = ["a", "b", "c", "(none)"]
    frame = pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "c": pd.Categorical.from_codes(np.where(codes < 0, 3, codes), categories=cats),
        }
    )
    cvs = ds.Canvas(plot_width=60, plot_height=50, x_range=(-3.0, 3.0), y_range=(-3.0, 3.0))
    agg = cvs.points(frame, "x", "y", agg=ds.count_cat("c"))
    ref = tf.shade(agg, color_key=dict(zip(cats, [*key, MISSING])), min_alpha=90)
    ref = tf.dynspread(ref, threshold=0.6, max_px=3)
    rgba = np.asarray(ref.data).view(np.uint8).reshape(ref.shape + (4,))
    assert (np.stack([r, g, b, a], axis=-1) == rgba).all()


def test_map_follows_selection_focus_and_draws(state):
    from insarexplore.app.map import BASEMAPS, MapView

    view = MapView(state)
    pn.panel(view).get_root()
    assert view.footprints.data["features"] == []
    ids = list(state.table.index[:7])
    state.select_ids(ids)
    feats = view.footprints.data["features"]
    assert [f["properties"]["sample"] for f in feats] == ids
    sel = state.table.loc[ids]
    lat, lon = view.map.center  # the centre of the selection's footprints
    assert lat == pytest.approx((sel.lat_min.min() + sel.lat_max.max()) / 2)
    assert lon == pytest.approx((sel.lon_min.min() + sel.lon_max.max()) / 2)
    state.focus(ids[2])
    assert view.overlay is not None and view.overlay.url.startswith("data:image/png;base64,")
    png = base64.b64decode(view.overlay.url.split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    r2 = state.table.loc[ids[2]]
    assert tuple(view.overlay.bounds) == ((r2.lat_min, r2.lon_min), (r2.lat_max, r2.lon_max))
    # clicking a footprint of the selection focuses it and keeps the selection
    view._on_feature_click(feature=feats[4])
    assert state.focused == ids[4] and state.selection == ids
    # a click elsewhere on the map focuses and selects the sample under it
    other = state.table.index[50]
    r = state.table.loc[other]
    assert view.click((r.lat_min + r.lat_max) / 2, (r.lon_min + r.lon_max) / 2) is not None
    assert state.focused in state.selection
    assert view.click(-80.0, -170.0) is None
    # a drawn rectangle selects the samples inside it
    ring = [[14.0, 37.0], [16.0, 37.0], [16.0, 39.0], [14.0, 39.0], [14.0, 37.0]]
    view._on_draw(action="created", geo_json={"geometry": {"coordinates": [ring]}})
    assert state.selection and all(
        14 < state.table.at[s, "lon_min"] + 0.05 < 16 for s in state.selection
    )
    # big selections: a capped subset, merged into one feature per colour, still clickable
    view.param.update(max_footprints=3, max_merged=5)
    ids = list(state.table.index[:20])
    state.select_ids(ids)
    feats = view.footprints.data["features"]
    assert {f["geometry"]["type"] for f in feats} == {"MultiPolygon"}
    assert sum(f["properties"]["count"] for f in feats) == view.shown == 5
    assert "5 of 20 selected footprints drawn" in view._note.object
    lon0, lat0 = feats[0]["geometry"]["coordinates"][0][0][0]
    lon1, lat1 = feats[0]["geometry"]["coordinates"][0][0][2]
    view._on_feature_click(feature=feats[0], coordinates=[(lat0 + lat1) / 2, (lon0 + lon1) / 2])
    assert state.focused in ids and state.selection == ids
    view.basemap = "Satellite (Esri)"
    assert view.map.layers[0].url == BASEMAPS["Satellite (Esri)"][0]
    state.focus(None)
    assert view.overlay is None


def test_gallery_pages_and_focuses(state):
    from insarexplore.app.gallery import DetailView, GalleryView

    gallery = GalleryView(state, page_size=5)
    pn.panel(gallery).get_root()  # with a Bokeh model: updates go through Panel's sync
    detail = DetailView(state)
    assert gallery.cards == {}
    ids = list(state.table.index[:12])
    state.select_ids(ids)
    assert list(gallery.cards) == ids[:5] and gallery.n_pages == 3
    gallery._turn(+1)
    assert list(gallery.cards) == ids[5:10]
    gallery._turn(+5)
    assert list(gallery.cards) == ids[10:12]
    card = gallery.cards[ids[11]]
    head, _, b64 = card["src"].partition(",")
    assert head == "data:image/png;base64" and base64.b64decode(b64)[:4] == b"\x89PNG"
    assert [c["id"] for c in gallery.grid.cards] == ids[10:12]  # one page, one browser update
    gallery.grid.click(ids[11])  # a click on the card in the browser
    assert state.focused == ids[11]
    assert gallery.grid.focused == ids[11]
    assert list(detail.images) == ["phase", "coherence", "displacement"]
    assert all(p.object[:4] == b"\x89PNG" for p in detail.images.values())
    assert detail._images.visible and not detail._hint.visible
    assert ids[11] in detail._meta.object and "never labelled" in detail._history.object
    state.assign([ids[11]], "dyke")
    assert "dyke" in detail._history.object and "alice" in detail._history.object
    state.select_ids(ids[:3])  # a new selection starts on page 1
    assert gallery.page == 0 and list(gallery.cards) == ids[:3]
    assert "dyke" not in gallery.cards[ids[0]]["meta"]
    state.assign([ids[0]], "dyke")  # labels update the cards' text
    assert "dyke" in gallery.grid.cards[0]["meta"]
    state.select_ids([])  # an empty page, then a full one again
    assert gallery.grid.cards == [] and "Select points" in gallery.grid.empty
    state.select_ids(ids[3:5])
    assert [c["id"] for c in gallery.grid.cards] == ids[3:5]


def test_labelling_panel_buttons(state):
    from insarexplore.app.labelling import LabellingView

    view = LabellingView(state)
    view.apply_selection.clicks += 1
    assert "nothing is selected" in state.message or "class" in state.message
    view.new_class.value = "subsidence"
    view.create.clicks += 1
    assert state.classes == ["subsidence"] and view.class_select.value == "subsidence"
    state.select_ids(list(state.table.index[:4]))
    view.apply_selection.clicks += 1
    assert state.counts == {"subsidence": 4} and "4" in view.counts.object
    view.undo.clicks += 1
    assert state.counts["subsidence"] == 0
    view.redo.clicks += 1
    assert state.counts["subsidence"] == 4
    assert view._export("csv").getvalue().count(b"subsidence") == 4


def test_model_panel_trains_and_keys_label(workspace_copy):
    from insarexplore.app.model import ModelView

    data = ExplorerData.from_workspace(workspace_copy, projection="pca")
    st = ExplorerState(data, author="kbd")
    view = ModelView(st)
    view.train.clicks += 1
    assert "2 classes" in st.message and not st.busy
    for k, c in enumerate(("mogi", "dyke", "none")):
        st.assign([f"s{i:04d}" for i in range(k, 24, 3)], c)
    view.train.clicks += 1
    st.wait(60)
    assert st.has_predictions and "Predicted:" in view.summary.object
    assert not view.train.disabled
    view.strategy.value = "margin"
    view.suggest.clicks += 1
    queue = list(st.suggestions)
    assert len(queue) == 12 and st.focused == queue[0]
    view.keys.press("3")
    assert st.table.at[queue[0], "label"] == st.classes[2] and st.focused == queue[1]
    view.keys.press("u")
    assert st.table.at[queue[0], "label"] == ""
    # presses faster than the page syncs arrive merged in one update: each one counts
    assert st.focused == queue[1]  # undo leaves the focus where it is
    view.keys.press("212")
    assert list(st.table.loc[queue[1:4], "label"]) == [st.classes[1], st.classes[0], st.classes[1]]
    assert st.focused == queue[4]
    view.keys.log = "2:x"  # the page drawn again: its count starts anew
    assert st.focused == queue[4] and st.table.at[queue[4], "label"] == ""
    view.keys.log = "3:x1"
    assert st.table.at[queue[4], "label"] == st.classes[0]
    for strategy in ("margin_diverse", "typical"):
        view.strategy.value = strategy
        view.suggest.clicks += 1
        queue = list(st.suggestions)
        assert len(set(queue)) == 12 and (st.table.loc[queue, "label"] == "").all()


def test_class_names_show_as_text_in_the_model_panel_never_as_markup(workspace_copy):
    """A class name is user text (typed, or imported from a colleague's CSV): in the status
    line and the predictions summary it shows as itself and never runs as the page's code."""
    from insarexplore.app.model import ModelView

    data = ExplorerData.from_workspace(workspace_copy, projection="pca")
    st = ExplorerState(data, author="x")
    view = ModelView(st)
    evil = "<img src=x onerror=alert(1)>"
    for k, c in enumerate(("none", evil)):  # the evil one last: the status names it
        st.assign([f"s{i:04d}" for i in range(k, 24, 2)], c)
    assert "<img" not in view.status.object and "&lt;img src=x" in view.status.object
    view.train.clicks += 1
    st.wait(60)
    assert st.has_predictions and "&lt;img src=x onerror=alert(1)&gt;" in view.summary.object
    assert "<img" not in view.summary.object


def test_explorer_assembles_inline(app_data):
    from insarexplore.app import Explorer

    ex = Explorer(data=app_data, author="nb")
    root = pn.panel(ex).get_root()
    assert root is not None
    assert ex.state.author == "nb" and "labels by <b>nb</b>" in ex._status.object
    with pytest.raises(ValueError, match="workspace"):
        Explorer()


def test_render_layers_and_overlay_alpha(app_data):
    import io

    from PIL import Image

    sid = app_data.table.index[0]
    for layer in app_data.layers:
        img = Image.open(io.BytesIO(app_data.png(sid, layer, size=48)))
        assert img.size == (48, 48)
    over = Image.open(io.BytesIO(app_data.png(sid, "phase", overlay=True)))
    assert over.mode == "RGBA"
    with pytest.raises(KeyError):
        app_data.png("missing", "phase")


def test_table_only_data_has_no_images():
    t = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5]}, index=["a", "b", "c"])
    d = ExplorerData(t)
    assert d.layers == [] and d.labels_path is None
    with pytest.raises(LookupError):
        d.png("a")
    with pytest.raises(ValueError, match="'x'"):
        ExplorerData(t.drop(columns="x"))


def test_labelling_panel_offers_the_labels_the_data_came_with(tmp_path):
    """Class folders' labels come with the data; one click makes them labels (one undo),
    leaving what a person decided as it is."""
    from insarexplore.app.labelling import LabellingView
    from insarexplore.explore.labels import LabelStore

    ids = [f"s{i}" for i in range(6)]
    table = pd.DataFrame(
        {"x": np.arange(6.0), "y": np.arange(6.0), "label": ["a", "a", "b", "b", "", "b"]},
        index=ids,
    )
    store = LabelStore(tmp_path / "labels.sqlite", author="ana", session="s1")
    st = ExplorerState(ExplorerData(table), label_store=store, author="ana", session="s1")
    st.assign(["s0"], "c")  # a person's label
    view = LabellingView(st)
    assert view.adopt.visible and view.adopt.label == "Use the data's labels (4)"
    view.adopt.clicks += 1
    assert st.counts == {"c": 1, "a": 1, "b": 3} and "recorded 4 labels" in st.message
    assert not view.adopt.visible
    assert {e["origin"] for e in store.events() if e["sample"] != "s0"} == {"import"}
    view.undo.clicks += 1  # one operation: one undo
    assert st.counts.get("a", 0) == 0 and st.counts["c"] == 1 and view.adopt.visible
    store.close()


def test_map_says_when_samples_carry_no_location_and_errors_name_what_can_be_picked():
    from insarexplore.app.map import MapView
    from insarexplore.app.model import _as_shown

    table = pd.DataFrame({"x": np.arange(4.0), "y": np.arange(4.0)}, index=list("abcd"))
    view = MapView(ExplorerState(ExplorerData(table)))
    assert "no footprints: these samples carry no location" in view._note.object
    said = _as_shown("strategy 'margin_balanced' needs predictions; use 'typical' or 'diversity'")
    assert said == (
        "strategy 'Margin, every class' needs predictions; use 'Typical (first labels)' or "
        "'Diversity'"
    )


def test_more_than_twenty_categories_get_colours_of_their_own():
    from insarexplore.app.colors import CATEGORY_COLORS, coloring

    table = pd.DataFrame({"cluster": np.arange(60) % 30})
    c = coloring(table, "cluster", "categorical")
    assert len(c.color_key) == 30 and len(set(c.color_key)) == 30  # 20 and 0 were both blue
    assert c.color_key[:20] == CATEGORY_COLORS
