"""Encoders for interferograms: a compact ResNet family (and a small ViT) in plain PyTorch.

Input channels follow the data model: 4 for phase (``[cos, sin, coherence, valid]``) and 3 for
colour renderings (``RGB / 255``). Every encoder carries a ``config`` dict (primitives only) that
records its architecture, its input channels and the channel kind, so that a saved encoder can be
rebuilt with ``torch.load(weights_only=True)`` and used only on data of the matching kind.

Presets (``PRESETS``):

* ``resnet-micro``: 4 stages of 1 basic block, widths 16-128, stride-2 stem plus max pool,
  pretrained at 48 px. About 0.3 M parameters and a quarter of ``resnet-tiny``'s compute per
  image: the default, because on 2 CPU cores the number of steps in a short budget is what
  limits representation quality (benchmarks/RESULTS.md, issue 4: at an equal 15-minute
  budget it beats ``resnet-tiny`` at 64 px by about 6 points of few-label macro-F1).
* ``resnet-tiny``: the same with widths 32-256 at 64 px. About 1.2 M parameters, ~15 M
  multiply-adds per 64 px image.
* ``resnet-small``: the same without the max pool (4x the compute, finer fringes kept).
* ``resnet18`` / ``resnet34``: the classic ImageNet layouts (7x7 stem + max pool) for GPUs at
  128-224 px.
* ``vit-tiny``: a small ViT (patch 8, width 192, 6 layers); positional embeddings are
  interpolated when the input size differs from ``image_size``.

A preset's ``image_size`` is the size it is built for: pretraining crops to it (or to the
data's size when that is smaller) unless told otherwise, and embedding resizes to it.

Encoders return pooled features ``(batch, out_dim)``; they never add a projection head (see
``insarexplore.models.heads``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from insarexplore.models.colour import hue
from insarexplore.names import PHASE_INPUTS, RGB_INPUTS  # one list: names.py

__all__ = [
    "PRESETS",
    "PHASE_INPUTS",
    "RGB_INPUTS",
    "HueGradient",
    "PhasorGradient",
    "ResNet",
    "VisionTransformer",
    "build_encoder",
    "channel_kind_for",
    "count_parameters",
]

PRESETS: dict[str, dict[str, Any]] = {
    "resnet-micro": {
        "family": "resnet",
        "phase_input": "raw",
        "widths": (16, 32, 64, 128),
        "depths": (1, 1, 1, 1),
        "stem": "pooled",
        "image_size": 48,
    },
    "resnet-tiny": {
        "family": "resnet",
        "phase_input": "raw",
        "widths": (32, 64, 128, 256),
        "depths": (1, 1, 1, 1),
        "stem": "pooled",
        "image_size": 64,
    },
    "resnet-small": {
        "family": "resnet",
        "phase_input": "raw",
        "widths": (32, 64, 128, 256),
        "depths": (1, 1, 1, 1),
        "stem": "small",
        "image_size": 64,
    },
    "resnet18": {
        "family": "resnet",
        "phase_input": "raw",
        "widths": (64, 128, 256, 512),
        "depths": (2, 2, 2, 2),
        "stem": "imagenet",
        "image_size": 224,
    },
    "resnet34": {
        "family": "resnet",
        "phase_input": "raw",
        "widths": (64, 128, 256, 512),
        "depths": (3, 4, 6, 3),
        "stem": "imagenet",
        "image_size": 224,
    },
    "vit-tiny": {
        "family": "vit",
        "patch_size": 8,
        "dim": 192,
        "depth": 6,
        "heads": 3,
        "mlp_ratio": 4.0,
        "image_size": 64,
    },
}

_CHANNEL_KINDS = {4: "phase", 3: "rgb"}


def channel_kind_for(in_channels: int) -> str:
    """The data kind ("phase" or "rgb") that an input channel count stands for, else "custom"."""
    return _CHANNEL_KINDS.get(int(in_channels), "custom")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        # GroupNorm is independent of the batch: exact equivalence between DDP and one process.
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"norm must be 'batch' or 'group', got {kind!r}")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet v1.5 basic block)."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = _norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = _norm(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), _norm(norm, c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


def _stack_channels(parts: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` planes -> ``(B, C, H, W)`` in the memory format of ``like``: channels_last
    input gives channels_last output (``torch.stack`` alone returns a contiguous tensor, and
    every convolution after it would then run in the slower layout)."""
    if (
        like.dim() == 4
        and not like.is_contiguous()
        and like.is_contiguous(memory_format=torch.channels_last)
    ):
        return torch.stack(parts, dim=-1).permute(0, 3, 1, 2)  # NHWC memory, NCHW shape
    return torch.stack(parts, dim=1)


