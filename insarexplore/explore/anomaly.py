"""Anomaly scores in embedding space: kNN distance and IsolationForest, ranked.

Unusual interferograms (a rare deformation style, a processing artefact) sit far from their
neighbours in embedding space. The kNN score is the mean distance to the ``k`` nearest other
samples; above ``max_reference`` samples the neighbours are searched in a seeded random reference
subsample (exact brute force there, chunked through BLAS), which keeps the cost linear in the
number of samples. IsolationForest is linear anyway and scores with the negated
``score_samples`` so that, for both, higher means more anomalous.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["knn_scores", "isolation_forest_scores", "rank_anomalies", "anomaly_scores"]

METHODS = ("knn", "iforest")


def _check(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"embeddings: expected a 2-D array of at least 2 rows, got {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("embeddings: contain NaN or infinite values")
    return X


def knn_scores(
    X: Any, k: int = 10, *, max_reference: int = 10_000, seed: int = 0, chunk: int = 4096
) -> np.ndarray:
    """Mean Euclidean distance of each row to its ``k`` nearest other rows."""
    X = _check(X)
    n = len(X)
    ref = np.arange(n)
    if n > max_reference:
        ref = np.sort(np.random.default_rng(seed).choice(n, size=max_reference, replace=False))
    k = max(1, min(int(k), len(ref) - 1))
    R = X[ref]
    r2 = np.einsum("ij,ij->i", R, R)
    is_ref = np.full(n, -1, dtype=np.int64)
    is_ref[ref] = np.arange(len(ref))
    out = np.empty(n, dtype=np.float32)
    for s in range(0, n, chunk):
        q = X[s : s + chunk]
        d2 = r2[None, :] - 2.0 * (q @ R.T) + np.einsum("ij,ij->i", q, q)[:, None]
        self_col = is_ref[s : s + chunk]
        own = self_col >= 0
        d2[np.flatnonzero(own), self_col[own]] = np.inf  # a sample is not its own neighbour
        part = np.partition(d2, k - 1, axis=1)[:, :k]
        out[s : s + chunk] = np.sqrt(np.maximum(part, 0.0)).mean(axis=1)
    return out


def isolation_forest_scores(X: Any, *, n_estimators: int = 200, seed: int = 0) -> np.ndarray:
    """IsolationForest anomaly score per row (higher: easier to isolate, more anomalous)."""
    from sklearn.ensemble import IsolationForest

    X = _check(X)
    forest = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(X)
    return (-forest.score_samples(X)).astype(np.float32)


def rank_anomalies(scores: Any, ids: Any = None, n: int | None = None):  # -> pandas.DataFrame
    """Samples sorted by decreasing score with their rank (1 = most anomalous)."""
    import pandas as pd

    scores = np.asarray(scores, dtype=np.float64)
    ids = np.arange(len(scores)).astype(str) if ids is None else np.asarray(ids).astype(str)
    order = np.argsort(-scores, kind="stable")[: n if n is not None else len(scores)]
    return pd.DataFrame(
        {"anomaly": scores[order], "rank": np.arange(1, len(order) + 1)},
        index=pd.Index(ids[order], name="sample"),
    )


def anomaly_scores(
    ws: Any,
    model_version: str | None = None,
    *,
    method: str = "knn",
    refit: bool = False,
    **kw: Any,
):  # -> pandas.DataFrame
    """Anomaly score and rank of every sample of a workspace (cached per model and method)."""
    from insarexplore.explore.projection import embedding_hash

    if method not in METHODS:
        raise ValueError(f"method: must be one of {METHODS}, got {method!r}")
    ids, vectors, meta = ws.load_embeddings(model_version)
    ids, vectors = np.asarray(ids).astype(str), np.asarray(vectors, dtype=np.float32)
    version = model_version or meta.get("model_version") or ws.current_model
    key = f"{method}-{version}"
    source = embedding_hash(ids, vectors)
    if not refit and ws.has_artifact("anomaly", key):
        arrays, ameta = ws.load_artifact("anomaly", key)
        if ameta.get("source_hash") == source and ameta.get("params") == kw:
            return rank_anomalies(arrays["score"], arrays["ids"])
    score = knn_scores(vectors, **kw) if method == "knn" else isolation_forest_scores(vectors, **kw)
    ws.keep_artifact(  # a cache: a read-only workspace scores without keeping them
        "anomaly",
        key,
        {"ids": ids.astype(object), "score": score},
        {"model_version": version, "method": method, "params": kw, "source_hash": source},
    )
    return rank_anomalies(score, ids)
