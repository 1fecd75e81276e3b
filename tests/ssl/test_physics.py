"""The labelled physics bank beside the contrastive loss: shapes, channels, loss, the loop."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from insarexplore.data.synthetic.parameters import CLASSES
from insarexplore.models import build_encoder
from insarexplore.ssl.losses import SupConLoss
from insarexplore.ssl.methods import build_method
from insarexplore.ssl.physics import TARGETS, PhysicsBank, WithPhysics, make_physics_bank
from insarexplore.ssl.train import PretrainConfig, pretrain

TINY = dict(batch_size=8, log_every=1, monitor_every=0, progress=False, tensorboard=False)


def test_phase_bank_is_shaped_like_renderings_read_back():
    bank = make_physics_bank(64, 32, kind="phase", coherence=False, stored_size=128, seed=3)
    x, y = bank.x.float(), bank.y
    assert x.shape == (64, 4, 32, 32) and bank.x.dtype == torch.float16
    valid = x[:, 3]
    # no coherence in renderings: the validity mask (resampled) stands in
    assert (x[:, 2] <= valid + 1e-3).all() and float(x[:, 2][valid > 0].mean()) > 0.95
    mag = x[:, 0] ** 2 + x[:, 1] ** 2
    assert torch.allclose(mag[valid > 0], torch.ones(()), atol=2e-3)
    assert (mag[valid == 0] == 0).all()
    assert (valid.mean((1, 2)) < 0.97).sum() >= 5  # swath-edge wedges cut some images
    assert bank.classes == tuple(CLASSES) and set(y.tolist()) == set(range(len(CLASSES)))
    again = make_physics_bank(64, 32, kind="phase", coherence=False, stored_size=128, seed=3)
    assert torch.equal(again.x, bank.x) and torch.equal(again.y, bank.y)


def test_phase_bank_keeps_coherence_when_the_data_have_it():
    bank = make_physics_bank(16, 24, kind="phase", coherence=True, stored_size=24, seed=0)
    coh, valid = bank.x[:, 2].float(), bank.x[:, 3].float()
    assert (coh <= valid + 1e-3).all() and float(coh[valid > 0].mean()) < 0.9


def test_rgb_bank_renders_grey_and_colour_styles():
    bank = make_physics_bank(48, 32, kind="rgb", coherence=False, stored_size=64, seed=1)
    x = bank.x.float()
    assert x.shape == (48, 3, 32, 32) and x.min() >= 0 and x.max() <= 1
    grey = (x.amax(1) - x.amin(1)).flatten(1).amax(1) < 0.02
    assert 0 < int(grey.sum()) < 48  # some grey renderings, some colour ones


def test_bad_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        make_physics_bank(8, 16, kind="sar", coherence=False, stored_size=16)


def test_with_physics_adds_a_classification_loss_that_trains_the_encoder():
    torch.manual_seed(0)
    enc = build_encoder("resnet-micro", 4, channel_kind="phase", image_size=32)
    model = WithPhysics(build_method("simclr", enc), len(CLASSES), weight=0.5)
    assert model.encoder is enc
    bank = make_physics_bank(32, 32, kind="phase", coherence=False, stored_size=32, seed=2)
    v = torch.randn(8, 4, 32, 32)
    xs, ys, _ = bank.sample(8, torch.device("cpu"))
    ssl_only = model(v, v)
    assert model.last_physics is None
    total = model(v, v, xs, ys)
    ce, acc = model.last_physics
    assert float(total) == pytest.approx(float(ssl_only) + 0.5 * float(ce), rel=0.05)
    assert 0 <= float(acc) <= 1
    total.backward()
    assert model.classifier.weight.grad is not None
    grads = [p.grad for p in enc.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0


def test_with_physics_supcon_adds_its_weighted_loss_of_the_bank_embeddings():
    torch.manual_seed(0)
    enc = build_encoder("resnet-micro", 4, channel_kind="phase", image_size=32)
    model = WithPhysics(build_method("simclr", enc), len(CLASSES), weight=0.5, supcon=2.0,
                        temperature=0.3)  # fmt: skip
    bank = make_physics_bank(32, 32, kind="phase", coherence=False, stored_size=32, seed=2)
    v = torch.randn(8, 4, 32, 32)
    xs, ys, _ = bank.sample(16, torch.device("cpu"))
    model.eval()  # batch statistics fixed, so the parts can be recomputed alike
    with torch.no_grad():
        total = float(model(v, v, xs, ys))
        ce = float(model.last_physics[0])
        ssl_only = float(model(v, v))
        sc = float(SupConLoss(0.3)(enc(xs), ys))
    assert total == pytest.approx(ssl_only + 0.5 * ce + 2.0 * sc, rel=1e-4)
    assert WithPhysics(build_method("simclr", enc), len(CLASSES), 0.5).supcon_loss is None
    with pytest.raises(ValueError, match="supcon"):
        WithPhysics(build_method("simclr", enc), len(CLASSES), 0.5, supcon=-1.0)


def test_supcon_alone_trains_the_encoder():
    torch.manual_seed(1)
    enc = build_encoder("resnet-micro", 4, channel_kind="phase", image_size=32)
    model = WithPhysics(build_method("simclr", enc), len(CLASSES), weight=0.0, supcon=1.0)
    bank = make_physics_bank(32, 32, kind="phase", coherence=False, stored_size=32, seed=2)
    xs, ys, _ = bank.sample(16, torch.device("cpu"))
    v = torch.randn(8, 4, 32, 32)
    with_sc = model(v, v, xs, ys)
    assert float(model.last_supcon) > 0
    ssl_only = build_method("simclr", enc)  # the same encoder, the contrastive part alone
    for m in (model, ssl_only):
        m.zero_grad()
    ssl_only(v, v).backward()
    g0 = [p.grad.clone() for p in enc.parameters()]
    enc.zero_grad()
    with_sc.backward()
    diff = sum(float((p.grad - g).abs().sum()) for p, g in zip(enc.parameters(), g0))
    assert diff > 0  # the bank's embeddings pull on the encoder


def test_pretrain_passes_the_supcon_weight_and_temperature(tmp_path, make_toy, monkeypatch):
    import insarexplore.ssl.train as train

    seen = []

    class Recorder(WithPhysics):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            seen.append(self)

    monkeypatch.setattr(train, "WithPhysics", Recorder)
    cfg = PretrainConfig(steps=2, physics_supcon=0.7, temperature=0.3, **TINY)
    pretrain(make_toy(24), cfg, out_dir=tmp_path / "sc")
    assert seen and seen[0].supcon == 0.7 and seen[0].supcon_loss.temperature == 0.3
    assert seen[0].last_supcon is not None
    with pytest.raises(ValueError, match="physics is 0"):
        PretrainConfig(physics=0, physics_supcon=1.0)


def _rows(run) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_pretraining_logs_the_bank_and_can_turn_it_off(tmp_path, make_toy):
    ds = make_toy(24)
    pretrain(ds, PretrainConfig(steps=3, **TINY), out_dir=tmp_path / "on")
    rows = _rows(tmp_path / "on")
    assert all(r["physics_loss"] and float(r["physics_loss"]) > 0 for r in rows)
    meta = json.loads((tmp_path / "on" / "meta.json").read_text())
    assert meta["config"]["physics"] == 2.0
    # the bank's classifier is kept beside the encoder: deformation scores of the embeddings
    from insarexplore.explore.deformation import model_physics_head
    from insarexplore.models.physics_head import HEAD_FILE, load_physics_head

    head = load_physics_head(tmp_path / "on")
    assert head.classes == tuple(CLASSES) and head.weight.shape[0] == len(CLASSES)
    assert (head.gain, head.class_gain) == (10.0, 3.0)  # how the model's embeddings stretch
    (tmp_path / "on" / HEAD_FILE).unlink()  # a model saved before heads were kept
    old = model_physics_head(tmp_path / "on")  # read from its last checkpoint
    np.testing.assert_array_equal(old.weight, head.weight)
    np.testing.assert_array_equal(old.bias, head.bias)
    assert (old.gain, old.class_gain) == (10.0, 3.0)  # from the run's recorded config
    # ... and embeds with that same stretch (a run cut short keeps no head file): the scores
    # of its embeddings are those of the head on the encoder's features
    from insarexplore.embed import Embedder

    emb = Embedder(tmp_path / "on", progress=False).fit()
    assert (emb.head_.gain, emb.head_.class_gain) == (10.0, 3.0)
    vectors = emb.transform(ds)
    features = Embedder(tmp_path / "on", progress=False, gains=(1, 1)).fit().transform(ds)
    assert not np.allclose(vectors, features, atol=1e-3)
    plain_head = dataclasses.replace(old, gain=1.0, class_gain=1.0)
    np.testing.assert_allclose(old.deformation(vectors), plain_head.deformation(features),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    cfg = PretrainConfig(steps=2, embed_gain=1, embed_class_gain=1.0, **TINY)
    pretrain(ds, cfg, out_dir=tmp_path / "plain")
    plain = load_physics_head(tmp_path / "plain")
    assert (plain.gain, plain.class_gain) == (1.0, 1.0) and isinstance(cfg.embed_gain, float)
    for key in ("embed_gain", "embed_class_gain"):
        for bad in (0.0, -1.0, float("nan"), float("inf"), True, "3", None):
            with pytest.raises(ValueError, match=key):
                PretrainConfig(**{key: bad})
        value = getattr(PretrainConfig(**{key: np.float32(2.5)}), key)
        assert type(value) is float and value == 2.5  # stored as a float
        for bad in (10**400, 1e39, 1e-46, 2000.0, 0.0005):  # float32 embeddings stay finite
            with pytest.raises(ValueError, match=f"{key} must be a number from 0.001 to 1000"):
                PretrainConfig(**{key: bad})
    for bad in ("1", None, True, float("nan"), -1.0):
        with pytest.raises(ValueError, match="physics must be"):
            PretrainConfig(physics=bad)
    # a gain is how the model embeds, not what it learns: the same run resumes under another
    assert PretrainConfig(embed_gain=3.0, **TINY).resume_key("phase", 4) == PretrainConfig(
        **TINY).resume_key("phase", 4)  # fmt: skip
    pretrain(ds, PretrainConfig(steps=3, physics=0, **TINY), out_dir=tmp_path / "off")
    assert not any(r["physics_loss"] for r in _rows(tmp_path / "off"))
    assert model_physics_head(tmp_path / "off") is None
    # a run without the bank in a folder that held one with it leaves no stale head behind
    pretrain(ds, PretrainConfig(steps=3, **TINY), out_dir=tmp_path / "again")
    assert (tmp_path / "again" / HEAD_FILE).is_file()
    pretrain(
        ds, PretrainConfig(steps=3, physics=0, resume=False, **TINY), out_dir=tmp_path / "again"
    )
    assert not (tmp_path / "again" / HEAD_FILE).exists()
    assert model_physics_head(tmp_path / "again") is None
    on = PretrainConfig(**TINY).resume_key("phase", 4)
    assert PretrainConfig(physics=0, **TINY).resume_key("phase", 4) != on  # runs differ


def test_the_bank_changes_what_the_encoder_learns(tmp_path, make_toy):
    ds = make_toy(24)
    for name, w in (("a", 2.0), ("b", 0.0)):
        pretrain(ds, PretrainConfig(steps=2, physics=w, **TINY), out_dir=tmp_path / name)
    a = torch.load(tmp_path / "a" / "encoder.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "encoder.pt", weights_only=True)
    sa, sb = a["state_dict"], b["state_dict"]
    assert sa.keys() == sb.keys()  # the saved encoder is the same model either way
    assert any(not torch.equal(sa[k], sb[k]) for k in sa if sa[k].is_floating_point())
    assert np.isfinite([float(r["loss"]) for r in _rows(tmp_path / "a")]).all()


@pytest.mark.parametrize(
    "field, value",
    [
        ("physics", -1.0),
        ("physics", float("nan")),
        ("physics_n", 0),
        ("physics_batch", 0),
        ("physics_crop", 0.0),
        ("physics_crop", 1.5),
        ("physics_regress", -0.5),
        ("physics_regress", float("inf")),
        ("physics_ssl", -0.1),
        ("physics_ssl", 1.0),
        ("physics_ssl", float("nan")),
    ],  # fmt: skip
)
def test_bank_options_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        PretrainConfig(**{field: value})


def test_bank_views_can_keep_the_whole_scene(tmp_path, make_toy):
    ds = make_toy(24)
    states = {}
    for name, crop in (("pool-crop", None), ("whole", 1.0)):
        cfg = PretrainConfig(steps=2, physics_crop=crop, **TINY)
        pretrain(ds, cfg, out_dir=tmp_path / name)
        states[name] = torch.load(tmp_path / name / "encoder.pt", weights_only=True)["state_dict"]
    a, b = states["pool-crop"], states["whole"]
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    assert PretrainConfig(physics_crop=0.8).resume_key("phase", 4) != PretrainConfig().resume_key(
        "phase", 4
    )


def test_bank_carries_each_images_signal_and_turbulence_as_targets():
    from insarexplore.data.synthetic.config import SyntheticConfig
    from insarexplore.data.synthetic.generator import iter_blocks

    bank = make_physics_bank(40, 24, kind="phase", coherence=False, stored_size=48, seed=5)
    z = bank.z
    assert z.shape == (40, len(TARGETS)) and z.dtype == torch.float32 and (z >= 0).all()
    none = bank.y == CLASSES.index("none")
    assert none.any() and (~none).any()
    assert (z[none, 0] == 0).all() and (z[~none, 0] > 0).all()  # no signal in "none" scenes
    assert (z[:, 1] > 0).all()  # every scene has some turbulence
    # the targets are the generator's own values of the same images, as log(1 + value)
    cfg = SyntheticConfig(size=48, pixel_spacing_m=100.0, block_size=256)
    ds = next(iter(iter_blocks(40, seed=5, config=cfg)))
    want = np.log1p(np.stack([ds[t].values for t in TARGETS], 1))
    np.testing.assert_allclose(z.numpy(), want, rtol=1e-5)
    xs, ys, zs = bank.sample(6, torch.device("cpu"))
    assert zs.shape == (6, len(TARGETS))
    with pytest.raises(ValueError, match="z must be"):
        PhysicsBank(bank.x, bank.y, bank.classes, z=bank.z[:3])


def test_with_physics_regress_adds_its_weighted_huber_loss():
    torch.manual_seed(0)
    enc = build_encoder("resnet-micro", 4, channel_kind="phase", image_size=32)
    model = WithPhysics(build_method("simclr", enc), len(CLASSES), weight=0.5, regress=3.0)
    bank = make_physics_bank(32, 32, kind="phase", coherence=False, stored_size=32, seed=2)
    v = torch.randn(8, 4, 32, 32)
    xs, ys, zs = bank.sample(16, torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        total = float(model(v, v, xs, ys, zs))
        ce = float(model.last_physics[0])
        ssl_only = float(model(v, v))
        want = float(torch.nn.functional.smooth_l1_loss(model.regressor(enc(xs)), zs))
    assert float(model.last_regress) == pytest.approx(want, rel=1e-5)
    assert total == pytest.approx(ssl_only + 0.5 * ce + 3.0 * want, rel=1e-4)
    with pytest.raises(ValueError, match="targets"):
        model(v, v, xs, ys)
    plain = WithPhysics(build_method("simclr", enc), len(CLASSES), 0.5)
    assert not hasattr(plain, "regressor")  # no layer, so older state dicts load as they were
    with pytest.raises(ValueError, match="regress"):
        WithPhysics(build_method("simclr", enc), len(CLASSES), 0.5, regress=-1.0)


def test_pretrain_regresses_the_bank_targets_when_asked(tmp_path, make_toy):
    ds = make_toy(24)
    states = {}
    for name, w in (("plain", 0.0), ("regress", 1.0)):
        pretrain(ds, PretrainConfig(steps=2, physics_regress=w, **TINY), out_dir=tmp_path / name)
        states[name] = torch.load(tmp_path / name / "encoder.pt", weights_only=True)["state_dict"]
    a, b = states["plain"], states["regress"]
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    meta = json.loads((tmp_path / "regress" / "meta.json").read_text())
    assert meta["config"]["physics_regress"] == 1.0
    key = PretrainConfig().resume_key("phase", 4)
    assert PretrainConfig(physics_regress=1.0).resume_key("phase", 4) != key
    assert PretrainConfig(physics_regress=0.0).resume_key("phase", 4) == key  # old runs resume
    with pytest.raises(ValueError, match="physics is 0"):
        PretrainConfig(physics=0, physics_regress=1.0)


def test_contrastive_batches_draw_their_share_from_the_bank(tmp_path, make_toy, monkeypatch):
    """With ``physics_ssl``, that share of each contrastive batch is bank images (drawn beside
    the labelled bank batch): the views are cut from them; without, the bank gives only the
    labelled batch."""
    from insarexplore.ssl.augment import PhaseAugment

    ds = make_toy(24)
    draws: list[tuple[int, torch.Tensor]] = []
    seen: list[torch.Tensor] = []
    sample, forward = PhysicsBank.sample, PhaseAugment.forward

    def spy_sample(self, b, device):
        out = sample(self, b, device)
        draws.append((b, out[0].clone()))
        return out

    def spy_forward(self, x):
        seen.append(x.clone())
        return forward(self, x)

    monkeypatch.setattr(PhysicsBank, "sample", spy_sample)
    monkeypatch.setattr(PhaseAugment, "forward", spy_forward)
    states = {}
    for name, share in (("plain", 0.0), ("mixed", 0.25)):
        draws.clear()
        seen.clear()
        cfg = PretrainConfig(steps=2, physics_ssl=share, **TINY)
        pretrain(ds, cfg, out_dir=tmp_path / name)
        states[name] = torch.load(tmp_path / name / "encoder.pt", weights_only=True)["state_dict"]
        sizes = [b for b, _ in draws]
        assert sizes == ([4, 4] if share == 0 else [2, 4, 2, 4])  # 0.25 of 8 rows; half batch
        if share:  # per step: the contrastive batch (twice), then the labelled bank batch
            for step in range(2):
                batch, bank_rows = seen[3 * step], draws[2 * step][1]
                assert len(batch) == 8 and torch.equal(seen[3 * step + 1], batch)
                assert torch.equal(batch[-2:], bank_rows)  # the last quarter: bank images
                assert not any(torch.equal(r, b) for r in batch[:-2] for b in bank_rows)
    a, b = states["plain"], states["mixed"]
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    key = PretrainConfig().resume_key("phase", 4)
    assert PretrainConfig(physics_ssl=0.25).resume_key("phase", 4) != key
    assert PretrainConfig(physics_ssl=0.0).resume_key("phase", 4) == key  # old runs resume
    with pytest.raises(ValueError, match="physics is 0"):
        PretrainConfig(physics=0, physics_ssl=0.25)
