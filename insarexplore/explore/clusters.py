"""Cluster proposals (HDBSCAN) to speed up bulk labelling: label a whole cluster at once.

Each cluster comes with its size and a representative sample, its medoid (the member with the
smallest total distance to the others), which a user can look at before labelling the cluster.
HDBSCAN is quadratic-ish in memory on large inputs, so above ``max_fit`` rows it runs on a seeded
subsample and the other rows join the cluster of their nearest fitted neighbour.

Proposals are always there: without explicit settings :func:`find_clusters` tries HDBSCAN
settings scaled to the number of rows (:func:`hdbscan_ladder`, from about 1 % of the rows down)
(excess of mass, then leaf selection) and keeps the first that finds 4 to 30 clusters with at
most 30 % noise (else the one nearest that). When none finds two clusters, the rows are cut into
k-means regions instead, and the result says so (``method="kmeans"``,
shown as such in the dashboard's legend): regions of the map, not density clusters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ClusterResult", "find_clusters", "hdbscan_ladder", "medoid", "cluster"]

#: Most noise (share of rows in no cluster) an automatic HDBSCAN setting may leave.
MAX_NOISE = 0.30
#: Clusters an automatic setting should find to be kept at once (else the next one is tried).
MIN_USEFUL, MAX_USEFUL = 4, 30
#: Bumped when automatic settings change, so cached proposals of older rules are not reused.
_RULES = "adaptive-3"


@dataclass
class ClusterResult:
    """Cluster id per row (-1: noise), and per cluster its size and medoid row.

    ``method``: ``"hdbscan"`` (density clusters) or ``"kmeans"`` (regions of the fallback, when
    no HDBSCAN setting found clusters); ``params``: the settings used.
    """

    labels: np.ndarray
    sizes: dict[int, int] = field(default_factory=dict)
    representatives: dict[int, int] = field(default_factory=dict)
    method: str = "hdbscan"
    params: dict = field(default_factory=dict)

    @property
    def n_clusters(self) -> int:
        return len(self.sizes)

    @property
    def noise_fraction(self) -> float:
        return float((self.labels < 0).mean()) if len(self.labels) else 0.0

    def describe(self) -> str:
        """One line for people: how many proposals, what kind, how much noise."""
        if self.method == "kmeans":
            return (
                f"{self.n_clusters} k-means regions (HDBSCAN found no dense clusters at any "
                f"setting tried)"
            )
        mcs = self.params.get("min_cluster_size")
        setting = f", min cluster size {mcs}" if mcs else ""
        if self.params.get("selection") == "leaf":
            setting += " (leaf)"
        return (
            f"{self.n_clusters} HDBSCAN clusters{setting}, "
            f"{100 * self.noise_fraction:.0f} % of samples in none"
        )


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


def hdbscan_ladder(n: int) -> list[tuple[int, int, str]]:
    """Automatic HDBSCAN ``(min_cluster_size, min_samples, selection)`` settings for ``n`` rows.

    Tried in this order: the excess-of-mass selection at about 1 % and 2 % of the rows
    (proposals worth labelling in bulk), then the leaf selection at 4 %, 2 % and 1 % (it splits
    a map whose points form two or three large islands into the groups inside them), then both
    at 0.5 %. Sizes are at least 5; ``min_samples`` is a quarter of the size for excess of
    mass and 3 for leaves (fewer points called noise at the sparse edges of map clusters).
    """
    n = int(n)
    if n < 4:
        return [(2, 1, "eom")]

    def size(fraction: float) -> int:
        return int(min(max(5, round(n * fraction)), 500, max(2, n // 2)))

    order = [(0.01, "eom"), (0.02, "eom"), (0.04, "leaf"), (0.02, "leaf"), (0.01, "leaf")]
    order += [(0.005, "eom"), (0.005, "leaf")]
    out: list[tuple[int, int, str]] = []
    for fraction, method in order:
        mcs = size(fraction)
        ms = max(1, min(mcs, max(3, mcs // 4) if method == "eom" else 3))
        if (mcs, ms, method) not in out:
            out.append((mcs, ms, method))
    return out


def find_clusters(
    X: np.ndarray,
    *,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    max_fit: int = 20_000,
    seed: int = 0,
    fallback: bool = True,
) -> ClusterResult:
    """Cluster proposals for the rows of ``X`` (embeddings or 2-D map coordinates).

    With ``min_cluster_size`` (and optionally ``min_samples``) given, HDBSCAN runs with exactly
    those settings. Without, the settings of :func:`hdbscan_ladder` are tried in turn and the
    first finding :data:`MIN_USEFUL` to :data:`MAX_USEFUL` clusters with at most
    :data:`MAX_NOISE` noise is kept (else the one nearest that range within that noise, else
    under 50 % noise); when none finds two clusters and ``fallback``
    is true, the rows are split into k-means regions (``method="kmeans"``, no noise).
    """
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"X: expected a 2-D array of at least 2 rows, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X: contains NaN or infinite values")
    n = len(X)
    if min_cluster_size is not None and min_cluster_size < 2:
        raise ValueError(f"min_cluster_size: must be at least 2, got {min_cluster_size}")
    rows = np.arange(n)
    if n > max_fit:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=max_fit, replace=False))
    fit = X[rows]
    if min_cluster_size is not None or min_samples is not None:
        mcs = min_cluster_size if min_cluster_size is not None else max(5, len(rows) // 100)
        settings = [(min(mcs, len(rows)), min_samples, "eom")]
        fallback = False
    else:
        settings = hdbscan_ladder(len(rows))
    method, params, fitted = _best_hdbscan(fit, settings)
    if fitted is None or (fallback and len(set(fitted[fitted >= 0].tolist())) < 2):
        if fallback:
            k = int(np.clip(round(np.sqrt(len(rows) / 50)), 2, 12))
            k = min(k, len(rows))
            fitted = _kmeans(fit, k, seed)
            method, params = "kmeans", {"k": k}
        else:
            fitted = np.full(len(rows), -1, dtype=np.int64)
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
    return ClusterResult(labels, sizes, reps, method=method, params=params)


def _best_hdbscan(X: np.ndarray, settings: list[tuple]) -> tuple[str, dict, np.ndarray | None]:
    """The first setting giving :data:`MIN_USEFUL` to :data:`MAX_USEFUL` clusters with at most
    :data:`MAX_NOISE` noise; else, within that noise (then under 50 %), the one whose number
    of clusters is nearest that range."""
    from sklearn.cluster import HDBSCAN

    best: dict[float, tuple[float, dict, np.ndarray]] = {}
    for mcs, ms, *rest in settings:
        method = rest[0] if rest else "eom"
        fitted = HDBSCAN(
            min_cluster_size=mcs, min_samples=ms, cluster_selection_method=method, copy=True
        ).fit_predict(X)
        fitted = _renumber_by_size(fitted)
        k = int(fitted.max()) + 1 if len(fitted) else 0
        noise = float((fitted < 0).mean())
        params = {
            "min_cluster_size": int(mcs),
            "min_samples": None if ms is None else int(ms),
            "selection": method,
        }
        if len(settings) == 1 or (MIN_USEFUL <= k <= MAX_USEFUL and noise <= MAX_NOISE):
            return "hdbscan", params, fitted
        if k < 2:
            continue
        miss = float(MIN_USEFUL - k if k < MIN_USEFUL else k - MAX_USEFUL)
        for limit in (MAX_NOISE, 0.5):
            if noise <= limit and (limit not in best or miss < best[limit][0]):
                best[limit] = (miss, params, fitted)
    for limit in (MAX_NOISE, 0.5):
        if limit in best:
            return "hdbscan", best[limit][1], best[limit][2]
    return "hdbscan", {}, None


def _renumber_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids 0, 1, ... from the largest cluster down (noise stays -1)."""
    labels = np.asarray(labels, dtype=np.int64)
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    if not len(ids):
        return labels
    order = ids[np.lexsort((ids, -counts))]
    lut = np.full(int(labels.max()) + 1, -1, dtype=np.int64)
    lut[order] = np.arange(len(order))
    return np.where(labels >= 0, lut[np.maximum(labels, 0)], -1)


