"""Streaming ingestion into a Zarr store with bounded memory: image folders, LiCSAR, Hephaestus.

Archives of 10,000+ files do not fit in memory as one Dataset. These functions read them in
chunks (decoding in parallel for images), write each chunk to the store as it is ready, and
return an :class:`IngestReport` with the skipped files and the speed. The store is written
atomically ("w"/"w-": it appears only once complete) or appended to ("a").
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import zarr

from insarexplore.data.io._batch import (
    batches,
    check_options,
    collect_files,
    common_size,
    default_workers,
    submit_files,
    target_size,
    to_dataset,
)
from insarexplore.data.io._common import SkipLog, ingested_before, nothing_read
from insarexplore.data.io.geotiff import find_licsar_pairs, iter_licsar
from insarexplore.data.io.images import Labels, list_image_files
from insarexplore.data.io.store import ZarrWriter, append_dataset
from insarexplore.data.schema import concat
from insarexplore.errors import InSARDataError

__all__ = ["IngestReport", "ingest_hephaestus", "ingest_image_folder", "ingest_licsar"]


def _open_store(store_path: str | Path, mode: str, chunk_size: int) -> Path:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    if mode not in ("w-", "w", "a"):
        raise ValueError(f"mode must be 'w-', 'w' or 'a'; got {mode!r}")
    store = Path(store_path)
    if mode == "w-" and store.exists():
        raise InSARDataError(f"{store} already exists (pass mode='w' to replace, 'a' to append)")
    return store


def _finish(store: Path, mode: str, skipped: SkipLog, **attrs: object) -> None:
    """Record the skipped files (appended to earlier ones in mode "a") in the store's attrs."""
    group = zarr.open_group(str(store), mode="r+")
    previous = json.loads(group.attrs.get("skipped", "[]")) if mode == "a" else []
    group.attrs["skipped"] = json.dumps(previous + skipped.entries)
    group.attrs.update(attrs)


@dataclass
class IngestReport:
    """What :func:`ingest_image_folder` did: counts, skipped files and why, speed."""

    store_path: str
    n_files: int
    n_written: int
    skipped: list[dict[str, str]]
    size: tuple[int, int]
    seconds: float
    executor: str
    workers: int
    #: files not read because their sample ids were in ``skip_ids`` (ingested before)
    n_present: int = 0

    @property
    def images_per_s(self) -> float:
        return self.n_files / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        return (
            f"{self.n_written} of {self.n_files} images ({self.size[0]}x{self.size[1]}) written to "
            f"{self.store_path} in {self.seconds:.1f} s ({self.images_per_s:.0f} images/s, "
            f"{self.workers} {self.executor} workers); {len(self.skipped)} skipped"
        )


def _executor(kind: str, workers: int) -> Executor:
    if kind == "thread":
        return ThreadPoolExecutor(workers)
    if kind == "process":
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # spawn: safe with the threads of the parent (tqdm, zarr, dask), unlike fork, and the
        # workers stay children of this process (their memory shows in RUSAGE_CHILDREN)
        return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    raise ValueError(f"executor must be 'thread' or 'process'; got {kind!r}")


