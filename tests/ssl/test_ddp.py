"""Distributed pretraining on CPU with gloo, launched by torchrun (2 processes)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = [pytest.mark.ddp, pytest.mark.slow]

# augmentations off (identity crop) and GroupNorm: one process with batch 16 and two with
# batch 8 each then compute exactly the same thing, so the loss curves must agree
EXACT = dict(
    crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, rot90=False, offset=False,
    atmosphere_p=0.0, noise_p=0.0, decorrelation_p=0.0, cutout_p=0.0,
)  # fmt: skip

SCRIPT = """
import sys, torch
from insarexplore.ssl import dist
from insarexplore.ssl.losses import NTXentLoss
from insarexplore.ssl.train import PretrainConfig, pretrain

store, out, batch, augment = sys.argv[1], sys.argv[2], int(sys.argv[3]), eval(sys.argv[4])
dist.init_distributed()
# 1) NT-Xent with gathered negatives equals the loss of the whole batch on one process
g = torch.Generator().manual_seed(0)
z1, z2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
r, w = dist.get_rank(), dist.get_world_size()
a = z1[r * 4:(r + 1) * 4].clone().requires_grad_(True) if w > 1 else z1.clone().requires_grad_(True)
b = z2[r * 4:(r + 1) * 4].clone().requires_grad_(True) if w > 1 else z2.clone().requires_grad_(True)
loss = NTXentLoss(0.3)(a, b)
(loss / w).backward()  # DDP averages gradients over ranks; mimic it
torch.save({"loss": float(dist.all_reduce_mean(loss.detach())), "ga": a.grad, "gb": b.grad},
           f"{out}_grad{r}.pt")
# 2) the real loop
cfg = PretrainConfig(steps=6, batch_size=batch, norm="group", log_every=1, checkpoint_every=3,
                     monitor_every=0, progress=False, tensorboard=False, augment=augment, lr=2e-3)
pretrain(store, cfg, out_dir=out)
dist.cleanup_distributed()
"""


def _losses(run) -> np.ndarray:
    with (run / "metrics.csv").open() as fh:
        return np.array([float(r["loss"]) for r in csv.DictReader(fh)])


def _launch(tmp_path, store, name, nproc, batch, augment):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / name
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0",
           str(script), str(store), str(out), str(batch), repr(augment)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def test_ddp_matches_single_process(tmp_path, make_toy):
    import torch

    from insarexplore.data.io.store import save_dataset

    store = save_dataset(make_toy(64), tmp_path / "toy.zarr", chunk=16)
    single = _launch(tmp_path, store, "single", 1, 16, EXACT)
    double = _launch(tmp_path, store, "double", 2, 8, EXACT)
    one = torch.load(f"{single}_grad0.pt")
    parts = [torch.load(f"{double}_grad{r}.pt") for r in range(2)]
    assert parts[0]["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert torch.allclose(torch.cat([p["ga"] for p in parts]), one["ga"], atol=1e-6)
    assert torch.allclose(torch.cat([p["gb"] for p in parts]), one["gb"], atol=1e-6)
    l1, l2 = _losses(single), _losses(double)
    assert len(l1) == len(l2) == 6
    np.testing.assert_allclose(l2, l1, rtol=2e-3)
    assert (double / "encoder.pt").exists() and not (double / "tensorboard").exists()
