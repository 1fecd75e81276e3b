"""Streaming model inputs from a data-model store for training and embedding.

``ChannelDataset`` is a torch ``Dataset`` over a lazily opened store (or an in-memory Dataset):
it reads whole storage chunks, converts them with ``ds.insar.to_channels()``, brings them down
to ``max_size`` (training views are small: a step should cost what its view costs, not what the
stored 224 px image costs) and keeps a few in a small per-worker LRU cache. When the set at
``max_size`` fits in ``preload_bytes`` it is decoded once and kept in memory (float16); under
DDP each rank keeps only its own share (``ChannelDataset.preload(items)``).
``BlockShuffleSampler`` (a ``DistributedSampler``) shuffles the order of chunks and the samples
within a window of chunks, which keeps reads local while still mixing the data; it gives each
DDP rank a share of the chunks that is fixed for the whole run (``rank_shares``) and can start
mid-epoch for resuming.
"""

from __future__ import annotations

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
    "BatchSampler",
    "BlockShuffleSampler",
    "ChannelDataset",
    "collate_batch",
    "chunk_size_of",
    "open_source",
    "rank_shares",
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
    data's own kind. ``cache_chunks`` storage chunks stay decoded per worker. With ``max_size``
    and ``preload`` every stored sample is decoded once and kept in memory when they fit in
    ``preload_bytes``; ``preload=False`` leaves it to a later :meth:`preload` of the items a
    process will draw (a DDP rank's share). Items that are not preloaded are read by chunk.
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
        preload: bool = True,
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
        self.preload_bytes = preload_bytes
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._all: torch.Tensor | None = None  # preloaded samples at max_size (float16)
        self._row: np.ndarray | None = None  # store position -> row of _all (-1: not preloaded)
        self.shape = tuple(self._read_chunk(int(self.indices[0]) // self.chunk).shape[1:])
        if preload and self.fits(self.n_total):
            self.preload(progress=progress)

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

    def fits(self, n: int) -> bool:
        """Whether ``n`` samples at ``max_size`` (float16) fit in ``preload_bytes``."""
        return self.max_size is not None and n * int(np.prod(self.shape)) * 2 <= self.preload_bytes

    def preload(self, items: np.ndarray | None = None, progress: bool = False) -> None:
        """Decode the chunks that hold ``items`` (dataset items; None: every stored sample)
        once and keep those samples at ``max_size`` in memory, so that the work of a training
        step follows the view size, not the stored size. Reads take whole chunks, about 256
        samples at a time; a DDP rank passes its sampler's share and decodes only its chunks.
        """
        from tqdm.auto import tqdm

        if items is None:
            pos = np.arange(self.n_total)
        else:
            pos = np.unique(self.indices[np.asarray(items, dtype=np.int64)])
        out = torch.empty((len(pos), *self.shape), dtype=torch.float16)
        row = np.full(self.n_total, -1, dtype=np.int64)
        row[pos] = np.arange(len(pos))
        per_read = max(1, 256 // self.chunk)  # chunks per read
        chunks = np.unique(pos // self.chunk)
        # reads of up to per_read consecutive chunks
        cuts = np.flatnonzero(np.diff(chunks) != 1) + 1
        reads = [
            run[i : i + per_read]
            for run in np.split(chunks, cuts)
            for i in range(0, len(run), per_read)
        ]
        bar = tqdm(total=len(pos), desc="preparing views", unit="img", disable=not progress)
        with bar:
            for read in reads:
                lo = int(read[0]) * self.chunk
                hi = min((int(read[-1]) + 1) * self.chunk, self.n_total)
                part = self.ds.isel(sample=slice(lo, hi))
                arr = self._reduce(part.insar.to_channels(self.kind))
                mine = pos[(pos >= lo) & (pos < hi)]
                if len(mine) == hi - lo:
                    out[row[lo] : row[lo] + len(arr)] = torch.from_numpy(arr)
                else:
                    out[torch.from_numpy(row[mine])] = torch.from_numpy(arr[mine - lo]).half()
                bar.update(len(mine))
        self._cache.clear()
        self._all, self._row = out, row

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
        r = -1 if self._row is None else int(self._row[pos])
        if r >= 0:
            x = self._all[r].float()  # type: ignore[index]
        else:
            x = torch.from_numpy(self._read_chunk(pos // self.chunk)[pos % self.chunk].copy())
        return (x, i) if self.return_index else x

    def __getitems__(self, items: list[int]):
        """A whole batch: ``(B, C, H, W)`` float16 (compact for the host-to-device copy; the
        training loop converts on the device), each storage chunk read once per batch."""
        if self.return_index:
            return [self[i] for i in items]
        pos = self.indices[np.asarray(items, dtype=np.int64)]
        out = torch.empty((len(pos), *self.shape), dtype=torch.float16)
        todo = np.arange(len(pos))
        if self._all is not None and self._row is not None:
            rows = self._row[pos]
            have = rows >= 0
            if have.all():
                return self._all[torch.from_numpy(rows)]
            out[torch.from_numpy(np.flatnonzero(have))] = self._all[torch.from_numpy(rows[have])]
            todo = np.flatnonzero(~have)
        chunks = pos[todo] // self.chunk
        for c in np.unique(chunks):
            rows = todo[chunks == c]
            arr = self._read_chunk(int(c))
            out[torch.from_numpy(rows)] = torch.from_numpy(arr[pos[rows] % self.chunk]).half()
        return out


def rank_shares(n: int, block: int, world: int) -> list[np.ndarray]:
    """The items each of ``world`` DDP ranks draws from, the same in every epoch (sorted).

    Pieces of ``block`` items (smaller when the set has fewer than 4 blocks per rank) are dealt
    out to the ranks in turn, so that each rank reads, and keeps in memory, only its own chunks
    and its share spans the whole store. One rank: every item.
    """
    if world <= 1:
        return [np.arange(n)]
    block = max(1, block)
    unit = block if n // block >= 4 * world else max(1, n // (4 * world))
    starts = np.arange(0, n, unit)
    shares = []
    for r in range(world):
        mine = [np.arange(s, min(s + unit, n)) for s in starts[r::world]]
        shares.append(np.concatenate(mine) if mine else np.empty(0, dtype=np.int64))
    return shares


class BlockShuffleSampler(DistributedSampler):
    """Chunk-local shuffling, sharded by chunk over DDP ranks, restartable mid-epoch.

    Each rank draws from its own share of the chunks (``block`` dataset items each), fixed for
    the run (:func:`rank_shares`): no chunk is decoded by two ranks, and a preloaded rank keeps
    only its share in memory; over the ranks every item is seen once per epoch. Each epoch a
    rank shuffles the order of its chunks, groups ``window`` of them and shuffles the items
    within each group. With ``streams`` S > 1 (the number of DataLoader workers) a rank's
    chunks are dealt to S streams and the batches taken from the streams in turn: the loader
    hands batch ``i`` to worker ``i % S``, so each worker reads only the chunks of its stream
    and every chunk is decoded once per epoch, not once per worker. When there are fewer chunks
    than ranks x streams, the pieces dealt out are smaller than a chunk. Every rank yields
    ``batches_per_epoch`` full batches. ``set_epoch(epoch, start_batch)`` skips the first
    batches of the epoch (resume). Iterating yields item indices (``batch_size`` consecutive
    ones form a batch); ``batches()`` yields the batches as lists; ``share`` holds the items
    this rank draws from.
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
        streams: int = 1,
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
        shares = rank_shares(n, self.block, self.num_replicas)
        self.share = shares[self.rank]
        sizes = [len(s) for s in shares]
        self.streams = 1
        for s in sorted({max(1, int(streams)), 1}, reverse=True):
            self.streams = s
            self._layout(sizes)
            if self.batches_per_epoch >= 1:
                break
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"batch_size {batch_size} x {self.num_replicas} process(es) is larger than the "
                f"dataset ({n} samples): lower batch_size"
            )
        self.start_batch = 0

    def _layout(self, sizes: list[int]) -> None:
        """Piece size of this rank's share and batches per stream (``sizes``: every rank's
        share): every stream of every rank gets at least ``floor(pieces / streams)`` pieces of
        its share, one of which may be the short last piece; all ranks yield as many batches."""
        lanes = self.streams
        # whole chunks when each lane gets several (large sets); else smaller pieces, so that
        # a small set does not lose most of a chunk per lane to the equal-length cut
        few = 1 if lanes == 1 else 4

        def cut(m: int) -> tuple[int, int]:  # (piece size, items of the poorest stream)
            piece = self.block if m // self.block >= few * lanes else max(1, m // (few * lanes))
            pieces = -(-m // piece)
            short = pieces * piece - m
            return piece, (pieces // lanes) * piece - short

        cuts = [cut(m) for m in sizes]
        self.piece = cuts[self.rank][0]
        self.per_stream = max(0, min(least for _, least in cuts)) // self.batch_size
        self.batches_per_epoch = self.per_stream * self.streams

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        self.start_batch = int(start_batch)

    def _stream(self, rng: np.random.Generator, pieces: list[np.ndarray]) -> np.ndarray:
        parts = [
            rng.permutation(np.concatenate(pieces[g : g + self.window]))
            for g in range(0, len(pieces), self.window)
        ]
        return np.concatenate(parts)[: self.per_stream * self.batch_size]

    def _batches(self) -> np.ndarray:
        """This rank's batches of the epoch: (batches_per_epoch, batch_size) item indices."""
        b, lanes, share = self.batch_size, self.streams, self.share
        if not self.shuffle:
            return share[: self.batches_per_epoch * b].reshape(-1, b)
        # one process keeps its historical stream; ranks shuffle independently of each other
        key = [self.seed, self.epoch] + ([self.rank] if self.num_replicas > 1 else [])
        rng = np.random.default_rng(key)
        pieces = [share[s : s + self.piece] for s in range(0, len(share), self.piece)]
        order = rng.permutation(len(pieces))
        streams = []
        for s in range(lanes):
            mine = [pieces[p] for p in order[s::lanes]]
            streams.append(self._stream(rng, mine).reshape(self.per_stream, b))
        # batch i comes from stream i % S (the DataLoader worker that fetches it)
        return np.stack(streams, axis=1).reshape(-1, b)

    def batches(self) -> Iterator[list[int]]:
        for batch in self._batches()[self.start_batch :]:
            yield batch.tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self._batches()[self.start_batch :].reshape(-1).tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class BatchSampler:
    """The batches of a :class:`BlockShuffleSampler`, for ``DataLoader(batch_sampler=...)``:
    the dataset then fetches a whole batch at once (``ChannelDataset.__getitems__``)."""

    def __init__(self, sampler: BlockShuffleSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        return self.sampler.batches()

    def __len__(self) -> int:
        return self.sampler.batches_per_epoch - self.sampler.start_batch


def collate_batch(batch: Any) -> Any:
    """DataLoader collate: a batch fetched as one tensor passes through as it is."""
    if isinstance(batch, torch.Tensor):
        return batch
    from torch.utils.data import default_collate

    return default_collate(batch)
