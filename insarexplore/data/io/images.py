"""Folders of rendered interferograms (PNG/JPEG/TIFF, RGB or grayscale) -> the data model.

This is how most public labelled sets ship: colour renderings of wrapped phase, often one
sub-folder per class. Metadata is parsed from LiCSAR-style file names where present, e.g.
``africa_adwa_079D_07894_131313_adwa_20150819_20150912_274_137_1.png`` (frame, dates, crop
``274_137_1``) or ``20141121_20141203.geo.diff1_1.png`` (dates, crop ``1_1``). Crops of one
interferogram share a ``group`` (the name without its crop suffix, ignoring the class folder), so
that train/test splits keep them together. Sample ids are the file paths relative to the folder.

Images are brought to one size (``size``, default the most common size in the folder); see
:data:`FITS` for how. Phase can be recovered from renderings in a known palette
(:func:`insarexplore.data.palettes.recover_phase`) and is then stored beside ``image``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from insarexplore.data.io._common import SkipLog, check_path, find_frame, parse_date_pair
from insarexplore.data.io._decode import FITS, IMAGE_SUFFIXES, load_many, probe_many
from insarexplore.errors import InSARDataError

__all__ = [
    "FITS",
    "IMAGE_SUFFIXES",
    "ImageFile",
    "list_image_files",
    "parse_image_name",
    "read_image_folder",
]

_CROP_RE = re.compile(r"(\d+(?:_\d+)*)$")
_NOT_CLASS_RE = re.compile(
    r"^(\d{3}[AD]_\d{5}_\d{6}|(?:19|20)\d{6}_(?:19|20)\d{6}|interferograms)$"
)
Labels = str | bool | None | Mapping[str, str]


@dataclass(frozen=True)
class ImageFile:
    """One image file and the metadata its path carries."""

    path: str
    sample: str
    label: str
    group: str
    frame: str
    crop: str
    primary_date: np.datetime64
    secondary_date: np.datetime64


def parse_image_name(stem: str) -> dict[str, object]:
    """Frame, dates, crop suffix and group key from a file name (without extension).

    The crop is the run of ``_``-separated numbers after the date pair; the group key is the name
    with that crop removed. Without a date pair the whole name is the key and there is no crop.
    """
    primary, secondary, m = parse_date_pair(stem)
    crop, key = "", stem
    if m is not None:
        cm = _CROP_RE.search(stem[m.end() :])
        if cm:
            crop = cm.group(1)
            key = stem[: m.end() + cm.start()].rstrip("_-.")
    return {
        "frame": find_frame(stem),
        "primary_date": primary,
        "secondary_date": secondary,
        "crop": crop,
        "key": key,
        "dated": m is not None,
    }


def _class_folders(rel: list[Path], labels: Labels) -> bool:
    if labels is None or labels is False:
        return False
    if labels is True or isinstance(labels, Mapping):
        if any(len(r.parts) < 2 for r in rel):
            bad = next(r for r in rel if len(r.parts) < 2)
            raise InSARDataError(f"labels from class folders requested, but {bad} is not in one")
        return True
    if labels != "auto":
        raise ValueError(f"labels must be 'auto', True, False, None or a mapping; got {labels!r}")
    tops = {r.parts[0] for r in rel if len(r.parts) > 1}
    return (
        all(len(r.parts) == 2 for r in rel)
        and len(tops) >= 2
        and not any(_NOT_CLASS_RE.match(t) for t in tops)
    )


def list_image_files(path: str | Path, *, labels: Labels = "auto") -> list[ImageFile]:
    """Every image file under ``path`` (sorted, hidden files ignored) with its parsed metadata.

    ``labels``: ``"auto"`` takes labels from sub-folder names when every image sits in one of at
    least two sub-folders of ``path`` whose names are not frame ids or date pairs; ``True``
    always uses the top-level sub-folder; a mapping renames folders (``{"1": "deformation"}``);
    ``False``/``None`` gives no labels.
    """
    root = check_path(path, "image folder")
    if root.is_file():
        files, root = [root], root.parent
    else:
        files = sorted(
            p
            for p in root.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES
            and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
    if not files:
        raise InSARDataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) found in {root}")
    rel = [p.relative_to(root) for p in files]
    by_folder = _class_folders(rel, labels)
    out = []
    for p, r in zip(files, rel):
        parts = list(r.parent.parts)
        label = ""
        if by_folder:
            folder = parts.pop(0)
            label = labels.get(folder, folder) if isinstance(labels, Mapping) else folder
        meta = parse_image_name(r.stem)
        sample = r.as_posix()
        group = "/".join([*parts, str(meta["key"])]) if meta["dated"] else sample
        out.append(
            ImageFile(
                path=str(p),
                sample=sample,
                label=label,
                group=group,
                frame=str(meta["frame"]) or find_frame(*reversed(r.parent.parts)),
                crop=str(meta["crop"]),
                primary_date=meta["primary_date"],  # type: ignore[arg-type]
                secondary_date=meta["secondary_date"],  # type: ignore[arg-type]
            )
        )
    return out


def _size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int | np.integer):
        size = (int(size), int(size))
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive; got {size!r}")
    return h, w


def _batches(items: Sequence, n: int) -> list[Sequence]:
    return [items[i : i + n] for i in range(0, len(items), n)]


def common_size(
    files: Sequence[ImageFile], skipped: SkipLog, pool: Executor, batch: int = 64
) -> tuple[tuple[int, int], set[str]]:
    """Most common (h, w) among readable headers (ties: larger area); also the unreadable paths."""
    counts: Counter[tuple[int, int]] = Counter()
    bad: set[str] = set()
    paths = [f.path for f in files]
    for chunk, res in zip(_batches(paths, batch), pool.map(probe_many, _batches(paths, batch))):
        for p, (hw, problem) in zip(chunk, res):
            if hw is None:
                skipped.fail(p, problem)
                bad.add(p)
            else:
                counts[hw] += 1
    if not counts:
        raise InSARDataError(
            f"none of the {len(files)} image files could be read: " + skipped.entries[0]["problem"]
        )
    best = max(counts.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1], kv[0]))
    return best[0], bad


@dataclass
class DecodedBatch:
    """Decoded images of a batch of files, plus their metadata, ready for :func:`to_dataset`."""

    files: list[ImageFile] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    orig: list[tuple[int, int]] = field(default_factory=list)
    phases: list[np.ndarray] = field(default_factory=list)


Pending = list[tuple[Sequence[ImageFile], Future]]


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
        for chunk in _batches(list(files), batch)
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
                out.phases.append(phase)
    return out


def to_dataset(batch: DecodedBatch, *, palette: str | None = None) -> xr.Dataset:
    """Build the data model from decoded images (with ``phase`` when it was recovered)."""
    from insarexplore.data.schema import new_dataset

    extra: dict[str, np.ndarray] = {
        "crop": np.array([f.crop for f in batch.files], dtype=object),
        "orig_height": np.array([o[0] for o in batch.orig], dtype=np.int32),
        "orig_width": np.array([o[1] for o in batch.orig], dtype=np.int32),
    }
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


def _check_options(fit: str, palette: str | None) -> None:
    from insarexplore.data.palettes import PALETTES

    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}; got {fit!r}")
    if palette is not None and palette not in PALETTES:
        raise ValueError(f"palette must be one of {PALETTES} or None; got {palette!r}")


def read_image_folder(
    path: str | Path,
    *,
    size: int | Sequence[int] | None = None,
    labels: Labels = "auto",
    strict: bool = False,
    palette: str | None = None,
    recover_phase: bool = False,
    fit: str = "auto",
    workers: int | None = None,
) -> xr.Dataset:
    """Read every rendered interferogram under ``path`` into one in-memory Dataset.

    ``size`` (int or (h, w)) is the common image size (default: the most common size found);
    ``fit`` says how other sizes reach it (see :data:`FITS`). ``recover_phase`` adds ``phase``
    recovered with ``palette`` (default ``"cyclic"``). Bad files (unreadable, truncated, float
    rasters, blank, wrong size with ``fit="error"``) are skipped and listed in
    ``ds.attrs["skipped"]`` (JSON), or raise :class:`InSARDataError` when ``strict``. For folders
    larger than memory use :func:`insarexplore.data.io.ingest.ingest_image_folder`.
    """
    _check_options(fit, palette)
    target = _size(size)
    files = list_image_files(path, labels=labels)
    total = len(files)
    skipped = SkipLog(strict=strict)
    recover = (palette or "cyclic") if recover_phase else None
    with ThreadPoolExecutor(default_workers(workers)) as pool:
        if target is None:
            target, bad = common_size(files, skipped, pool)
            files = [f for f in files if f.path not in bad]
        batch = collect_files(submit_files(files, target, fit, recover, pool), skipped)
    if not batch.images:
        raise InSARDataError(
            f"{path}: none of the {total} image files could be read "
            f"(first problem: {skipped.entries[0]['file']}: {skipped.entries[0]['problem']})"
        )
    ds = to_dataset(batch, palette=recover)
    if palette is not None:
        ds.attrs["palette"] = palette
    ds.attrs["skipped"] = skipped.to_json()
    skipped.warn(f"read_image_folder({path})", total)
    return ds


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
    recover_phase: bool = False,
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
    in the store's ``skipped`` attribute (JSON).
    """
    import json
    import time

    import zarr
    from tqdm.auto import tqdm

    from insarexplore.data.io.store import ZarrWriter, append_dataset

    t0 = time.perf_counter()
    _check_options(fit, palette)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    if mode not in ("w-", "w", "a"):
        raise ValueError(f"mode must be 'w-', 'w' or 'a'; got {mode!r}")
    store = Path(store_path)
    if mode == "w-" and store.exists():
        raise InSARDataError(f"{store} already exists (pass mode='w' to replace, 'a' to append)")
    target = _size(size)
    files = list_image_files(path, labels=labels)
    n_files, n_workers = len(files), default_workers(workers)
    skipped = SkipLog(strict=strict)
    recover = (palette or "cyclic") if recover_phase else None
    written = 0
    with _executor(executor, n_workers) as pool:
        if target is None:
            target, bad = common_size(files, skipped, pool)
            files = [f for f in files if f.path not in bad]
        store_chunk = _store_chunk(target, chunk_size, recover is not None)
        chunk_size = -(-chunk_size // store_chunk) * store_chunk  # whole store chunks per write
        chunks = _batches(files, chunk_size)
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
        first = skipped.entries[0] if skipped.entries else {"file": str(path), "problem": "?"}
        raise InSARDataError(
            f"{path}: none of the {n_files} image files could be read "
            f"(first problem: {first['file']}: {first['problem']})"
        )
    group = zarr.open_group(str(store), mode="r+")
    previous = json.loads(group.attrs.get("skipped", "[]")) if mode == "a" else []
    group.attrs["skipped"] = json.dumps(previous + skipped.entries)
    if recover is not None or palette is not None:
        group.attrs["palette"] = recover or palette
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
    )
