"""How active learning picks rows: uncertainty, k-center greedy, typicality, diverse and
class-balanced uncertainty. Arrays in, row indices out; the named strategies, their reasons and
:func:`~insarexplore.explore.active.suggest` are in :mod:`insarexplore.explore.active`.

Scale: k-center greedy works on at most ``max_candidates`` unlabelled rows (a seeded random
subsample) and measures distances to at most ``max_centers`` labelled rows (also subsampled); every
pick is then exact within the candidates. With the defaults, 1,000,000 x 128 float32 embeddings
take well under 2 s on 2 cores. Subsampling candidates loses little: the farthest point of a
random 50,000 is, with high probability, among the farthest 0.01 % of the whole set.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "CLUSTERS_PER_PICK",
    "balanced_uncertain",
    "diverse_uncertain",
    "k_center_greedy",
    "nearest_sq_dist",
    "row_mask",
    "typical_samples",
    "uncertainty",
]

#: ``typical`` on a cold start: k-means clusters per requested sample (see :func:`typical_samples`).
CLUSTERS_PER_PICK = 2


def uncertainty(proba: np.ndarray, strategy: str = "entropy") -> np.ndarray:
    """Per-row uncertainty, higher means less sure: entropy (nats), 1 - margin, 1 - max."""
    p = np.asarray(proba, dtype=np.float32)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"proba: expected (n_samples, n_classes >= 2), got shape {p.shape}")
    if strategy == "entropy":
        return -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1)
    top2 = -np.partition(-p, 1, axis=1)[:, :2]
    if strategy == "margin":
        return 1.0 - (top2[:, 0] - top2[:, 1])
    if strategy == "least_confidence":
        return 1.0 - top2[:, 0]
    raise ValueError(f"strategy: {strategy!r} is not an uncertainty strategy")


def row_mask(labelled: Any, n: int) -> np.ndarray:
    """Boolean mask of length ``n`` from a mask or row indices (None: nothing labelled)."""
    mask = np.zeros(n, dtype=bool)
    if labelled is None:
        return mask
    labelled = np.asarray(labelled)
    if labelled.dtype == bool:
        if labelled.shape != (n,):
            raise ValueError(f"labelled: boolean mask of length {labelled.shape}, expected {n}")
        return labelled.copy()
    mask[labelled.astype(np.int64)] = True
    return mask


def nearest_sq_dist(C: np.ndarray, L: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Squared distance of each row of C to its nearest row of L (float32, chunked)."""
    out = np.empty(len(C), dtype=np.float32)
    l2 = np.einsum("ij,ij->i", L, L)
    for s in range(0, len(C), chunk):
        c = C[s : s + chunk]
        d = l2[None, :] - 2.0 * (c @ L.T)
        out[s : s + chunk] = d.min(axis=1) + np.einsum("ij,ij->i", c, c)
    return np.maximum(out, 0.0)


def _embeddings(X: Any) -> np.ndarray:
    """``X`` as a 2-D float32 array, or a clear error."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"embeddings: expected a 2-D array, got shape {X.shape}")
    return X.astype(np.float32, copy=False)


def k_center_greedy(
    X: np.ndarray,
    n: int,
    *,
    labelled: Any = None,
    max_candidates: int = 50_000,
    max_centers: int = 512,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` row indices picked by k-center greedy, and each pick's distance when picked."""
    X = _embeddings(X)
    rng = np.random.default_rng(seed)
    mask = row_mask(labelled, len(X))
    pool = np.flatnonzero(~mask)
    if len(pool) > max_candidates:
        pool = np.sort(rng.choice(pool, size=max_candidates, replace=False))
    n = min(int(n), len(pool))
    if n <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    C = X[pool]
    centres = np.flatnonzero(mask)
    if len(centres) > max_centers:
        centres = rng.choice(centres, size=max_centers, replace=False)
    picks, dists = [], []
    if len(centres):
        d2 = nearest_sq_dist(C, X[centres])
    else:  # no labels yet: start from the most typical sample (nearest the mean)
        d2 = np.full(len(C), np.inf, dtype=np.float32)
        first = int(np.argmin(nearest_sq_dist(C, C.mean(axis=0, keepdims=True))))
        picks.append(first)
        dists.append(np.inf)
        d2 = np.minimum(d2, nearest_sq_dist(C, C[first : first + 1]))
    c2 = np.einsum("ij,ij->i", C, C)
    while len(picks) < n:
        i = int(np.argmax(d2))
        picks.append(i)
        dists.append(float(np.sqrt(d2[i])))
        x = C[i]
        np.minimum(d2, np.maximum(c2 - 2.0 * (C @ x) + float(x @ x), 0.0), out=d2)
        d2[i] = -1.0
    return pool[np.asarray(picks, dtype=np.int64)], np.asarray(dists, dtype=np.float32)


