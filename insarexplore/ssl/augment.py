"""Batched, on-device augmentations for interferogram channels (and their compositions).

Phase batches are ``(B, 4, H, W)`` float tensors ``[cos, sin, coherence, valid]`` (the output of
``ds.insar.to_channels()``); colour renderings are ``(B, 3, H, W)`` in [0, 1]. Every function
draws its randomness from torch's generator on the batch's device, keeps the dtype, and keeps the
invariants of the data: ``cos^2 + sin^2 = 1`` where valid, all channels 0 where not, coherence
and valid in [0, 1]. Per-sample choices are made with masks, never Python loops over samples.

Defaults of ``PhaseAugment`` (on unless noted) and why:

* random resized crop (scale 0.35-1) + flips + 90-degree rotations: deformation patterns have
  no preferred position, orientation or handedness; crops also vary apparent fringe density.
* constant phase offset (uniform 0-2 pi): an exact symmetry of wrapped phase (the reference
  point of an interferogram is arbitrary), so features must not depend on it.
* atmosphere screens (power-law, up to 1 rad std) and phase noise (up to 0.5 rad): the
  nuisances every real interferogram carries; features should see through them.
* decorrelation (pixels below a random coherence threshold, up to 0.4, turn to speckle) and
  cutout (one hole, p 0.5): real scenes lose coherence over water, vegetation and snow.
* phase conjugation (sign flip) is OFF: it swaps uplift and subsidence, which users may care
  about.
* palette warp (``palette_warp_p``, OFF unless set): the phase read back from a rendering made
  with another tool's diverging palette (``data.synthetic.styles.foreign_lut``), through the
  reader's own table (``data.palettes.recover_phase``): a fixed, nearly monotone map of phase
  with steps where the two palettes part. Real colour sets are rendered so; see
  ``palette_warp``. On ``bench_transfer --look foreign`` it gained +0.006 LSO and lost 0.004
  grouped at 10 labels, below the rule fixed for a default (benchmarks/RESULTS.md).

``insarexplore.ssl.augment_rgb`` holds the palette-aware equivalents for renderings.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "PhaseAugment",
    "atmosphere",
    "atmosphere_angle",
    "cutout",
    "decorrelation",
    "noise_angle",
    "offset_angle",
    "palette_warp",
    "phase_conjugate",
    "phase_noise",
    "phase_offset",
    "power_law_screen",
    "random_flip",
    "random_geometry",
    "random_resized_crop",
    "random_rot90",
    "resize_batch",
    "rotate_phase",
]


def _check_phase(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 4:
        raise ValueError(f"phase batch must be (B, 4, H, W) [cos, sin, coh, valid], got {x.shape}")


def _mask(b: int, p: float, device: torch.device) -> Tensor:
    return torch.rand(b, device=device) < p


def rotate_phase(x: Tensor, angle: Tensor) -> Tensor:
    """Add ``angle`` (radians; (B,) or (B, H, W)) to the phase of a (B, 4, H, W) batch.

    Rotating the (cos, sin) pair is exact: it needs no wrapping and leaves invalid pixels
    (cos = sin = 0) at zero.
    """
    _check_phase(x)
    if angle.ndim == 1:
        angle = angle[:, None, None]
    c, s = torch.cos(angle).to(x.dtype), torch.sin(angle).to(x.dtype)
    cos, sin = x[:, 0], x[:, 1]
    return torch.stack([cos * c - sin * s, sin * c + cos * s, x[:, 2], x[:, 3]], dim=1)


def offset_angle(x: Tensor) -> Tensor:
    """(B,) one uniform random constant in [0, 2 pi) per sample: the angle of ``phase_offset``."""
    return torch.rand(len(x), device=x.device) * (2 * math.pi)


def phase_offset(x: Tensor) -> Tensor:
    """Add one uniform random constant in [0, 2 pi) to each sample's phase."""
    return rotate_phase(x, offset_angle(x))


def phase_conjugate(x: Tensor, p: float = 0.5) -> Tensor:
    """Negate the phase (sin -> -sin) of a random subset: swaps uplift and subsidence."""
    _check_phase(x)
    sign = torch.where(_mask(len(x), p, x.device), -1.0, 1.0).to(x.dtype)
    return torch.cat([x[:, :1], x[:, 1:2] * sign[:, None, None, None], x[:, 2:]], dim=1)


_WARP_TABLES = 32  # other tools' diverging palettes, read back through the reader's table
_WARP_CACHE: dict[str, Tensor] = {}


