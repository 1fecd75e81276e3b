"""Generate labelled synthetic Sentinel-1 interferograms as the insarexplore data model.

``generate(600, size=64)`` returns an ``xarray.Dataset`` with ``phase``, ``coherence``,
``displacement`` (line-of-sight deformation alone, metres, positive towards the satellite, the
ground truth), ``label`` and per-sample source parameters. Samples are made in fixed blocks of
:attr:`SyntheticConfig.block_size`, each with its own random stream derived from the seed, so a
seed and a count fully determine the set (on a given device type, which the set records in
``attrs["generator_device"]``) however it is chunked.

Pipeline per block: draw parameters and accept sources on a coarse grid (cheap, numpy); then in
cache-sized micro-batches on the torch device: sources on the output grid (Okada on a sub-grid
of the output grid when the source is deep enough for the field to be smooth at that scale,
then bicubic interpolation), line of sight, atmosphere screens by batched FFT, stratified delay,
ramps, coherence and coherence-consistent phase noise, no-data cuts.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from insarexplore.data.synthetic.config import METADATA_VARS, SyntheticConfig
from insarexplore.data.synthetic.parameters import CLASSES
from insarexplore.data.synthetic.pipeline import (
    _PIXEL_KEYS,
    empty_pixels,
    render_block,
    to_dataset,
)

__all__ = ["SyntheticConfig", "generate", "generate_to_zarr", "iter_blocks", "METADATA_VARS"]


def _device(device: Any) -> Any:
    import torch

    return torch.device("cpu") if device is None else torch.device(device)


def _single_thread(dev: Any) -> int:
    """Run CPU work on one torch thread; return the previous count to restore (0: unchanged).

    The pixel work comes in cache-sized pieces too small for intra-op threads to pay off, and on
    a loaded machine OpenMP threads waiting for busy cores slow every small op down by 10x or
    more. Parallelism across cores comes from generating whole blocks in several threads.
    """
    import torch

    if dev.type != "cpu" or torch.get_num_threads() == 1:
        return 0
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


def _workers(workers: int | None) -> int:
    """Number of generation threads: ``workers``, or one per usable CPU core when None."""
    if workers is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer; got {workers!r}")
    return int(workers)


def _config(config: SyntheticConfig | None, **overrides: Any) -> SyntheticConfig:
    given = {k: v for k, v in overrides.items() if v is not None}
    if config is None:
        return SyntheticConfig(**given)
    return replace(config, **given)


def iter_blocks(
    n: int,
    *,
    seed: int = 0,
    config: SyntheticConfig,
    device: Any = None,
    progress: bool = False,
    workers: int | None = None,
    blocks: Sequence[int] | None = None,
) -> Iterator[Any]:
    """Yield the set of ``n`` samples block by block as Datasets (bounded memory).

    ``workers`` > 1 makes blocks in that many threads (CPU; None: one per usable core); blocks
    come back in order and at most ``2 * workers`` are in flight, so the result and the memory
    bound are unchanged. ``blocks`` (indices, in order) yields only those blocks of the set,
    each the same as in the whole set (a block is seeded by its index).
    """
    for part in _iter_raw(n, seed=seed, config=config, device=device, progress=progress,
                          workers=workers, only=blocks):  # fmt: skip
        yield to_dataset([part], config, int(seed), device=_device(device).type)


def _iter_raw(
    n: int,
    *,
    seed: int,
    config: SyntheticConfig,
    device: Any,
    progress: bool,
    workers: int | None,
    dest: Callable[[int, int], dict[str, np.ndarray]] | None = None,
    only: Sequence[int] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Blocks as plain arrays, in order, optionally from worker threads.

    ``dest(start, count)``, called in this thread in block order, may give ``(count, size,
    size)`` float32 arrays per pixel variable for the block to be rendered into.
    """
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer; got {n!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    workers = _workers(workers)
    dev = _device(device)
    bs = config.block_size
    indices = range(math.ceil(n / bs)) if only is None else [int(b) for b in only]
    blocks = [(b, min(bs, n - b * bs)) for b in indices]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(c for _, c in blocks), desc="synthesising", unit="ifg")
    threads = _single_thread(dev)
    try:
        if workers == 1 or len(blocks) < 2 or dev.type != "cpu":
            for b, count in blocks:
                dst = None if dest is None else dest(b * bs, count)
                yield render_block(config, int(seed), b, count, dev, out=dst)
                if bar is not None:
                    bar.update(count)
            return
        from concurrent.futures import ThreadPoolExecutor

        # threads, not processes: torch and numpy release the GIL for the pixel work, and each
        # block writes straight into its destination (nothing is pickled or copied)
        with ThreadPoolExecutor(workers, thread_name_prefix="synthesis") as pool:
            todo = deque(blocks)
            running: deque = deque()
            while todo or running:
                while todo and len(running) < 2 * workers:
                    b, count = todo.popleft()
                    dst = None if dest is None else dest(b * bs, count)
                    running.append((count, pool.submit(render_block, config, int(seed), b, count, dev, dst)))  # fmt: skip
                count, fut = running.popleft()
                yield fut.result()
                if bar is not None:
                    bar.update(count)
    finally:
        if bar is not None:
            bar.close()
        if threads:
            import torch

            torch.set_num_threads(threads)


def _rows(arrays: dict[str, np.ndarray], lo: int, count: int) -> dict[str, np.ndarray]:
    """Views of rows ``lo .. lo + count`` of every array."""
    return {k: v[lo : lo + count] for k, v in arrays.items()}