def _store_chunk(size: tuple[int, int], chunk_size: int, with_phase: bool) -> int:
    """Samples per Zarr chunk: a power of two near 4 MiB of pixels, at most ``chunk_size``."""
    per_sample = size[0] * size[1] * (3 + (4 if with_phase else 0))
    n = max(1, min(chunk_size, (4 << 20) // per_sample))
    return 1 << (n.bit_length() - 1)


def ingest_image_folder(
    path: str | Path,
    store_path: str | Path,
    *,
    chunk_size: int = 512,
    workers: int | None = None,
    executor: str = "thread",
    mode: str = "w-",
    size: int | Sequence[int] | None = None,
    labels: Labels = "auto",
    fit: str = "auto",
    strict: bool = False,
    palette: str | None = None,
    recover_phase: bool = True,
    id_prefix: str = "",
    skip_ids: Mapping[str, str] | None = None,
    progress: bool = True,
) -> IngestReport:
    """Stream a folder of renderings (10,000+ files) into a Zarr store with bounded memory.

    Files are decoded in parallel (``executor``: "thread" or "process" pools of ``workers``;
    threads are the default because PIL releases the GIL while decoding and they measured as
    fast as processes without their start-up cost) ``chunk_size`` at a time; while one chunk is
    written the next is being decoded, so at most two chunks are in memory. The store is chunked
    in powers of two of about 4 MiB along ``sample`` for fast random access later. ``mode``: "w-" refuses an existing store, "w" replaces it
    (atomically, when the ingestion completes), "a" appends (refusing ids already there). Other
    options as :func:`read_image_folder`. Skipped files are returned in the report and stored
    in the store's ``skipped`` attribute (JSON). ``skip_ids`` (sample id -> source file, of a
    store the data goes to): files ingested before (:func:`ingested_before`: a folder that
    has grown) are not read (``n_present``); when no other is left, nothing is written and
    the report says so (``n_written`` 0).
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    check_options(fit, palette)
    store = _open_store(store_path, mode, chunk_size)
    target = target_size(size)
    skipped = SkipLog(strict=strict)
    files = list_image_files(path, labels=labels, skipped=skipped, id_prefix=id_prefix)
    n_present = len(files)
    files = [f for f in files if not ingested_before(skip_ids or {}, f.sample, f.path)]
    n_present -= len(files)
    n_files, n_workers = len(files) + len(skipped.entries), default_workers(workers)
    if n_present and not files:
        return _nothing_new(store, n_present, target, t0, executor, n_workers)
    recover = (palette or "auto") if recover_phase else None
    written = 0
    with _executor(executor, n_workers) as pool:
        if target is None:
            target, bad = common_size(files, skipped, pool)
            files = [f for f in files if f.path not in bad]
        store_chunk = _store_chunk(target, chunk_size, recover is not None)
        chunk_size = -(-chunk_size // store_chunk) * store_chunk  # whole store chunks per write
        chunks = batches(files, chunk_size)
        sub = max(1, min(32, chunk_size // (2 * n_workers)))
        sink = ZarrWriter(store, chunk=store_chunk) if mode != "a" else contextlib.nullcontext()
        bar = tqdm(total=n_files, desc="ingest", unit="img", disable=not progress)
        try:
            with sink as writer, bar:
                bar.update(n_files - len(files))  # unreadable headers
                pending = submit_files(chunks[0], target, fit, recover, pool, sub) if chunks else []
                for k, chunk in enumerate(chunks):
                    # queue the next chunk before waiting on this one: decode overlaps writing
                    nxt = chunks[k + 1] if k + 1 < len(chunks) else []
                    following = submit_files(nxt, target, fit, recover, pool, sub)
                    batch = collect_files(pending, skipped)
                    if batch.images:
                        ds = to_dataset(batch, palette=recover)
                        if writer is None:
                            append_dataset(ds, store)
                        else:
                            writer.write(ds)
                        written += len(batch.images)
                    bar.update(len(chunk))
                    pending = following
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if written == 0:
        if not n_present:
            raise nothing_read(path, n_files, "image files", skipped)
        return _nothing_new(store, n_present, target, t0, executor, n_workers, skipped)
    extra = {"palette": recover or palette} if (recover or palette) else {}
    _finish(store, mode, skipped, **extra)
    skipped.warn(f"ingest_image_folder({path})", n_files)
    return IngestReport(
        store_path=str(store),
        n_files=n_files,
        n_written=written,
        skipped=list(skipped.entries),
        size=target,
        seconds=time.perf_counter() - t0,
        executor=executor,
        workers=n_workers,
        n_present=n_present,
    )


def _nothing_new(
    store: Path,
    n_present: int,
    size: Any,
    t0: float,
    executor: str,
    workers: int,
    skipped: SkipLog | None = None,
) -> IngestReport:
    """The report of an ingest that found nothing new to write: its files were ingested
    before, or those that were not could not be read (``skipped``)."""
    entries = list(skipped.entries) if skipped is not None else []
    return IngestReport(
        store_path=str(store),
        n_files=len(entries),
        n_written=0,
        skipped=entries,
        size=size or (0, 0),
        seconds=time.perf_counter() - t0,
        executor=executor,
        workers=workers,
        n_present=n_present,
    )


def ingest_licsar(
    path: str | Path,
    store_path: str | Path,
    *,
    patch_size: int | None = None,
    stride: int | None = None,
    min_valid: float = 0.0,
    chunk_size: int = 512,
    mode: str = "w-",
    strict: bool = False,
    wavelength_m: float | None = None,
    zero_nodata: bool = True,
    skip_ids: Mapping[str, str] | None = None,
    progress: bool = True,
) -> IngestReport:
    """Stream LiCSAR interferograms (or their patches) into a Zarr store, one frame at a time.

    Samples are written ``chunk_size`` at a time, so memory stays near one frame plus one chunk
    whatever the number of interferograms. ``mode``: "w-" refuses an existing store, "w"
    replaces it when done, "a" appends (refusing ids already there). Other options as
    :func:`read_licsar`. Interferograms ingested before (whole or as patches; ``skip_ids`` as
    :func:`ingest_image_folder`) are not read (``n_present``). Returns an :class:`IngestReport`
    (``n_files`` counts interferograms, ``n_written`` samples).
    """
    t0 = time.perf_counter()
    store = _open_store(store_path, mode, chunk_size)
    skipped = SkipLog(strict=strict)
    pairs = find_licsar_pairs(path)
    new = [p for p in pairs if not ingested_before(skip_ids or {}, p.sample, p.phase)]
    n_present, n_pairs = len(pairs) - len(new), len(new)
    if n_present and not new:
        return _nothing_new(store, n_present, None, t0, "serial", 1)
    parts = iter_licsar(
        path,
        patch_size=patch_size,
        stride=stride,
        min_valid=min_valid,
        wavelength_m=wavelength_m,
        zero_nodata=zero_nodata,
        progress=progress,
        skipped=skipped,
        skip_ids=frozenset(p.sample for p in pairs) - {p.sample for p in new},
    )
    written, size, buffer = 0, (0, 0), []
    sink = ZarrWriter(store, chunk=chunk_size) if mode != "a" else contextlib.nullcontext()
    with sink as writer:

        def flush() -> None:
            nonlocal written, buffer
            ds = buffer[0] if len(buffer) == 1 else concat(buffer)
            if writer is None:
                append_dataset(ds, store)
            else:
                writer.write(ds)
            written += ds.sizes["sample"]
            buffer = []

        for part in parts:
            if size == (0, 0):
                size = (part.sizes["y"], part.sizes["x"])
            elif (part.sizes["y"], part.sizes["x"]) != size:
                problem = f"size {part.sizes['y']}x{part.sizes['x']} differs from {size}"
                skipped.fail(part["source"].values[0], problem)
                continue
            buffer.append(part)
            if sum(p.sizes["sample"] for p in buffer) >= chunk_size:
                flush()
        if buffer:
            flush()
    if written == 0:
        if not n_present:
            raise nothing_read(path, n_pairs, "interferograms", skipped)
        return _nothing_new(store, n_present, None, t0, "serial", 1, skipped)
    _finish(store, mode, skipped)
    skipped.warn(f"ingest_licsar({path})", n_pairs)
    return IngestReport(
        store_path=str(store),
        n_files=n_pairs,
        n_written=written,
        skipped=list(skipped.entries),
        size=size,
        seconds=time.perf_counter() - t0,
        executor="serial",
        workers=1,
        n_present=n_present,
    )


def ingest_hephaestus(
    annotations: str | Path | pd.DataFrame,
    image_root: str | Path,
    store_path: str | Path,
    *,
    size: int | Sequence[int] = 224,
    fit: str = "resize",
    coherence: bool = True,
    chunk_size: int = 512,
    mode: str = "w-",
    strict: bool = False,
    workers: int | None = None,
    skip_ids: Mapping[str, str] | None = None,
    progress: bool = True,
) -> IngestReport:
    """Stream Hephaestus interferograms with images under ``image_root`` into a Zarr store.

    The same samples as :func:`insarexplore.data.io.hephaestus.read_hephaestus`, decoded
    ``chunk_size`` at a time (threads) and written as they come, so the 19,919 interferograms of
    the full set never sit in memory at once. ``n_files`` in the report counts the annotations
    with an image on disk and the annotation files that could not be read. ``mode`` and
    ``skip_ids`` (interferograms ingested before are not read again) as
    :func:`ingest_image_folder`.
    """
    from tqdm.auto import tqdm

    from insarexplore.data.io.hephaestus import hephaestus_dataset, join_hephaestus

    t0 = time.perf_counter()
    check_options(fit, None)
    store = _open_store(store_path, mode, chunk_size)
    target = target_size(size)
    assert target is not None
    join = join_hephaestus(annotations, image_root, strict=strict)
    before = [
        ingested_before(skip_ids or {}, f"hephaestus/{uid}", image)
        for uid, image in zip(join.table["uniqueID"], join.paths["insar_path"])
    ]
    n_present = sum(before)
    if n_present:
        keep = ~np.asarray(before)
        join.table = join.table[keep].reset_index(drop=True)
        join.paths = join.paths[keep].reset_index(drop=True)
        if not len(join.table):
            return _nothing_new(store, n_present, target, t0, "thread", default_workers(workers))
    n = len(join.table)
    written = 0
    sink = ZarrWriter(store, chunk=chunk_size) if mode != "a" else contextlib.nullcontext()
    with sink as writer, tqdm(total=n, desc="Hephaestus", unit="img", disable=not progress) as bar:
        for start in range(0, n, chunk_size):
            rows = slice(start, min(n, start + chunk_size))
            ds = hephaestus_dataset(
                join, rows, size=target, fit=fit, coherence=coherence, workers=workers
            )
            if ds is not None:
                if writer is None:
                    append_dataset(ds, store)
                else:
                    writer.write(ds)
                written += ds.sizes["sample"]
            bar.update(rows.stop - rows.start)
    if written == 0:
        if not n_present:
            raise nothing_read(join.root, n, "Hephaestus images", join.skipped)
        return _nothing_new(
            store, n_present, target, t0, "thread", default_workers(workers), join.skipped
        )
    _finish(store, mode, join.skipped, n_without_images=join.n_without_images)
    join.skipped.warn(f"ingest_hephaestus({join.root})", join.n_files)
    return IngestReport(
        store_path=str(store),
        n_files=join.n_files,
        n_written=written,
        skipped=list(join.skipped.entries),
        size=target,
        seconds=time.perf_counter() - t0,
        executor="thread",
        workers=default_workers(workers),
        n_present=n_present,
    )