def _warp_tables(device: torch.device) -> Tensor:
    """``(32, 1024)`` read-back phases: row ``k`` is what ``recover_phase`` makes of phase
    ``-pi + 2 pi i / 1024`` rendered in the ``k``-th foreign diverging table (fixed seeds)."""
    key = str(device)
    if key not in _WARP_CACHE:
        import numpy as np

        from insarexplore.data.palettes import recover_phase
        from insarexplore.data.synthetic.styles import foreign_lut

        luts = [
            foreign_lut("cyclic", np.random.default_rng(10_000 + k)) for k in range(_WARP_TABLES)
        ]
        rows = [recover_phase(lut[None], "cyclic")[0] for lut in luts]
        _WARP_CACHE[key] = torch.from_numpy(np.stack(rows)).to(device)
    return _WARP_CACHE[key]


def palette_warp(x: Tensor, p: float = 0.5) -> Tensor:
    """With probability ``p`` per sample, replace the phase by its read-back through one of 32
    foreign diverging palettes (``_warp_tables``): the error a rendering tool's own palette
    leaves in phase read with this project's table. Magnitudes (and so invalid pixels) kept."""
    _check_phase(x)
    b = x.shape[0]
    hit = _mask(b, p, x.device)
    tables = _warp_tables(x.device)
    pick = torch.randint(len(tables), (b,), device=x.device)
    cos, sin = x[:, 0].float(), x[:, 1].float()
    phase = torch.atan2(sin, cos)
    n = tables.shape[1]
    idx = ((phase + math.pi) * (n / (2 * math.pi))).floor().long().remainder(n)  # +pi is -pi
    new = tables[pick[:, None, None], idx]
    mag = torch.sqrt(cos * cos + sin * sin)
    out = torch.stack([mag * torch.cos(new), mag * torch.sin(new)], dim=1).to(x.dtype)
    out = torch.where(hit[:, None, None, None], out, x[:, :2])  # the others exactly as given
    return torch.cat([out, x[:, 2:]], dim=1)


def power_law_screen(b: int, h: int, w: int, beta: Tensor, device: torch.device) -> Tensor:
    """(B, H, W) zero-mean, unit-std random fields with power spectrum ~ k^-beta (beta (B,)).

    ``beta`` 8/3 and 11/3 are the two regimes of tropospheric turbulence.
    """
    noise = torch.randn(b, h, w, device=device)
    spec = torch.fft.rfft2(noise)
    ky = torch.fft.fftfreq(h, device=device)[:, None]
    kx = torch.fft.rfftfreq(w, device=device)[None, :]
    k = torch.sqrt(kx**2 + ky**2).clamp_min(1.0 / max(h, w))
    spec = spec * k[None] ** (-beta[:, None, None] / 2)
    field = torch.fft.irfft2(spec, s=(h, w))
    field = field - field.mean(dim=(1, 2), keepdim=True)
    return field / field.std(dim=(1, 2), keepdim=True).clamp_min(1e-6)


def atmosphere_angle(x: Tensor, max_std: float = 1.0, p: float = 0.8) -> Tensor:
    """(B, H, W) radians: a power-law screen (std uniform in [0, max_std]) for a subset, else 0."""
    _check_phase(x)
    b, _, h, w = x.shape
    beta = 8 / 3 + torch.rand(b, device=x.device)  # between the 8/3 and 11/3 regimes
    std = torch.rand(b, device=x.device) * max_std * _mask(b, p, x.device)
    return power_law_screen(b, h, w, beta, x.device) * std[:, None, None]


def atmosphere(x: Tensor, max_std: float = 1.0, p: float = 0.8) -> Tensor:
    """Add a power-law atmospheric phase screen (std uniform in [0, max_std] rad) to a subset."""
    return rotate_phase(x, atmosphere_angle(x, max_std, p))


def noise_angle(x: Tensor, max_std: float = 0.5, p: float = 0.5) -> Tensor:
    """(B, H, W) radians: white noise (std uniform in [0, max_std], doubled where coherence is 0)
    for a subset, else 0."""
    _check_phase(x)
    b = len(x)
    std = torch.rand(b, device=x.device) * max_std * _mask(b, p, x.device)
    scale = std[:, None, None] * (2.0 - x[:, 2].clamp(0, 1))
    return torch.randn_like(x[:, 0]) * scale


def phase_noise(x: Tensor, max_std: float = 0.5, p: float = 0.5) -> Tensor:
    """Add white phase noise (std uniform in [0, max_std] rad, doubled where coherence is 0)."""
    return rotate_phase(x, noise_angle(x, max_std, p))


