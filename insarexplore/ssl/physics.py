"""Labelled physics-made interferograms as a second training signal beside the contrastive one.

Real archives are almost unlabelled, but the physics of deformation is known: the synthetic
generator (Mogi, Okada sills, dykes, faults, subsidence, or nothing, under atmosphere, noise and
decorrelation) makes labelled interferograms at no cost. ``make_physics_bank`` makes a set of
them once (a ``PhysicsBank``), at the size and in the channels of the training views of the
real data (phase phasors, or RGB renderings in the grey, cyclic and hue-cycle styles of public
sets), with swath-edge no-data wedges; ``WithPhysics`` adds a classification loss on augmented bank views (which
source, or none) to the self-supervised loss, so the encoder's features must tell deformation
from the nuisances that look like it while the contrastive loss keeps them faithful to the
real data. Optionally (``regress``) it also regresses how strong each image's signal and its
turbulent atmosphere are (``TARGETS``), graded where the classes are all or nothing. The bank
is made at the stored size (100 m pixels, as LiCSAR's) and brought down to the views' source
size by the same phasor-aware resampling as the stored data, so noise
and fringes look as they do in the real views. Under DDP each rank makes and keeps only its
own slice of the bank (the same images the whole bank holds at those rows) and draws from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from insarexplore.ssl.losses import SupConLoss

__all__ = ["TARGETS", "PhysicsBank", "WithPhysics", "bank_slice", "make_physics_bank"]

# what the bank's optional regression predicts of each image, as log(1 + value): the
# deformation signal in fringes (0 for none) and the turbulent delay's std in cm, the two
# things a score of deformation confuses (weak signals, strong turbulence)
TARGETS = ("signal_fringes", "atmosphere_cm")

_SPACING_M = 100.0  # ground size assumed for a stored pixel (LiCSAR's posting)
_WEDGE_P = 0.3  # share of bank images with a black no-data wedge, as renderings of swaths


class PhysicsBank:
    """``n`` labelled interferograms as ``(n, C, size, size)`` float16, class indices, and
    ``z`` ``(n, len(TARGETS))`` float32: ``log(1 + target)`` of each image (or None).

    ``sample(b)`` draws a batch ``(x, y, z)`` (``z`` None when the bank has none) with torch's
    global generator (so runs resume exactly from a checkpoint's random state). A rank's slice
    of a bank of ``total`` images holds rows ``start ... start + n`` of it.
    """

    def __init__(
        self, x: Tensor, y: Tensor, classes: tuple[str, ...], *, start: int = 0,
        total: int | None = None, z: Tensor | None = None,
    ) -> None:  # fmt: skip
        if z is not None and z.shape != (len(y), len(TARGETS)):
            raise ValueError(f"z must be ({len(y)}, {len(TARGETS)}); got {tuple(z.shape)}")
        self.x, self.y, self.z, self.classes = x, y, z, classes
        self.start = int(start)
        self.total = len(y) if total is None else int(total)

    def __len__(self) -> int:
        return len(self.y)

    def sample(self, b: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor | None]:
        idx = torch.randint(len(self.y), (b,))
        z = None if self.z is None else self.z[idx].to(device)
        return self.x[idx].to(device).float(), self.y[idx].to(device), z


_MAX_GEN = 256  # largest side the bank is generated at (larger stores: coarser pixels)
_BLOCK = 256  # bank images made and brought down at a time (bounded memory)


def _wedges(n: int, h: int, w: int, rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """The black no-data wedges of a block of ``n`` images: ``(image, mask)`` pairs.

    The draws do not depend on ``h`` and ``w``: a block that is not kept passes 1 x 1 and
    moves ``rng`` on as the whole block would.
    """
    from insarexplore.data.synthetic.styles import nodata_wedge

    return [(int(i), nodata_wedge(h, w, rng)) for i in np.flatnonzero(rng.random(n) < _WEDGE_P)]


def _styles(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The rendering draws of a block of ``n`` images: 8 amplitude-texture seeds, and per image
    (style, texture) indices."""
    from insarexplore.data.synthetic.styles import STYLES

    seeds = rng.integers(1 << 30, size=8)
    return seeds, [(int(rng.integers(len(STYLES))), int(rng.integers(8))) for _ in range(n)]


def _renderings(phase: np.ndarray, seeds: np.ndarray, picks: list[tuple[int, int]]) -> np.ndarray:
    """RGB channels of each phase field in its drawn style (grey, cyclic, shaded hue cycle)."""
    from insarexplore.data.accessor import rgb_channels
    from insarexplore.data.synthetic.styles import STYLES, amplitude_texture, render_styled

    n, h, w = phase.shape
    textures = [amplitude_texture(h, w, seed=int(s)) for s in seeds]
    images = np.empty((n, h, w, 3), dtype=np.uint8)
    for i, (style, texture) in enumerate(picks):
        images[i] = render_styled(phase[i], STYLES[style], amplitude=textures[texture])
    return rgb_channels(images)


def _owned_blocks(n: int, seed: int, cfg: Any, lo: int, hi: int, world: int = 1) -> Any:
    """``(block, Dataset)`` for the generator's blocks that hold bank rows ``lo ... hi``, in
    order, the same as ``iter_blocks(n)`` yields them; a slice is made in the usable cores over
    the ``world`` ranks that share them."""
    from insarexplore.data.synthetic.generator import _workers, iter_blocks

    bs = cfg.block_size
    if lo == 0 and hi == n:
        yield from enumerate(iter_blocks(n, seed=seed, config=cfg))
        return
    blocks = range(lo // bs, -(-hi // bs))
    workers = max(1, _workers(None) // max(1, world))
    yield from zip(blocks, iter_blocks(n, seed=seed, config=cfg, blocks=blocks, workers=workers))


def bank_slice(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``(lo, hi)`` of a bank of ``n`` images that rank ``rank`` of ``world`` makes and
    draws from: contiguous slices as equal as can be, together the whole bank."""
    return rank * n // world, (rank + 1) * n // world


def make_physics_bank(
    n: int,
    size: int,
    *,
    kind: str,
    coherence: bool,
    stored_size: int,
    seed: int = 0,
    progress: bool = False,
    rank: int = 0,
    world: int = 1,
) -> PhysicsBank:
    """A bank of ``n`` labelled synthetic interferograms shaped like the training views.

    The images are made at the stored size (at most 256 px; 100 m pixels, coarser for larger
    stores so that they cover the same ground), cut by wedges, then brought down to ``size``
    (the side views are cut from) the way the stored data are. ``kind`` "phase" gives
    ``[cos, sin, coherence, valid]`` (coherence only when the data have it, the validity mask
    otherwise, as renderings read back to phase), "rgb" gives renderings.

    With ``world`` > 1 only rank ``rank``'s slice of the bank is made (``bank_slice``): the
    generator's blocks that hold it (each block is seeded by its index), the random draws of
    wedges and styles of the blocks before it replayed without pixels, so the slice holds the
    same images as the whole bank at those rows.
    """
    from tqdm.auto import tqdm

    from insarexplore.data.accessor import phase_channels
    from insarexplore.data.synthetic.config import SyntheticConfig
    from insarexplore.data.synthetic.parameters import CLASSES
    from insarexplore.ssl.augment import resize_batch

    if kind not in ("phase", "rgb"):
        raise ValueError(f"kind must be 'phase' or 'rgb'; got {kind!r}")
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in 0 ... world - 1; got {rank} of {world}")
    gen = min(max(stored_size, size), _MAX_GEN)
    spacing = _SPACING_M * max(stored_size, size) / gen
    cfg = SyntheticConfig(size=gen, pixel_spacing_m=spacing, block_size=_BLOCK)
    lo, hi = bank_slice(n, rank, world)
    if hi <= lo:
        raise ValueError(f"a bank of {n} images has no slice for rank {rank} of {world}")
    rng = np.random.default_rng(seed)  # wedges and styles, drawn block after block

    def draws(count: int, h: int, w: int) -> tuple[Any, Any]:
        wedges = _wedges(count, h, w, rng)
        return wedges, (_styles(count, rng) if kind == "rgb" else None)

    xs, ys, zs = [], [], []
    done = 0  # blocks whose draws are made
    with tqdm(total=hi - lo, desc="physics bank", unit="img", disable=not progress) as bar:
        for b, part in _owned_blocks(n, seed, cfg, lo, hi, world):
            for _ in range(done, b):  # blocks before the slice: their draws only
                draws(min(_BLOCK, n - done * _BLOCK), 1, 1)
                done += 1
            phase = part["phase"].values.astype(np.float32)
            wedges, styles = draws(*phase.shape)
            done += 1
            for i, mask in wedges:
                phase[i][mask] = np.nan
            start = b * _BLOCK  # the rows of this block in the slice
            a, z = max(lo, start) - start, min(hi, start + len(phase)) - start
            if kind == "phase":
                coh = part["coherence"].values[a:z] if coherence else None
                x = torch.from_numpy(phase_channels(phase[a:z], coh))
            else:
                seeds, picks = styles
                x = torch.from_numpy(_renderings(phase[a:z], seeds, picks[a:z]))
            xs.append(resize_batch(x, size, phase=kind == "phase").half())
            ys += [CLASSES.index(c) for c in part["label"].values[a:z].astype(str)]
            zs.append(np.stack([part[t].values[a:z] for t in TARGETS], axis=1))
            bar.update(z - a)
    y = torch.tensor(ys, dtype=torch.int64)
    targets = np.log1p(np.clip(np.concatenate(zs).astype(np.float64), 0.0, None))
    return PhysicsBank(torch.cat(xs), y, tuple(CLASSES), start=lo, total=n,
                       z=torch.from_numpy(targets.astype(np.float32)))  # fmt: skip


class WithPhysics(nn.Module):
    """A self-supervised method plus a linear classifier of bank views on its encoder.

    ``forward(x1, x2, xs, ys, zs)`` is the method's loss plus ``weight`` times the
    cross-entropy of the bank batch (label smoothing 0.1), plus ``supcon`` times a supervised
    contrastive loss of the bank batch's embeddings (0: none), plus ``regress`` times the
    Huber loss of a linear regression of the batch's ``TARGETS`` ``zs`` from the embeddings
    (0: none, and no ``regressor`` layer); the cross-entropy part alone is kept in
    ``last_physics`` (loss, accuracy) for the log. ``encoder`` is the method's, so the loop, checkpoints and
    embedding see the same model with or without the bank.
    """

    def __init__(self, method: nn.Module, n_classes: int, weight: float, supcon: float = 0.0,
                 temperature: float = 0.2, regress: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.method = method
        self.classifier = nn.Linear(method.encoder.out_dim, n_classes)
        for name, w in (("supcon", supcon), ("regress", regress)):
            if not w >= 0:
                raise ValueError(f"{name} must be a weight >= 0; got {w}")
        self.weight = float(weight)
        self.supcon = float(supcon)
        self.supcon_loss = SupConLoss(temperature) if self.supcon > 0 else None
        self.regress = float(regress)
        if self.regress > 0:  # absent otherwise: models without it keep their state dict
            self.regressor = nn.Linear(method.encoder.out_dim, len(TARGETS))
        self.last_physics: tuple[Tensor, Tensor] | None = None
        self.last_supcon: Tensor | None = None
        self.last_regress: Tensor | None = None

    @property
    def encoder(self) -> nn.Module:
        return self.method.encoder

    def forward(self, x1: Tensor, x2: Tensor, xs: Tensor | None = None,
                ys: Tensor | None = None, zs: Tensor | None = None) -> Tensor:  # fmt: skip
        loss = self.method(x1, x2)
        if xs is None or ys is None:
            return loss
        h = self.method.encoder(xs)
        logits = self.classifier(h)
        ce = F.cross_entropy(logits.float(), ys, label_smoothing=0.1)
        self.last_physics = (ce.detach(), (logits.argmax(1) == ys).float().mean().detach())
        loss = loss + self.weight * ce
        if self.supcon_loss is not None:  # the embeddings themselves gathered by class
            sc = self.supcon_loss(h, ys)
            self.last_supcon = sc.detach()
            loss = loss + self.supcon * sc
        if self.regress > 0:
            if zs is None:
                raise ValueError("regress > 0 needs the bank's targets (zs); got none")
            rl = F.smooth_l1_loss(self.regressor(h).float(), zs.float())
            self.last_regress = rl.detach()
            loss = loss + self.regress * rl
        return loss


def physics_row(model: Any) -> dict[str, float]:
    """The bank's loss and accuracy of the last step, for the metrics log (empty without):
    under DDP the mean over ranks (each draws from its own slice of the bank), as the loss is.
    Every rank calls it at the same steps."""
    from insarexplore.ssl import dist

    last = getattr(model, "last_physics", None)
    if last is None:
        return {}
    names = ["physics_loss", "physics_acc"]
    values = [last[0].float(), last[1].float()]
    for name in ("supcon", "regress"):
        extra = getattr(model, f"last_{name}", None)
        if extra is not None:
            names.append(f"physics_{name}_loss")
            values.append(extra.float())
    stacked = torch.stack(values)
    if dist.is_distributed():
        stacked = dist.all_reduce_mean(stacked)
    return {n: float(v) for n, v in zip(names, stacked.tolist())}
