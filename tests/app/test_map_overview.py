"""The map shows the data before any selection: every footprint, or their density, inside the
data's extent box and graticule; the selection is drawn on top."""

from __future__ import annotations

import numpy as np
import panel as pn

from insarexplore.app.map import MapView, graticule_step


def _kinds(geo: dict) -> list[str]:
    return [f["properties"].get("kind") for f in geo["features"]]


def test_every_footprint_shown_before_selection_then_selection_on_top(state):
    view = MapView(state)
    pn.panel(view).get_root()
    assert state.selection == [] and view.footprints.data["features"] == []
    geo = view.overview.data
    assert view.overview_kind == "footprints"
    # merged by colour: the footprints of all 90 samples, and one dot per centre
    polys = [f for f in geo["features"] if f["properties"]["kind"] == "footprints"]
    dots = [f for f in geo["features"] if f["properties"]["kind"] == "centres"]
    assert sum(len(f["geometry"]["coordinates"]) for f in polys) == state.n
    assert sum(len(f["geometry"]["coordinates"]) for f in dots) == state.n
    assert "all 90 footprints" in view._note.object
    # the view is zoomed to the data (Italy), not the world
    lat, lon = view.map.center
    assert 36 < lat < 42 and 13 < lon < 16 and view.map.zoom >= 5
    # extent box and graticule, no tiles needed
    kinds = _kinds(view.extent.data)
    assert kinds.count("extent") == 1 and kinds.count("graticule") >= 2
    (lon0, lat0, lon1, lat1) = view.data_extent()
    ring = np.array(view.extent.data["features"][0]["geometry"]["coordinates"][0])
    assert ring[:, 0].min() <= lon0 and ring[:, 0].max() >= lon1
    assert ring[:, 1].min() <= lat0 and ring[:, 1].max() >= lat1
    # a selection: its footprints and ringed centres on top, the overview stays
    layers = list(view.map.layers)
    assert layers.index(view.overview) < layers.index(view.selected_centres)
    assert layers.index(view.selected_centres) < layers.index(view.footprints)
    ids = list(state.table.index[:5])
    state.select_ids(ids)
    assert [f["properties"]["sample"] for f in view.footprints.data["features"]] == ids
    ringed = view.selected_centres.data["features"]
    assert sum(len(f["geometry"]["coordinates"]) for f in ringed) == 5
    assert view.overview.data == geo
    # colouring follows the scatter's
    state.color_by = "cluster"
    colours = {f["properties"]["style"]["color"] for f in view.overview.data["features"]}
    assert colours == set(state.coloring().colors)


def test_density_above_the_overview_limit(state):
    view = MapView(state, max_overview=20)
    assert view.overview_kind == "density"
    cells = view.overview.data["features"]
    assert cells and {f["properties"]["kind"] for f in cells} == {"density"}
    assert sum(f["properties"]["count"] for f in cells) == state.n
    assert "density of all 90 footprints" in view._note.object


def test_graticule_step_is_round_and_sparse():
    assert graticule_step(360) == 45
    assert graticule_step(3.0) == 0.5
    assert graticule_step(0.05) == 0.01
    for span in (0.03, 0.7, 4, 25, 170):
        assert 1 <= span / graticule_step(span) <= 8
