"""Fine-tuning the encoder itself from a labelled seed, producing a new model version.

A linear head is put on the pretrained encoder and both are trained with cross-entropy on the
labelled samples, seen through the pretraining augmentations (``PhaseAugment`` / ``RGBAugment``,
with milder crops so the signal stays in view). A stratified part of the labels is held out and
training stops when its loss has not improved for ``patience`` epochs; the best weights are kept.
The encoder gets a smaller learning rate than the new head, and its batch-norm statistics stay
frozen (tiny labelled batches would otherwise overwrite the pretraining statistics).
:func:`finetune_workspace` saves the result as a new model version and re-embeds with it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["FinetuneResult", "at_model_size", "finetune_encoder", "finetune_workspace"]


@dataclass
class FinetuneResult:
    """What fine-tuning did: classes, best epoch, losses per epoch, held-out size."""

    classes: list[str]
    best_epoch: int
    epochs_run: int
    n_train: int
    n_val: int
    history: list[dict[str, float]] = field(default_factory=list)


def _split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified held-out rows; classes with a single label stay entirely in training."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(rows) * val_fraction)) if len(rows) >= 2 else 0
        k = min(max(k, 1 if len(rows) >= 2 else 0), len(rows) - 1)
        val.extend(rows[:k])
        train.extend(rows[k:])
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(val, np.int64))


def _freeze_norm_stats(module: Any) -> None:
    import torch.nn as nn

    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def finetune_encoder(
    encoder: Any,
    x: np.ndarray,
    y: Any,
    *,
    epochs: int = 40,
    batch_size: int = 32,
    lr: float = 1e-3,
    encoder_lr_scale: float = 0.1,
    weight_decay: float = 1e-4,
    val_fraction: float = 0.25,
    patience: int = 6,
    augment: Any = "default",
    device: str | Any = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> tuple[Any, FinetuneResult]:
    """Fine-tune ``encoder`` (a copy; the original is untouched) on inputs ``x`` with labels ``y``.

    ``x`` is ``(n, C, H, W)`` float32 model input (``ds.insar.to_channels()``). ``augment`` is an
    ``nn.Module`` on batches, ``None`` for none, or "default" (the pretraining pipeline for the
    channel kind with milder crops). Returns ``(fine-tuned encoder in eval mode, result)``.
    """
    import torch
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    y = np.asarray(y).astype(str)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4 or len(x) != len(y):
        raise ValueError(f"x: expected (n, C, H, W) matching {len(y)} labels, got {x.shape}")
    classes, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(
            f"fine-tuning needs labelled samples of at least 2 classes (at least 2 labels); "
            f"got {len(y)} label(s) of {len(classes)} class(es)"
        )
    if patience < 1 or epochs < 1:
        raise ValueError(f"epochs and patience must be at least 1, got {epochs}, {patience}")
    torch.manual_seed(seed)
    device = torch.device(device)
    model = copy.deepcopy(encoder).to(device)
    head = torch.nn.Linear(int(model.out_dim), len(classes)).to(device)
    if isinstance(augment, str) and augment == "default":
        augment = _default_augment(x.shape[1], x.shape[-1])
    train, val = _split(y_idx, val_fraction, seed)
    if len(val) == 0:  # a single label per class: nothing to hold out, train a fixed budget
        train = np.arange(len(y))
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y_idx.astype(np.int64))
    opt = torch.optim.AdamW(
        [
            {"params": model.parameters(), "lr": lr * encoder_lr_scale},
            {"params": head.parameters(), "lr": lr},
        ],
        weight_decay=weight_decay,
    )
    # class-balanced loss: a labelled seed is rarely balanced
    weight = torch.tensor(len(y) / (len(classes) * counts), dtype=torch.float32, device=device)
    gen = torch.Generator().manual_seed(seed)
    best = (np.inf, 0, copy.deepcopy(model.state_dict()))
    history: list[dict[str, float]] = []
    bar = tqdm(range(epochs), desc="fine-tuning", disable=not progress)
    for epoch in bar:
        model.train()
        _freeze_norm_stats(model)
        order = train[torch.randperm(len(train), generator=gen).numpy()]
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = torch.from_numpy(order[start : start + batch_size])
            xb = xt[rows].to(device)
            if augment is not None:
                xb = augment(xb)
            loss = F.cross_entropy(head(model(xb)), yt[rows].to(device), weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(rows)
        row = {"epoch": epoch, "train_loss": total / len(order)}
        if len(val):
            model.eval()
            with torch.no_grad():
                logits = head(model(xt[val].to(device)))
                row["val_loss"] = float(F.cross_entropy(logits, yt[val].to(device), weight=weight))
                row["val_accuracy"] = float((logits.argmax(1).cpu() == yt[val]).float().mean())
            if row["val_loss"] < best[0] - 1e-4:
                best = (row["val_loss"], epoch, copy.deepcopy(model.state_dict()))
        else:
            best = (row["train_loss"], epoch, copy.deepcopy(model.state_dict()))
        history.append(row)
        bar.set_postfix({k: round(v, 3) for k, v in row.items() if k != "epoch"})
        if len(val) and epoch - best[1] >= patience:
            break
    model.load_state_dict(best[2])
    model.eval()
    result = FinetuneResult(
        classes=[str(c) for c in classes],
        best_epoch=int(best[1]),
        epochs_run=len(history),
        n_train=int(len(train)),
        n_val=int(len(val)),
        history=history,
    )
    return model, result


def _default_augment(channels: int, size: int) -> Any:
    from insarexplore.ssl.augment import PhaseAugment
    from insarexplore.ssl.augment_rgb import RGBAugment

    if channels == 4:
        return PhaseAugment(size, crop_scale=(0.6, 1.0), cutout_p=0.25, atmosphere_std=0.5)
    if channels == 3:
        return RGBAugment(size, crop_scale=(0.6, 1.0), cutout_p=0.25)
    return None


def at_model_size(x: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    """Channels ``(n, c, h, w)`` brought to the size the model was trained at (its config's
    ``image_size``), the size embedding gives it: fine-tuning trains there. Phase channels are
    resized as phase (the angle of the resized complex signal). Unchanged when no size is
    recorded or the size already matches."""
    size = int(config.get("image_size") or 0)
    if not size or x.shape[-2:] == (size, size):
        return x
    import torch

    from insarexplore.ssl.augment import resize_batch

    return resize_batch(torch.from_numpy(x), size, phase=x.shape[1] == 4).numpy()


def finetune_workspace(
    ws: Any,
    base_version: str | None = None,
    *,
    store: Any = None,
    make_current: bool = True,
    embed: bool = True,
    device: str = "cpu",
    progress: bool = True,
    **kw: Any,
) -> tuple[str, FinetuneResult]:
    """Fine-tune the workspace's encoder on its current labels; save and re-embed a new version.

    ``kw`` go to :func:`finetune_encoder`. The labelled samples are brought to the size the
    model was trained at, which is the size embedding gives it (a 224 px store and 48 px
    views: fine-tuning at 48 px, as fast as pretraining's steps). The new version
    (``ft-...``) records its base model, the label-store revision and the training history in
    ``meta.json``; with ``embed`` every sample is embedded with it
    (``insarexplore.embed.embed_workspace``).
    """
    from insarexplore.explore.labels import LabelStore
    from insarexplore.models.serialization import load_encoder, save_encoder

    base = base_version or ws.current_model
    if not base:
        raise ValueError("base_version: the workspace has no current model to fine-tune")
    encoder, config = load_encoder(ws.model_dir(base), device="cpu")
    own = store is None
    store = store or LabelStore(ws.labels_path)
    try:
        labels, revision = store.current(), store.revision()
    finally:
        if own:
            store.close()
    ds = ws.open_data()
    ids = np.asarray(ds["sample"].values).astype(str)
    rows = np.flatnonzero(np.isin(ids, list(labels)))
    if len(rows) == 0:
        raise ValueError(
            "no labels: fine-tuning needs labelled samples of at least 2 classes (at least 2 labels)"
        )
    x = at_model_size(ds.isel(sample=rows).insar.to_channels(config.get("channel_kind")), config)
    y = np.array([labels[s] for s in ids[rows]])
    model, result = finetune_encoder(encoder, x, y, device=device, progress=progress, **kw)
    version, folder = ws.new_model_dir("ft")
    save_encoder(folder / "encoder.pt", model.cpu(), config)
    meta = {
        "model_version": version,
        "kind": "finetune",
        "base_model": base,
        "labels_revision": revision,
        "n_labels": int(len(rows)),
        "params": {k: v for k, v in kw.items() if isinstance(v, (int, float, str, bool))},
        "result": asdict(result),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    if make_current:
        ws.set_current_model(version)
    if embed:
        from insarexplore.embed import embed_workspace

        embed_workspace(ws, model_version=version, device=device, progress=progress)
    return version, result
