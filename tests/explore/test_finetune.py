"""Encoder fine-tuning: learns from a labelled seed, stops early, leaves the original intact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from insarexplore.explore.finetune import _split, finetune_encoder
from insarexplore.models import build_encoder


def _images(n_per_class: int = 12, size: int = 32, seed: int = 0):
    """Two fringe patterns (concentric vs straight) in model channels [cos, sin, coh, valid]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    phases, labels = [], []
    for i in range(2 * n_per_class):
        k = rng.uniform(6, 12)
        if i % 2:
            phase = k * np.hypot(xx - rng.uniform(-0.3, 0.3), yy - rng.uniform(-0.3, 0.3))
        else:
            angle = rng.uniform(0, np.pi)
            phase = k * (np.cos(angle) * xx + np.sin(angle) * yy)
        phases.append(phase + rng.normal(0, 0.3, phase.shape) + rng.uniform(0, 2 * np.pi))
        labels.append("mogi" if i % 2 else "ramp")
    p = np.stack(phases)
    x = np.stack([np.cos(p), np.sin(p), np.ones_like(p), np.ones_like(p)], axis=1)
    return x.astype(np.float32), np.array(labels)


def test_split_is_stratified_and_keeps_singletons_in_training():
    y = np.array([0] * 8 + [1] * 4 + [2])
    train, val = _split(y, 0.25, seed=0)
    assert sorted(np.concatenate([train, val])) == list(range(len(y)))
    assert (y[val] == 0).sum() == 2 and (y[val] == 1).sum() == 1 and 12 in train


@pytest.mark.slow
def test_finetune_learns_and_keeps_original():
    torch.manual_seed(0)
    x, y = _images(8)
    enc = build_encoder("resnet-tiny", 4)
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    model, res = finetune_encoder(
        enc, x, y, epochs=10, batch_size=8, lr=3e-3, patience=4, augment=None, progress=False
    )
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())  # a copy was tuned
    assert res.classes == ["mogi", "ramp"] and res.n_val == 4 and res.n_train == 12
    losses = [h["train_loss"] for h in res.history]
    assert min(losses[-3:]) < losses[0]
    assert 0 <= res.best_epoch < res.epochs_run <= 10
    best_val = min(h["val_loss"] for h in res.history)
    assert res.history[res.best_epoch]["val_loss"] == best_val  # best weights kept
    assert not model.training
    with torch.no_grad():
        emb = model(torch.from_numpy(x)).numpy()
    assert emb.shape == (len(x), enc.out_dim)


def test_default_augmentation_is_applied_to_every_training_batch(monkeypatch):
    from insarexplore.ssl.augment import PhaseAugment

    seen = []
    forward = PhaseAugment.forward

    def spy(self, xb):
        out = forward(self, xb)
        seen.append((len(xb), self.crop_scale, self.cutout_p, torch.equal(out, xb)))
        return out

    monkeypatch.setattr(PhaseAugment, "forward", spy)
    x, y = _images(4)  # 8 samples: 6 to train on, 2 held out
    torch.manual_seed(0)
    enc = build_encoder("resnet-tiny", 4)
    model, res = finetune_encoder(enc, x, y, epochs=1, batch_size=4, progress=False)
    assert res.epochs_run == 1 and (res.n_train, res.n_val) == (6, 2)
    assert [n for n, *_ in seen] == [4, 2]  # each training batch, never the validation set
    assert all(tuple(o) == ((0.6, 1.0), 0.25, False) for _, *o in seen)  # the milder crops
    plain, _ = finetune_encoder(enc, x, y, epochs=1, batch_size=4, augment=None, progress=False)
    assert len(seen) == 2  # augment=None: no augmentation
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                     plain.state_dict().values()))  # fmt: skip


def test_clear_errors():
    x, y = _images(3)
    enc = build_encoder("resnet-tiny", 4)
    with pytest.raises(ValueError, match="at least 2 classes"):
        finetune_encoder(enc, x[y == "mogi"], y[y == "mogi"], progress=False)
    with pytest.raises(ValueError, match="x: expected"):
        finetune_encoder(enc, x[:, 0], y, progress=False)


def test_workspace_finetuning_trains_at_the_models_size(tmp_path, monkeypatch):
    from insarexplore.data.synthetic import generate
    from insarexplore.explore import finetune as ft
    from insarexplore.explore.labels import LabelStore
    from insarexplore.models import save_encoder
    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ds = generate(12, size=32, seed=0, classes=("mogi", "none"))
    ws.add_data(ds)
    version, folder = ws.new_model_dir("m")
    torch.manual_seed(0)
    save_encoder(folder / "encoder.pt", build_encoder("resnet-micro", 4, image_size=16))
    ws.set_current_model(version)
    store = LabelStore(ws.labels_path, author="t")
    store.assign_many(zip(ds["sample"].values.astype(str), ds["label"].values.astype(str)))
    seen = {}
    real = ft.finetune_encoder

    def spy(encoder, x, y, **kw):
        seen["shape"] = x.shape
        return real(encoder, x, y, **kw)

    monkeypatch.setattr(ft, "finetune_encoder", spy)
    ft.finetune_workspace(ws, store=store, embed=False, epochs=1, progress=False)
    assert seen["shape"] == (12, 4, 16, 16)  # the 32 px store brought to the model's 16 px


def test_at_model_size_resizes_phase_as_phase_and_leaves_matching_sizes():
    from insarexplore.explore.finetune import at_model_size

    x, _ = _images(2, size=32)
    assert at_model_size(x, {}) is x  # no size recorded
    assert at_model_size(x, {"image_size": 32}) is x
    small = at_model_size(x, {"image_size": 16})
    assert small.shape == (4, 4, 16, 16)
    # cos/sin stay a unit phasor (the angle of the resized signal, not averaged components)
    np.testing.assert_allclose(np.hypot(small[:, 0], small[:, 1]), 1.0, atol=1e-4)


def test_at_model_size_resizes_rgb_within_range():
    from insarexplore.explore.finetune import at_model_size

    x = np.random.default_rng(0).uniform(0, 1, (3, 3, 40, 40)).astype(np.float32)
    small = at_model_size(x, {"image_size": 20})
    assert small.shape == (3, 3, 20, 20)
    assert small.min() >= 0.0 and small.max() <= 1.0
