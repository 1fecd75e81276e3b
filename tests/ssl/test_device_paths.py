"""GPU and DDP code paths checked on the CPU: set-up order, backend choice, RNG states,
clock synchronisation, ``--compile``; and on a GPU (``gpu`` marker) the real thing."""

from __future__ import annotations

import json

import pytest
import torch

from insarexplore.ssl import dist
from insarexplore.ssl.checkpoint import rng_state, set_rng_state
from insarexplore.ssl.schedule import StepClock
from insarexplore.ssl.train import PretrainConfig, pretrain, setup_device


@pytest.fixture
def fake_torchrun(monkeypatch):
    """torchrun's environment for rank 1 of 2, a machine that reports GPUs, and a recorder
    of the calls that bind a GPU and start the process group (neither really happens)."""
    calls: list[tuple] = []
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", str(d))))
    monkeypatch.setattr(
        torch.distributed,
        "init_process_group",
        lambda backend=None, **kw: calls.append(("init", backend, str(kw.get("device_id")))),
    )
    return calls


def test_device_is_bound_before_the_process_group(fake_torchrun):
    dev = setup_device("cuda")
    assert dev == torch.device("cuda", 1)
    assert fake_torchrun == [("set_device", "cuda:1"), ("init", "nccl", "cuda:1")]


def test_cpu_training_uses_gloo_where_gpus_exist(fake_torchrun):
    assert setup_device("cpu") == torch.device("cpu")
    assert fake_torchrun == [("init", "gloo", "None")]
    assert dist.backend_for("cuda:0") == "nccl" and dist.backend_for("cpu") == "gloo"


def test_rng_state_holds_only_the_local_gpu(monkeypatch):
    """A rank saves its own GPU's generator, not every visible GPU's; restoring a state (or an
    older list of every GPU's) touches the local device only."""
    seen: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "get_rng_state", lambda d="cuda": torch.tensor([str(d)[-1] == "1"])
    )
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("all GPUs saved"))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, d="cuda": seen.append((s, str(d))))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: pytest.fail("all GPUs set"))
    state = rng_state(torch.device("cuda", 1))
    assert torch.equal(state["cuda"], torch.tensor([True]))
    assert "cuda" not in rng_state(torch.device("cpu"))
    set_rng_state(state, torch.device("cuda", 0))
    old = {"torch": torch.get_rng_state(), "cuda": [torch.tensor([0]), torch.tensor([1])]}
    set_rng_state(old, torch.device("cuda", 1))
    set_rng_state(old, torch.device("cuda", 5))  # fewer GPUs saved than this index: the first
    assert [(int(s), d) for s, d in seen] == [(1, "cuda:0"), (1, "cuda:1"), (0, "cuda:5")]


def test_step_clock_waits_for_the_gpu_every_few_steps(monkeypatch):
    syncs: list = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: syncs.append(d))
    clock = StepClock(torch.device("cuda", 0), images_per_step=32)
    assert clock.every == 10
    clock.start(0)
    ticks = [s for s in range(1, 101) if clock.tick(s) is not None]
    assert ticks == list(range(10, 101, 10)) and len(syncs) == 11
    assert clock.tick(7, force=True) is not None and clock.rate > 0
    cpu = StepClock("cpu", 32)
    cpu.start(0)
    assert cpu.every == 1 and cpu.tick(1) is not None and len(syncs) == 12


@pytest.mark.slow
def test_compile_runs_two_steps_on_cpu(tmp_path, make_toy):
    """``compile=True`` compiles the encoder only (state-dict keys unchanged) and trains."""
    from insarexplore.models import load_encoder

    cfg = PretrainConfig(steps=2, batch_size=8, compile=True, monitor_every=0, progress=False,
                         tensorboard=False, log_every=1)  # fmt: skip
    run = pretrain(make_toy(16, size=16), cfg, out_dir=tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["status"] == "done" and meta["steps"] == 2
    enc, _ = load_encoder(run)
    assert not any("_orig_mod" in k for k in enc.state_dict())


@pytest.mark.gpu
def test_cuda_loop_bf16_channels_last_compile(tmp_path, make_toy):
    cfg = PretrainConfig(arch="resnet18", steps=12, batch_size=16, device="cuda", compile=True,
                         image_size=64, monitor_every=0, progress=False, tensorboard=False,
                         log_every=5, checkpoint_every=6, num_workers=2)  # fmt: skip
    data = make_toy(64, size=64)
    run = tmp_path / "run"
    pretrain(data, cfg, out_dir=run)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done" and meta["steps"] == 12
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["rng"][0]["cuda"].dtype == torch.uint8  # this GPU's state, not a list


@pytest.mark.gpu
def test_cuda_encoder_keeps_channels_last_under_bf16():
    from insarexplore.models import build_encoder

    enc = build_encoder("resnet18", 4, phase_input="gradient").cuda()
    enc = enc.to(memory_format=torch.channels_last)
    x = torch.rand(4, 4, 64, 64, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        inp = enc.input(x)
        feat = enc.stem(inp)
    assert inp.is_contiguous(memory_format=torch.channels_last)
    assert feat.is_contiguous(memory_format=torch.channels_last) and feat.dtype == torch.bfloat16


@pytest.mark.gpu
def test_cuda_generation_is_deterministic_per_block():
    """Whole blocks per launch on the GPU: the same seed and count give the same set (two
    blocks, the last one short), with finite per-sample statistics."""
    import numpy as np

    from insarexplore.data.synthetic import generate

    a = generate(300, size=64, seed=2, device="cuda", progress=False)
    b = generate(300, size=64, seed=2, device="cuda", progress=False)
    np.testing.assert_array_equal(a.phase.values, b.phase.values)
    assert np.isfinite(a.snr.values).all() and np.isfinite(a.mean_coherence.values).all()
