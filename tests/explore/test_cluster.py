"""Cluster proposals: HDBSCAN finds blobs, with sizes and medoid representatives."""

from __future__ import annotations

import numpy as np
import pytest

from insarexplore.explore.clusters import cluster, find_clusters, medoid

from .conftest import blobs


def test_finds_blobs_with_sizes_and_medoids():
    X, y = blobs(300, 4, 3, seed=2, std=0.5)
    res = find_clusters(X, min_cluster_size=20)
    assert res.n_clusters == 3
    assert sum(res.sizes.values()) == (res.labels >= 0).sum()
    for c, rep in res.representatives.items():
        members = res.labels == c
        assert res.labels[rep] == c
        # the representative is (near) the cluster centre
        assert np.linalg.norm(X[rep] - X[members].mean(0)) < 0.5
        # clusters agree with the truth
        assert len(set(y[members])) == 1


def test_subsampled_fit_assigns_everyone():
    X, y = blobs(600, 4, 3, seed=3, std=0.5)
    res = find_clusters(X, min_cluster_size=15, max_fit=200)
    assert res.n_clusters == 3 and (res.labels >= 0).mean() > 0.95


def test_medoid_exact():
    X = np.array([[0.0, 0], [1, 0], [2, 0], [10, 0]], np.float32)
    assert medoid(X) in (1, 2)
    with pytest.raises(ValueError):
        medoid(np.zeros((0, 2)))


def test_bad_input():
    with pytest.raises(ValueError, match="X"):
        find_clusters(np.zeros(5))
    with pytest.raises(ValueError, match="min_cluster_size"):
        find_clusters(np.zeros((10, 2)), min_cluster_size=1)


def test_workspace_clusters_cached(workspace):
    ws, X, y = workspace
    frame = cluster(ws, min_cluster_size=20)
    assert list(frame.columns) == ["cluster", "size", "representative"]
    assert len(frame) == len(X) and frame["cluster"].nunique() >= 3
    reps = frame.groupby("cluster")["representative"].first()
    assert all(frame.loc[r, "cluster"] == c for c, r in reps.items() if c >= 0)
    assert cluster(ws, min_cluster_size=20).equals(frame)
    pca = cluster(ws, space="pca", min_cluster_size=20)
    assert len(pca) == len(X)
    with pytest.raises(ValueError, match="space"):
        cluster(ws, space="tsne")
