"""Anomaly scores: planted outliers rank first with both methods; workspace cache."""

from __future__ import annotations

import numpy as np
import pytest

from insarexplore.explore.anomaly import (
    anomaly_scores,
    isolation_forest_scores,
    knn_scores,
    rank_anomalies,
)


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    X[[7, 99, 250]] += 12.0  # planted outliers
    return X


@pytest.mark.parametrize("score", [knn_scores, isolation_forest_scores])
def test_outliers_rank_first(score):
    X = _data()
    ranked = rank_anomalies(score(X), [f"s{i}" for i in range(len(X))])
    assert set(ranked.index[:3]) == {"s7", "s99", "s250"}
    assert ranked["rank"].tolist()[:3] == [1, 2, 3]
    assert ranked["anomaly"].is_monotonic_decreasing


def test_knn_reference_subsample_matches_exact_ranking():
    X = _data()
    exact = knn_scores(X, k=5)
    approx = knn_scores(X, k=5, max_reference=200)
    assert set(np.argsort(-approx)[:3]) == set(np.argsort(-exact)[:3])
    # exact scores: mean distance to the k nearest *other* points
    d = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(exact, np.sort(d, axis=1)[:, :5].mean(1), rtol=1e-3, atol=1e-3)


def test_bad_input():
    with pytest.raises(ValueError, match="embeddings"):
        knn_scores(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        knn_scores(np.full((5, 2), np.nan))


def test_workspace_scores_are_cached(workspace):
    ws, X, _ = workspace
    first = anomaly_scores(ws, k=5)
    assert len(first) == len(X) and ws.has_artifact("anomaly", f"knn-{ws.current_model}")
    again = anomaly_scores(ws, k=5)
    assert again.equals(first)
    forest = anomaly_scores(ws, method="iforest")
    assert set(forest.index) == set(first.index)
    with pytest.raises(ValueError, match="method"):
        anomaly_scores(ws, method="lof")