def generate(
    n: int,
    *,
    size: int = 64,
    classes: Sequence[str] = CLASSES,
    difficulty: str = "medium",
    seed: int = 0,
    pixel_spacing_m: float = 100.0,
    device: Any = None,
    config: SyntheticConfig | None = None,
    progress: bool | None = None,
    workers: int | None = None,
    **options: Any,
) -> Any:
    """Make ``n`` labelled synthetic interferograms (classes balanced) as one Dataset.

    A ``config`` (:class:`SyntheticConfig`), when given, replaces ``size``, ``classes``,
    ``difficulty``, ``pixel_spacing_m`` and ``options``; ``options`` are further
    :class:`SyntheticConfig` fields (e.g. ``nodata_fraction=0``, ``looks``). ``device`` (e.g.
    "cuda") runs the pixel work in torch there; ``workers`` CPU threads make blocks in parallel
    (default: one per usable core; the result does not depend on it).
    A progress bar appears for sets larger than a few thousand samples.
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if config is None:
        classes = (classes,) if isinstance(classes, str) else tuple(classes)
        config = SyntheticConfig(size=size, classes=classes, difficulty=difficulty,
                                 pixel_spacing_m=pixel_spacing_m, **options)  # fmt: skip
    cfg = config
    show = progress if progress is not None else n > 4000
    shape = (n, cfg.size, cfg.size)
    pixels = {k: empty_pixels(shape) for k in _PIXEL_KEYS}
    parts = list(_iter_raw(n, seed=seed, config=cfg, device=device, progress=show,
                           workers=workers, dest=lambda lo, k: _rows(pixels, lo, k)))  # fmt: skip
    return to_dataset(parts, cfg, int(seed), pixels=pixels, device=_device(device).type)


_CHUNK_BUDGET = 256 << 20  # bytes of pixels in one chunk of generate_to_zarr


def _stream_chunk(chunk_size: int, size: int, block_size: int) -> int:
    """Samples per chunk of :func:`generate_to_zarr`: at most ``chunk_size``, and few enough
    that one chunk's pixel layers fit in 256 MiB (a whole number of blocks when that allows).

    The stream holds one chunk buffer, the blocks in flight and the compressed chunk, so the
    budget keeps peak memory near 1 GB at 224 px where 1,024-sample chunks would pass 2 GB.
    """
    per_sample = len(_PIXEL_KEYS) * size * size * 4
    fit = max(1, _CHUNK_BUDGET // per_sample)
    if fit >= chunk_size:
        return int(chunk_size)
    return fit - fit % block_size if fit >= block_size else fit


def generate_to_zarr(
    path: str | os.PathLike,
    n: int,
    *,
    chunk_size: int = 1024,
    seed: int = 0,
    device: Any = None,
    config: SyntheticConfig | None = None,
    progress: bool = True,
    workers: int | None = None,
    **kwargs: Any,
) -> Any:
    """Stream ``n`` samples into a new Zarr store in chunks of at most ``chunk_size`` samples.

    Chunks are smaller when ``chunk_size`` images would take more than 256 MiB (e.g. 256
    samples at 224 px), so memory stays bounded at any image size: about 1 GB at 128 and
    224 px. ``kwargs`` are the keyword arguments of :func:`generate` (size, classes,
    difficulty, pixel_spacing_m). The result is identical to ``generate`` with the same seed
    and count. Returns the store path.
    """
    from insarexplore.data.io.store import ZarrWriter

    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer; got {chunk_size!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    if config is None and isinstance(kwargs.get("classes"), (list, str)):
        c = kwargs["classes"]
        kwargs["classes"] = (c,) if isinstance(c, str) else tuple(c)
    cfg = config or _config(None, **kwargs)
    size, bs = cfg.size, cfg.block_size
    chunk_size = _stream_chunk(chunk_size, size, bs)
    # blocks render into reusable buffers (fresh memory is slow to touch) and are copied into
    # one reusable chunk buffer; the writer compresses a chunk while threads render the next
    chunk = {k: empty_pixels((min(chunk_size, n), size, size)) for k in _PIXEL_KEYS}
    spare: list[dict[str, np.ndarray]] = []
    lent: deque[dict[str, np.ndarray]] = deque()

    def dest(lo: int, count: int) -> dict[str, np.ndarray]:
        buf = spare.pop() if spare else {k: empty_pixels((bs, size, size)) for k in _PIXEL_KEYS}
        lent.append(buf)
        return _rows(buf, 0, count)

    meta: list[dict[str, np.ndarray]] = []
    held = 0
    kind = _device(device).type  # recorded in the store's attrs (generator_device)
    with ZarrWriter(path, chunk=chunk_size) as writer:
        blocks = _iter_raw(n, seed=seed, config=cfg, device=device, progress=progress,
                           workers=workers, dest=dest)  # fmt: skip
        for part in blocks:
            count, done = len(part["sample"]), 0
            while done < count:
                take = min(count - done, chunk_size - held)
                for k in _PIXEL_KEYS:
                    chunk[k][held : held + take] = part[k][done : done + take]
                meta.append({k: v[done : done + take] for k, v in part.items()
                             if k not in _PIXEL_KEYS})  # fmt: skip
                held, done = held + take, done + take
                if held == chunk_size:
                    writer.write(to_dataset(meta, cfg, int(seed), pixels=chunk, device=kind))
                    meta, held = [], 0
            spare.append(lent.popleft())
        if held:
            writer.write(
                to_dataset(meta, cfg, int(seed), pixels=_rows(chunk, 0, held), device=kind)
            )
    return path
