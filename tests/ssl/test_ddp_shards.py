"""Per-rank shares under DDP (gloo, 2 processes on CPU): each rank preloads only the samples its
sampler draws and makes only its slice of the physics bank; one process is unchanged."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

# the loop of ``train`` with recorders around the preload, the bank and chunk reads; each rank
# writes what it holds as .npy files and a JSON report
SCRIPT = """
import json, sys
import numpy as np
import insarexplore.ssl.physics as P
import insarexplore.ssl.train as T
from insarexplore.ssl import dist
from insarexplore.ssl.data import ChannelDataset

store, out = sys.argv[1], sys.argv[2]
seen = {"reads": 0, "blocks": []}
preload, bank, owned = ChannelDataset.preload, T.make_physics_bank, P._owned_blocks
read_chunk, with_physics = ChannelDataset._read_chunk, T.WithPhysics

def rec_preload(self, items=None, progress=False):
    preload(self, items, progress)
    seen["data"], seen["reads"] = self, 0  # chunk reads from here on: training reads

def rec_read(self, c):
    seen["reads"] += 1
    return read_chunk(self, c)

def rec_bank(*args, **kw):
    seen["bank"], seen["bank_args"] = bank(*args, **kw), [args, kw]
    return seen["bank"]

def rec_owned(*args):
    for b, part in owned(*args):
        seen["blocks"].append(b)
        yield b, part

def rec_model(*args, **kw):
    seen["model"] = with_physics(*args, **kw)
    return seen["model"]

ChannelDataset.preload, ChannelDataset._read_chunk = rec_preload, rec_read
T.make_physics_bank, P._owned_blocks, T.WithPhysics = rec_bank, rec_owned, rec_model
batches = []
cfg = T.PretrainConfig(steps=4, batch_size=8, image_size=24, physics_batch=64, log_every=1,
                       checkpoint_every=100, monitor_every=0, progress=False, tensorboard=False)
T.pretrain(store, cfg, out_dir=out)
r, data, b = dist.get_rank(), seen["data"], seen["bank"]
held = np.flatnonzero(data._row >= 0)
np.save(f"{out}_pos{r}.npy", held)
np.save(f"{out}_all{r}.npy", data._all.numpy())
np.save(f"{out}_bankx{r}.npy", b.x.numpy())
np.save(f"{out}_banky{r}.npy", b.y.numpy())
sampler = T.BlockShuffleSampler(data, batch_size=8, block=data.chunk, seed=0)
epoch = []
for e in range(3):
    sampler.set_epoch(e)
    epoch.append(sorted(sampler))
args, kw = seen["bank_args"]
kw = {k: v for k, v in kw.items() if k not in ("progress", "rank", "world")}
loss, acc = seen["model"].last_physics
report = {"reads": seen["reads"], "blocks": seen["blocks"], "start": b.start,
          "total": b.total, "bank_args": [list(args), kw], "epochs": epoch,
          "physics": [float(loss), float(acc)], "world": dist.get_world_size()}
with open(f"{out}_report{r}.json", "w") as fh:
    json.dump(report, fh)
"""


def _launch(tmp_path, store, nproc):
    script = tmp_path / "shards.py"
    script.write_text(textwrap.dedent(SCRIPT))
    out = tmp_path / f"run{nproc}"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_port=0", "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0",
           str(script), str(store), str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = []
    for r in range(nproc):
        rep = json.loads((tmp_path / f"run{nproc}_report{r}.json").read_text())
        for key in ("pos", "all", "bankx", "banky"):
            rep[key] = np.load(tmp_path / f"run{nproc}_{key}{r}.npy")
        ranks.append(rep)
    return out, ranks


@pytest.fixture
def store(tmp_path, make_toy):
    from insarexplore.data.io.store import save_dataset

    # 40 px stored, views of 24 px cut from the set brought down to 32 px
    return save_dataset(make_toy(64, size=40), tmp_path / "toy.zarr", chunk=4)


def _full_preload(store) -> np.ndarray:
    """The whole set at the views' source size, decoded as one process always preloaded it."""
    from insarexplore.ssl.data import ChannelDataset

    data = ChannelDataset(store, max_size=32)
    assert data._all is not None and len(data._all) == 64
    return data._all.numpy()


