"""Folders of rendered interferograms (PNG/JPEG/TIFF, RGB or grayscale) -> the data model.

This is how most public labelled sets ship: colour renderings of wrapped phase, often one
sub-folder per class. Metadata is parsed from LiCSAR-style file names where present, e.g.
``africa_adwa_079D_07894_131313_adwa_20150819_20150912_274_137_1.png`` (frame, dates, crop
``274_137_1``) or ``20141121_20141203.geo.diff1_1.png`` (dates, crop ``1_1``). Crops of one
interferogram share a ``group`` (the name without its crop suffix, ignoring the class folder), so
that train/test splits keep them together. Sample ids are the file paths relative to the folder.

Images are brought to one size (``size``, default the most common size in the folder); see
:data:`FITS` for how. Phase is read back from each rendering in its own palette (detected per
image, or one given; :func:`insarexplore.data.palettes.recover_phase`) and stored beside
``image``, the palette style in the per-sample ``rendering``. Sizes, batching and the parallel
decode are shared with :mod:`.ingest` through :mod:`._batch`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from insarexplore.data.io._batch import (
    check_options,
    collect_files,
    common_size,
    default_workers,
    submit_files,
    target_size,
    to_dataset,
)
from insarexplore.data.io._common import (
    SkipLog,
    check_path,
    find_frame,
    nothing_read,
    parse_date_pair,
)
from insarexplore.data.io._decode import FITS, IMAGE_SUFFIXES
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


def _utf8(p: Path) -> bool:
    try:
        str(p).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def list_image_files(
    path: str | Path,
    *,
    labels: Labels = "auto",
    skipped: SkipLog | None = None,
    id_prefix: str = "",
) -> list[ImageFile]:
    """Every image file under ``path`` (sorted, hidden files ignored) with its parsed metadata.

    ``labels``: ``"auto"`` takes labels from sub-folder names when every image sits in one of at
    least two sub-folders of ``path`` whose names are not frame ids or date pairs; ``True``
    always uses the top-level sub-folder; a mapping renames folders (``{"1": "deformation"}``);
    ``False``/``None`` gives no labels. Files whose names are not valid UTF-8 (sample ids must
    be text) go to ``skipped`` when given, else they are ignored. ``id_prefix`` starts every
    sample id and group (two folders with the same relative paths can then share a store).
    """
    root = check_path(path, "image folder").absolute()  # sources name their file from anywhere
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
    bad_names = [p for p in files if not _utf8(p)]
    if bad_names:
        for p in bad_names:
            if skipped is not None:
                skipped.fail(p, "file name is not valid UTF-8 (rename it to read it)")
        files = [p for p in files if _utf8(p)]
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
        sample = id_prefix + r.as_posix()
        group = id_prefix + "/".join([*parts, str(meta["key"])]) if meta["dated"] else sample
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


def read_image_folder(
    path: str | Path,
    *,
    size: int | Sequence[int] | None = None,
    labels: Labels = "auto",
    strict: bool = False,
    palette: str | None = None,
    recover_phase: bool = True,
    id_prefix: str = "",
    fit: str = "auto",
    workers: int | None = None,
) -> xr.Dataset:
    """Read every rendered interferogram under ``path`` into one in-memory Dataset.

    ``size`` (int or (h, w)) is the common image size (default: the most common size found);
    ``fit`` says how other sizes reach it (see :data:`FITS`). ``recover_phase`` (the default)
    adds ``phase`` read back from each rendering with ``palette`` (default ``"auto"``: each
    image's own style, grey, cyclic or hue cycle, detected from its pixels; the style is kept in
    the per-sample ``rendering``), so that models see fringes, not palettes. Bad files
    (unreadable, truncated, float rasters, blank, wrong size with ``fit="error"``) are skipped
    and listed in ``ds.attrs["skipped"]`` (JSON), or raise :class:`InSARDataError` when
    ``strict``. For folders larger than memory use
    :func:`insarexplore.data.io.ingest.ingest_image_folder`.
    """
    check_options(fit, palette)
    target = target_size(size)
    skipped = SkipLog(strict=strict)
    files = list_image_files(path, labels=labels, skipped=skipped, id_prefix=id_prefix)
    total = len(files) + len(skipped.entries)
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
