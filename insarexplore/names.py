"""Names that the command line and the library share, kept free of imports.

The CLI builds its ``choices`` from these, so ``insarexplore --help`` imports no numpy or torch;
the library validates against the same tuples (and :mod:`insarexplore.explore.active` checks at
import that its strategy registry holds exactly :data:`STRATEGIES`). Adding a name here without
the code behind it fails on import, not in a test that compares two copies.
"""

from __future__ import annotations

__all__ = [
    "FEWSHOT_METHODS",
    "PHASE_INPUTS",
    "RGB_INPUTS",
    "STRATEGIES",
    "STRATEGY_LABELS",
    "STRETCH_GAINS",
    "UNCERTAINTY_STRATEGIES",
]

#: Active-learning strategies (:func:`insarexplore.explore.active.suggest`) and the dashboard's
#: label for each, in the order the dashboard lists them.
STRATEGY_LABELS: dict[str, str] = {
    "margin_balanced": "Margin, every class",
    "entropy": "Entropy",
    "margin": "Margin",
    "least_confidence": "Least confidence",
    "margin_diverse": "Margin + diversity",
    "diversity": "Diversity",
    "typical": "Typical (first labels)",
    "geo_diversity": "Geographic diversity",
    "anomaly": "Most anomalous",
}
STRATEGIES: tuple[str, ...] = tuple(STRATEGY_LABELS)
#: Strategies that rank by a few-shot model's predictions (need labels of 2+ classes).
UNCERTAINTY_STRATEGIES: tuple[str, ...] = (
    "entropy",
    "margin",
    "least_confidence",
    "margin_diverse",
    "margin_balanced",
)

#: Few-shot heads (:class:`insarexplore.explore.fewshot.FewShotClassifier`).
FEWSHOT_METHODS: tuple[str, ...] = ("linear", "prototype", "knn")

#: Input layers of the encoders (:mod:`insarexplore.models.encoders`): for phase, and for RGB.
PHASE_INPUTS: tuple[str, ...] = ("raw", "gradient", "gradient+coherence")
RGB_INPUTS: tuple[str, ...] = ("raw", "hue-gradient")

#: The range of the embeddings' stretch gains (``models.physics_head.checked_gain``, the CLI's
#: ``--embed-gain``, the workspace's record): float32 embeddings stay finite and invertible.
STRETCH_GAINS = (1e-3, 1e3)
