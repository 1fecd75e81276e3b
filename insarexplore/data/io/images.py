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

import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from insarexplore.data.io._common import (
    SkipLog,
    check_path,
    find_frame,
    nothing_read,
    parse_date_pair,
)
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
    if palette is not None and palette not in (*PALETTES, "auto"):
        raise ValueError(f"palette must be one of {PALETTES}, 'auto' or None; got {palette!r}")


def read_image_folder(
    path: str | Path,
    *,
    size: int | Sequence[int] | None = None,
    labels: Labels = "auto",
    strict: bool = False,
    palette: str | None = None,
    recover_phase: bool = True,
    fit: str = "auto",
    workers: int | None = None,
) -> xr.Dataset:
    """Read every rendered interferogram under ``path`` into one in-memory Dataset.

    ``size`` (int or (h, w)) is the common image size (default: the most common size found);
    ``fit`` says how other sizes reach it (see :data:`FITS`). ``recover_phase`` (the default)
    adds ``phase`` read back from each rendering with ``palette`` (default ``"auto"``: each
    image's own style, grey, cyclic or hue cycle, detected from its pixels; the style is kept in
    the per-sample ``rendering``), so that models see fringes, not palettes. Bad files (unreadable, truncated, float
    rasters, blank, wrong size with ``fit="error"``) are skipped and listed in
    ``ds.attrs["skipped"]`` (JSON), or raise :class:`InSARDataError` when ``strict``. For folders
    larger than memory use :func:`insarexplore.data.io.ingest.ingest_image_folder`.
    """
    _check_options(fit, palette)
    target = _size(size)
    files = list_image_files(path, labels=labels)
    total = len(files)
    skipped = SkipLog(strict=strict)
    recover = (palette or "auto") if recover_phase else None
    with ThreadPoolExecutor(default_workers(workers)) as pool:
        if target is None:
            target, bad = common_size(files, skipped, pool)
            files = [f for f in files if f.path not in bad]
        batch = collect_files(submit_files(files, target, fit, recover, pool), skipped)
    if not batch.images:
        raise nothing_read(path, total, "image files", skipped)
    ds = to_dataset(batch, palette=recover)
    if palette is not None:
        ds.attrs["palette"] = palette
    ds.attrs["skipped"] = skipped.to_json()
    skipped.warn(f"read_image_folder({path})", total)
    return ds


def __getattr__(name: str):
    """Ingestion moved to :mod:`insarexplore.data.io.ingest`; still importable from here."""
    if name in ("ingest_image_folder", "IngestReport"):
        from insarexplore.data.io import ingest

        return getattr(ingest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