class PhasorGradient(nn.Module):
    """Fixed input layer: phase ``[cos, sin, coh, valid]`` -> ``[gx_re, gx_im, gy_re, gy_im,
    coh, valid]``, the phasors of the phase differences between neighbouring pixels.

    For ``z = cos + i sin``, ``z(x+1) * conj(z(x)) = exp(i dphi/dx)``: the local fringe rate,
    which is what deformation changes. It is exactly invariant to a constant phase offset (the
    reference point of an interferogram is arbitrary), so the network does not have to learn
    that invariance from data. Differences touching an invalid pixel are 0. ``(B, 4, H, W) ->
    (B, 6, H, W)``, or ``(B, 5, H, W)`` without the coherence channel (``coherence=False``, what
    ``phase_input="gradient"`` uses).
    """

    def __init__(self, coherence: bool = True) -> None:
        super().__init__()
        self.coherence = coherence
        self.out_channels = 6 if coherence else 5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, s = x[:, 0], x[:, 1]

        def diff(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
            n = x.shape[dim + 1]
            c1, c0 = c.narrow(dim, 1, n - 1), c.narrow(dim, 0, n - 1)
            s1, s0 = s.narrow(dim, 1, n - 1), s.narrow(dim, 0, n - 1)
            re, im = c1 * c0 + s1 * s0, s1 * c0 - c1 * s0  # z1 * conj(z0)
            pad = (0, 1) if dim == 2 else (0, 0, 0, 1)
            return F.pad(re, pad), F.pad(im, pad)

        gx_re, gx_im = diff(2)
        gy_re, gy_im = diff(1)
        rest = [x[:, 2], x[:, 3]] if self.coherence else [x[:, 3]]
        return _stack_channels([gx_re, gx_im, gy_re, gy_im, *rest], x)


class HueGradient(nn.Module):
    """Fixed input layer for colour renderings: ``(B, 3, H, W) -> (B, 7, H, W)``, the RGB bands
    plus the phasors of the hue differences between neighbouring pixels, weighted by saturation
    (``[r, g, b, gx_re, gx_im, gy_re, gy_im]``).

    Interferograms are rendered with cyclic palettes in which hue advances with phase: exactly
    for hue-cycle ("rainbow") renderings, monotonically for the cyclic diverging palettes of
    DATA_FORMATS.md. The hue phasor ``s * exp(2 pi i h)`` is then a warped copy of the phase
    phasor, and its neighbour differences are the colour version of ``PhasorGradient``: the
    fringe rate, unchanged by a shift along the palette (a hue rotation) and by the brightness
    shading of amplitude. Grey, white and black pixels (saturation 0: no data, overlays,
    greyscale renderings) contribute 0 and are left to the RGB bands.
    """

    out_channels = 7

    def __init__(self) -> None:
        super().__init__()
        self.gradient = PhasorGradient(coherence=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, sat, _ = hue(x)
        angle = h * (2 * math.pi)
        z = torch.stack(
            [sat * torch.cos(angle), sat * torch.sin(angle), sat, torch.ones_like(sat)], 1
        )
        g = self.gradient(z)
        return _stack_channels([x[:, 0], x[:, 1], x[:, 2], g[:, 0], g[:, 1], g[:, 2], g[:, 3]], x)


class ResNet(nn.Module):
    """ResNet with configurable widths and depths; ``forward(x: (B, C, H, W)) -> (B, out_dim)``.

    ``stem="small"`` is one stride-2 3x3 convolution (for 32-128 px inputs), ``"pooled"`` adds
    a 2x2 max pool after it (4x cheaper, for CPUs); ``stem="imagenet"`` is the 7x7 stride-2 convolution plus max pool (for 128-224 px).
    """

    def __init__(
        self,
        *,
        in_channels: int = 4,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        depths: tuple[int, ...] = (1, 1, 1, 1),
        stem: str = "small",
        norm: str = "batch",
        phase_input: str = "raw",
    ) -> None:
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"widths {widths} and depths {depths} must be non-empty, same length")
        if phase_input not in PHASE_INPUTS + RGB_INPUTS:
            raise ValueError(
                f"phase_input must be one of {PHASE_INPUTS} (phase) or {RGB_INPUTS} (RGB), "
                f"got {phase_input!r}"
            )
        if phase_input in RGB_INPUTS[1:] and in_channels != 3:
            raise ValueError(
                f"phase_input={phase_input!r} needs RGB channels (3), got in_channels={in_channels}"
            )
        if phase_input in PHASE_INPUTS[1:] and in_channels != 4:
            raise ValueError(
                f"phase_input={phase_input!r} needs phase channels [cos, sin, coh, valid] (4), "
                f"got in_channels={in_channels}"
            )
        self.input: nn.Module = nn.Identity()
        if phase_input == "hue-gradient":
            self.input = HueGradient()
            in_channels = self.input.out_channels
        elif phase_input != "raw":
            self.input = PhasorGradient(coherence=phase_input == "gradient+coherence")
            in_channels = self.input.out_channels
        if stem in ("small", "pooled"):
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 3, 2, 1, bias=False),
                _norm(norm, widths[0]),
                nn.ReLU(inplace=True),
            )
            if stem == "pooled":
                self.stem.append(nn.MaxPool2d(2))
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False),
                _norm(norm, widths[0]),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            raise ValueError(f"stem must be 'small', 'pooled' or 'imagenet', got {stem!r}")
        stages = []
        c_in = widths[0]
        for i, (width, depth) in enumerate(zip(widths, depths)):
            blocks = []
            for j in range(depth):
                stride = 2 if (j == 0 and i > 0) else 1
                blocks.append(BasicBlock(c_in, width, stride, norm))
                c_in = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.out_dim = widths[-1]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init last norm of each block: stable early training
            if isinstance(m, BasicBlock) and isinstance(m.bn2, nn.BatchNorm2d | nn.GroupNorm):
                nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map before pooling: (B, out_dim, H', W')."""
        return self.stages(self.stem(self.input(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.forward_features(x), 1), 1)


class VisionTransformer(nn.Module):
    """A small ViT: patch embedding, pre-norm transformer layers, class token output.

    ``forward(x: (B, C, H, W)) -> (B, dim)``; H and W must be multiples of ``patch_size``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 4,
        image_size: int = 64,
        patch_size: int = 8,
        dim: int = 192,
        depth: int = 6,
        heads: int = 3,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch {patch_size}")
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.patch = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, self.grid * self.grid + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            heads,
            int(dim * mlp_ratio),
            dropout=0.0,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def _pos_embed(self, gh: int, gw: int) -> torch.Tensor:
        if gh == self.grid and gw == self.grid:
            return self.pos
        grid = self.pos[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([self.pos[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x)
        gh, gw = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1)
        tokens = self.blocks(tokens + self._pos_embed(gh, gw))
        return self.norm(tokens[:, 0])


def build_encoder(
    arch: str = "resnet-tiny",
    in_channels: int = 4,
    *,
    channel_kind: str | None = None,
    norm: str = "batch",
    **overrides: Any,
) -> nn.Module:
    """Build an encoder from a preset name, overriding any preset field by keyword.

    ``channel_kind`` ("phase", "rgb") defaults to the kind implied by ``in_channels``. The
    returned module has ``.config`` (a dict of primitives, enough to rebuild it) and ``.out_dim``.
    """
    if arch not in PRESETS:
        raise ValueError(f"arch must be one of {sorted(PRESETS)}, got {arch!r}")
    if int(in_channels) < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")
    cfg = dict(PRESETS[arch])
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ValueError(f"unknown options for {arch!r}: {sorted(unknown)}; known: {sorted(cfg)}")
    cfg.update(overrides)
    family = cfg.pop("family")
    image_size = int(cfg.pop("image_size"))
    if family == "resnet":
        model: nn.Module = ResNet(
            in_channels=in_channels,
            widths=tuple(int(w) for w in cfg["widths"]),
            depths=tuple(int(d) for d in cfg["depths"]),
            stem=cfg["stem"],
            norm=norm,
            phase_input=cfg.get("phase_input", "raw"),
        )
        cfg["widths"], cfg["depths"] = list(cfg["widths"]), list(cfg["depths"])
    else:
        model = VisionTransformer(in_channels=in_channels, image_size=image_size, **cfg)
    model.config = {  # type: ignore[assignment]
        "arch": arch,
        "family": family,
        "in_channels": int(in_channels),
        "channel_kind": channel_kind or channel_kind_for(in_channels),
        "image_size": image_size,
        "norm": norm,
        "out_dim": int(model.out_dim),
        **cfg,
    }
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
