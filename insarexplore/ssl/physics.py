"""Labelled physics-made interferograms as a second training signal beside the contrastive one.

Real archives are almost unlabelled, but the physics of deformation is known: the synthetic
generator (Mogi, Okada sills, dykes, faults, subsidence, or nothing, under atmosphere, noise and
decorrelation) makes labelled interferograms at no cost. ``make_physics_bank`` makes a set of
them once (a ``PhysicsBank``), at the size and in the channels of the training views of the
real data (phase phasors, or RGB renderings in the grey, cyclic and hue-cycle styles of public
sets), with swath-edge no-data wedges; ``WithPhysics`` adds a classification loss on augmented bank views (which
source, or none) to the self-supervised loss, so the encoder's features must tell deformation
from the nuisances that look like it while the contrastive loss keeps them faithful to the
real data. The bank is made at the stored size (100 m pixels, as LiCSAR's) and brought down
to the views' source size by the same phasor-aware resampling as the stored data, so noise
and fringes look as they do in the real views.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PhysicsBank", "WithPhysics", "make_physics_bank"]

_SPACING_M = 100.0  # ground size assumed for a stored pixel (LiCSAR's posting)
_WEDGE_P = 0.3  # share of bank images with a black no-data wedge, as renderings of swaths


class PhysicsBank:
    """``n`` labelled interferograms as ``(n, C, size, size)`` float16 and class indices.

    ``sample(b)`` draws a batch ``(x, y)`` with torch's global generator (so runs resume
    exactly from a checkpoint's random state).
    """

    def __init__(self, x: Tensor, y: Tensor, classes: tuple[str, ...]) -> None:
        self.x, self.y, self.classes = x, y, classes

    def __len__(self) -> int:
        return len(self.y)

    def sample(self, b: int, device: torch.device) -> tuple[Tensor, Tensor]:
        idx = torch.randint(len(self.y), (b,))
        return self.x[idx].to(device).float(), self.y[idx].to(device)


_MAX_GEN = 256  # largest side the bank is generated at (larger stores: coarser pixels)
_BLOCK = 256  # bank images made and brought down at a time (bounded memory)


def _wedges(phase: np.ndarray, rng: np.random.Generator) -> None:
    from insarexplore.data.synthetic.styles import nodata_wedge

    n, h, w = phase.shape
    for i in np.flatnonzero(rng.random(n) < _WEDGE_P):
        phase[i][nodata_wedge(h, w, rng)] = np.nan


def _renderings(phase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB channels of each phase field in a random style (grey, cyclic, shaded hue cycle)."""
    from insarexplore.data.accessor import rgb_channels
    from insarexplore.data.synthetic.styles import STYLES, amplitude_texture, render_styled

    n, h, w = phase.shape
    textures = [amplitude_texture(h, w, seed=int(s)) for s in rng.integers(1 << 30, size=8)]
    images = np.empty((n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        style = STYLES[rng.integers(len(STYLES))]
        images[i] = render_styled(phase[i], style, amplitude=textures[rng.integers(8)])
    return rgb_channels(images)


def make_physics_bank(
    n: int,
    size: int,
    *,
    kind: str,
    coherence: bool,
    stored_size: int,
    seed: int = 0,
    progress: bool = False,
) -> PhysicsBank:
    """A bank of ``n`` labelled synthetic interferograms shaped like the training views.

    The images are made at the stored size (at most 256 px; 100 m pixels, coarser for larger
    stores so that they cover the same ground), cut by wedges, then brought down to ``size``
    (the side views are cut from) the way the stored data are. ``kind`` "phase" gives
    ``[cos, sin, coherence, valid]`` (coherence only when the data have it, the validity mask
    otherwise, as renderings read back to phase), "rgb" gives renderings.
    """
    from tqdm.auto import tqdm

    from insarexplore.data.accessor import phase_channels
    from insarexplore.data.synthetic.config import SyntheticConfig
    from insarexplore.data.synthetic.generator import iter_blocks
    from insarexplore.data.synthetic.parameters import CLASSES
    from insarexplore.ssl.augment import resize_batch

    if kind not in ("phase", "rgb"):
        raise ValueError(f"kind must be 'phase' or 'rgb'; got {kind!r}")
    gen = min(max(stored_size, size), _MAX_GEN)
    spacing = _SPACING_M * max(stored_size, size) / gen
    cfg = SyntheticConfig(size=gen, pixel_spacing_m=spacing, block_size=_BLOCK)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    with tqdm(total=n, desc="physics bank", unit="img", disable=not progress) as bar:
        for part in iter_blocks(n, seed=seed, config=cfg):
            phase = part["phase"].values.astype(np.float32)
            _wedges(phase, rng)
            if kind == "phase":
                coh = part["coherence"].values if coherence else None
                x = torch.from_numpy(phase_channels(phase, coh))
            else:
                x = torch.from_numpy(_renderings(phase, rng))
            xs.append(resize_batch(x, size, phase=kind == "phase").half())
            ys += [CLASSES.index(c) for c in part["label"].values.astype(str)]
            bar.update(len(phase))
    y = torch.tensor(ys, dtype=torch.int64)
    return PhysicsBank(torch.cat(xs), y, tuple(CLASSES))


class WithPhysics(nn.Module):
    """A self-supervised method plus a linear classifier of bank views on its encoder.

    ``forward(x1, x2, xs, ys)`` is the method's loss plus ``weight`` times the cross-entropy
    of the bank batch (label smoothing 0.1); the bank part alone is kept in ``last_physics``
    (loss, accuracy) for the log. ``encoder`` is the method's, so the loop, checkpoints and
    embedding see the same model with or without the bank.
    """

    def __init__(self, method: nn.Module, n_classes: int, weight: float) -> None:
        super().__init__()
        self.method = method
        self.classifier = nn.Linear(method.encoder.out_dim, n_classes)
        self.weight = float(weight)
        self.last_physics: tuple[Tensor, Tensor] | None = None

    @property
    def encoder(self) -> nn.Module:
        return self.method.encoder

    def forward(self, x1: Tensor, x2: Tensor, xs: Tensor | None = None,
                ys: Tensor | None = None) -> Tensor:  # fmt: skip
        loss = self.method(x1, x2)
        if xs is None or ys is None:
            return loss
        logits = self.classifier(self.method.encoder(xs))
        ce = F.cross_entropy(logits.float(), ys, label_smoothing=0.1)
        self.last_physics = (ce.detach(), (logits.argmax(1) == ys).float().mean().detach())
        return loss + self.weight * ce


def physics_row(model: Any) -> dict[str, float]:
    """The bank's loss and accuracy of the last step, for the metrics log (empty without)."""
    last = getattr(model, "last_physics", None)
    if last is None:
        return {}
    return {"physics_loss": float(last[0]), "physics_acc": float(last[1])}