def _full_bank(rank_report):
    from insarexplore.ssl.physics import make_physics_bank

    args, kw = rank_report["bank_args"]
    return make_physics_bank(*args, **kw)


@pytest.mark.ddp
@pytest.mark.slow
def test_two_ranks_preload_and_make_only_their_share(tmp_path, store):
    """Two gloo ranks: each preloads half the samples (its sampler's chunks, no chunk read
    while training), the halves are disjoint and together the whole set as one process
    preloads it; over the ranks every sample comes once an epoch. Each rank makes one of the
    bank's two blocks and holds half the bank; the slices are disjoint and together the
    1-rank bank; the logged physics metrics are the mean over ranks."""
    run, (a, b) = _launch(tmp_path, store, 2)
    full = _full_preload(store)
    per_sample = full[0].nbytes
    for rank in (a, b):
        assert rank["world"] == 2 and len(rank["pos"]) == len(rank["all"]) == 32  # half of 64
        assert rank["all"].nbytes == 32 * per_sample  # 32 x 4 x 32 x 32 float16 = 256 KiB
        np.testing.assert_array_equal(rank["all"], full[rank["pos"]])
        assert rank["reads"] == 0  # training drew only preloaded samples
        chunks = rank["pos"] // 4  # whole chunks of 4 samples, every other one of the store
        assert len(set(chunks.tolist())) == 8 and (np.bincount(chunks)[chunks] == 4).all()
    assert not set(a["pos"].tolist()) & set(b["pos"].tolist())
    assert sorted(a["pos"].tolist() + b["pos"].tolist()) == list(range(64))
    for e in range(3):  # the same share every epoch, together every sample once
        assert a["epochs"][e] == a["pos"].tolist() and b["epochs"][e] == b["pos"].tolist()

    # bank: 4 steps x 64 bank images x 2 ranks = 512 images, two generator blocks of 256
    assert a["total"] == b["total"] == 512 and a["bank_args"] == b["bank_args"]
    assert a["blocks"] == [0] and b["blocks"] == [1]  # each rank renders one block
    assert (a["start"], b["start"]) == (0, 256)
    assert len(a["banky"]) == len(b["banky"]) == 256
    bank = _full_bank(a)
    np.testing.assert_array_equal(np.concatenate([a["bankx"], b["bankx"]]), bank.x.numpy())
    np.testing.assert_array_equal(np.concatenate([a["banky"], b["banky"]]), bank.y.numpy())
    assert set(a["banky"].tolist()) == set(b["banky"].tolist()) == set(bank.y.tolist())

    with (run / "metrics.csv").open() as fh:
        last = list(csv.DictReader(fh))[-1]
    assert int(last["step"]) == 4
    mean = np.mean([a["physics"], b["physics"]], axis=0)
    assert float(last["physics_loss"]) == pytest.approx(mean[0], rel=1e-5)
    assert float(last["physics_acc"]) == pytest.approx(mean[1], abs=1e-6)


@pytest.mark.ddp
@pytest.mark.slow
def test_one_rank_preloads_everything_and_the_whole_bank(tmp_path, store):
    """One process (torchrun, 1 rank): the preloaded tensor is the old full preload, the
    sampler draws from every sample, and the bank is the whole bank, rendered by the
    generator's own block loop."""
    _, (one,) = _launch(tmp_path, store, 1)
    assert one["world"] == 1
    np.testing.assert_array_equal(one["pos"], np.arange(64))
    np.testing.assert_array_equal(one["all"], _full_preload(store))
    assert one["reads"] == 0 and all(e == list(range(64)) for e in one["epochs"])
    assert one["total"] == 256 and one["start"] == 0 and one["blocks"] == [0]  # 4 x 64 x 1
    bank = _full_bank(one)
    np.testing.assert_array_equal(one["bankx"], bank.x.numpy())
    np.testing.assert_array_equal(one["banky"], bank.y.numpy())


