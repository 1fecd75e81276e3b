"""Active learning: which samples to label next, each with its score and a one-line reason.

Every strategy is a function in :data:`REGISTRY`, under a name of
:data:`insarexplore.names.STRATEGIES` (the one list the command line, the library and the
dashboard offer); :func:`suggest` checks the inputs and calls it. The row-picking algorithms are
in :mod:`insarexplore.explore.selection`; :func:`insarexplore.explore.workspace_suggest.suggest_workspace`
runs a strategy on a workspace.

``entropy``, ``margin`` and ``least_confidence`` rank by the uncertainty of the few-shot
predictions; ``diversity`` is k-center greedy in embedding space (Sener and Savarese 2018: each
pick is the sample farthest from every labelled or already-picked one); ``typical`` labels the
most typical sample (densest: nearest its 20 neighbours) of each of the largest k-means clusters
that hold no label yet (after TypiClust, Hacohen et al. 2022: at budgets of a few labels per
class, typical samples teach more than uncertain or outlying ones), with the number of clusters
chosen without labels (:func:`~insarexplore.explore.selection.typical_samples`);
``geo_diversity`` takes the best-scoring samples (uncertainty when predictions exist, else
distance to the labelled set) whose footprints overlap none of the other suggestions;
``margin_diverse`` takes the ``candidates_per_pick * n`` smallest-margin samples and, among them,
the one nearest each centre of ``n`` k-means clusters (weighted by uncertainty) in embedding
space (after Zhdanov 2019, "Diverse mini-batch active learning"): a batch of pure margin picks is
often near-duplicates on one decision boundary, which teaches little more than one of them.
``margin_balanced`` goes round the classes (in a seeded random order) and takes, for each, the
smallest-margin unlabelled sample among those predicted as that class (a class nobody is
predicted as gets the sample most likely to be it): uncertain picks spread over every class, so
the labelled set stays balanced while it follows the decision boundaries. ``anomaly`` takes the
highest anomaly scores (:mod:`insarexplore.explore.anomaly`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from insarexplore._checks import check_whole
from insarexplore.explore.selection import (
    balanced_uncertain,
    diverse_uncertain,
    k_center_greedy,
    nearest_sq_dist,
    row_mask,
    typical_samples,
    uncertainty,
)
from insarexplore.names import STRATEGIES, UNCERTAINTY_STRATEGIES

__all__ = [
    "INPUTS",
    "REGISTRY",
    "STRATEGIES",
    "UNCERTAINTY_STRATEGIES",
    "Pool",
    "Strategy",
    "Suggestion",
    "k_center_greedy",
    "suggest",
    "uncertainty",
]

#: What a strategy can rank by: per-sample arrays, one row per sample.
INPUTS = ("proba", "embeddings", "footprints", "anomaly")


@dataclass(frozen=True)
class Suggestion:
    """One proposal: row index, sample id (when ids were given), score and why."""

    index: int
    sample: str | None
    score: float
    reason: str


@dataclass(frozen=True)
class Pool:
    """What :func:`suggest` hands a strategy: the inputs given (None when not), the labelled
    rows (never picked), class names and ids for the reasons, and the scale limits."""

    size: int
    labelled: np.ndarray
    proba: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    footprints: np.ndarray | None = None
    anomaly: np.ndarray | None = None
    classes: list[str] | None = None
    ids: np.ndarray | None = None
    seed: int = 0
    max_candidates: int = 50_000
    max_centers: int = 512

    def pick(self, i: int, score: float, reason: str) -> Suggestion:
        sample = None if self.ids is None else str(self.ids[i])
        return Suggestion(int(i), sample, float(score), reason)

    def top(self, scores: np.ndarray, n: int, why: Callable[[int], str]) -> list[Suggestion]:
        """The ``n`` best-scoring unlabelled rows, best first."""
        scores = np.where(self.labelled, -np.inf, scores)
        k = min(n, int((~self.labelled).sum()))
        top = np.argpartition(-scores, k - 1)[:k] if k else np.empty(0, np.int64)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [self.pick(i, scores[i], why(i)) for i in top]


@dataclass(frozen=True)
class Strategy:
    """A named way to pick ``n`` rows: ``run(pool, n)``; ``uses``: the inputs it reads."""

    name: str
    run: Callable[[Pool, int], list[Suggestion]]
    uses: tuple[str, ...]


#: Every strategy by name; its keys are exactly :data:`insarexplore.names.STRATEGIES`.
REGISTRY: dict[str, Strategy] = {}


def _strategy(name: str, *uses: str) -> Callable:
    def register(run: Callable[[Pool, int], list[Suggestion]]) -> Callable:
        if name not in STRATEGIES or name in REGISTRY or not set(uses) <= set(INPUTS):
            raise RuntimeError(f"strategy {name!r}: unknown to insarexplore.names or registered")
        REGISTRY[name] = Strategy(name, run, uses)
        return run

    return register


def _need_proba(name: str, pool: Pool) -> np.ndarray:
    if pool.proba is None:
        raise ValueError(f"strategy {name!r}: needs proba (train a few-shot model first)")
    return pool.proba


def _need_embeddings(name: str, pool: Pool) -> np.ndarray:
    if pool.embeddings is None:
        raise ValueError(f"strategy {name!r}: needs embeddings")
    return pool.embeddings


def _by_uncertainty(name: str) -> Callable[[Pool, int], list[Suggestion]]:
    def run(pool: Pool, n: int) -> list[Suggestion]:
        proba = _need_proba(name, pool)
        scores = uncertainty(proba, name)
        return pool.top(scores, n, lambda i: _uncertainty_reason(name, proba[i], scores[i], pool))

    run.__doc__ = f"The ``n`` highest {name} uncertainties of the few-shot predictions."
    return run


for _name in ("entropy", "margin", "least_confidence"):
    _strategy(_name, "proba")(_by_uncertainty(_name))
del _name


@_strategy("diversity", "embeddings")
def _diversity(pool: Pool, n: int) -> list[Suggestion]:
    rows, dist = k_center_greedy(
        _need_embeddings("diversity", pool), n, labelled=pool.labelled,
        max_candidates=pool.max_candidates, max_centers=pool.max_centers, seed=pool.seed,
    )  # fmt: skip
    return [
        pool.pick(
            i,
            d,
            "most typical sample, no labels yet"
            if np.isinf(d)
            else f"farthest from labelled and other suggested samples (distance {d:.3g})",
        )
        for i, d in zip(rows, dist)
    ]


@_strategy("typical", "embeddings")
def _typical(pool: Pool, n: int) -> list[Suggestion]:
    rows, sizes = typical_samples(
        _need_embeddings("typical", pool), n, labelled=pool.labelled,
        max_candidates=pool.max_candidates, seed=pool.seed,
    )  # fmt: skip
    return [
        pool.pick(
            i,
            s,
            f"most typical sample of an unlabelled cluster of {int(s)} samples"
            if s > 0
            else "farthest from labelled samples (every cluster holds a label)",
        )
        for i, s in zip(rows, sizes)
    ]


@_strategy("margin_diverse", "proba", "embeddings")
def _margin_diverse(pool: Pool, n: int) -> list[Suggestion]:
    if pool.proba is None or pool.embeddings is None:
        raise ValueError(
            "strategy 'margin_diverse': needs proba (train a few-shot model first) and embeddings"
        )
    scores = uncertainty(pool.proba, "margin")
    rows = diverse_uncertain(pool.embeddings, scores, n, labelled=pool.labelled, seed=pool.seed)
    return [
        pool.pick(
            i,
            scores[i],
            _uncertainty_reason("margin", pool.proba[i], scores[i], pool)
            + "; the most typical of a group of similar uncertain samples",
        )
        for i in rows
    ]


@_strategy("margin_balanced", "proba")
def _margin_balanced(pool: Pool, n: int) -> list[Suggestion]:
    proba = _need_proba("margin_balanced", pool)
    scores = uncertainty(proba, "margin")
    rows = balanced_uncertain(proba, n, labelled=pool.labelled, seed=pool.seed)
    return [
        pool.pick(
            i,
            scores[i],
            _uncertainty_reason("margin", proba[i], scores[i], pool)
            + f"; least sure among those predicted {_class_name(int(np.argmax(proba[i])), pool)}",
        )
        for i in rows
    ]


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


@_strategy("geo_diversity", "proba", "embeddings", "footprints")
def _geo_diversity(pool: Pool, n: int) -> list[Suggestion]:
    """Entropy (else distance to the labelled set, else random), skipping overlapping footprints."""
    if pool.footprints is None:
        raise ValueError(
            "strategy 'geo_diversity': needs footprints (lon_min, lat_min, lon_max, lat_max)"
        )
    mask, rng = pool.labelled, np.random.default_rng(pool.seed)
    if pool.proba is not None:
        proba = pool.proba
        scores = uncertainty(proba, "entropy")
        why = lambda i: _uncertainty_reason("entropy", proba[i], scores[i], pool)  # noqa: E731
    elif pool.embeddings is not None:
        free, centres = np.flatnonzero(~mask), np.flatnonzero(mask)
        scores = np.full(pool.size, -np.inf, dtype=np.float32)
        if len(centres):
            if len(centres) > pool.max_centers:
                centres = rng.choice(centres, size=pool.max_centers, replace=False)
            emb = np.asarray(pool.embeddings, dtype=np.float32)
            scores[free] = np.sqrt(nearest_sq_dist(emb[free], emb[centres]))
        else:
            scores[free] = rng.random(len(free))
        why = lambda i: f"far from labelled samples (distance {scores[i]:.3g})"  # noqa: E731
    else:
        scores = rng.random(pool.size).astype(np.float32)
        why = lambda i: "random pick (no predictions or embeddings to rank by)"  # noqa: E731
    scores = np.where(mask, -np.inf, scores)
    boxes = np.asarray(pool.footprints, dtype=np.float64)
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) == n or not np.isfinite(scores[i]):
            break
        if not _overlaps(boxes[i], boxes[chosen]):
            chosen.append(int(i))
    return [pool.pick(i, scores[i], why(i) + "; footprint overlaps no other suggestion")
            for i in chosen]  # fmt: skip


@_strategy("anomaly", "anomaly")
def _anomaly(pool: Pool, n: int) -> list[Suggestion]:
    """The highest anomaly scores among the unlabelled samples that have one."""
    if pool.anomaly is None:
        raise ValueError("strategy 'anomaly': needs anomaly scores (see explore.anomaly)")
    scores = np.asarray(pool.anomaly, dtype=np.float64)
    scores = np.where(pool.labelled | ~np.isfinite(scores), -np.inf, scores)
    top = np.argsort(-scores, kind="stable")[:n]
    top = top[np.isfinite(scores[top])]
    if not top.size:
        raise ValueError("no anomaly scores for unlabelled samples")
    return [
        pool.pick(i, scores[i], f"anomaly score {scores[i]:.3g} (rank {k + 1} of unlabelled)")
        for k, i in enumerate(top)
    ]


if set(REGISTRY) != set(STRATEGIES):  # a name in insarexplore.names without its function
    raise RuntimeError(f"strategies without a function: {set(STRATEGIES) - set(REGISTRY)}")


def suggest(
    n: int,
    strategy: str = "entropy",
    *,
    proba: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    labelled: Any = None,
    footprints: np.ndarray | None = None,
    anomaly: np.ndarray | None = None,
    ids: Any = None,
    classes: Any = None,
    seed: int = 0,
    max_candidates: int = 50_000,
    max_centers: int = 512,
) -> list[Suggestion]:
    """The ``n`` samples to label next, never already-labelled ones.

    ``proba`` (n_samples, n_classes) drives the uncertainty strategies, ``embeddings`` the
    diversity ones, ``footprints`` (n_samples, 4: lon_min, lat_min, lon_max, lat_max) the
    geographic one, ``anomaly`` (n_samples,) the anomaly one; ``labelled`` is a boolean mask or
    row indices to exclude. ``strategy``: a name of :data:`REGISTRY`.
    """
    if strategy not in REGISTRY:
        raise ValueError(f"strategy: must be one of {STRATEGIES}, got {strategy!r}")
    check_whole("n", n, 1)
    check_whole("seed", seed, 0, 2**32 - 1)
    given = (proba, embeddings, footprints, anomaly)
    size = next((len(a) for a in given if a is not None), None)
    if size is None:
        raise ValueError(f"strategy {strategy!r}: give proba, embeddings, footprints or anomaly")
    pool = Pool(
        size=size,
        labelled=row_mask(labelled, size),
        proba=proba,
        embeddings=embeddings,
        footprints=footprints,
        anomaly=anomaly,
        classes=None if classes is None else [str(c) for c in classes],
        ids=None if ids is None else np.asarray(ids).astype(str),
        seed=seed,
        max_candidates=max_candidates,
        max_centers=max_centers,
    )
    return REGISTRY[strategy].run(pool, n)


def _class_name(j: int, pool: Pool) -> str:
    return pool.classes[j] if pool.classes else f"class {j}"


def _uncertainty_reason(strategy: str, p: np.ndarray, score: float, pool: Pool) -> str:
    order = np.argsort(-p)[:2]
    a, b = (_class_name(j, pool) for j in order)
    pa, pb = float(p[order[0]]), float(p[order[1]])
    if strategy == "entropy":
        return (
            f"entropy {score:.2f} (max {np.log(len(p)):.2f}): "
            f"unsure between {a} ({pa:.0%}) and {b} ({pb:.0%})"
        )
    if strategy == "margin":
        return f"small margin {pa - pb:.2f} between {a} ({pa:.0%}) and {b} ({pb:.0%})"
    return f"best guess {a} has only {pa:.0%} confidence"
