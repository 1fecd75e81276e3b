"""Colour helpers shared by the RGB input layer and the RGB augmentations (torch, batched)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["hue"]


def hue(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """HSV decomposition of (B, 3, H, W): hue in [0, 1), saturation and value, each (B, H, W)."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    value, arg = x.max(dim=1)
    mn = x.min(dim=1).values
    delta = value - mn
    safe = delta.clamp_min(1e-6)
    h = torch.where(
        arg == 0,
        ((g - b) / safe) % 6,
        torch.where(arg == 1, (b - r) / safe + 2, (r - g) / safe + 4),
    )
    h = torch.where(delta > 1e-6, h / 6.0, torch.zeros_like(h)) % 1.0
    sat = torch.where(value > 1e-6, delta / value.clamp_min(1e-6), torch.zeros_like(value))
    return h, sat, value
