"""Palette-aware, batched, on-device augmentations for colour renderings ``(B, 3, H, W)``.

Public labelled sets render wrapped phase in two palette styles (DATA_FORMATS.md): a cyclic
diverging palette and a hue cycle ("rainbow") whose brightness follows radar amplitude, often
mixed within one set. Features must key on fringes, not on the palette, so the default
``RGBAugment`` does, besides the geometric steps of ``augment.py``:

* ``palette_jitter`` (p 1.0): reads each pixel's position along its palette (the nearest cyclic
  colour for cyclic renderings, the hue for hue-cycle ones), shifts it by a random constant (the
  colour equivalent of a constant phase offset, an exact symmetry) and re-renders it, with
  probability ``swap_p`` 0.5 in the other palette style. Off-palette pixels (no-data, overlays)
  are left as they are.
* ``hue_rotation`` (p 0.3) and ``grayscale`` (p 0.2): invariance to palettes never seen.
* pixel noise (std up to 0.03) and cutout (p 0.5), as for phase.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from insarexplore.models.colour import hue
from insarexplore.ssl.augment import cutout, random_geometry

__all__ = [
    "PaletteTables",
    "RGBAugment",
    "grayscale",
    "hue",
    "hue_rotation",
    "palette_jitter",
    "pixel_noise",
]

_K = 256  # palette positions
_Q = 64  # colour cube cells per channel for the nearest-cyclic-colour lookup


def _check_rgb(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"RGB batch must be (B, 3, H, W) in [0, 1], got {tuple(x.shape)}")


def _mask(b: int, p: float, device: torch.device) -> Tensor:
    return torch.rand(b, device=device) < p


class PaletteTables:
    """Colour tables for the two palette styles, built once per device.

    ``cyclic`` and ``rainbow``: (K, 3) colours in [0, 1]; ``cube_index``: (Q^3,) nearest cyclic
    entry of each colour-cube cell; ``cube_dist``: its RGB distance.
    """

    _cache: dict[str, PaletteTables] = {}

    def __init__(self, device: torch.device | str = "cpu") -> None:
        from insarexplore.data.palettes import palette_lut

        cyc = palette_lut("cyclic", _K).astype(np.float32) / 255.0
        rainbow = palette_lut("rainbow", _K).astype(np.float32) / 255.0
        centres = (np.arange(_Q, dtype=np.float32) + 0.5) / _Q
        grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)
        index = np.empty(len(grid), dtype=np.int64)
        dist = np.empty(len(grid), dtype=np.float32)
        for s in range(0, len(grid), 16384):  # chunks keep the distance table small
            g = grid[s : s + 16384]
            d2 = (g**2).sum(1)[:, None] - 2 * g @ cyc.T + (cyc**2).sum(1)[None, :]
            index[s : s + 16384] = d2.argmin(axis=1)
            dist[s : s + 16384] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
        self.cyclic = torch.as_tensor(cyc, device=device)
        self.rainbow = torch.as_tensor(rainbow, device=device)
        self.cube_index = torch.as_tensor(index, device=device, dtype=torch.long)
        self.cube_dist = torch.as_tensor(dist, device=device, dtype=torch.float32)

    @classmethod
    def on(cls, device: torch.device | str) -> PaletteTables:
        key = str(device)
        if key not in cls._cache:
            cls._cache[key] = cls(device)
        return cls._cache[key]


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    f = torch.clamp(torch.minimum(k, 4 - k), 0, 1)
    return v[:, None] - v[:, None] * s[:, None] * f


def hue_rotation(x: Tensor, p: float = 0.3) -> Tensor:
    """Rotate the hue of a random subset by a uniform angle (exact palette shift for hue-cycle
    renderings; a generic colour change for others). Saturation and value are kept."""
    _check_rgb(x)
    h, s, v = hue(x)
    shift = torch.rand(len(x), device=x.device) * _mask(len(x), p, x.device)
    return _hsv_to_rgb((h + shift[:, None, None]) % 1.0, s, v).to(x.dtype)


def grayscale(x: Tensor, p: float = 0.2) -> Tensor:
    """Replace a random subset by its luma (ITU-R 601), replicated to three bands."""
    _check_rgb(x)
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype)
    gray = (x * w[None, :, None, None]).sum(dim=1, keepdim=True).expand_as(x)
    return torch.where(_mask(len(x), p, x.device)[:, None, None, None], gray, x)


def pixel_noise(x: Tensor, max_std: float = 0.03) -> Tensor:
    """Add Gaussian noise (std uniform in [0, max_std] per sample) and clip to [0, 1]."""
    std = torch.rand(len(x), device=x.device)[:, None, None, None] * max_std
    return (x + torch.randn_like(x) * std).clamp(0, 1)


def palette_jitter(
    x: Tensor, p: float = 1.0, swap_p: float = 0.5, on_palette: float = 0.08
) -> Tensor:
    """Shift each image along its palette by a random constant; maybe re-render in the other.

    An image counts as a cyclic rendering when most of its non-black pixels lie within
    ``on_palette`` (RGB distance, 0-1 scale) of the cyclic palette; otherwise its hue is read
    as the palette position (hue-cycle style) and its brightness kept as the amplitude shading.
    """
    _check_rgb(x)
    b, _, h, w = x.shape
    tab = PaletteTables.on(x.device)
    q = (x.clamp(0, 1) * (_Q - 1) + 0.5).long()
    cell = (q[:, 0] * _Q + q[:, 1]) * _Q + q[:, 2]
    cyc_idx, cyc_dist = tab.cube_index[cell], tab.cube_dist[cell]
    hu, sat, val = hue(x)
    lit = val > 0.05  # black is the no-data colour of renderings
    on_cyc = (cyc_dist < on_palette) & lit
    frac = on_cyc.flatten(1).sum(1) / lit.flatten(1).sum(1).clamp_min(1)
    is_cyclic = frac > 0.5  # (B,)
    pos = torch.where(is_cyclic[:, None, None], cyc_idx.to(x.dtype) / _K, hu)
    keep = torch.where(is_cyclic[:, None, None], ~on_cyc, ~lit | (sat < 0.2))
    shift = torch.rand(b, device=x.device)
    new_pos = (pos + shift[:, None, None]) % 1.0
    idx = (new_pos * _K).long().clamp(0, _K - 1)
    swap = _mask(b, swap_p, x.device)[:, None, None]
    to_cyclic = is_cyclic[:, None, None] ^ swap
    shade = torch.where(is_cyclic[:, None, None], torch.ones_like(val), val)
    rainbow = tab.rainbow[idx] * shade[..., None]
    cyclic = tab.cyclic[idx]
    rendered = torch.where(to_cyclic[..., None], cyclic, rainbow).permute(0, 3, 1, 2)
    apply = _mask(b, p, x.device)[:, None, None, None] & ~keep[:, None]
    return torch.where(apply, rendered.to(x.dtype), x)


class RGBAugment(nn.Module):
    """Default pipeline for renderings: ``(B, 3, H, W) -> (B, 3, size, size)`` in [0, 1]."""

    def __init__(
        self,
        size: int = 64,
        *,
        crop_scale: tuple[float, float] = (0.35, 1.0),
        flip_p: float = 0.5,
        rot90: bool = True,
        palette_p: float = 1.0,
        swap_p: float = 0.5,
        hue_p: float = 0.3,
        gray_p: float = 0.2,
        noise_std: float = 0.03,
        cutout_p: float = 0.5,
    ) -> None:
        super().__init__()
        self.size, self.crop_scale, self.flip_p, self.rot90 = size, crop_scale, flip_p, rot90
        self.palette_p, self.swap_p, self.hue_p, self.gray_p = palette_p, swap_p, hue_p, gray_p
        self.noise_std, self.cutout_p = noise_std, cutout_p

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        _check_rgb(x)
        # palette steps first, on unresampled colours, so the palette lookup sees true colours
        if self.palette_p > 0:
            x = palette_jitter(x, self.palette_p, self.swap_p)
        x = random_geometry(
            x, self.size, self.crop_scale, flip_p=self.flip_p, rot90=self.rot90, phase=False
        )
        if self.hue_p > 0:
            x = hue_rotation(x, self.hue_p)
        if self.gray_p > 0:
            x = grayscale(x, self.gray_p)
        if self.noise_std > 0:
            x = pixel_noise(x, self.noise_std)
        if self.cutout_p > 0:
            x = cutout(x, self.cutout_p)
        return x.clamp(0, 1)
