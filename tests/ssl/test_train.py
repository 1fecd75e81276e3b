"""The pretraining loop: budgets, outputs, resume after interruption or SIGKILL, mismatches."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from insarexplore.models import ModelMismatchError, build_encoder, load_encoder
from insarexplore.ssl.checkpoint import load_checkpoint
from insarexplore.ssl.train import PretrainConfig, cosine_lr, pretrain

TINY = dict(
    batch_size=8,
    log_every=2,
    checkpoint_every=3,
    monitor_every=0,
    progress=False,
    tensorboard=False,
)


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_cosine_schedule_shape():
    lrs = [cosine_lr(s, 100, 10, 0.01) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.01, abs=1e-3)


def test_pretrain_workspace_outputs(toy_workspace):
    cfg = PretrainConfig(steps=6, **{**TINY, "monitor_every": 4})
    version = pretrain(toy_workspace, cfg)
    run = toy_workspace.model_dir(version)
    assert toy_workspace.current_model == version
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done" and meta["steps"] == 6 and meta["kind"] == "phase"
    rows = _rows(run)
    assert [int(r["step"]) for r in rows][-1] == 6
    assert all(float(r["loss"]) > 0 for r in rows)
    assert any(r["knn_acc"] for r in rows)  # the toy data is labelled: the monitor ran
    model, config = load_encoder(run, in_channels=4, channel_kind="phase")
    assert config["arch"] == "resnet-micro" and model(torch.zeros(2, 4, 32, 32)).shape == (2, 128)
    assert config["image_size"] == 32  # the toy data (32 px) is smaller than the preset's 48
    assert config["embed_dihedral"] is True  # the model embeds as the mean of 8 views
    with pytest.raises(ModelMismatchError, match="in_channels"):
        load_encoder(run, in_channels=3)


def test_view_size_is_capped_at_the_presets_unless_given(tmp_path, make_toy):
    ds = make_toy(16, size=64)
    sizes = {}
    for name, kw in {
        "default": {},
        "tiny": {"arch": "resnet-tiny"},
        "asked": {"image_size": 56},
    }.items():
        pretrain(ds, PretrainConfig(steps=1, **{**TINY, **kw}), out_dir=tmp_path / name)
        sizes[name] = json.loads((tmp_path / name / "meta.json").read_text())["image_size"]
    assert sizes == {"default": 48, "tiny": 64, "asked": 56}


def test_interrupted_run_resumes_to_identical_weights(tmp_path, make_toy):
    ds = make_toy(32)
    cfg = PretrainConfig(steps=8, **TINY)
    pretrain(ds, cfg, out_dir=tmp_path / "straight")

    calls = []

    def interrupt(info):
        calls.append(info["step"])
        if info["step"] == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pretrain(ds, cfg, out_dir=tmp_path / "resumed", on_step=interrupt)
    assert load_checkpoint(tmp_path / "resumed")["step"] == 5
    pretrain(ds, cfg, out_dir=tmp_path / "resumed", on_step=lambda i: calls.append(i["step"]))
    assert calls == [1, 2, 3, 4, 5, 6, 7, 8]
    a, _ = load_encoder(tmp_path / "straight")
    b, _ = load_encoder(tmp_path / "resumed")
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(pa, pb, atol=1e-6), name


def test_minutes_budget_stops_on_time(tmp_path, make_toy, monkeypatch):
    """On a clock that moves 0.1 s per reading, a 3 s budget ends within a step of 3 s."""
    readings = []

    def clock() -> float:
        readings.append(0.1 * len(readings))
        return readings[-1]

    monkeypatch.setattr(time, "perf_counter", clock)
    cfg = PretrainConfig(minutes=0.05, **TINY)
    pretrain(make_toy(32), cfg, out_dir=tmp_path / "m")
    ckpt = load_checkpoint(tmp_path / "m")
    assert ckpt["step"] == ckpt["total_steps"] >= 3
    assert ckpt["seconds_budget"] == pytest.approx(3.0)
    per_step = ckpt["elapsed_s"] / ckpt["step"]
    assert 3.0 - per_step <= ckpt["elapsed_s"] <= 3.0 + per_step


def test_time_budget_refit_fits_the_schedule():
    from insarexplore.ssl.schedule import Plan, refit

    plan = Plan(10**9, warmup_frac=0.05, min_lr_frac=0.01)
    assert not refit(plan, seconds=10.0, elapsed=2.0, step=4, sec_per_step=0.5)
    assert plan.total == 4 + 16
    assert plan.factor(plan.total - 1) < 0.05  # the cosine ends at the fitted total
    assert refit(plan, seconds=10.0, elapsed=10.5, step=19, sec_per_step=0.5)
    assert plan.total == 19


@pytest.mark.parametrize("method", ["moco", "vicreg"])
def test_other_methods_and_rgb(tmp_path, method, make_toy):
    pretrain(make_toy(24, rgb=True), PretrainConfig(steps=2, method=method, **TINY),
             out_dir=tmp_path / method)  # fmt: skip
    _, config = load_encoder(tmp_path / method)
    assert config["in_channels"] == 3 and config["channel_kind"] == "rgb"
    assert config["phase_input"] == "hue-gradient"  # the RGB default input layer


def test_input_layer_options_only_key_runs_of_their_kind():
    base, other = PretrainConfig(), PretrainConfig(rgb_input="raw")
    assert base.resume_key("phase", 4) == other.resume_key("phase", 4)
    assert base.resume_key("rgb", 3) != other.resume_key("rgb", 3)
    assert base.resume_key("rgb", 3) == PretrainConfig(phase_input="raw").resume_key("rgb", 3)


def test_supcon_weight_keys_runs_that_use_it_and_is_checked():
    base = PretrainConfig()
    assert base.resume_key("phase", 4) != PretrainConfig(physics_supcon=1.0).resume_key("phase", 4)
    # runs without it keep the key they had before the option existed
    assert base.resume_key("phase", 4) == "f46b923d4b109a0b"
    with pytest.raises(ValueError, match="physics_supcon"):
        PretrainConfig(physics_supcon=-1.0)


def test_checkpoint_of_other_architecture_is_refused(tmp_path, make_toy):
    ds = make_toy(24)
    pretrain(ds, PretrainConfig(steps=2, **TINY), out_dir=tmp_path / "r")
    other = build_encoder("resnet-small", 4)
    with pytest.raises(ModelMismatchError, match="stem"):
        load_checkpoint(tmp_path / "r", encoder_config=other.config)
    with pytest.raises(ModelMismatchError, match="in_channels"):
        load_checkpoint(tmp_path / "r", encoder_config=build_encoder("resnet-tiny", 3).config)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelMismatchError, match="cannot be read"):
        load_checkpoint(tmp_path / "bad.pt")


def test_needs_out_dir_or_workspace(toy):
    with pytest.raises(ValueError, match="out_dir"):
        pretrain(toy, PretrainConfig(steps=1, **TINY))


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(toy_workspace):
    """A run killed with SIGKILL continues from its last checkpoint to the planned step."""
    script = textwrap.dedent(
        f"""
        import time
        from insarexplore.ssl.train import PretrainConfig, pretrain
        def slow(info):
            time.sleep(0.15)
        pretrain({str(toy_workspace.path)!r}, PretrainConfig(steps=24, batch_size=8,
                 checkpoint_every=3, monitor_every=0, progress=False, tensorboard=False), on_step=slow)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    try:
        deadline = time.time() + 120
        ckpt = None
        while time.time() < deadline and ckpt is None:
            found = list(toy_workspace.models_dir.glob("*/checkpoint.pt"))
            if found and load_checkpoint(found[0])["step"] >= 6:
                ckpt = found[0]
            time.sleep(0.2)
        assert ckpt is not None, "no checkpoint appeared"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = load_checkpoint(ckpt)["step"]
    assert 6 <= killed_at < 24
    assert json.loads((ckpt.parent / "meta.json").read_text())["status"] == "running"
    steps = []
    cfg = PretrainConfig(
        steps=24, batch_size=8, checkpoint_every=3, monitor_every=0, progress=False
    )
    version = pretrain(toy_workspace, cfg, on_step=lambda i: steps.append(i["step"]))
    assert version == ckpt.parent.name  # the same run folder was continued
    assert steps[0] == killed_at + 1 and steps[-1] == 24
    assert load_checkpoint(ckpt)["step"] == 24


def test_a_batch_of_one_is_refused_it_would_learn_nothing_from_the_data():
    """With one image a batch, the contrastive loss has no negatives: it was 0 and the run
    trained on the physics bank alone, silently."""
    from insarexplore import cli
    from insarexplore.ssl.train import PretrainConfig

    for bad in (1, 0, 2.5):
        with pytest.raises(ValueError, match="batch_size must be an integer of at least 2"):
            PretrainConfig(batch_size=bad)
    assert PretrainConfig(batch_size=2).batch_size == 2
    with pytest.raises(SystemExit) as exc:
        cli.main(["pretrain", "ws", "--batch-size", "1"])
    assert exc.value.code == 2
