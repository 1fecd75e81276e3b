"""The physics bank's classifier, saved beside the encoder: scores of deformation sources.

Pretraining with the physics bank (``insarexplore.ssl.physics``) trains a linear layer on the
encoder's features that tells the generator's classes apart (Mogi, sill, dyke, earthquake,
subsidence, none). It is saved as ``physics_head.pt`` in the model folder (tensors and
strings only: it loads with ``torch.load(weights_only=True)``; written atomically), so the
stored embeddings give, at no extra cost, the probability of each source and a zero-shot
deformation score: the probability of deformation against none, with the two equally likely
beforehand.

The bank draws its classes in equal shares, so five of its six classes are deformation and the
head's own 1 - P(none) carries a prior of 5 : 1 for deformation: a scene the head cannot tell
apart from any class (every probability 1/6) would score 5/6. The score takes that prior out
(its odds divided by 5): such a scene scores 0.5, and the 0.5 cut weighs the errors on both
classes equally (as balanced accuracy does). The head is trained with label smoothing, so
the score is a calibrated probability only roughly; its order and its 0.5 cut are what count.
On the transfer proxy's validation set this raised the balanced accuracy of the zero-shot call
(score > 0.5) from 0.78 to 0.91, with the ranking (and so every AUC, probe and list by score)
unchanged (benchmarks/RESULTS.md).

The head also gives the model's embeddings their shape. ``axis`` is the head's direction of
deformation against none (the mean of the deformation classes' weight rows minus the none
row, unit length). A model pretrained with the bank embeds with its features stretched
(``stretch``; ``embed.Embedder`` does it): by ``gain`` along the axis and by ``class_gain``
along the head's other class directions (the rest of its rows' span: which source), so that
the map, nearest neighbours and a probe fitted on a few labels see deformation, then its
source, as main directions of the embedding rather than a few among 128. The stretch is
linear and invertible: nothing is lost, and ``logits`` takes it out again before applying the
head, so scores of stored embeddings are those of the encoder's features. Both gains are
recorded in the head file (``embed_gain``, ``embed_class_gain``; files without them: 1, no
stretch). ``PretrainConfig.embed_gain`` / ``embed_class_gain`` (10 and 3) were chosen on the
transfer proxy's validation sets and the demo's map (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from insarexplore.models.serialization import ModelMismatchError, atomic_torch_save
from insarexplore.names import STRETCH_GAINS

__all__ = [
    "HEAD_FILE",
    "HEAD_FORMAT",
    "PhysicsHead",
    "checked_gain",
    "checked_head",
    "load_physics_head",
    "save_physics_head",
]

HEAD_FILE = "physics_head.pt"
HEAD_FORMAT = "insarexplore-physics-head-v1"


@dataclass(frozen=True)
class PhysicsHead:
    """``weight`` (classes, dim) and ``bias`` (classes,) float32 of a linear classifier on the
    encoder's features; ``gain`` and ``class_gain``: how much the model's embeddings are
    stretched along ``axis`` and along the head's other class directions (1: not at all)."""

    classes: tuple[str, ...]
    weight: np.ndarray
    bias: np.ndarray
    gain: float = 1.0
    class_gain: float = 1.0

    @property
    def gains(self) -> list[float]:
        """``[gain, class_gain]``: the stretch as stored embeddings record it."""
        return [self.gain, self.class_gain]

    @property
    def axis(self) -> np.ndarray:
        """Unit ``(dim,)`` direction of deformation against none: the deformation classes'
        mean weight row minus the none row (the bank draws its classes in equal shares)."""
        none = self.classes.index("none")
        w = self.weight.astype(np.float64)
        d = np.delete(w, none, axis=0).mean(axis=0) - w[none]
        n = float(np.linalg.norm(d))
        # rows (numerically) alike: no direction, zero (not rounding noise made unit length)
        return d / n if n > 1e-6 * float(np.linalg.norm(w)) else np.zeros_like(d)

    def _scaled(self, x: Any, gain: float, class_gain: float) -> np.ndarray:
        """``x`` with its component along ``axis`` times ``gain``, its other components in the
        span of the weight rows times ``class_gain``, the rest as it is (float32; a copy).
        One linear map with those eigenvalues (the axis lies in the span), so the inverse is
        the same map with the reciprocal gains."""
        x = np.asarray(x, dtype=np.float32)
        out = x.copy()
        if class_gain != 1.0:
            u, s, _ = np.linalg.svd(self.weight.T.astype(np.float64), full_matrices=False)
            span = u[:, s > s.max() * 1e-6].astype(np.float32)  # orthonormal (dim, rank)
            out += np.float32(class_gain - 1.0) * ((x @ span) @ span.T)
        if gain != class_gain:
            a = self.axis.astype(np.float32)
            out += np.float32(gain - class_gain) * (x @ a)[:, None] * a[None, :]
        return out

    def stretch(self, features: Any) -> np.ndarray:
        """The encoder's ``(n, dim)`` features as the model embeds them (float32; a copy)."""
        return self._scaled(features, self.gain, self.class_gain)

    def unstretch(self, vectors: Any) -> np.ndarray:
        """The inverse of ``stretch``: stored embeddings back to the encoder's features."""
        if self.gain == 1.0 and self.class_gain == 1.0:
            return np.asarray(vectors, dtype=np.float32)
        return self._scaled(vectors, 1.0 / self.gain, 1.0 / self.class_gain)

    def logits(self, vectors: Any, *, where: Any = None) -> np.ndarray:
        """``(n, classes)`` logits of the model's embeddings (the stretch taken out first);
        embeddings of another width are refused, naming ``where``."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.weight.shape[1]:
            raise ModelMismatchError(
                f"{f'{where}: ' if where else ''}the physics head takes {self.weight.shape[1]} "
                f"features, the embeddings have shape {x.shape}"
            )
        return self.unstretch(x) @ self.weight.T + self.bias

    def probabilities(self, vectors: Any, *, where: Any = None) -> np.ndarray:
        """``(n, classes)`` softmax probabilities, rows summing to one."""
        z = self.logits(vectors, where=where)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def deformation(self, vectors: Any, *, where: Any = None) -> np.ndarray:
        """The probability of deformation against none, the two equally likely beforehand: how
        much a sample looks deformed, in [0, 1] (0.5: no evidence either way)."""
        return self.deformation_of(self.probabilities(vectors, where=where))

    def deformation_of(self, probabilities: np.ndarray) -> np.ndarray:
        """The deformation score from this head's ``probabilities`` (computed once, reused):
        the odds of 1 - P(none) divided by the bank's own odds of deformation (its classes come
        in equal shares: ``len(classes) - 1`` to 1)."""
        none = np.clip(probabilities[:, self.classes.index("none")].astype(np.float64), 0, 1)
        prior = len(self.classes) - 1  # deformation : none in the bank
        return ((1.0 - none) / (1.0 - none + prior * none)).astype(np.float32)


def save_physics_head(
    path: str | Path,
    linear: torch.nn.Linear,
    classes: Any,
    *,
    embed_gain: float = 1.0,
    embed_class_gain: float = 1.0,
) -> Path:
    """Save the bank's classifier and how the model's embeddings are stretched along its
    directions (``embed_gain``, ``embed_class_gain``; see the module's text)."""
    classes = [str(c) for c in classes]
    if linear.weight.shape[0] != len(classes) or "none" not in classes:
        raise ValueError(f"a physics head needs one output per class and a 'none' class: {classes}")
    for name, g in (("embed_gain", embed_gain), ("embed_class_gain", embed_class_gain)):
        checked_gain(g, name, where=path)
    blob = {
        "embed_gain": float(embed_gain),
        "embed_class_gain": float(embed_class_gain),
        "format": HEAD_FORMAT,
        "classes": classes,
        "weight": linear.weight.detach().float().cpu(),
        "bias": linear.bias.detach().float().cpu(),
    }
    return atomic_torch_save(blob, path)


def load_physics_head(model_dir: str | Path) -> PhysicsHead | None:
    """The head saved in a model folder; None when the model was pretrained without the bank."""
    path = Path(model_dir) / HEAD_FILE
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        blob = blob if isinstance(blob, dict) and blob.get("format") == HEAD_FORMAT else {}
        classes, weight, bias = (blob.get(k) for k in ("classes", "weight", "bias"))
        # files written before the stretch: none
        gains = {k: blob.get(k, 1.0) for k in ("embed_gain", "embed_class_gain")}
        if isinstance(weight, torch.Tensor) and isinstance(bias, torch.Tensor):
            weight, bias = (t.detach().to_dense().float().numpy() for t in (weight, bias))
    except Exception as exc:  # corrupt, truncated, not a torch file, tensors it cannot use
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelMismatchError(f"{path}: cannot be read as a physics head ({why})") from exc
    if not (
        isinstance(classes, (list, tuple))
        and isinstance(weight, np.ndarray)
        and isinstance(bias, np.ndarray)
    ):
        raise ModelMismatchError(f"{path}: not an insarexplore physics head ({HEAD_FORMAT})")
    return checked_head(
        classes,
        weight,
        bias,
        where=path,
        gain=gains["embed_gain"],
        class_gain=gains["embed_class_gain"],
    )


def checked_gain(gain: Any, name: str = "embed_gain", *, where: Any = None) -> float:
    """``gain`` as a float if it is a number from 0.001 to 1000 (1: no stretch), else a
    ``ValueError`` naming ``name`` (a ``ModelMismatchError`` naming ``where`` too when given:
    a value read from a file)."""
    value = math.nan
    if isinstance(gain, numbers.Real) and not isinstance(gain, bool):
        try:
            value = float(gain)
        except OverflowError:
            value = math.inf
    lo, hi = STRETCH_GAINS  # float32 embeddings stay finite and invertible
    if not lo <= value <= hi:
        what = f"{name} must be a number from {lo:g} to {hi:g} (1: no stretch)"
        if where is None:
            raise ValueError(f"{what}; got {gain!r}")
        raise ModelMismatchError(f"{where}: {what}; got {gain!r}")
    return value


def checked_head(
    classes: Any,
    weight: Any,
    bias: Any,
    *,
    where: Any,
    gain: Any = 1.0,
    class_gain: Any = 1.0,
) -> PhysicsHead:
    """A ``PhysicsHead`` from arrays read from ``where``, refused (``ModelMismatchError``
    naming it) when shapes disagree, there is no "none" class, weights are not finite, or the
    gains are not finite numbers > 0."""
    classes = tuple(str(c) for c in classes)
    weight, bias = np.asarray(weight, np.float32), np.asarray(bias, np.float32)
    if weight.ndim != 2 or bias.shape != (weight.shape[0],) or len(classes) != weight.shape[0]:
        raise ModelMismatchError(f"{where}: weight, bias and classes do not agree in shape")
    if "none" not in classes or len(classes) < 2 or len(set(classes)) != len(classes):
        raise ModelMismatchError(f"{where}: needs a 'none' class and other, distinct classes")
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise ModelMismatchError(f"{where}: non-finite weights")
    head = PhysicsHead(
        classes,
        weight,
        bias,
        checked_gain(gain, "embed_gain", where=where),
        checked_gain(class_gain, "embed_class_gain", where=where),
    )
    if (head.gain, head.class_gain) != (1.0, 1.0) and not np.any(head.axis):
        raise ModelMismatchError(f"{where}: no direction of deformation to stretch along")
    return head
