"""Saving and loading encoders: weights plus the config needed to rebuild them.

Files hold only tensors and primitives, so they load with ``torch.load(weights_only=True)``
(no pickled code runs). Writes are atomic: a crash mid-write never replaces a good file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from insarexplore.errors import InSARError
from insarexplore.models.encoders import build_encoder

__all__ = [
    "ENCODER_FORMAT",
    "ModelMismatchError",
    "atomic_torch_save",
    "build_from_config",
    "check_compatible",
    "load_encoder",
    "load_state_checked",
    "save_encoder",
]

ENCODER_FORMAT = "insarexplore-encoder-v1"
_BUILD_KEYS = ("arch", "in_channels", "channel_kind", "norm")
# recorded with an encoder for its users, not arguments of build_encoder (embed_dihedral: how
# embed.Embedder embeds with it)
_RECORD_KEYS = ("family", "out_dim", "image_size", "embed_dihedral")


class ModelMismatchError(InSARError, ValueError):
    """A saved model or checkpoint does not match the architecture or data it is used with."""


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def save_encoder(path: str | Path, model: nn.Module, config: dict[str, Any] | None = None) -> Path:
    """Save an encoder's weights with its config (default: ``model.config``) atomically."""
    model = _unwrap(model)
    config = dict(config if config is not None else getattr(model, "config", {}))
    missing = [k for k in ("arch", "in_channels") if k not in config]
    if missing:
        raise ValueError(f"config is missing {missing}; build encoders with build_encoder()")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_torch_save(
        {"format": ENCODER_FORMAT, "config": config, "state_dict": state}, path
    )


def check_compatible(
    config: dict[str, Any], *, where: str, in_channels: int | None = None, **expected: Any
) -> None:
    """Raise ModelMismatchError if ``config`` differs from the expected fields."""
    problems = []
    if in_channels is not None and int(config.get("in_channels", -1)) != int(in_channels):
        problems.append(f"in_channels is {config.get('in_channels')}, expected {in_channels}")
    for key, value in expected.items():
        if value is not None and config.get(key) != value:
            problems.append(f"{key} is {config.get(key)!r}, expected {value!r}")
    if problems:
        raise ModelMismatchError(f"{where}: " + "; ".join(problems))


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        path = path / "encoder.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no saved encoder at {path}")
    return path


def load_encoder(
    path: str | Path,
    device: str | torch.device | None = None,
    *,
    arch: str | None = None,
    in_channels: int | None = None,
    channel_kind: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load an encoder saved by ``save_encoder`` (a file, or a model folder holding encoder.pt).

    Optional ``arch``, ``in_channels`` and ``channel_kind`` state what the caller expects; a
    saved model of another architecture or channel count raises ``ModelMismatchError``.
    Returns ``(model in eval mode on device, config)``.
    """
    path = _resolve(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not a torch file
        raise ModelMismatchError(f"{path}: cannot be read as a saved encoder ({exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != ENCODER_FORMAT:
        raise ModelMismatchError(f"{path}: not an insarexplore encoder file ({ENCODER_FORMAT})")
    config = dict(blob["config"])
    check_compatible(
        config, where=str(path), arch=arch, in_channels=in_channels, channel_kind=channel_kind
    )
    model = build_from_config(config)
    load_state_checked(model, blob["state_dict"], where=str(path))
    model.to(device or "cpu").eval()
    return model, config


def build_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild an (untrained) encoder from a stored config dict; the module's ``config`` is the
    stored one (the size it was trained at, how it embeds), not only its build arguments."""
    overrides = {k: v for k, v in config.items() if k not in _BUILD_KEYS + _RECORD_KEYS}
    if config.get("family") == "vit":
        overrides["image_size"] = config["image_size"]
    model = build_encoder(
        config["arch"],
        config["in_channels"],
        channel_kind=config.get("channel_kind"),
        norm=config.get("norm", "batch"),
        **overrides,
    )
    model.config = {**model.config, **config}  # type: ignore[assignment]
    return model


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], *, where: str) -> None:
    """``load_state_dict`` with an error that says which tensors differ, not a stack of shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [
        f"{k}: saved {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and own[k].shape != state[k].shape
    ]
    if missing or extra or shapes:
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:5]}" if missing else "",
                f"unexpected {extra[:5]}" if extra else "",
                f"shape mismatch {shapes[:3]}" if shapes else "",
            )
            if part
        )
        raise ModelMismatchError(f"{where}: weights do not fit this architecture ({detail})")
    model.load_state_dict(state)
