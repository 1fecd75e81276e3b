"""Exact neighbours for UMAP: brute force equals scikit-learn's exact search, the seeded map
built on them repeats, and cached maps record (and are checked for) how they were made."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from insarexplore.explore import projection
from insarexplore.explore.projection import (
    EXACT_KNN_MAX_ROWS,
    ExactKnnIndex,
    Projector,
    exact_knn,
    knn_method,
    project,
)

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("euclidean", "l2", "cosine", "correlation")


def _data(n: int, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) + rng.normal(size=d) * 3).astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_knn_equals_sklearn(metric):
    X, Y = _data(400), _data(90, seed=1)
    nn = NearestNeighbors(n_neighbors=12, metric="euclidean" if metric == "l2" else metric)
    nn.fit(X.astype(np.float64))
    dist, idx = nn.kneighbors(X.astype(np.float64))  # each row its own first neighbour
    got_i, got_d = exact_knn(X, 12, metric, block_bytes=1 << 16)  # many blocks
    assert got_i.dtype == np.int32 and got_d.dtype == np.float32 and got_i.shape == (400, 12)
    np.testing.assert_array_equal(got_i[:, 0], np.arange(400))
    np.testing.assert_array_equal(got_d[:, 0], 0.0)
    np.testing.assert_array_equal(got_i, idx)
    np.testing.assert_allclose(got_d, dist, rtol=1e-6, atol=1e-6)

    dist, idx = nn.kneighbors(Y.astype(np.float64))  # other rows: no self neighbour
    got_i, got_d = exact_knn(X, 12, metric, Y)
    np.testing.assert_array_equal(got_i, idx)
    np.testing.assert_allclose(got_d, dist, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ExactKnnIndex(X, metric).query(Y, 12)[0], idx)


def test_exact_knn_ties_duplicates_zero_vectors_and_limits():
    X = _data(30, d=4)
    X[5] = X[9]  # a duplicate: after the row itself, at distance 0
    i, d = exact_knn(X, 3)
    assert list(i[5, :2]) == [5, 9] and list(i[9, :2]) == [9, 5] and d[5, 1] == 0.0
    X[[3, 7]] = 0.0  # cosine as umap defines it: 0 between zero vectors, 1 to any other
    i, d = exact_knn(X, 4, "cosine")
    assert list(i[3]) == [3, 7, 0, 1] and list(d[3]) == [0.0, 0.0, 1.0, 1.0]
    assert 3 not in i[0] and 7 not in i[0] and (d[0, 1:] < 1.0).all()
    i, d = exact_knn(X[:3], 3)  # all rows
    assert sorted(i[0]) == [0, 1, 2] and i.shape == (3, 3)
    assert exact_knn(X, 1)[0].ravel().tolist() == list(range(30))  # only itself
    with pytest.raises(ValueError, match="k"):
        exact_knn(X, 31)
    with pytest.raises(ValueError, match="metric"):
        exact_knn(X, 3, "manhattan")


def test_knn_method_threshold_and_metrics():
    assert knn_method("euclidean", EXACT_KNN_MAX_ROWS) == "exact"
    assert knn_method("cosine", 10) == "exact"
    assert knn_method("euclidean", EXACT_KNN_MAX_ROWS + 1) == "umap"
    assert knn_method("manhattan", 10) == "umap"


@pytest.mark.slow  # numba compiles UMAP's layout once per machine (cached on disk after)
def test_seeded_umap_on_exact_neighbours_repeats_and_transforms(umap_fit):
    proj, X, y, xy = umap_fit
    assert proj.knn_ == "exact"
    indices, _ = exact_knn(X, 10)
    np.testing.assert_array_equal(proj.reducer_._knn_indices, indices)  # no search of umap's
    again = Projector("umap", n_neighbors=10, random_state=0).fit_transform(X)
    np.testing.assert_array_equal(again, xy)
    new = proj.transform(X[:5] + 0.01)  # UMAP.transform, asking ExactKnnIndex
    assert new.shape == (5, 2) and np.isfinite(new).all()


@pytest.mark.slow
def test_fallback_to_umaps_search_is_the_plain_umap_fit(monkeypatch):
    """Above the threshold the fit is umap-learn's own, as before the exact neighbours."""
    umap = projection.import_umap()
    X = _data(200, d=6)
    monkeypatch.setattr(projection, "EXACT_KNN_MAX_ROWS", 100)
    proj = Projector("umap", n_neighbors=8)
    xy = proj.fit_transform(X)
    assert proj.knn_ == "umap"
    plain = umap.UMAP(n_neighbors=8, min_dist=0.1, random_state=0, n_jobs=1).fit(X).embedding_
    np.testing.assert_array_equal(xy, plain)


