"""Streaming model inputs from a store: chunk-local shuffling, sharding, resume, workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from insarexplore.errors import InSARDataError
from insarexplore.ssl.data import BlockShuffleSampler, ChannelDataset, worker_context


@pytest.fixture
def store(tmp_path, make_toy):
    from insarexplore.data.io.store import save_dataset

    return save_dataset(make_toy(40, size=16), tmp_path / "toy.zarr", chunk=8)


def test_dataset_reads_by_chunk_like_to_channels(store):
    from insarexplore.data.io.store import open_dataset

    data = ChannelDataset(store)
    assert (
        data.kind == "phase" and data.chunk == 8 and len(data) == 40 and data.shape == (4, 16, 16)
    )
    want = open_dataset(store).insar.to_channels()
    for i in (0, 7, 8, 39, 3):
        assert torch.equal(data[i], torch.from_numpy(want[i]))
    assert len(data._cache) <= data.cache_chunks
    sub = ChannelDataset(store, indices=np.array([5, 30]), return_index=True)
    x, j = sub[1]
    assert j == 1 and torch.equal(x, torch.from_numpy(want[30]))


def test_dataset_kind_errors(make_toy):
    with pytest.raises(InSARDataError, match="no 'image'"):
        ChannelDataset(make_toy(6), kind="rgb")


def test_sampler_covers_shards_and_resumes(store):
    data = ChannelDataset(store)
    one = BlockShuffleSampler(data, batch_size=4, block=8, window=2, seed=3, num_replicas=1, rank=0)
    one.set_epoch(1)
    order = list(one)
    assert sorted(order) == list(range(40)) and order != list(range(40))
    # chunk-local: each window of two chunks (16 items) holds items from two chunks only
    assert all(len({i // 8 for i in order[s : s + 16]}) <= 2 for s in range(0, 32, 16))
    shards = []
    for r in range(2):
        s = BlockShuffleSampler(
            data, batch_size=4, block=8, window=2, seed=3, num_replicas=2, rank=r
        )
        s.set_epoch(1)
        shards.append(list(s))
    assert len(shards[0]) == len(shards[1]) == 20  # 40 // (2 * 4) = 5 batches of 4 each
    assert not set(shards[0]) & set(shards[1])
    # global batch k of the 2-rank run = batch k of a 1-process run with batch 8
    single = BlockShuffleSampler(
        data, batch_size=8, block=8, window=2, seed=3, num_replicas=1, rank=0
    )
    single.set_epoch(1)
    assert sorted(shards[0][:4] + shards[1][:4]) == sorted(list(single)[:8])
    one.set_epoch(1, start_batch=3)
    assert list(one) == order[12:] and len(one) == len(order) - 12
    with pytest.raises(ValueError, match="lower batch_size"):
        BlockShuffleSampler(data, batch_size=64, num_replicas=1, rank=0)


@pytest.mark.slow
def test_dataloader_workers_read_everything(store):
    """Worker processes (forkserver: a forked zarr reader would hang) read every sample."""
    data = ChannelDataset(store, return_index=True)
    sampler = BlockShuffleSampler(data, batch_size=5, block=8, seed=0, num_replicas=1, rank=0)
    loader = DataLoader(
        data, batch_size=5, sampler=sampler, num_workers=2, multiprocessing_context=worker_context()
    )
    seen = torch.cat([idx for _, idx in loader])
    assert sorted(seen.tolist()) == list(range(40))
