"""Streaming model inputs from a data-model store for training and embedding.

``ChannelDataset`` is a torch ``Dataset`` over a lazily opened store (or an in-memory Dataset):
it reads whole storage chunks, converts them with ``ds.insar.to_channels()``, brings them down
to ``max_size`` (training views are small: a step should cost what its view costs, not what the
stored 224 px image costs) and keeps a few in a small per-worker LRU cache. When the whole set
at ``max_size`` fits in ``preload_bytes`` it is decoded once and kept in memory (float16). ``BlockShuffleSampler`` (a ``DistributedSampler``) shuffles
the order of chunks and the samples within a window of chunks, which keeps reads local while
still mixing the data; it shards across DDP ranks and can start mid-epoch for resuming.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler

from insarexplore.errors import InSARDataError

__all__ = [
    "BlockShuffleSampler",
    "ChannelDataset",
    "chunk_size_of",
    "open_source",
    "worker_context",
]


def worker_context() -> str:
    """Start method for DataLoader workers: ``forkserver`` (or ``spawn``), never ``fork``.

    Forking a process that has opened a Zarr store copies zarr's background event-loop thread
    in a dead state, and the forked workers then hang on their first read.
    """
    import multiprocessing as mp

    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def open_source(source: Any):  # -> xr.Dataset
    """An xarray Dataset from a Dataset, a store path, or a workspace (lazily opened)."""
    import xarray as xr

    import insarexplore.data  # noqa: F401  (registers ds.insar)
    from insarexplore.workspace import Workspace

    if isinstance(source, xr.Dataset):
        return source
    if isinstance(source, Workspace):
        return source.open_data(lazy=True)
    if isinstance(source, str | Path):
        path = Path(source)
        if (path / "workspace.json").exists():
            return Workspace.open(path).open_data(lazy=True)
        from insarexplore.data.io.store import open_dataset

        return open_dataset(path, lazy=True)
    raise TypeError(f"expected an xarray Dataset, a store path or a Workspace, got {type(source)}")


def chunk_size_of(ds, kind: str) -> int:
    """Samples per storage chunk of the pixel variable (256 for in-memory data)."""
    var = ds["phase" if kind == "phase" else "image"]
    chunks = getattr(var.data, "chunks", None)
    if chunks:
        return int(max(chunks[0]))
    enc = var.encoding.get("chunks") or var.encoding.get("preferred_chunks", {}).get("sample")
    if isinstance(enc, tuple | list) and enc:
        return int(enc[0])
    return 256


class ChannelDataset(Dataset):
    """Samples ``i -> float32 tensor (C, H, W)`` of ``ds.insar.to_channels(kind)``.

    ``source`` is a store path (opened lazily, once per worker process) or an xarray Dataset.
    ``indices`` restricts to a subset (positions in the store). ``kind`` defaults to the
    data's own kind. ``cache_chunks`` storage chunks stay decoded per worker.
    """

    def __init__(
        self,
        source: Any,
        *,
        indices: np.ndarray | None = None,
        kind: str | None = None,
        cache_chunks: int = 4,
        return_index: bool = False,
        max_size: int | None = None,
        preload_bytes: int = 2 << 30,
        progress: bool = False,
    ) -> None:
        self._path = None if not isinstance(source, str | Path) else Path(source)
        self._ds = None if self._path is not None else open_source(source)
        ds = self.ds
        if ds.sizes["sample"] == 0:
            raise InSARDataError(f"{source}: the dataset has no samples")
        self.kind = kind or ds.insar.kind
        if self.kind == "rgb" and "image" not in ds:
            raise InSARDataError(f"{source}: kind 'rgb' asked for but the data has no 'image'")
        self.n_total = int(ds.sizes["sample"])
        self.indices = np.arange(self.n_total) if indices is None else np.asarray(indices)
        self.chunk = chunk_size_of(ds, self.kind)
        self.cache_chunks = max(1, cache_chunks)
        self.return_index = return_index
        self.max_size = max_size
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._all: torch.Tensor | None = None  # every sample at max_size (float16), if preloaded
        self.shape = tuple(self._read_chunk(int(self.indices[0]) // self.chunk).shape[1:])
        if max_size is not None:
            per_sample = int(np.prod(self.shape)) * 2
            if self.n_total * per_sample <= preload_bytes:
                self._preload(progress)

    @property
    def ds(self):
        if self._ds is None:
            self._ds = open_source(self._path)
        return self._ds

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._path is not None:  # workers reopen the store lazily instead of pickling it
            state["_ds"] = None
        state["_cache"] = OrderedDict()
        return state

    def __len__(self) -> int:
        return len(self.indices)

    def _preload(self, progress: bool) -> None:
        """Decode every chunk once and keep the whole set at ``max_size`` in memory, so that
        the work of a training step follows the view size, not the stored size."""
        from tqdm.auto import tqdm

        n_chunks = -(-self.n_total // self.chunk)
        out = torch.empty((self.n_total, *self.shape), dtype=torch.float16)
        for c in tqdm(range(n_chunks), desc="preparing views", unit="chunk", disable=not progress):
            arr = self._read_chunk(c)
            out[c * self.chunk : c * self.chunk + len(arr)] = torch.from_numpy(arr)
        self._cache.clear()
        self._all = out

    def _reduce(self, arr: np.ndarray) -> np.ndarray:
        """A chunk of channels brought down to ``max_size`` (phasor-aware for phase)."""
        if self.max_size is None or max(arr.shape[-2:]) <= self.max_size:
            return arr
        from insarexplore.ssl.augment import resize_batch

        x = torch.from_numpy(arr)
        return resize_batch(x, self.max_size, phase=self.kind == "phase").numpy()

    def _read_chunk(self, c: int) -> np.ndarray:
        if c in self._cache:
            self._cache.move_to_end(c)
            return self._cache[c]
        part = self.ds.isel(sample=slice(c * self.chunk, min((c + 1) * self.chunk, self.n_total)))
        arr = self._reduce(part.insar.to_channels(self.kind))
        self._cache[c] = arr
        while len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return arr

    def __getitem__(self, i: int):
        pos = int(self.indices[i])
        if self._all is not None:
            x = self._all[pos].float()
        else:
            x = torch.from_numpy(self._read_chunk(pos // self.chunk)[pos % self.chunk].copy())
        return (x, i) if self.return_index else x


class BlockShuffleSampler(DistributedSampler):
    """Chunk-local shuffling, sharded over DDP ranks, restartable mid-epoch.

    Each epoch: shuffle the chunks (``block`` dataset items each), group ``window`` consecutive
    chunks, shuffle items within each group. The list is then cut to a multiple of
    ``world * batch_size`` so every rank takes the same number of full batches; rank ``r`` takes
    items ``r::world`` (as ``DistributedSampler`` does). ``set_epoch(epoch, start_batch)``
    skips the first batches of the epoch (resume).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        block: int = 256,
        window: int = 4,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
    ) -> None:
        from insarexplore.ssl.dist import get_rank, get_world_size

        super().__init__(
            dataset,
            num_replicas=num_replicas if num_replicas is not None else get_world_size(),
            rank=rank if rank is not None else get_rank(),
            shuffle=shuffle,
            seed=seed,
            drop_last=True,
        )
        self.batch_size, self.block, self.window = batch_size, max(1, block), max(1, window)
        n = len(dataset)  # type: ignore[arg-type]
        self.batches_per_epoch = n // (self.num_replicas * batch_size)
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"batch_size {batch_size} x {self.num_replicas} process(es) is larger than the "
                f"dataset ({n} samples): lower batch_size"
            )
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        self.start_batch = int(start_batch)

    def _order(self) -> np.ndarray:
        n = len(self.dataset)  # type: ignore[arg-type]
        if not self.shuffle:
            return np.arange(n)
        rng = np.random.default_rng([self.seed, self.epoch])
        blocks = [np.arange(s, min(s + self.block, n)) for s in range(0, n, self.block)]
        order = rng.permutation(len(blocks))
        parts = []
        for g in range(0, len(order), self.window):
            items = np.concatenate([blocks[b] for b in order[g : g + self.window]])
            parts.append(rng.permutation(items))
        return np.concatenate(parts)

    def __iter__(self) -> Iterator[int]:
        per_step = self.num_replicas * self.batch_size
        order = self._order()[: self.batches_per_epoch * per_step]
        order = order[self.start_batch * per_step :]
        return iter(order[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Full batches per epoch (what the sampler yields)."""
    return max(0, math.floor(n / (batch_size * world)))
