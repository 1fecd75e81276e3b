"""Active learning: which samples to label next, each with its score and a one-line reason.

Strategies: ``entropy``, ``margin`` and ``least_confidence`` rank by the uncertainty of the
few-shot predictions; ``diversity`` is k-center greedy in embedding space (Sener and Savarese
2018: each pick is the sample farthest from every labelled or already-picked one);
``typical`` labels the most typical sample (densest: nearest its 20 neighbours) of each of the
largest k-means clusters that hold no label yet (after TypiClust, Hacohen et al. 2022: at
budgets of a few labels per class, typical samples teach more than uncertain or outlying ones);
``geo_diversity`` takes the best-scoring samples (uncertainty when predictions exist, else
distance to the labelled set) whose footprints overlap none of the other suggestions; ``margin_diverse``
takes the ``candidates_per_pick * n`` smallest-margin samples and, among them, the one nearest
each centre of ``n`` k-means clusters (weighted by uncertainty) in embedding space (after
Zhdanov 2019, "Diverse mini-batch active learning"): a batch of pure margin picks is often
near-duplicates on one decision boundary, which teaches little more than one of them.
``margin_balanced`` goes round the classes (in a seeded random order) and takes, for each, the
smallest-margin unlabelled sample among those predicted as that class (a class nobody is
predicted as gets the sample most likely to be it): uncertain picks spread over every class, so
the labelled set stays balanced while it follows the decision boundaries. On the synthetic
benchmark it is the best uncertainty strategy after a ``typical`` first round
(benchmarks/RESULTS.md, "Label efficiency").

Scale: k-center greedy works on at most ``max_candidates`` unlabelled rows (a seeded random
subsample) and measures distances to at most ``max_centers`` labelled rows (also subsampled); every
pick is then exact within the candidates. With the defaults, 1,000,000 x 128 float32 embeddings
take well under 2 s on 2 cores. Subsampling candidates loses little: the farthest point of a
random 50,000 is, with high probability, among the farthest 0.01 % of the whole set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "UNCERTAINTY_STRATEGIES",
    "balanced_uncertain",
    "diverse_uncertain",
    "typical_samples",
    "Suggestion",
    "STRATEGIES",
    "uncertainty",
    "k_center_greedy",
    "suggest",
    "suggest_workspace",
]

STRATEGIES = (
    "entropy",
    "margin",
    "least_confidence",
    "diversity",
    "typical",
    "geo_diversity",
    "margin_diverse",
    "margin_balanced",
)
# strategies that rank by the few-shot model's predictions (need labels of 2+ classes)
UNCERTAINTY_STRATEGIES = (
    "entropy",
    "margin",
    "least_confidence",
    "margin_diverse",
    "margin_balanced",
)


@dataclass(frozen=True)
class Suggestion:
    """One proposal: row index, sample id (when ids were given), score and why."""

    index: int
    sample: str | None
    score: float
    reason: str


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


def _mask(labelled: Any, n: int) -> np.ndarray:
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


def _sq_dist_min(C: np.ndarray, L: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Squared distance of each row of C to its nearest row of L (float32, chunked)."""
    out = np.empty(len(C), dtype=np.float32)
    l2 = np.einsum("ij,ij->i", L, L)
    for s in range(0, len(C), chunk):
        c = C[s : s + chunk]
        d = l2[None, :] - 2.0 * (c @ L.T)
        out[s : s + chunk] = d.min(axis=1) + np.einsum("ij,ij->i", c, c)
    return np.maximum(out, 0.0)


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
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"embeddings: expected a 2-D array, got shape {X.shape}")
    X = X.astype(np.float32, copy=False)
    rng = np.random.default_rng(seed)
    mask = _mask(labelled, len(X))
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
        d2 = _sq_dist_min(C, X[centres])
    else:  # no labels yet: start from the most typical sample (nearest the mean)
        d2 = np.full(len(C), np.inf, dtype=np.float32)
        first = int(np.argmin(_sq_dist_min(C, C.mean(axis=0, keepdims=True))))
        picks.append(first)
        dists.append(np.inf)
        d2 = np.minimum(d2, _sq_dist_min(C, C[first : first + 1]))
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
    ``max_candidates`` rows (seeded subsample) with ``n`` + (labelled rows in it) clusters, at most
    ``max_clusters`` (beyond that many labels, typicality has done its job and the rest is filled
    by k-center greedy); a row's typicality is the inverse of its mean distance to its 20 nearest
    neighbours in its cluster (measured on at most ``max_cluster`` members), which prefers the dense core of a
    cluster over a point that is merely near the centroid of a spread-out one.
    """
    from sklearn.cluster import MiniBatchKMeans

    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"embeddings: expected a 2-D array, got shape {X.shape}")
    X = X.astype(np.float32, copy=False)
    rng = np.random.default_rng(seed)
    mask = _mask(labelled, len(X))
    rows = np.arange(len(X))
    if len(rows) > max_candidates:
        rows = np.sort(rng.choice(rows, size=max_candidates, replace=False))
    n = min(int(n), int((~mask[rows]).sum()))
    if n <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    k = min(len(rows), n + int(mask[rows].sum()), max(int(max_clusters), n))
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
        extra, dist = k_center_greedy(X, n - len(picks), labelled=mask | _mask(picks, len(X)))
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
    mask = _mask(labelled, len(X))
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
    free = ~_mask(labelled, len(proba))
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


def _overlaps(box: np.ndarray, boxes: np.ndarray) -> bool:
    if not len(boxes):
        return False
    hit = (
        (box[0] < boxes[:, 2])
        & (boxes[:, 0] < box[2])
        & (box[1] < boxes[:, 3])
        & (boxes[:, 1] < box[3])
    )
    return bool(hit.any())


def suggest(
    n: int,
    strategy: str = "entropy",
    *,
    proba: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    labelled: Any = None,
    footprints: np.ndarray | None = None,
    ids: Any = None,
    classes: Any = None,
    seed: int = 0,
    max_candidates: int = 50_000,
    max_centers: int = 512,
) -> list[Suggestion]:
    """The ``n`` samples to label next, never already-labelled ones.

    ``proba`` (n_samples, n_classes) drives the uncertainty strategies, ``embeddings`` the
    diversity one, ``footprints`` (n_samples, 4: lon_min, lat_min, lon_max, lat_max) the
    geographic one; ``labelled`` is a boolean mask or row indices to exclude.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: must be one of {STRATEGIES}, got {strategy!r}")
    if n < 1:
        raise ValueError(f"n: must be at least 1, got {n}")
    size = next((len(a) for a in (proba, embeddings, footprints) if a is not None), None)
    if size is None:
        raise ValueError(f"strategy {strategy!r}: give proba, embeddings or footprints")
    mask = _mask(labelled, size)
    names = None if classes is None else [str(c) for c in classes]
    ids = None if ids is None else np.asarray(ids).astype(str)

    def make(i: int, score: float, reason: str) -> Suggestion:
        return Suggestion(int(i), None if ids is None else str(ids[i]), float(score), reason)

    if strategy == "diversity":
        if embeddings is None:
            raise ValueError("strategy 'diversity': needs embeddings")
        rows, dist = k_center_greedy(
            embeddings,
            n,
            labelled=mask,
            max_candidates=max_candidates,
            max_centers=max_centers,
            seed=seed,
        )
        return [
            make(
                i,
                d,
                "most typical sample, no labels yet"
                if np.isinf(d)
                else f"farthest from labelled and other suggested samples (distance {d:.3g})",
            )
            for i, d in zip(rows, dist)
        ]
    if strategy == "typical":
        if embeddings is None:
            raise ValueError("strategy 'typical': needs embeddings")
        rows, sizes = typical_samples(
            embeddings, n, labelled=mask, max_candidates=max_candidates, seed=seed
        )
        return [
            make(
                i,
                s,
                f"most typical sample of an unlabelled cluster of {int(s)} samples"
                if s > 0
                else "farthest from labelled samples (every cluster holds a label)",
            )
            for i, s in zip(rows, sizes)
        ]
    if strategy == "margin_diverse":
        if proba is None or embeddings is None:
            raise ValueError(
                "strategy 'margin_diverse': needs proba (train a few-shot model first) and "
                "embeddings"
            )
        scores = uncertainty(proba, "margin")
        rows = diverse_uncertain(embeddings, scores, n, labelled=mask, seed=seed)
        return [
            make(
                i,
                scores[i],
                _uncertainty_reason("margin", proba[i], scores[i], names)
                + "; the most typical of a group of similar uncertain samples",
            )
            for i in rows
        ]
    if strategy == "margin_balanced":
        if proba is None:
            raise ValueError(
                "strategy 'margin_balanced': needs proba (train a few-shot model first)"
            )
        scores = uncertainty(proba, "margin")
        rows = balanced_uncertain(proba, n, labelled=mask, seed=seed)
        return [
            make(
                i,
                scores[i],
                _uncertainty_reason("margin", proba[i], scores[i], names)
                + f"; least sure among those predicted {_class_name(int(np.argmax(proba[i])), names)}",
            )
            for i in rows
        ]
    if strategy in ("entropy", "margin", "least_confidence") or proba is not None:
        if proba is None:
            raise ValueError(f"strategy {strategy!r}: needs proba (train a few-shot model first)")
        base = "entropy" if strategy == "geo_diversity" else strategy
        scores = uncertainty(proba, base)
        why = [lambda i, base=base: _uncertainty_reason(base, proba[i], scores[i], names)]
    elif embeddings is not None:
        pool = np.flatnonzero(~mask)
        centres = np.flatnonzero(mask)
        scores = np.full(size, -np.inf, dtype=np.float32)
        if len(centres):
            rng = np.random.default_rng(seed)
            if len(centres) > max_centers:
                centres = rng.choice(centres, size=max_centers, replace=False)
            emb = np.asarray(embeddings, dtype=np.float32)
            scores[pool] = np.sqrt(_sq_dist_min(emb[pool], emb[centres]))
        else:
            scores[pool] = np.random.default_rng(seed).random(len(pool))
        why = [lambda i: f"far from labelled samples (distance {scores[i]:.3g})"]
    else:
        scores = np.random.default_rng(seed).random(size).astype(np.float32)
        why = [lambda i: "random pick (no predictions or embeddings to rank by)"]
    scores = np.where(mask, -np.inf, scores)
    if strategy != "geo_diversity":
        k = min(n, int((~mask).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.empty(0, np.int64)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [make(i, scores[i], why[0](i)) for i in top]
    if footprints is None:
        raise ValueError(
            "strategy 'geo_diversity': needs footprints (lon_min, lat_min, lon_max, lat_max)"
        )
    boxes = np.asarray(footprints, dtype=np.float64)
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) == n or not np.isfinite(scores[i]):
            break
        if not _overlaps(boxes[i], boxes[chosen]):
            chosen.append(int(i))
    return [
        make(i, scores[i], why[0](i) + "; footprint overlaps no other suggestion") for i in chosen
    ]


def _class_name(j: int, names: list[str] | None) -> str:
    return names[j] if names else f"class {j}"


def _uncertainty_reason(strategy: str, p: np.ndarray, score: float, names: list[str] | None) -> str:
    order = np.argsort(-p)[:2]
    a, b = (_class_name(j, names) for j in order)
    pa, pb = float(p[order[0]]), float(p[order[1]])
    if strategy == "entropy":
        return f"entropy {score:.2f} (max {np.log(len(p)):.2f}): unsure between {a} ({pa:.0%}) and {b} ({pb:.0%})"
    if strategy == "margin":
        return f"small margin {pa - pb:.2f} between {a} ({pa:.0%}) and {b} ({pb:.0%})"
    return f"best guess {a} has only {pa:.0%} confidence"


def suggest_workspace(
    ws: Any,
    n: int = 20,
    strategy: str = "margin_balanced",
    *,
    method: str = "linear",
    model_version: str | None = None,
    store: Any = None,
    seed: int = 0,
) -> list[Suggestion]:
    """:func:`suggest` over a workspace's embeddings, current labels and stored predictions.

    Uncertainty strategies use the stored predictions of ``method`` when they were trained on the
    current labels, and train them (:func:`train_fewshot`) otherwise.
    """
    from insarexplore.explore.fewshot import load_predictions, train_fewshot
    from insarexplore.explore.labels import LabelStore

    ids, vectors, _ = ws.load_embeddings(model_version)
    ids = np.asarray(ids).astype(str)
    own = store is None
    store = store or LabelStore(ws.labels_path)
    try:
        current, revision = store.current(), store.revision()
        labelled = np.fromiter((s in current for s in ids), dtype=bool, count=len(ids))
        proba = classes = None
        if strategy not in ("diversity", "typical") and len(set(current.values())) >= 2:
            version = model_version or ws.current_model
            try:
                preds = load_predictions(ws, method, version)
                fresh = preds.meta.get("labels_revision") == revision and np.array_equal(
                    preds.ids, ids
                )
            except Exception:  # none stored yet
                fresh = False
            if not fresh:
                _, preds = train_fewshot(ws, method, model_version, store=store, progress=False)
            proba, classes = preds.proba, preds.classes
        elif strategy in UNCERTAINTY_STRATEGIES:
            raise ValueError(
                f"strategy {strategy!r} needs a few-shot model: label samples of at least 2 classes"
                " first, or use strategy='typical' or 'diversity'"
            )
    finally:
        if own:
            store.close()
    footprints = None
    if strategy == "geo_diversity":
        table = ws.open_data().reset_coords()
        pos = {s: i for i, s in enumerate(np.asarray(table["sample"].values).astype(str))}
        cols = [
            np.asarray(table[c].values, dtype=np.float64)
            for c in ("lon_min", "lat_min", "lon_max", "lat_max")
        ]
        rows = np.array([pos.get(s, -1) for s in ids])
        footprints = np.full((len(ids), 4), np.nan)
        ok = rows >= 0
        footprints[ok] = np.stack(cols, axis=1)[rows[ok]]
    return suggest(
        n,
        strategy,
        proba=proba,
        embeddings=np.asarray(vectors),
        labelled=labelled,
        footprints=footprints,
        ids=ids,
        classes=classes,
        seed=seed,
    )
