"""Training checkpoints: everything needed to resume (model, optimizer, scheduler, step, RNG).

Checkpoints hold only tensors and primitives and load with ``torch.load(weights_only=True)``.
They are written atomically (temporary file + rename): a run killed mid-write keeps the
previous checkpoint. ``find_resumable`` finds an unfinished run of the same configuration in a
workspace's models folder, so re-running the same command continues it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from insarexplore.models.serialization import (
    ModelMismatchError,
    atomic_torch_save,
    check_compatible,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "embedded_stretch",
    "encoder_state",
    "find_resumable",
    "load_checkpoint",
    "model_physics_head",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

CHECKPOINT_FORMAT = "insarexplore-checkpoint-v1"


def rng_state(device: torch.device | str | None = None) -> dict[str, Any]:
    """The torch CPU generator state and, when ``device`` is a GPU that has been used, that one
    GPU's state: each rank saves its own device's, so a run resumes on any number of GPUs."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | str | None = None) -> None:
    """Restore ``rng_state``'s states; the GPU state goes to ``device`` only (older checkpoints
    held a list of every visible GPU's: this device's entry, or the first, is used)."""
    torch.set_rng_state(state["torch"])
    dev = torch.device(device) if device is not None else None
    cuda = state.get("cuda")
    if cuda is None or dev is None or dev.type != "cuda" or not torch.cuda.is_available():
        return
    if isinstance(cuda, list | tuple):
        if not cuda:
            return
        index = dev.index if dev.index is not None else 0
        cuda = cuda[index] if index < len(cuda) else cuda[0]
    torch.cuda.set_rng_state(cuda, dev)


def save_checkpoint(path: str | Path, **payload: Any) -> Path:
    """Atomically save ``payload`` (model/optimizer/scheduler states, step, ...) to ``path``."""
    return atomic_torch_save({"format": CHECKPOINT_FORMAT, **payload}, path)


def load_checkpoint(
    path: str | Path, *, encoder_config: dict[str, Any] | None = None, method: str | None = None
) -> dict[str, Any]:
    """Load a checkpoint; with ``encoder_config``/``method`` given, refuse one that differs."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelMismatchError(f"{path}: cannot be read as a checkpoint ({exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise ModelMismatchError(f"{path}: not an insarexplore training checkpoint")
    if encoder_config is not None:
        saved = blob["encoder_config"]
        keys = ("arch", "channel_kind", "norm", "widths", "depths", "stem", "dim", "depth")
        check_compatible(
            saved,
            where=f"checkpoint {path}",
            in_channels=encoder_config["in_channels"],
            **{k: encoder_config.get(k) for k in keys if k in encoder_config},
        )
    if method is not None and blob.get("method") != method:
        raise ModelMismatchError(
            f"checkpoint {path}: trained with method {blob.get('method')!r}, expected {method!r}"
        )
    return blob


def find_resumable(models_dir: Path, resume_key: str) -> Path | None:
    """The newest unfinished run folder with this resume key and a checkpoint, if any."""
    if not models_dir.exists():
        return None
    found = []
    for meta_path in models_dir.glob("*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        run = meta_path.parent
        if (
            meta.get("status") == "running"
            and meta.get("resume_key") == resume_key
            and (run / "checkpoint.pt").exists()
        ):
            found.append((meta.get("created", ""), run))
    return max(found)[1] if found else None


def encoder_state(model_state: dict[str, Any]) -> dict[str, Any]:
    """The encoder's weights in a checkpoint's ``model`` state: the method's ``encoder.*``
    keys, under ``method.`` when the physics bank wrapped the method (``ssl.physics``)."""
    for prefix in ("method.encoder.", "encoder."):
        state = {k[len(prefix) :]: v for k, v in model_state.items() if k.startswith(prefix)}
        if state:
            return state
    return {}


def model_physics_head(model_dir: str | Path):  # -> PhysicsHead | None
    """The model's physics head, with the gains its embeddings are stretched by: its
    ``physics_head.pt``, or for a model whose run kept no head file (pretrained with the bank
    before heads were kept, or a run cut short), the classifier in its last checkpoint (the
    bank's classes, in the generator's order) with the gains of its configuration. None for
    models without one (no bank, fine-tuned). ``embed.Embedder`` (how embeddings are
    stretched) and ``explore.deformation`` (how they are scored) both read heads here."""
    from insarexplore.models.physics_head import checked_head, load_physics_head

    head = load_physics_head(model_dir)
    ckpt, meta = Path(model_dir) / "checkpoint.pt", Path(model_dir) / "meta.json"
    if head is not None or not ckpt.is_file() or not meta.is_file():
        return head
    try:
        config = json.loads(meta.read_text()).get("config", {})
        physics = float(config.get("physics", 0) or 0)
        # how its embeddings were stretched (runs before the stretch: not at all)
        gains = [config.get(k, 1.0) for k in ("embed_gain", "embed_class_gain")]
    except (ValueError, TypeError, AttributeError):
        return None
    if physics <= 0:  # pretrained without the bank: no classifier to look for
        return None
    from insarexplore.data.synthetic.parameters import CLASSES

    state = load_checkpoint(ckpt).get("model", {})
    w, b = state.get("classifier.weight"), state.get("classifier.bias")
    if w is None or b is None:
        return None
    w, b = w.float().numpy(), b.float().numpy()
    checked_head(CLASSES, w, b, where=ckpt)  # its weights, named by the checkpoint
    return checked_head(CLASSES, w, b, where=meta, gain=gains[0], class_gain=gains[1])


def embedded_stretch(meta: Any, model_dir: str | Path) -> Any:
    """The stretch a model's stored embeddings were made with: their meta.json record
    (``stretch``, as written, for the caller to check) or, for embeddings stored before
    records were kept, what the ``Embedder`` did then: the gains of the model's head file,
    and none (``[1.0, 1.0]``) for a model without one."""
    from insarexplore.models.physics_head import load_physics_head

    if isinstance(meta, dict) and "stretch" in meta:
        return meta["stretch"]
    head = load_physics_head(model_dir)
    return head.gains if head is not None else [1.0, 1.0]