def _kmeans(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    fitted = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(X)
    return _renumber_by_size(fitted)


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
    map (see :func:`insarexplore.explore.projection`) is clustered instead (what the dashboard
    shows: clusters that are groups on the map the user lassos). ``frame.attrs`` holds
    ``method`` (``hdbscan`` or ``kmeans``), ``params``, ``n_clusters``, ``noise_fraction`` and
    ``description`` (one line for the legend).
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
    digest = hashlib.sha1(json.dumps([space, kw, _RULES], sort_keys=True).encode()).hexdigest()
    digest = digest[:10]
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
        meta.update(
            n_clusters=found.n_clusters,
            method=found.method,
            settings=found.params,
            noise_fraction=found.noise_fraction,
            description=found.describe(),
        )
        ws.save_artifact("clusters", key, result, meta)
    frame = pd.DataFrame(
        {"cluster": result["cluster"], "size": result["size"], "representative": result["rep"]},
        index=pd.Index(np.asarray(result["ids"]).astype(str), name="sample"),
    )
    labels = np.asarray(result["cluster"])
    frame.attrs.update(
        space=space,
        method=meta.get("method", "hdbscan"),
        params=meta.get("settings", {}),
        n_clusters=int(meta.get("n_clusters", len(set(labels[labels >= 0].tolist())))),
        noise_fraction=float((labels < 0).mean()) if len(labels) else 0.0,
        description=meta.get("description", ""),
    )
    return frame