_SEEDED = """
import json, sys, numpy as np
from insarexplore.explore.projection import Projector
rng = np.random.default_rng(3)
X = (rng.normal(size=(200, 6)) + np.repeat(np.eye(6)[:2] * 8, 100, axis=0)).astype(np.float32)
proj = Projector("umap", n_neighbors=8)
np.save(sys.argv[1], proj.fit_transform(X))
print(json.dumps({"knn": proj.knn_, "index": type(proj.reducer_._knn_search_index).__name__}))
"""


@pytest.mark.slow  # two new processes (layout loaded from the numba cache after the first)
def test_seeded_map_identical_in_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = []
    for name in ("a", "b"):
        done = subprocess.run(
            [sys.executable, "-c", _SEEDED, str(tmp_path / f"{name}.npy")],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        outs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert outs == [{"knn": "exact", "index": "ExactKnnIndex"}] * 2
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


# -- cached maps --------------------------------------------------------------------------------
@pytest.fixture
def fits(monkeypatch):
    """Projector fits replaced by a cheap stand-in (the first two coordinates), counted."""
    calls: list[int] = []

    def fake_fit(self, X):
        calls.append(len(X))
        n_fit = len(X) if self.max_fit is None else min(len(X), self.max_fit)
        self.knn_ = knn_method(self.metric, n_fit)
        return np.asarray(X, np.float32)[:, :2] * 1.0

    monkeypatch.setattr(Projector, "_fit", fake_fit)
    return calls


def _strip_knn(ws, key):
    """Rewrite a stored map as maps were stored before they recorded how they were made."""
    path = ws.artifact_path("projection", key) / "meta.json"
    meta = json.loads(path.read_text())
    del meta["knn"]
    path.write_text(json.dumps(meta))


def test_umap_map_records_knn_and_is_reused(workspace, fits):
    ws, X, _ = workspace
    ids, xy = project(ws, "umap", n_neighbors=10)
    assert fits == [len(X)]
    key = ws.list_artifacts("projection")[0][1]
    assert ws.artifact_meta("projection", key)["knn"] == "exact"
    ids2, xy2 = project(ws, "umap", n_neighbors=10)
    assert fits == [len(X)] and np.array_equal(xy2, xy)


def test_old_format_map_is_refitted_where_neighbours_are_now_exact(workspace, fits):
    ws, X, _ = workspace
    project(ws, "umap", n_neighbors=10)
    key = ws.list_artifacts("projection")[0][1]
    _strip_knn(ws, key)  # made by umap's own search, and would now be made exactly
    project(ws, "umap", n_neighbors=10)
    assert len(fits) == 2  # refitted under the same key, and now says how
    assert [k for _, k in ws.list_artifacts("projection")] == [key]
    assert ws.artifact_meta("projection", key)["knn"] == "exact"
    project(ws, "umap", n_neighbors=10)
    assert len(fits) == 2


def test_old_format_map_loads_where_umaps_search_still_makes_it(workspace, fits, monkeypatch):
    ws, X, _ = workspace
    version = ws.current_model
    ids = ws.load_embeddings()[0].astype(str)
    import shutil

    shutil.rmtree(ws.embeddings_dir / version)
    ws.save_embeddings(version, ids[:200], X[:200])
    monkeypatch.setattr(projection, "EXACT_KNN_MAX_ROWS", 100)  # 200 rows: umap's search
    _, xy = project(ws, "umap", n_neighbors=10)
    key = ws.list_artifacts("projection")[0][1]
    assert ws.artifact_meta("projection", key)["knn"] == "umap"
    _strip_knn(ws, key)
    ws.save_embeddings(version, ids[200:], X[200:])  # new samples: placed, not refitted
    pids, xy2 = project(ws, "umap", n_neighbors=10)
    assert fits == [200] and len(pids) == len(ids)
    pos = {s: i for i, s in enumerate(pids)}
    np.testing.assert_array_equal(xy2[[pos[s] for s in ids[:200]]], xy)
    placed = projection.place_by_neighbours(X[:200], xy, X[200:], n_neighbors=10)
    np.testing.assert_allclose(xy2[[pos[s] for s in ids[200:]]], placed, atol=1e-6)
    meta = ws.artifact_meta("projection", key)
    assert "knn" not in meta and meta["n_transformed"] == len(ids) - 200
    # with max_fit the rows actually fitted decide: 80 of them would now be found exactly
    project(ws, "umap", n_neighbors=10, max_fit=80)
    assert fits == [200, len(ids)]
    key80 = next(k for _, k in ws.list_artifacts("projection") if k != key)
    assert ws.artifact_meta("projection", key80)["knn"] == "exact"
