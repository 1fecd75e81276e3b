"""Projection: seeded UMAP/PCA, cached in the workspace, new samples placed by transform."""

from __future__ import annotations

import numpy as np
import pytest

from insarexplore.explore.projection import Projector, project


def test_pca_is_seeded_and_transforms():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 8)).astype(np.float32)
    a = Projector("pca").fit_transform(X)
    b = Projector("pca").fit_transform(X)
    assert a.shape == (100, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    proj = Projector("pca").fit(X)
    np.testing.assert_allclose(proj.transform(X[:5]), a[:5], atol=1e-5)
    with pytest.raises(ValueError, match="method"):
        Projector("tsne").fit(X)
    with pytest.raises(ValueError, match="n_components"):
        Projector("pca", n_components=5).fit(X[:4])
    with pytest.raises(ValueError, match="features"):
        proj.transform(X[:, :3])


@pytest.mark.slow  # numba compiles UMAP once per session (~36 s on 2 cores)
def test_umap_keeps_clusters_and_places_new_points(umap_fit):
    proj, X, y, xy = umap_fit
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    centroids = np.stack([xy[y == c].mean(0) for c in range(3)])
    # each point is nearer its own cluster's centroid than any other
    nearest = np.argmin(((xy[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y).mean() > 0.95
    new = proj.transform(X[:10] + 0.01)
    assert (np.argmin(((new[:, None] - centroids[None]) ** 2).sum(-1), axis=1) == y[:10]).all()


def test_workspace_projection_cached_and_incremental(workspace, monkeypatch):
    ws, X, _ = workspace
    version = ws.current_model
    ids = ws.load_embeddings()[0].astype(str)
    keep = 200
    ws.save_embeddings(version, ids[:0], X[:0])  # no-op merge keeps all
    # start with the first 200 samples embedded only
    import shutil

    shutil.rmtree(ws.embeddings_dir / version)
    ws.save_embeddings(version, ids[:keep], X[:keep])
    pids, xy = project(ws, "pca")
    assert len(pids) == keep and xy.shape == (keep, 2)

    calls = []
    original = Projector._fit
    monkeypatch.setattr(Projector, "_fit", lambda self, X: calls.append(1) or original(self, X))
    pids2, xy2 = project(ws, "pca")  # cached: no fit
    assert not calls and np.array_equal(xy2, xy)

    ws.save_embeddings(version, ids[keep:], X[keep:])  # new samples arrive
    pids3, xy3 = project(ws, "pca")
    assert not calls and len(pids3) == len(ids)
    pos = {s: i for i, s in enumerate(pids3)}
    np.testing.assert_allclose(xy3[[pos[s] for s in pids]], xy, atol=1e-6)  # old map unchanged
    ref = Projector("pca").fit(X[:keep]).transform(X[keep:])
    np.testing.assert_allclose(xy3[[pos[s] for s in ids[keep:]]], ref, atol=1e-4)
    _, meta = ws.load_artifact("projection", next(k for _, k in ws.list_artifacts("projection")))
    assert meta["model_version"] == version and meta["n_transformed"] == len(ids) - keep
    assert not ws.is_stale(meta)

    # changed vectors for fitted samples: the cache is not trusted, the map is refitted
    ws.save_embeddings(version, ids[:5], X[:5] + 1.0)
    project(ws, "pca")
    assert calls
    calls.clear()
    project(ws, "pca", n_components=3)  # other parameters: another cache entry
    assert calls


@pytest.mark.slow
def test_fitted_umap_survives_joblib(umap_fit, tmp_path):
    import joblib

    proj, X, _, _ = umap_fit
    joblib.dump(proj, tmp_path / "reducer.joblib")
    again = joblib.load(tmp_path / "reducer.joblib")
    np.testing.assert_allclose(again.transform(X[:5]), proj.transform(X[:5]), atol=1e-4)


def test_a_map_with_new_samples_placed_is_current_again(tmp_path, monkeypatch):
    """New data ingested, embedded and placed into the map: `info` must not call it stale."""
    from insarexplore.data.schema import new_dataset
    from insarexplore.workspace import Workspace

    rng = np.random.default_rng(0)
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(
        new_dataset(phase=np.zeros((40, 4, 4), np.float32), sample=[f"a{i}" for i in range(40)])
    )
    version, _ = ws.new_model_dir("test")
    ws.set_current_model(version)
    ws.save_embeddings(version, ws.sample_ids(), rng.normal(size=(40, 6)))
    project(ws, "pca")
    key = ws.list_artifacts("projection")[0][1]
    assert not ws.is_stale(ws.load_artifact("projection", key)[1])
    ws.add_data(
        new_dataset(phase=np.zeros((5, 4, 4), np.float32), sample=[f"b{i}" for i in range(5)])
    )
    assert ws.is_stale(ws.load_artifact("projection", key)[1])  # new data: not yet shown
    ws.save_embeddings(version, [f"b{i}" for i in range(5)], rng.normal(size=(5, 6)))
    ids, _ = project(ws, "pca")
    _, meta = ws.load_artifact("projection", key)
    assert len(ids) == 45 and meta["n_transformed"] == 5 and not ws.is_stale(meta)
    ws.add_data(new_dataset(phase=np.zeros((1, 4, 4), np.float32), sample=["c0"]))
    project(ws, "pca")  # nothing new embedded: the map shows what the embeddings hold
    assert ws.is_stale(ws.load_artifact("projection", key)[1])
    # on a workspace that cannot be written, the stored map is placed into and used, not kept
    import errno

    ws.save_embeddings(version, ["c0"], rng.normal(size=(1, 6)))
    before = ws.load_artifact("projection", key)[1]

    def read_only(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", str(ws.artifacts_dir))

    monkeypatch.setattr(Workspace, "save_artifact", read_only)
    ids, xy = project(ws, "pca")
    assert len(ids) == 46 and np.isfinite(xy).all()
    assert ws.load_artifact("projection", key)[1] == before
