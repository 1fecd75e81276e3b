"""The evaluation protocol every quality and label-efficiency figure uses.

* Splits are made by group (:mod:`insarexplore.explore.splits`): crops of one interferogram, or
  one site, never sit on both sides. A train pool and a validation set come from one source;
  the test set comes from another (another generator seed; in the transfer proxy, other sites
  too), so nothing chosen on validation can have seen it.
* Every choice (probe regularisation, schedule, epochs, the configuration itself) is made on
  validation. Test labels are sealed in :class:`SealedTest`: they can be used to score a
  named configuration once, and reading them any other way raises :class:`SealedLabelsError`,
  so a selection step that peeks at them fails its test instead of passing silently.
* Seed counts are fixed before running (:data:`DEFAULT_SEEDS`); results are summarised as mean,
  standard deviation and standard error (:func:`summarise`), and two methods scored on the
  same draws are compared with a paired test (:func:`paired`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SEEDS",
    "SealedLabelsError",
    "SealedTest",
    "Summary",
    "draw_per_class",
    "group_split",
    "paired",
    "summarise",
]

DEFAULT_SEEDS = 20


class SealedLabelsError(RuntimeError):
    """Test labels were read outside :meth:`SealedTest.score`."""


@dataclass
class SealedTest:
    """A test set whose labels are used only to score named configurations, once each.

    ``score(name, predict, metric)`` calls ``predict(indices)`` (the test samples' indices into
    the caller's arrays), then ``metric(y_true, y_pred)``. A second score of the same name
    raises: the test set is scored once per reported configuration. ``ledger`` lists every
    configuration scored, in order.
    """

    indices: np.ndarray
    _labels: np.ndarray = field(repr=False)
    ledger: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices)
        self.__raw = np.asarray(self._labels).copy()
        del self._labels

    def __getattr__(self, name: str) -> Any:
        if name in ("_labels", "labels", "y"):
            raise SealedLabelsError("test labels are sealed: score a configuration with .score()")
        raise AttributeError(name)

    def _once(self, name: str) -> None:
        if name in self.ledger:
            raise SealedLabelsError(f"configuration {name!r} was already scored on the test set")
        self.ledger.append(name)

    def score(
        self, name: str, predict: Callable[[np.ndarray], np.ndarray], metric: Callable
    ) -> Any:
        """``metric(y_true, predict(indices))`` for configuration ``name`` (once)."""
        self._once(name)
        return metric(self.__raw, np.asarray(predict(self.indices)))

    def evaluate(self, name: str, protocol: Callable[[np.ndarray], Any]) -> Any:
        """``protocol(labels)`` for configuration ``name`` (once): for few-label protocols that
        draw their training labels from the test set itself (other sites, other draws)."""
        self._once(name)
        return protocol(self.__raw.copy())


def group_split(groups: Sequence[Any], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held) indices: about ``fraction`` of the groups held out, whole groups only."""
    groups = np.asarray(groups).astype(str)
    unique = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_held = max(1, min(len(unique) - 1, round(fraction * len(unique))))
    held_groups = set(rng.choice(unique, size=n_held, replace=False).tolist())
    held = np.array([g in held_groups for g in groups])
    return np.flatnonzero(~held), np.flatnonzero(held)


def draw_per_class(
    labels: np.ndarray, candidates: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """``k`` labelled samples per class from ``candidates`` (all of a class when it has fewer)."""
    labels = np.asarray(labels)
    out = []
    for c in np.unique(labels[candidates]):
        pool = candidates[labels[candidates] == c]
        out.append(rng.choice(pool, size=min(k, len(pool)), replace=False))
    return np.concatenate(out) if out else np.array([], dtype=int)


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    se: float

    def __str__(self) -> str:
        return f"{self.mean:.3f} +- {self.se:.3f} (sd {self.std:.3f}, n {self.n})"


def summarise(values: Sequence[float]) -> Summary:
    """Mean, standard deviation (ddof 1) and standard error of per-draw scores."""
    v = np.asarray(values, dtype=float)
    std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
    return Summary(len(v), float(v.mean()), std, std / np.sqrt(len(v)) if len(v) else float("nan"))


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Paired comparison of two methods scored on the same draws: mean and standard error of
    ``a - b``, and the two-sided p-value of a paired t-test."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same draws; got {a.shape} and {b.shape}")
    d = a - b
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    p = float(stats.ttest_rel(a, b).pvalue) if len(d) > 1 and d.std() > 0 else float("nan")
    return {"diff": float(d.mean()), "se": se, "p": p, "n": float(len(d))}