def decorrelation(x: Tensor, max_threshold: float = 0.4, p: float = 0.5) -> Tensor:
    """Turn pixels whose coherence is below a random per-sample threshold into speckle.

    Decorrelated pixels get a uniform random phase, as in real interferograms; their
    coherence and validity are kept (decorrelated is not no-data).
    """
    _check_phase(x)
    b = len(x)
    thr = torch.rand(b, device=x.device) * max_threshold * _mask(b, p, x.device)
    hit = (x[:, 2] < thr[:, None, None]) & (x[:, 3] > 0.5)
    angle = torch.rand_like(x[:, 0]) * (2 * math.pi)
    cos = torch.where(hit, torch.cos(angle), x[:, 0])
    sin = torch.where(hit, torch.sin(angle), x[:, 1])
    return torch.stack([cos, sin, x[:, 2], x[:, 3]], dim=1)


def cutout(x: Tensor, p: float = 0.5, size: tuple[float, float] = (0.1, 0.35)) -> Tensor:
    """Zero one random rectangle (side a fraction ``size`` of the image) in a subset.

    For phase batches every channel becomes 0 (= no data); for RGB the hole is black, the
    no-data colour of renderings.
    """
    b, _, h, w = x.shape
    dev = x.device
    side = size[0] + torch.rand(b, 2, device=dev) * (size[1] - size[0])
    hh, ww = (side[:, 0] * h).long(), (side[:, 1] * w).long()
    y0 = (torch.rand(b, device=dev) * (h - hh + 1)).long()
    x0 = (torch.rand(b, device=dev) * (w - ww + 1)).long()
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    hole = (ys >= y0[:, None, None]) & (ys < (y0 + hh)[:, None, None])
    hole = hole & (xs >= x0[:, None, None]) & (xs < (x0 + ww)[:, None, None])
    hole = hole & _mask(b, p, dev)[:, None, None]
    return x.masked_fill(hole[:, None], 0.0)


def random_flip(x: Tensor, p: float = 0.5) -> Tensor:
    """Independent random horizontal and vertical flips per sample."""
    b = len(x)
    x = torch.where(_mask(b, p, x.device)[:, None, None, None], x.flip(-1), x)
    return torch.where(_mask(b, p, x.device)[:, None, None, None], x.flip(-2), x)


