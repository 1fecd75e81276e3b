"""Shared fixtures: small seeded embeddings, a workspace holding them, one UMAP fit per session."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs


def blobs(n: int = 240, d: int = 16, k: int = 3, seed: int = 0, std: float = 1.0):
    X, y = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=std, random_state=seed)
    return X.astype(np.float32), y


def make_workspace(path, n: int = 240, d: int = 16, k: int = 3, seed: int = 0, version="m1"):
    """A workspace with n tiny phase samples (footprints on a grid) and blob embeddings."""
    from insarexplore.data.schema import new_dataset
    from insarexplore.workspace import Workspace

    X, y = blobs(n, d, k, seed)
    ws = Workspace.create(path)
    lon = 10.0 + (np.arange(n) % 20) * 0.2
    lat = 40.0 + (np.arange(n) // 20) * 0.2
    ds = new_dataset(
        phase=np.zeros((n, 4, 4), np.float32),
        sample=[f"s{i:04d}" for i in range(n)],
        lon_min=lon,
        lat_min=lat,
        lon_max=lon + 0.3,  # overlaps its east neighbour
        lat_max=lat + 0.1,
        label=[f"c{c}" for c in y],
    )
    ws.add_data(ds)
    _, folder = ws.new_model_dir("test")
    version = folder.name
    ws.save_embeddings(version, ds["sample"].values.astype(str), X)
    ws.set_current_model(version)
    return ws, X, y


@pytest.fixture
def workspace(tmp_path):
    return make_workspace(tmp_path / "ws")


@pytest.fixture(scope="session")
def umap_fit():
    """One small UMAP fit for the whole session (numba compiles once, ~36 s on 2 cores)."""
    from insarexplore.explore.projection import Projector

    X, y = blobs(300, 8, 3, seed=1)
    proj = Projector("umap", n_neighbors=10, random_state=0)
    return proj, X, y, proj.fit_transform(X)
