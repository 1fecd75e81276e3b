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
    assert len(shards[0]) == len(shards[1]) == 20  # small set: pieces below a chunk, none lost
    assert not set(shards[0]) & set(shards[1])


def test_sampler_shards_chunks_by_rank_and_stream(store):
    """Each rank reads only its own chunks; with streams, each DataLoader worker (batch i goes
    to worker i % streams) reads only its stream's chunks: a chunk is decoded once."""
    data = ChannelDataset(store)
    per_rank = []
    for r in range(2):
        s = BlockShuffleSampler(data, batch_size=2, block=2, window=2, seed=1,
                                num_replicas=2, rank=r, streams=2)  # fmt: skip
        assert s.streams == 2 and s.piece == 2
        s.set_epoch(4)
        batches = list(s.batches())
        assert len(batches) == s.batches_per_epoch == len(s) // 2 >= 4
        assert [i for b in batches for i in b] == list(s)
        workers = [{i // 2 for b in batches[w::2] for i in b} for w in range(2)]
        assert not workers[0] & workers[1]
        per_rank.append(workers[0] | workers[1])
    assert not per_rank[0] & per_rank[1]
    # the same order every time; another epoch deals the chunks again
    again = BlockShuffleSampler(data, batch_size=2, block=2, window=2, seed=1,
                                num_replicas=2, rank=0, streams=2)  # fmt: skip
    again.set_epoch(4)
    first = list(again)
    again.set_epoch(5)
    assert list(again) != first and len(list(again)) == len(first)
    # too few samples for streams: falls back to one stream
    small = BlockShuffleSampler(data, batch_size=16, block=8, num_replicas=1, rank=0, streams=4)
    assert small.streams == 1 and small.batches_per_epoch == 2


def test_getitems_fetches_a_batch_as_float16(store):
    from insarexplore.data.io.store import open_dataset

    want = torch.from_numpy(open_dataset(store).insar.to_channels())
    for data in (ChannelDataset(store), ChannelDataset(store, max_size=16)):
        got = data.__getitems__([3, 17, 9, 8])
        assert got.dtype == torch.float16 and got.shape == (4, 4, 16, 16)
        torch.testing.assert_close(got.float(), want[[3, 17, 9, 8]], atol=2e-3, rtol=1e-3)
    assert data._all is not None


def test_sampler_resumes_mid_epoch(store):
    data = ChannelDataset(store)
    one = BlockShuffleSampler(data, batch_size=4, block=8, window=2, seed=3, num_replicas=1, rank=0)
    one.set_epoch(1)
    order = list(one)
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
