"""What the image readers share: option checks, sizes, worker counts, batched decoding.

:mod:`~insarexplore.data.io.images` (one folder in memory), :mod:`~insarexplore.data.io.ingest`
(streaming into a store) and :mod:`~insarexplore.data.io.hephaestus` import from here, so that no
reader reaches into another. Decoding itself (one file) is in :mod:`._decode`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from insarexplore.data.io._common import SkipLog, nothing_read
from insarexplore.data.io._decode import FITS, load_many, probe_many

if TYPE_CHECKING:
    import xarray as xr

    from insarexplore.data.io.images import ImageFile

__all__ = [
    "DecodedBatch",
    "Pending",
    "batches",
    "check_options",
    "collect_files",
    "common_size",
    "default_workers",
    "submit_files",
    "target_size",
    "to_dataset",
]


def check_options(fit: str, palette: str | None) -> None:
    """Raise ValueError for a ``fit`` not in :data:`FITS` or an unknown ``palette``."""
    from insarexplore.data.palettes import PALETTES

    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}; got {fit!r}")
    if palette is not None and palette not in (*PALETTES, "auto"):
        raise ValueError(f"palette must be one of {PALETTES}, 'auto' or None; got {palette!r}")


def target_size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    """``size`` (int or (h, w)) as a positive (h, w); None stays None (the common size)."""
    if size is None:
        return None
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive; got {size!r}")
    return h, w


def default_workers(workers: int | None) -> int:
    """``workers`` or the number of usable CPUs (at most 8)."""
    if workers is not None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        return int(workers)
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def batches(items: Sequence, n: int) -> list[Sequence]:
    """``items`` cut into consecutive pieces of ``n`` (the last may be shorter)."""
    return [items[i : i + n] for i in range(0, len(items), n)]


def common_size(
    files: Sequence[ImageFile], skipped: SkipLog, pool: Executor, batch: int = 64
) -> tuple[tuple[int, int], set[str]]:
    """Most common (h, w) among readable headers (ties: larger area); also the unreadable paths."""
    counts: Counter[tuple[int, int]] = Counter()
    bad: set[str] = set()
    paths = [f.path for f in files]
    for chunk, res in zip(batches(paths, batch), pool.map(probe_many, batches(paths, batch))):
        for p, (hw, problem) in zip(chunk, res):
            if hw is None:
                skipped.fail(p, problem)
                bad.add(p)
            else:
                counts[hw] += 1
    if not counts:
        folder = Path(files[0].path).parent if files else "folder"
        raise nothing_read(folder, len(files), "image files", skipped)
    best = max(counts.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1], kv[0]))
    return best[0], bad


@dataclass
class DecodedBatch:
    """Decoded images of a batch of files, plus their metadata, ready for :func:`to_dataset`."""

    files: list[ImageFile] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    orig: list[tuple[int, int]] = field(default_factory=list)
    phases: list[np.ndarray] = field(default_factory=list)
    renderings: list[str] = field(default_factory=list)


Pending = list[tuple[Sequence["ImageFile"], Future]]


def submit_files(
    files: Sequence[ImageFile],
    size: tuple[int, int],
    fit: str,
    palette: str | None,
    pool: Executor,
    batch: int = 32,
) -> Pending:
    """Queue the decoding of ``files`` on ``pool`` in batches (phase recovered with ``palette``)."""
    return [
        (chunk, pool.submit(load_many, [f.path for f in chunk], size, fit, palette))
        for chunk in batches(list(files), batch)
    ]


def collect_files(pending: Pending, skipped: SkipLog) -> DecodedBatch:
    """Wait for queued decodes, in order; bad files go to ``skipped``."""
    out = DecodedBatch()
    for chunk, future in pending:
        for f, (arr, orig, problem, phase) in zip(chunk, future.result()):
            if arr is None:
                skipped.fail(f.path, problem)
                continue
            out.files.append(f)
            out.images.append(arr)
            out.orig.append(orig)
            if phase is not None:
                out.phases.append(phase[0])
                out.renderings.append(phase[1])
    return out


def to_dataset(batch: DecodedBatch, *, palette: str | None = None) -> xr.Dataset:
    """Build the data model from decoded images (with ``phase`` when it was recovered)."""
    from insarexplore.data.schema import new_dataset

    extra: dict[str, np.ndarray] = {
        "crop": np.array([f.crop for f in batch.files], dtype=object),
        "orig_height": np.array([o[0] for o in batch.orig], dtype=np.int32),
        "orig_width": np.array([o[1] for o in batch.orig], dtype=np.int32),
    }
    if batch.renderings:  # the palette style each image was read in (grey, cyclic, rainbow)
        extra["rendering"] = np.array(batch.renderings, dtype=object)
    ds = new_dataset(
        phase=np.stack(batch.phases) if batch.phases else None,
        image=np.stack(batch.images),
        sample=[f.sample for f in batch.files],
        primary_date=np.array([f.primary_date for f in batch.files], dtype="datetime64[ns]"),
        secondary_date=np.array([f.secondary_date for f in batch.files], dtype="datetime64[ns]"),
        frame=[f.frame for f in batch.files],
        source=[f.path for f in batch.files],
        label=[f.label for f in batch.files],
        group=[f.group for f in batch.files],
        extra=extra,
    )
    if batch.phases:
        ds.attrs["palette"] = palette
    return ds
