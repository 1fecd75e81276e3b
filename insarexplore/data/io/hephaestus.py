"""Hephaestus annotations (Bountos et al., CVPR-W 2022) as a table, and joined to their images.

One JSON file per interferogram (``annotations/<uniqueID>.json``) carries the expert labels and
rich metadata; the images live at ``<frameID>/interferograms/<primary>_<secondary>/InSAR.png``
(and ``Coherence.png``). The annotation archive is read straight from the ``.tar.gz``, never
extracted to disk.

Multi-label files (40 in the public release, e.g. ``["Deformation", "Earthquake"]``) get one
deterministic ``label`` string: the distinct labels in the fixed order of ``LABELS`` joined by
``"+"`` (``"Deformation+Earthquake"``); the original lists stay in ``label_list``.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from insarexplore.data.io._common import SkipLog, check_path, nothing_read, parse_date
from insarexplore.errors import InSARDataError

__all__ = [
    "LABELS",
    "HephaestusJoin",
    "hephaestus_dataset",
    "hephaestus_image_paths",
    "join_hephaestus",
    "read_hephaestus",
    "read_hephaestus_annotations",
]

#: Hephaestus class labels, in the order used to join multi-label annotations.
LABELS: tuple[str, ...] = ("Deformation", "Earthquake", "Non_Deformation")
#: 0/1 (or 0/1/2) quality flags of every annotation file.
FLAG_FIELDS: tuple[str, ...] = (
    "corrupted",
    "processing_error",
    "glacier_fringes",
    "orbital_fringes",
    "atmospheric_fringes",
    "low_coherence",
    "no_info",
    "image_artifacts",
    "is_crowd",
)
_IN_MEMORY_BYTES = 64 << 20
_REQUIRED = ("uniqueID", "frameID", "primary_date", "secondary_date", "label")


def _join(values: list[str], order: tuple[str, ...] = ()) -> str:
    """Distinct values, known ones in ``order`` first, the rest sorted, joined by '+'."""
    distinct = set(values)
    known = [v for v in order if v in distinct]
    return "+".join(known + sorted(distinct.difference(order)))


_UNPACKED_IN_MEMORY = 256 << 20  # a small archive unpacking to more than this is streamed
_MAX_MEMBER_BYTES = 16 << 20  # one annotation file; larger members are skipped unread


def _decompress(raw: bytes, limit: int = _UNPACKED_IN_MEMORY) -> bytes | None:
    """Undo gzip/bzip2/xz compression by magic number (plain tar passes through); None when the
    result would exceed ``limit`` bytes (a decompression bomb, or just a big archive)."""
    if raw[:2] == b"\x1f\x8b":
        d: Any = zlib.decompressobj(wbits=31)
    elif raw[:3] == b"BZh":
        d = bz2.BZ2Decompressor()
    elif raw[:6] == b"\xfd7zXZ\x00":
        d = lzma.LZMADecompressor()
    else:
        return raw
    out = d.decompress(raw, limit + 1)
    if len(out) > limit or getattr(d, "unconsumed_tail", b""):
        return None  # more than the limit: stream it instead
    if d.unused_data:
        return None  # several compressed members: the streaming reader handles them
    if not d.eof:
        raise EOFError("compressed data ended before the end-of-stream marker")
    return out


def _iter_json(path: Path, skipped: SkipLog) -> Iterator[tuple[str, bytes]]:
    """(name, raw bytes) of every ``.json`` member of a tar archive or file in a folder."""
    if path.is_dir():
        files = sorted(path.rglob("*.json"))
        for f in files:
            try:
                yield str(f), f.read_bytes()
            except OSError as err:
                skipped.fail(f, f"cannot read: {err}")
        return
    if path.suffix == ".json":
        yield str(path), path.read_bytes()
        return
    try:
        # Small archives are decompressed into memory in one go (much faster than tarfile's
        # small reads); large ones are streamed ("r|*": sequential, no seeks). Never extracted.
        unpacked = None
        if path.stat().st_size < _IN_MEMORY_BYTES:
            unpacked = _decompress(path.read_bytes())
        if unpacked is not None:
            source: dict[str, Any] = {"fileobj": io.BytesIO(unpacked), "mode": "r:"}
        else:
            source = {"name": path, "mode": "r|*"}
        with tarfile.open(**source) as tf:
            for member in tf:
                if not (member.isfile() and member.name.endswith(".json")):
                    continue
                if member.size > _MAX_MEMBER_BYTES:
                    skipped.fail(f"{path}:{member.name}", f"annotation file of {member.size:,} "
                                 f"bytes (more than {_MAX_MEMBER_BYTES:,}): not read")  # fmt: skip
                    continue
                fh = tf.extractfile(member)
                if fh is not None:
                    yield f"{path}:{member.name}", fh.read()
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as err:
        raise InSARDataError(f"{path}: not a readable tar archive of JSON files ({err})") from err


def _record(name: str, raw: bytes) -> dict:
    """Parse one annotation file into a flat row; raises ValueError describing the problem."""
    try:
        d = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"invalid JSON ({err})") from err
    if not isinstance(d, dict):
        raise ValueError("JSON is not an object")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    labels = d["label"] if isinstance(d["label"], list) else [d["label"]]
    if not labels or not all(isinstance(v, str) for v in labels):
        raise ValueError(f"'label' must be a non-empty list of strings, got {d['label']!r}")
    try:
        uid = int(d["uniqueID"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"'uniqueID' is not an integer: {d['uniqueID']!r}") from err
    primary, secondary = parse_date(str(d["primary_date"])), parse_date(str(d["secondary_date"]))
    if np.isnat(primary) or np.isnat(secondary):
        raise ValueError(f"bad dates {d['primary_date']!r}, {d['secondary_date']!r}")
    activity = [str(v) for v in d.get("activity_type") or []]
    intensity = [str(v) for v in d.get("intensity_level") or []]
    row = {
        "uniqueID": uid,
        "frameID": str(d["frameID"]),
        "primary_date": primary,
        "secondary_date": secondary,
        "label": _join(labels, LABELS),
        "label_list": list(labels),
        "n_labels": len(labels),
        "activity_type": _join(activity),
        "activity_type_list": activity,
        "intensity_level": _join(intensity),
        "intensity_level_list": intensity,
        "phase": str(d.get("phase", "")),
        "confidence": float(d.get("confidence", np.nan)),
        "n_masks": len(d.get("segmentation_mask") or []),
        "segmentation_mask": d.get("segmentation_mask") or [],
        "caption": str(d.get("caption", "")),
        "file": name,
    }
    for flag in FLAG_FIELDS:
        row[flag] = int(d.get(flag, 0) or 0)
    return row


def read_hephaestus_annotations(path: str | Path, *, strict: bool = False) -> pd.DataFrame:
    """Read Hephaestus annotation JSONs (a ``.tar.gz``/``.tar``, a folder, or one file) as a table.

    One row per annotation, sorted by ``uniqueID``. Columns: ``uniqueID``, ``frameID``,
    ``primary_date``/``secondary_date`` (datetime64), ``label`` (joined, see module doc),
    ``label_list``, ``n_labels``, ``activity_type`` / ``intensity_level`` (distinct values joined
    by "+") with the original lists in ``*_list``, ``phase`` (Rest/Unrest/Rebound/None),
    ``confidence``, the quality flags, ``n_masks``, ``segmentation_mask``, ``caption``, ``file``.
    Bad or duplicate files are skipped and listed in ``df.attrs["skipped"]`` (JSON), or raise
    :class:`InSARDataError` when ``strict``.
    """
    p = check_path(path, "Hephaestus annotations")
    skipped = SkipLog(strict=strict)
    rows: list[dict] = []
    seen: dict[int, str] = {}
    total = 0
    for name, raw in _iter_json(p, skipped):
        total += 1
        try:
            row = _record(name, raw)
        except ValueError as err:
            skipped.fail(name, str(err))
            continue
        if row["uniqueID"] in seen:
            skipped.fail(
                name, f"duplicate uniqueID {row['uniqueID']} (also in {seen[row['uniqueID']]})"
            )
            continue
        seen[row["uniqueID"]] = name
        rows.append(row)
    if not rows:
        raise InSARDataError(
            f"{p}: no readable Hephaestus annotation files ({total} JSON files, "
            f"{len(skipped.entries)} skipped)"
        )
    df = pd.DataFrame(rows).sort_values("uniqueID", kind="stable").reset_index(drop=True)
    df.attrs["skipped"] = skipped.to_json()
    skipped.warn(f"read_hephaestus_annotations({p})", total)
    return df


def hephaestus_image_paths(annotations: pd.DataFrame, image_root: str | Path) -> pd.DataFrame:
    """Expected ``InSAR.png`` / ``Coherence.png`` path of each annotation, and whether they exist."""
    root = Path(image_root)
    pair = (
        annotations["primary_date"].dt.strftime("%Y%m%d")
        + "_"
        + annotations["secondary_date"].dt.strftime("%Y%m%d")
    )
    folders = [root / f / "interferograms" / pr for f, pr in zip(annotations["frameID"], pair)]
    insar = [f / "InSAR.png" for f in folders]
    coh = [f / "Coherence.png" for f in folders]
    return pd.DataFrame(
        {
            "insar_path": [str(x) for x in insar],
            "coherence_path": [str(x) for x in coh],
            "has_insar": [x.is_file() for x in insar],
            "has_coherence": [x.is_file() for x in coh],
        },
        index=annotations.index,
    )


def _decode_all(
    paths: list[str], size: tuple[int, int], fit: str, workers: int | None, progress: bool
) -> list[tuple[np.ndarray | None, tuple[int, int], str]]:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    from insarexplore.data.io._batch import default_workers
    from insarexplore.data.io._decode import load_image

    with ThreadPoolExecutor(default_workers(workers)) as pool:
        results = pool.map(load_image, paths, [size] * len(paths), [fit] * len(paths))
        return list(
            tqdm(
                results,
                total=len(paths),
                desc="Hephaestus",
                unit="img",
                disable=not progress or len(paths) < 64,
            )
        )


@dataclass
class HephaestusJoin:
    """Annotations that have an image on disk, their paths, and what was left out."""

    table: pd.DataFrame
    paths: pd.DataFrame
    root: Path
    n_without_images: int
    skipped: SkipLog
    #: annotation files that could not be read (their entries open ``skipped``)
    n_bad_annotations: int = 0

    @property
    def n_files(self) -> int:
        """Files this join stands for: annotations with an image, and unreadable annotations."""
        return len(self.table) + self.n_bad_annotations


def join_hephaestus(
    annotations: str | Path | pd.DataFrame, image_root: str | Path, *, strict: bool = False
) -> HephaestusJoin:
    """Keep the annotations whose ``InSAR.png`` exists under ``image_root`` (see
    :func:`hephaestus_image_paths`); raise :class:`InSARDataError` when none has."""
    root = check_path(image_root, "Hephaestus image root").absolute()  # sources from anywhere
    if isinstance(annotations, pd.DataFrame):
        df = annotations.reset_index(drop=True)
    else:
        df = read_hephaestus_annotations(annotations, strict=strict)
    dup = df["uniqueID"].duplicated()
    if dup.any():
        raise InSARDataError(
            f"annotations: duplicate uniqueID(s) {df.loc[dup, 'uniqueID'].head(5).tolist()}"
        )
    paths = hephaestus_image_paths(df, root)
    have = paths["has_insar"].to_numpy()
    if not have.any():
        raise InSARDataError(
            f"{root}: none of the {len(df)} annotated interferograms has its image there "
            f"(expected e.g. {paths['insar_path'].iloc[0]})"
        )
    skipped = SkipLog(strict=strict)
    skipped.entries.extend(json.loads(df.attrs.get("skipped", "[]")))  # annotation-stage skips
    return HephaestusJoin(
        table=df[have].reset_index(drop=True),
        paths=paths[have].reset_index(drop=True),
        root=root,
        n_without_images=int((~have).sum()),
        skipped=skipped,
        n_bad_annotations=len(skipped.entries),
    )


def hephaestus_dataset(
    join: HephaestusJoin,
    rows: slice | np.ndarray,
    *,
    size: tuple[int, int],
    fit: str,
    coherence: bool,
    workers: int | None = None,
    progress: bool = False,
) -> xr.Dataset | None:
    """Decode the images of ``join.table.iloc[rows]`` into the data model (None if none read).

    With ``coherence``, the Dataset has a ``coherence`` variable whenever any joined
    interferogram has a ``Coherence.png`` (NaN for those without), so chunks of one join agree.
    """
    from insarexplore.data.schema import new_dataset

    df = join.table.iloc[rows].reset_index(drop=True)
    paths = join.paths.iloc[rows].reset_index(drop=True)
    decoded = _decode_all(paths["insar_path"].tolist(), size, fit, workers, progress)
    keep = np.zeros(len(df), dtype=bool)
    images = []
    for i, (arr, _, problem) in enumerate(decoded):
        if arr is None:
            join.skipped.fail(paths["insar_path"].iloc[i], problem)
        else:
            keep[i] = True
            images.append(arr)
    if not images:
        return None
    df, paths = df[keep].reset_index(drop=True), paths[keep].reset_index(drop=True)
    coh = None
    if coherence and join.paths["has_coherence"].any():
        coh = np.full((len(df), *size), np.nan, dtype=np.float32)
        idx = np.flatnonzero(paths["has_coherence"].to_numpy())
        cpaths = paths["coherence_path"].to_numpy()[idx].tolist()
        results = _decode_all(cpaths, size, fit, workers, progress)
        for i, cpath, (arr, _, problem) in zip(idx, cpaths, results):
            if arr is None:
                join.skipped.partial(cpath, f"coherence not loaded: {problem}")
            else:
                coh[i] = arr.mean(axis=2, dtype=np.float32) / np.float32(255.0)
    pair = (
        df["primary_date"].dt.strftime("%Y%m%d") + "_" + df["secondary_date"].dt.strftime("%Y%m%d")
    )
    extra = {
        "uniqueID": df["uniqueID"].to_numpy(np.int64),
        "activity_type": df["activity_type"].to_numpy(object),
        "activity_phase": df["phase"].to_numpy(object),
        "intensity_level": df["intensity_level"].to_numpy(object),
        "confidence": df["confidence"].to_numpy(np.float64),
        "n_labels": df["n_labels"].to_numpy(np.int64),
        "caption": df["caption"].to_numpy(object),
        **{flag: df[flag].to_numpy(np.int8) for flag in FLAG_FIELDS},
    }
    return new_dataset(
        image=np.stack(images),
        coherence=coh,
        sample=[f"hephaestus/{u}" for u in df["uniqueID"]],
        primary_date=df["primary_date"].to_numpy("datetime64[ns]"),
        secondary_date=df["secondary_date"].to_numpy("datetime64[ns]"),
        frame=df["frameID"].tolist(),
        source=paths["insar_path"].tolist(),
        label=df["label"].tolist(),
        group=(df["frameID"] + "/" + pair).tolist(),
        extra=extra,
    )


def read_hephaestus(
    annotations: str | Path | pd.DataFrame,
    image_root: str | Path,
    *,
    size: int | tuple[int, int] = 224,
    fit: str = "resize",
    coherence: bool = True,
    strict: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Join Hephaestus annotations to their images under ``image_root`` -> the data model.

    ``annotations`` is the annotation archive/folder or a table from
    :func:`read_hephaestus_annotations`. Each annotation whose
    ``<image_root>/<frameID>/interferograms/<primary>_<secondary>/InSAR.png`` exists becomes a
    sample (``image``, brought to ``size`` with ``fit``, see :data:`insarexplore.data.io._decode.FITS`),
    with ``coherence`` = ``Coherence.png`` / 255 when ``coherence`` is true (NaN where that file is
    absent). Ids are ``hephaestus/<uniqueID>``; the group is the interferogram
    ``<frameID>/<primary>_<secondary>``; footprints are unknown (NaN). Per-sample metadata:
    ``uniqueID``, ``activity_type``, ``activity_phase`` (the JSON ``phase`` field, renamed so it
    cannot be mistaken for wrapped phase), ``intensity_level``, ``confidence``, ``n_labels``, the
    quality flags and ``caption``. Annotations without images are counted in
    ``ds.attrs["n_without_images"]``; unreadable images are skipped (``ds.attrs["skipped"]``).
    Everything is decoded in memory; for the full set use
    :func:`insarexplore.data.io.ingest.ingest_hephaestus`.
    """
    from insarexplore.data.io._batch import check_options, target_size

    check_options(fit, None)
    target = target_size(size)
    assert target is not None
    join = join_hephaestus(annotations, image_root, strict=strict)
    n = len(join.table)
    ds = hephaestus_dataset(
        join, slice(None), size=target, fit=fit, coherence=coherence, workers=workers,
        progress=progress,
    )  # fmt: skip
    if ds is None:
        raise nothing_read(join.root, n, "Hephaestus images", join.skipped)
    ds.attrs["n_without_images"] = join.n_without_images
    ds.attrs["skipped"] = join.skipped.to_json()
    join.skipped.warn(f"read_hephaestus({join.root})", join.n_files)
    return ds