def test_rank_shares_are_fixed_disjoint_whole_chunks():
    from insarexplore.ssl.data import rank_shares

    assert [s.tolist() for s in rank_shares(10, 4, 1)] == [list(range(10))]
    shares = rank_shares(70, 4, 2)  # 17 whole chunks and a short one, dealt in turn
    assert [len(s) for s in shares] == [36, 34]
    assert sorted(np.concatenate(shares).tolist()) == list(range(70))
    assert {i // 4 for i in shares[0]} == set(range(0, 18, 2))
    assert {i // 4 for i in shares[1]} == set(range(1, 18, 2))
    small = rank_shares(20, 8, 2)  # fewer than 4 chunks per rank: pieces of 20 // 8 = 2
    assert [s.tolist() for s in small] == [
        [0, 1, 4, 5, 8, 9, 12, 13, 16, 17],
        [2, 3, 6, 7, 10, 11, 14, 15, 18, 19],
    ]


def test_samplers_of_ranks_cover_the_set_every_epoch_from_fixed_shares(make_toy):
    from insarexplore.ssl.data import BlockShuffleSampler, ChannelDataset

    data = ChannelDataset(make_toy(96, size=8))
    for streams in (1, 2):
        kw = dict(batch_size=4, block=4, window=2, seed=2, num_replicas=3, streams=streams)
        samplers = [BlockShuffleSampler(data, rank=r, **kw) for r in range(3)]
        assert len({s.batches_per_epoch for s in samplers}) == 1
        orders = []
        for epoch in (0, 1):
            seen = []
            for s in samplers:
                s.set_epoch(epoch)
                got = list(s)
                assert set(got) <= set(s.share.tolist())
                seen += got
            assert sorted(seen) == list(range(96))  # 96 = 3 ranks x 8 chunks of 4
            orders.append(seen)
        assert orders[0] != orders[1]  # a new shuffle each epoch, within the same shares


def test_partial_preload_keeps_only_the_items_and_reads_the_rest(tmp_path, make_toy):
    from insarexplore.data.io.store import save_dataset
    from insarexplore.ssl.data import ChannelDataset

    store = save_dataset(make_toy(24, size=16), tmp_path / "t.zarr", chunk=4)
    full = ChannelDataset(store, max_size=16)
    part = ChannelDataset(store, max_size=16, preload=False)
    assert part._all is None and part.fits(24) and not part.fits(10**9)
    part.preload(np.array([5, 4, 6, 7, 16, 17, 18, 19, 2]))
    assert len(part._all) == 9 and part._all.nbytes == 9 * full._all[0].nbytes
    torch.testing.assert_close(part._all, full._all[[2, 4, 5, 6, 7, 16, 17, 18, 19]])
    items = [17, 0, 5, 23, 2]  # 0 and 23 are not preloaded: read by chunk
    torch.testing.assert_close(part.__getitems__(items), full.__getitems__(items), rtol=0, atol=0)
    streamed = ChannelDataset(store, max_size=16, preload=False)
    for i in items:  # one sample: float32, from memory or as read
        torch.testing.assert_close(part[i], (full if i in (17, 5, 2) else streamed)[i])


def test_bank_slices_are_the_whole_bank_at_their_rows():
    from insarexplore.ssl.physics import bank_slice, make_physics_bank

    kw = dict(kind="rgb", coherence=False, stored_size=20, seed=5)
    whole = make_physics_bank(300, 16, **kw)  # two blocks: 256 and 44
    parts = [make_physics_bank(300, 16, rank=r, world=3, **kw) for r in range(3)]
    assert [len(p) for p in parts] == [100, 100, 100] and [p.start for p in parts] == [0, 100, 200]
    assert [bank_slice(300, r, 3) for r in range(3)] == [(0, 100), (100, 200), (200, 300)]
    assert torch.equal(torch.cat([p.x for p in parts]), whole.x)
    assert torch.equal(torch.cat([p.y for p in parts]), whole.y)
    assert torch.equal(torch.cat([p.z for p in parts]), whole.z)  # the regression targets too
    assert whole.start == 0 and whole.total == 300 == parts[1].total
    with pytest.raises(ValueError, match="rank"):
        make_physics_bank(300, 16, rank=3, world=3, **kw)