def random_rot90(x: Tensor) -> Tensor:
    """Rotate each sample by a random multiple of 90 degrees (square images only)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"random_rot90 needs square images, got {tuple(x.shape[-2:])}")
    k = torch.randint(0, 4, (len(x),), device=x.device)[:, None, None, None]
    out = x
    for i in (1, 2, 3):
        out = torch.where(k == i, torch.rot90(x, i, dims=(-2, -1)), out)
    return out


def _crop_theta(
    b: int, scale: tuple[float, float], ratio: tuple[float, float], device: torch.device
) -> Tensor:
    """(B, 2, 3) affine matrices of random boxes (area fraction ``scale``, aspect ``ratio``)."""
    area = scale[0] + torch.rand(b, device=device) * (scale[1] - scale[0])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(lo + torch.rand(b, device=device) * (hi - lo))
    sw = torch.sqrt(area * aspect).clamp(max=1.0)  # fractions of the full width / height
    sh = torch.sqrt(area / aspect).clamp(max=1.0)
    theta = torch.zeros(b, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = sw, sh
    theta[:, 0, 2] = (torch.rand(b, device=device) * 2 - 1) * (1 - sw)
    theta[:, 1, 2] = (torch.rand(b, device=device) * 2 - 1) * (1 - sh)
    return theta


def random_geometry(
    x: Tensor,
    size: int,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
    rot90: bool = True,
    phase: bool | None = None,
) -> Tensor:
    """Random resized crop, flips and 90-degree rotations fused into one ``grid_sample``.

    Flips and quarter turns of the sampling grid map pixel centres onto pixel centres, so they
    are exact; only the crop interpolates. For phase batches (``phase`` defaults to ``C == 4``)
    the resampled (cos, sin) pair is renormalised to unit length and the valid mask
    re-thresholded at 0.5. Output ``(B, C, size, size)``.
    """
    b, c = x.shape[:2]
    phase = c == 4 if phase is None else phase
    dev = x.device
    theta = _crop_theta(b, scale, ratio, dev)
    lin = theta[:, :, :2]
    if flip_p > 0:
        flips = torch.where(torch.rand(b, 2, device=dev) < flip_p, -1.0, 1.0)
        lin = lin * flips[:, None, :]  # negate input x and/or y axis
    if rot90:
        k = torch.randint(0, 4, (b,), device=dev).float() * (math.pi / 2)
        cos, sin = torch.cos(k).round(), torch.sin(k).round()
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)
        lin = lin @ rot
    theta = torch.cat([lin, theta[:, :, 2:]], dim=2).to(x.dtype)
    grid = F.affine_grid(theta, [b, c, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if not phase:
        return out
    good = out[:, 3] >= 0.5
    norm = torch.sqrt(out[:, 0] ** 2 + out[:, 1] ** 2)
    good = good & (norm > 1e-3)  # a zero (cos, sin) cannot be valid: mark it invalid
    scale_ = torch.where(good, 1.0 / norm.clamp_min(1e-3), torch.zeros_like(norm))
    return torch.stack(
        [out[:, 0] * scale_, out[:, 1] * scale_, out[:, 2].clamp(0, 1) * good, good.to(x.dtype)],
        dim=1,
    )


def random_resized_crop(
    x: Tensor,
    size: int,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    phase: bool | None = None,
) -> Tensor:
    """Crop a random box (area fraction ``scale``, aspect ``ratio``) per sample and resize it to
    ``size`` x ``size`` (bilinear; phase pairs renormalised, see ``random_geometry``)."""
    return random_geometry(x, size, scale, ratio, flip_p=0.0, rot90=False, phase=phase)


def resize_batch(x: Tensor, size: int, phase: bool | None = None) -> Tensor:
    """Resize a batch to ``size`` x ``size`` (bilinear, antialiased when shrinking).

    For phase batches the (cos, sin) pair is renormalised and the valid mask re-thresholded,
    as in ``random_geometry``; used to embed at the resolution an encoder was trained at.
    """
    phase = x.shape[1] == 4 if phase is None else phase
    if x.shape[-2:] == (size, size):
        return x
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if not phase:
        return out.clamp(0, 1)
    good = (out[:, 3] >= 0.5) & (torch.sqrt(out[:, 0] ** 2 + out[:, 1] ** 2) > 1e-3)
    norm = torch.sqrt(out[:, 0] ** 2 + out[:, 1] ** 2).clamp_min(1e-3)
    g = good.to(x.dtype)
    return torch.stack(
        [out[:, 0] / norm * g, out[:, 1] / norm * g, out[:, 2].clamp(0, 1) * g, g], dim=1
    )


class PhaseAugment(nn.Module):
    """The default pipeline for phase batches: ``(B, 4, H, W) -> (B, 4, size, size)``.

    Every option is a typed keyword; set a probability or amplitude to 0 to switch a step off.
    """

    def __init__(
        self,
        size: int = 64,
        *,
        crop_scale: tuple[float, float] = (0.35, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_p: float = 0.5,
        rot90: bool = True,
        offset: bool = True,
        conjugate_p: float = 0.0,
        atmosphere_std: float = 1.0,
        atmosphere_p: float = 0.8,
        noise_std: float = 0.5,
        noise_p: float = 0.5,
        decorrelation_threshold: float = 0.4,
        decorrelation_p: float = 0.5,
        cutout_p: float = 0.5,
        palette_warp_p: float = 0.0,
    ) -> None:
        super().__init__()
        self.palette_warp_p = palette_warp_p
        self.size, self.crop_scale, self.crop_ratio = size, crop_scale, crop_ratio
        self.flip_p, self.rot90 = flip_p, rot90
        self.offset, self.conjugate_p = offset, conjugate_p
        self.atmosphere_std, self.atmosphere_p = atmosphere_std, atmosphere_p
        self.noise_std, self.noise_p = noise_std, noise_p
        self.decorrelation_threshold, self.decorrelation_p = (
            decorrelation_threshold,
            decorrelation_p,
        )
        self.cutout_p = cutout_p

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        _check_phase(x)
        x = random_geometry(
            x, self.size, self.crop_scale, self.crop_ratio, self.flip_p, self.rot90, phase=True
        )
        if self.decorrelation_p > 0 and self.decorrelation_threshold > 0:
            x = decorrelation(x, self.decorrelation_threshold, self.decorrelation_p)
        # atmosphere, noise and offset (the angles of atmosphere(), phase_noise() and
        # phase_offset()) add up to one angle field: one rotation of (cos, sin), not three
        angle = torch.zeros(x.shape[0], *x.shape[2:], device=x.device)
        if self.atmosphere_p > 0 and self.atmosphere_std > 0:
            angle = angle + atmosphere_angle(x, self.atmosphere_std, self.atmosphere_p)
        if self.noise_p > 0 and self.noise_std > 0:
            angle = angle + noise_angle(x, self.noise_std, self.noise_p)
        if self.offset:
            angle = angle + offset_angle(x)[:, None, None]
        x = rotate_phase(x, angle)
        if self.palette_warp_p > 0:
            x = palette_warp(x, self.palette_warp_p)
        if self.conjugate_p > 0:
            x = phase_conjugate(x, self.conjugate_p)
        if self.cutout_p > 0:
            x = cutout(x, self.cutout_p)
        return x
