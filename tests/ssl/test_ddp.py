"""Distributed pretraining on CPU with gloo, launched by torchrun (2 processes)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.ddp, pytest.mark.slow]

SCRIPT = """
import copy, json, os, signal, sys, time, torch
from insarexplore.ssl import dist
from insarexplore.ssl.losses import NTXentLoss
from insarexplore.ssl.train import PretrainConfig, prepare_model, pretrain, setup_device

store, out, part = sys.argv[1], sys.argv[2], sys.argv[3]
device = setup_device("cpu")
r, w = dist.get_rank(), dist.get_world_size()
assert w == 1 or torch.distributed.get_backend() == "gloo"
report = {}
if part == "steps":
    # 1) NT-Xent with gathered negatives equals the loss of the whole batch on one process
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    sl = slice(r * 4, (r + 1) * 4) if w > 1 else slice(None)
    a, b = z1[sl].clone().requires_grad_(True), z2[sl].clone().requires_grad_(True)
    loss = NTXentLoss(0.3)(a, b)
    (loss / w).backward()  # DDP averages gradients over ranks; mimic it
    report["ntxent"] = {"loss": float(dist.all_reduce_mean(loss.detach())),
                        "ga": a.grad.tolist(), "gb": b.grad.tolist()}
    # 2) one step of the default encoder (batch norm) under DDP = one process on both halves
    from insarexplore.models import build_encoder
    from insarexplore.ssl.methods import build_method
    for method in ("simclr", "moco"):
        torch.manual_seed(0)
        enc = build_encoder("resnet-micro", 4, phase_input="gradient")
        kw = {"queue_size": 64} if method == "moco" else {}
        model = build_method(method, enc, proj_dim=16, hidden_dim=32, **kw)
        cfg = PretrainConfig(method=method, norm="batch")
        model, train_model = prepare_model(model, cfg, device)
        if w > 1:
            assert train_model.broadcast_buffers == (method != "moco")
        g = torch.Generator().manual_seed(1)
        x1, x2 = torch.rand(16, 4, 32, 32, generator=g), torch.rand(16, 4, 32, 32, generator=g)
        sl = slice(r * 8, (r + 1) * 8) if w > 1 else slice(None)
        loss = train_model(x1[sl], x2[sl])
        loss.backward()
        grads = {n: p.grad.flatten()[:50].tolist() for n, p in model.named_parameters()
                 if p.grad is not None}
        bn = model.encoder.stem[1]
        report[method] = {"loss": float(dist.all_reduce_mean(loss.detach())), "grads": grads,
                          "running_mean": bn.running_mean.tolist()}
    # 3) the budget refit agrees on the smallest total over ranks
    from insarexplore.ssl.schedule import Plan, refit
    plan = Plan(100, 0.05, 0.01)
    refit(plan, 1.0, 0.5, 1, 0.1 if r == 0 else 0.05, device)
    report["refit_total"] = plan.total
    # 4) ranks read disjoint chunks
    from insarexplore.ssl.data import BlockShuffleSampler, ChannelDataset
    data = ChannelDataset(store)
    sampler = BlockShuffleSampler(data, batch_size=4, block=data.chunk, seed=0)
    sampler.set_epoch(2)
    chunks = sorted({i // data.chunk for i in sampler})
    everyone = [None] * w
    if w > 1:
        torch.distributed.all_gather_object(everyone, chunks)
    else:
        everyone = [chunks]
    report["chunks"] = everyone
    del model, train_model, loss  # as a program would leave them: out of scope
elif part in ("loop", "interrupted", "resume"):
    steps = 6
    def stop_at_4(info):  # Ctrl-C reaching one rank only (torchrun's reach each at any point)
        if part == "interrupted" and info["step"] == 4 and r == w - 1:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)  # the handler runs here, in the main thread, before the step ends
    cfg = PretrainConfig(steps=steps, batch_size=8, log_every=1, checkpoint_every=3,
                         monitor_every=0, progress=False, tensorboard=False, lr=2e-3)
    try:
        pretrain(store, cfg, out_dir=out, on_step=stop_at_4)
    except KeyboardInterrupt:
        report["interrupted"] = True
with open(f"{out}_{part}{r}.json", "w") as fh:
    json.dump(report, fh)
dist.cleanup_distributed()
"""


def _torchrun(nproc: int, *args: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=nproc ARGS`` on CPU; every rank exits 0 and none aborts."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0", *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "terminate called" not in res.stderr, res.stderr[-3000:]
    return res


def _launch(tmp_path, store, name, nproc, part):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / name
    _torchrun(nproc, str(script), str(store), str(out), part)
    return out, [
        json.loads((tmp_path / f"{name}_{part}{r}.json").read_text()) for r in range(nproc)
    ]


@pytest.fixture
def store(tmp_path, make_toy):
    from insarexplore.data.io.store import save_dataset

    return save_dataset(make_toy(64), tmp_path / "toy.zarr", chunk=4)


def test_ddp_steps_match_one_process(tmp_path, store):
    """Gathered NT-Xent, and one SimCLR / MoCo step of the default (batch-norm) encoder: two
    gloo ranks on halves of a batch give the gradients and batch-norm statistics of one process
    on the whole batch (global batch norm); the refit takes the smallest total; the ranks'
    samplers read disjoint chunks."""
    _, (one,) = _launch(tmp_path, store, "single", 1, "steps")
    _, parts = _launch(tmp_path, store, "double", 2, "steps")
    a, b = parts
    assert a["ntxent"]["loss"] == pytest.approx(one["ntxent"]["loss"], rel=1e-5)
    for key in ("ga", "gb"):
        np.testing.assert_allclose(a["ntxent"][key] + b["ntxent"][key], one["ntxent"][key],
                                   atol=1e-6)  # fmt: skip
    for method in ("simclr", "moco"):
        assert a[method]["loss"] == pytest.approx(one[method]["loss"], rel=1e-4)
        for name, g in one[method]["grads"].items():
            np.testing.assert_allclose(a[method]["grads"][name], g, rtol=1e-3, atol=1e-5,
                                       err_msg=f"{method} {name}")  # fmt: skip
            assert a[method]["grads"][name] == b[method]["grads"][name]
        np.testing.assert_allclose(a[method]["running_mean"], one[method]["running_mean"],
                                   rtol=1e-4, atol=1e-6)  # fmt: skip
    assert a["refit_total"] == b["refit_total"] == 6  # 1 + 0.5 s / 0.1 s, not 0.5 / 0.05
    c0, c1 = a["chunks"]
    assert c0 and c1 and not set(c0) & set(c1) and a["chunks"] == b["chunks"]


def _losses(run) -> list[dict]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_ddp_loop_runs_and_resumes_on_fewer_ranks(tmp_path, store):
    """The loop with global batch norm on 2 ranks; a 2-rank run whose last rank alone gets
    Ctrl-C (SIGINT) at step 4 stops on every rank at that step, checkpoints, and resumes on 1
    process (each rank saved its own RNG state) and finishes."""
    run, _ = _launch(tmp_path, store, "loop", 2, "loop")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done" and meta["steps"] == 6 and meta["world_size"] == 2
    rows = _losses(run)
    assert len(rows) == 6 and all(np.isfinite(float(r["loss"])) for r in rows)
    run, reports = _launch(tmp_path, store, "res", 2, "interrupted")
    assert all(r.get("interrupted") for r in reports)
    import torch

    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 2
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    _launch(tmp_path, store, "res", 1, "resume")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "done" and meta["steps"] == 6 and meta["world_size"] == 1
    assert [int(r["step"]) for r in _losses(run)] == [1, 2, 3, 4, 5, 6]


def test_cli_pretrain_under_torchrun_says_once_and_leaves_cleanly(tmp_path):
    """``torchrun -m insarexplore.cli pretrain``: both ranks exit 0 (each leaves its process
    group), the model becomes the workspace's current one and the closing line is said once."""
    from insarexplore import cli

    ws = tmp_path / "ws"
    assert cli.main(["synth", str(ws), "-n", "32", "--size", "32"]) == 0
    res = _torchrun(2, "-m", "insarexplore.cli", "pretrain", str(ws), "--steps", "3",
                    "--batch-size", "8", "--device", "cpu", "--no-monitor")  # fmt: skip
    said = (res.stdout + res.stderr).count("is now the workspace's current model")
    assert said == 1
    current = json.loads((ws / "workspace.json").read_text()).get("current_model")
    assert current and (ws / "models" / current / "encoder.pt").exists()


def test_outside_a_process_group_ctrl_c_raises_as_usual():
    """One process: the collective interrupt leaves SIGINT alone and its check does nothing."""
    from insarexplore.ssl import dist

    # A shell's background job starts with SIGINT ignored; the test wants Python's usual handler.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = signal.getsignal(signal.SIGINT)
        with dist.CollectiveInterrupt() as interrupt:
            assert not interrupt.active and signal.getsignal(signal.SIGINT) is before
            interrupt.check(1)
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)  # the default handler raises here
        assert signal.getsignal(signal.SIGINT) is before
    finally:
        signal.signal(signal.SIGINT, inherited)