def _typicality(Z: np.ndarray, k: int = 20) -> np.ndarray:
    """Typicality of each row of ``Z`` among the others: 1 / mean distance to its ``k`` nearest
    neighbours (a density estimate; TypiClust's criterion)."""
    from sklearn.neighbors import NearestNeighbors

    if len(Z) < 2:
        return np.ones(len(Z), dtype=np.float64)
    k = min(k, len(Z) - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    return 1.0 / (dist[:, 1:].mean(axis=1) + 1e-12)


def typical_samples(
    X: np.ndarray,
    n: int,
    *,
    labelled: Any = None,
    max_candidates: int = 50_000,
    max_cluster: int = 5_000,
    max_clusters: int = 1_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unlabelled rows, the most typical of each of the largest label-free k-means clusters.

    Returns the rows and the size of the cluster each one represents. k-means runs on at most
    ``max_candidates`` rows (seeded subsample) with ``k = max(CLUSTERS_PER_PICK * n, n + L)``
    clusters, ``L`` the labelled rows among them, and at most ``max_clusters`` (beyond that many
    labels, typicality has done its job and the rest is filled by k-center greedy). The rule uses
    no labels: on a cold start (``L = 0``) there are twice as many clusters as picks, so asking
    for as many samples as there are classes does not make one cluster per class; once the labels
    outnumber the picks it is TypiClust's ``n + L``. A row's typicality is the inverse of its mean
    distance to its 20 nearest neighbours in its cluster (measured on at most ``max_cluster``
    members), which prefers the dense core of a cluster over a point that is merely near the
    centroid of a spread-out one.
    """
    from sklearn.cluster import MiniBatchKMeans

    X = _embeddings(X)
    rng = np.random.default_rng(seed)
    mask = row_mask(labelled, len(X))
    rows = np.arange(len(X))
    if len(rows) > max_candidates:
        rows = np.sort(rng.choice(rows, size=max_candidates, replace=False))
    n = min(int(n), int((~mask[rows]).sum()))
    if n <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    wanted = max(CLUSTERS_PER_PICK * n, n + int(mask[rows].sum()))
    k = min(len(rows), wanted, max(int(max_clusters), n))
    km = MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096).fit(X[rows])
    assign = km.labels_
    covered = np.zeros(k, dtype=bool)
    covered[np.unique(assign[mask[rows]])] = True
    sizes = np.bincount(assign, minlength=k)
    picks, scores = [], []
    for c in np.argsort(-sizes, kind="stable"):
        if len(picks) == n:
            break
        members = np.flatnonzero(assign == c)
        if covered[c] or not (~mask[rows[members]]).any():
            continue
        if len(members) > max_cluster:
            members = np.sort(rng.choice(members, size=max_cluster, replace=False))
        typ = _typicality(X[rows[members]])
        typ[mask[rows[members]]] = -np.inf
        picks.append(rows[members[int(np.argmax(typ))]])
        scores.append(float(sizes[c]))
    if len(picks) < n:  # every cluster holds a label: fill with the farthest-from-labels rows
        extra, dist = k_center_greedy(X, n - len(picks), labelled=mask | row_mask(picks, len(X)))
        picks += list(extra)
        scores += [0.0] * len(extra)
    return np.asarray(picks, dtype=np.int64), np.asarray(scores, dtype=np.float32)


def diverse_uncertain(
    X: np.ndarray,
    scores: np.ndarray,
    n: int,
    *,
    labelled: Any = None,
    candidates_per_pick: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """``n`` unlabelled rows: the most uncertain ``candidates_per_pick * n`` (by ``scores``,
    higher is less sure), clustered into ``n`` groups by k-means weighted by ``scores``, and the
    row nearest each group's centre, most uncertain group first."""
    from sklearn.cluster import KMeans

    X = np.asarray(X, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float64)
    if X.ndim != 2 or len(X) != len(scores):
        raise ValueError(f"embeddings {X.shape} and scores {scores.shape}: need one row per score")
    mask = row_mask(labelled, len(X))
    free = np.flatnonzero(~mask & np.isfinite(scores))
    n = min(int(n), len(free))
    if n <= 0:
        return np.empty(0, np.int64)
    m = min(len(free), max(n, int(candidates_per_pick) * n))
    cand = free[np.argpartition(-scores[free], m - 1)[:m]] if m < len(free) else free
    if m == n:
        return cand[np.argsort(-scores[cand], kind="stable")]
    w = scores[cand] - scores[cand].min() + 1e-6
    km = KMeans(n, random_state=seed, n_init=1).fit(X[cand], sample_weight=w)
    d2 = ((X[cand] - km.cluster_centers_[km.labels_]) ** 2).sum(axis=1)
    picks = []
    for c in range(n):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            picks.append(cand[members[np.argmin(d2[members])]])
    picks = np.asarray(picks, dtype=np.int64)
    return picks[np.argsort(-scores[picks], kind="stable")]


def balanced_uncertain(
    proba: np.ndarray, n: int, *, labelled: Any = None, seed: int = 0
) -> np.ndarray:
    """``n`` unlabelled rows, one class at a time (classes in a seeded random order, then again):
    the smallest-margin row predicted as that class, or, when no unlabelled row is left
    predicted as it, the row with the highest probability of it."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"proba: expected (n_samples, n_classes >= 2), got shape {proba.shape}")
    free = ~row_mask(labelled, len(proba))
    n = min(int(n), int(free.sum()))
    scores = uncertainty(proba, "margin")
    pred = proba.argmax(axis=1)
    queues = []  # per class: its free rows, most uncertain first
    for c in range(proba.shape[1]):
        rows = np.flatnonzero(free & (pred == c))
        queues.append(list(rows[np.argsort(-scores[rows], kind="stable")][::-1]))
    order = np.random.default_rng(seed).permutation(proba.shape[1])
    picks: list[int] = []
    while len(picks) < n:
        for c in order:
            if len(picks) == n:
                break
            q = queues[c]
            while q and not free[q[-1]]:
                q.pop()
            if q:
                i = int(q.pop())
            else:
                cand = np.flatnonzero(free)
                i = int(cand[np.argmax(proba[cand, c])])
            free[i] = False
            picks.append(i)
    return np.asarray(picks, dtype=np.int64)
