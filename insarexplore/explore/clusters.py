"""Cluster proposals (HDBSCAN) to speed up bulk labelling: label a whole cluster at once.

Each cluster comes with its size and a representative sample, its medoid (the member with the
smallest total distance to the others), which a user can look at before labelling the cluster.
HDBSCAN is quadratic-ish in memory on large inputs, so above ``max_fit`` rows it runs on a seeded
subsample and the other rows join the cluster of their nearest fitted neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ClusterResult", "find_clusters", "medoid", "cluster"]


@dataclass
class ClusterResult:
    """Cluster id per row (-1: noise), and per cluster its size and medoid row."""

    labels: np.ndarray
    sizes: dict[int, int] = field(default_factory=dict)
    representatives: dict[int, int] = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len(self.sizes)


def medoid(X: np.ndarray, *, max_points: int = 2000, seed: int = 0) -> int:
    """Row of ``X`` with the smallest summed distance to the others (subsampled when large)."""
    X = np.asarray(X, dtype=np.float32)
    if len(X) == 0:
        raise ValueError("X: cannot take the medoid of no points")
    rows = np.arange(len(X))
    if len(X) > max_points:
        rows = np.random.default_rng(seed).choice(len(X), size=max_points, replace=False)
    P = X[rows]
    sq = np.einsum("ij,ij->i", P, P)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (P @ P.T), 0.0)
    return int(rows[np.argmin(np.sqrt(d2).sum(axis=1))])


def find_clusters(
    X: np.ndarray,
    *,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    max_fit: int = 20_000,
    seed: int = 0,
) -> ClusterResult:
    """HDBSCAN clusters of the rows of ``X`` (embeddings or 2-D map coordinates).

    ``min_cluster_size`` defaults to about 1 % of the rows (at least 5): proposals are meant to be
    big enough to be worth labelling in bulk.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"X: expected a 2-D array of at least 2 rows, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X: contains NaN or infinite values")
    n = len(X)
    if min_cluster_size is None:
        min_cluster_size = max(5, min(n, max_fit) // 100)
    if min_cluster_size < 2:
        raise ValueError(f"min_cluster_size: must be at least 2, got {min_cluster_size}")
    rows = np.arange(n)
    if n > max_fit:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_fit, replace=False))
    model = HDBSCAN(
        min_cluster_size=min(min_cluster_size, len(rows)), min_samples=min_samples, copy=True
    )
    fitted = model.fit_predict(X[rows])
    labels = np.full(n, -1, dtype=np.int64)
    labels[rows] = fitted
    if len(rows) < n:
        rest = np.setdiff1d(np.arange(n), rows)
        nn = NearestNeighbors(n_neighbors=1).fit(X[rows])
        labels[rest] = fitted[nn.kneighbors(X[rest], return_distance=False)[:, 0]]
    sizes: dict[int, int] = {}
    reps: dict[int, int] = {}
    for c in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == c)
        sizes[int(c)] = int(members.size)
        reps[int(c)] = int(members[medoid(X[members], seed=seed)])
    return ClusterResult(labels=labels, sizes=sizes, representatives=reps)


def cluster(
    ws: Any,
    model_version: str | None = None,
    *,
    space: str = "embedding",
    refit: bool = False,
    **kw: Any,
):  # -> pandas.DataFrame
    """Cluster proposals for a workspace, cached: a DataFrame indexed by sample id.

    Columns: ``cluster`` (-1 for noise), ``size`` (of that cluster) and ``representative``
    (sample id of its medoid). ``space`` is ``"embedding"`` or a projection method whose cached
    map (see :func:`insarexplore.explore.projection`) is clustered instead.
    """
    import hashlib
    import json

    import pandas as pd

    from insarexplore.explore.projection import embedding_hash, project

    if space == "embedding":
        ids, X, _ = ws.load_embeddings(model_version)
        ids, X = np.asarray(ids).astype(str), np.asarray(X, dtype=np.float32)
    elif space in ("umap", "pca"):
        ids, X = project(ws, method=space, model_version=model_version)
    else:
        raise ValueError(f"space: must be 'embedding', 'umap' or 'pca', got {space!r}")
    version = model_version or ws.current_model
    digest = hashlib.sha1(json.dumps([space, kw], sort_keys=True).encode()).hexdigest()[:10]
    key = f"{space}-{version}-{digest}"
    source = embedding_hash(ids, X)
    result = None
    if not refit and ws.has_artifact("clusters", key):
        arrays, meta = ws.load_artifact("clusters", key)
        if meta.get("source_hash") == source:
            result = arrays
    if result is None:
        found = find_clusters(X, **kw)
        rep = np.full(len(ids), "", dtype=object)
        size = np.zeros(len(ids), dtype=np.int64)
        for c, s in found.sizes.items():
            members = found.labels == c
            size[members], rep[members] = s, ids[found.representatives[c]]
        result = {"ids": ids.astype(object), "cluster": found.labels, "size": size, "rep": rep}
        meta = {"model_version": version, "space": space, "params": kw, "source_hash": source}
        meta["n_clusters"] = found.n_clusters
        ws.save_artifact("clusters", key, result, meta)
    frame = pd.DataFrame(
        {"cluster": result["cluster"], "size": result["size"], "representative": result["rep"]},
        index=pd.Index(np.asarray(result["ids"]).astype(str), name="sample"),
    )
    return frame
