"""ExplorerState: selection, focus, labels, training and suggestions, with no browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insarexplore.app.data import ExplorerData, field_kinds
from insarexplore.app.selection import _inside
from insarexplore.app.state import ExplorerState


def _truth(ids) -> np.ndarray:
    from factory import CLASSES

    return np.array([CLASSES[int(s[1:]) % len(CLASSES)] for s in ids])


def test_fields_offer_metadata_and_engine_results(state):
    f = state.fields
    assert f["label"] == f["predicted"] == f["cluster"] == f["frame"] == "categorical"
    assert f["pass_direction"] == "categorical"
    assert f["depth_m"] == f["confidence"] == "numeric"
    assert f["primary_date"] == "date"
    assert "source" not in f and "x" not in f  # constant path / coordinates are not colours
    assert set(state.param.color_by.objects) == set(f)


def test_field_kinds_skips_high_cardinality_strings():
    t = pd.DataFrame(
        {
            "x": [0.0] * 100,
            "y": 0.0,
            "name": [f"n{i}" for i in range(100)],
            "kind": ["a", "b"] * 50,
            "v": np.arange(100.0),
        }
    )
    assert field_kinds(t) == {"kind": "categorical", "v": "numeric"}


def test_box_lasso_and_geo_selection_match_numpy(state):
    xy = state.data.xy
    x0, x1 = np.percentile(xy[:, 0], [20, 70])
    y0, y1 = np.percentile(xy[:, 1], [10, 90])
    state.select_box(x1, y1, x0, y0)  # corners in any order
    expect = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    assert state.selection == list(state.table.index[expect])
    assert 0 < len(state.selection) < state.n
    tri = np.array([[x0, y0], [x1, y0], [x0, y1]])
    state.select_lasso(tri[:, 0], tri[:, 1])
    assert 0 < len(state.selection) < expect.sum()
    t = state.table
    lon, lat = (t.lon_min + t.lon_max) / 2, (t.lat_min + t.lat_max) / 2
    state.select_geo([14.0, 16.0, 16.0, 14.0], [37.0, 37.0, 39.0, 39.0])
    inside = (lon > 14) & (lon < 16) & (lat > 37) & (lat < 39)
    assert set(state.selection) == set(t.index[inside.to_numpy()]) and state.selection


def test_inside_polygon_handles_concave_shapes():
    pts = np.array([[0.5, 0.5], [1.5, 1.5], [1.5, 0.5], [3, 3]])
    ell = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]])
    assert _inside(pts, ell).tolist() == [True, False, True, False]
    assert not _inside(pts, ell[:2]).any()


def test_focus_nearest_and_samples_at(state):
    sid = state.table.index[7]
    x, y = state.data.xy[7]
    assert state.nearest(x + 1e-9, y) == sid
    state.focus(sid)
    assert state.focused == sid
    with pytest.raises(KeyError, match="unknown sample"):
        state.focus("../../etc/passwd")
    row = state.table.loc[sid]
    hits = state.samples_at((row.lon_min + row.lon_max) / 2, (row.lat_min + row.lat_max) / 2)
    assert sid in hits
    assert state.samples_at(-170.0, -80.0) == []


def test_labels_go_to_the_store_at_once_with_author(state):
    ids = list(state.table.index[:5])
    with pytest.raises(ValueError, match="class"):
        state.assign(ids)  # no class yet
    state.create_class("mogi")
    state.select_ids(ids)
    assert state.label_selection() == 5
    assert state.store.current() == dict.fromkeys(ids, "mogi")
    assert {e["author"] for e in state.store.events()} == {"alice"}
    assert state.counts == {"mogi": 5}
    assert (state.table.loc[ids, "label"] == "mogi").all()
    v = state.version
    state.remove(ids[:2])
    assert state.counts == {"mogi": 3} and state.version > v
    state.undo()
    assert state.counts == {"mogi": 5}
    state.redo()
    assert state.counts == {"mogi": 3}
    csv = state.export("csv").decode()
    assert csv.splitlines()[0].startswith("sample,label,lon_min")
    assert len(csv.splitlines()) == 4
    import json

    geo = json.loads(state.export("geojson"))
    assert len(geo["features"]) == 3 and geo["features"][0]["properties"]["label"] == "mogi"


def test_label_cluster_labels_every_member(state):
    members = state.table[state.table.cluster >= 0]
    assert not members.empty, "the factory workspace has clusters"
    sid = members.index[0]
    state.focus(sid)
    state.create_class("fringe")
    n = state.label_cluster()
    cluster = members.loc[sid, "cluster"]
    assert n == int((state.table.cluster == cluster).sum())
    assert (state.table.loc[state.table.cluster == cluster, "label"] == "fringe").all()


def test_two_sessions_see_each_others_labels(app_data, tmp_path):
    from insarexplore.explore.labels import LabelStore

    path = tmp_path / "shared.sqlite"
    a = ExplorerState(app_data, label_store=LabelStore(path, author="ann"), author="ann")
    b = ExplorerState(app_data, label_store=LabelStore(path, author="bob"), author="bob")
    a.assign(list(a.table.index[:3]), "dyke")
    b.assign(list(b.table.index[3:5]), "none")
    assert b.counts == {"none": 2}  # not yet refreshed
    b.refresh_labels()
    a.refresh_labels()
    assert a.counts == b.counts == {"dyke": 3, "none": 2}
    authors = {e["sample"]: e["author"] for e in a.store.events()}
    assert authors[a.table.index[0]] == "ann" and authors[a.table.index[3]] == "bob"


def _label_some(state, per_class: int = 4) -> None:
    truth = _truth(state.table.index)
    for c in ("mogi", "dyke", "none"):
        state.assign(list(state.table.index[truth == c][:per_class]), c)


def test_train_in_background_pushes_predictions(workspace_copy):
    data = ExplorerData.from_workspace(workspace_copy, projection="pca")
    st = ExplorerState(data, author="tester")
    with pytest.raises(ValueError, match="at least 2 classes"):
        st.train()
    _label_some(st)
    seen: list[int] = []
    st.param.watch(lambda e: seen.append(e.new), "progress")
    st.train("linear")
    assert st.busy
    st.wait(60)
    assert not st.busy and st.progress == 100
    # the bar moves through the stages (load, fit, predict, store), never backwards
    assert len({p for p in seen if 0 < p < 100}) >= 3 and seen == sorted(seen), seen
    assert st.has_predictions and st.color_by == "predicted"
    acc = (st.table.predicted.to_numpy() == _truth(st.table.index)).mean()
    assert acc > 0.6, acc
    assert st.table.confidence.between(0, 1).all()
    # predictions are stored per model version: a new session starts with them
    st2 = ExplorerState(data, author="other")
    assert st2.has_predictions and st2.color_by == "label"


def test_table_only_training_and_suggestions(tmp_path):
    from insarexplore.explore.labels import LabelStore

    rng = np.random.default_rng(0)
    n = 300
    centers = rng.normal(0, 5, (3, 8))
    y = np.arange(n) % 3
    emb = (centers[y] + rng.normal(0, 1, (n, 8))).astype(np.float32)
    table = pd.DataFrame({"x": emb[:, 0], "y": emb[:, 1]}, index=[f"t{i}" for i in range(n)])
    data = ExplorerData(table, embeddings=emb)
    st = ExplorerState(data, label_store=LabelStore(tmp_path / "l.sqlite"))
    with pytest.raises(ValueError, match="train"):
        st.suggest_next(5, "entropy")
    ids = st.suggest_next(6, "diversity")
    assert len(ids) == 6 and st.gallery_mode == "suggestions" and st.focused == ids[0]
    assert all(st.reasons[i] for i in ids)
    for k in range(3):
        st.assign([f"t{i}" for i in range(k, 30, 3)], f"c{k}")
    st.train("prototype", background=False)
    assert (st.table.predicted.to_numpy() == np.array([f"c{k}" for k in y])).mean() > 0.9
    ids = st.suggest_next(4, "margin")
    assert not set(ids) & set(st.table.index[st.table.label != ""])
    # keyboard loop: 2 = second class, then the next suggestion is focused
    first = st.focused
    assert st.key_label("2")
    assert st.table.at[first, "label"] == st.classes[1] and st.focused == ids[1]
    assert st.key_label("n") and st.focused == ids[2]
    assert not st.key_label("x")


def test_unknown_ids_are_refused(state):
    with pytest.raises(KeyError, match="unknown sample ids"):
        state.select_ids(["nope"])
    with pytest.raises(ValueError, match="nothing is selected"):
        state.label_selection("a")
