"""Adding data to a workspace as users hold it: detect the format, fit the store, stream it in.

``add_to_workspace(ws, path)`` is what ``insarexplore ingest`` runs. Every format is streamed
into a staging store private to this process (bounded memory, whatever the archive's size) and
then moved into the workspace in one step under the workspace's data lock, so an interrupted
ingest adds nothing and concurrent ingests each add all their samples.

Into a workspace that already has data, new data is fitted to the store by default: images take
the store's size (and are recovered to phase when the store holds phase); LiCSAR frames are cut
into patches of the store's size. Each such choice is returned in ``notes`` (the command line
prints them).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from insarexplore.errors import InSARDataError

__all__ = ["FORMATS", "IntakeReport", "add_to_workspace", "detect_format"]

FORMATS = ("licsar", "images", "hephaestus")
_RENDER_SUFFIXES = (".png", ".jpg", ".jpeg")
_TIFF_SUFFIXES = (".tif", ".tiff")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".json")


@dataclass
class IntakeReport:
    """What :func:`add_to_workspace` did."""

    format: str
    added: int
    total: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _is_float_raster(path: Path) -> bool:
    """True for a single-band float GeoTIFF (LiCSAR phase), False for an 8-bit rendering."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            return img.mode in ("F", "I", "I;32")
    except Exception:  # noqa: BLE001 - PIL cannot open float32 with some compressions
        try:
            import rasterio

            with rasterio.open(path) as src:
                return src.dtypes[0].startswith("float")
        except Exception:  # noqa: BLE001
            return False


def _geo_at(name: str) -> list[int]:
    """Where ``.geo.`` occurs in a file name (a LiCSAR product's pair stem ends there)."""
    low, out, i = name.lower(), [], name.lower().find(".geo.")
    while i >= 0:
        out.append(i)
        i = low.find(".geo.", i + 1)
    return out


def detect_format(path: str | Path) -> tuple[str, str]:
    """(format, why) of ``path``, decided by what most of its files are.

    A folder of thousands of renderings with a few ``*.geo.diff_pha.tif`` files among them
    (public sets ship RGB renderings under that name) is an image folder; a folder whose
    phase GeoTIFFs are float rasters and outnumber the renderings is LiCSAR; JSON annotations
    (or an archive of them) are Hephaestus.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    name = path.name.lower()
    if path.is_file():
        if name.endswith(_ARCHIVE_SUFFIXES):
            return "hephaestus", "an annotation archive"
        if name.endswith(".geo.diff_pha.tif") and _is_float_raster(path):
            return "licsar", "a float phase GeoTIFF"
        if name.endswith(_RENDER_SUFFIXES + _TIFF_SUFFIXES):
            return "images", "one image file"
        raise InSARDataError(f"{path}: cannot tell its format; pass --format")
    rendered, phase_tifs, other_tifs, jsons = [], [], 0, 0
    for p in path.rglob("*"):
        n = p.name.lower()
        if n.startswith("."):
            continue
        if n.endswith(".geo.diff_pha.tif"):
            phase_tifs.append(p)
        elif n.endswith(_TIFF_SUFFIXES):
            other_tifs += 1
        elif n.endswith(_RENDER_SUFFIXES):
            rendered.append(p)
        elif n.endswith(".json") and p.parent == path:
            jsons += 1
    # LiCSAR's own previews of a pair (PAIR.geo.diff.png, PAIR.geo.unw.png beside
    # PAIR.geo.diff_pha.tif) belong to that pair: they are not a folder of renderings
    pairs = {(p.parent, p.name[: -len("diff_pha.tif")].lower()) for p in phase_tifs}
    renders = sum(
        not any((p.parent, p.name[: i + 5].lower()) in pairs for i in _geo_at(p.name))
        for p in rendered
    )
    if jsons and jsons >= renders + len(phase_tifs):
        return "hephaestus", f"{jsons:,} JSON annotation files"
    float_tifs = sum(_is_float_raster(p) for p in phase_tifs[:5])
    if phase_tifs and float_tifs and len(phase_tifs) >= renders:
        return "licsar", f"{len(phase_tifs):,} phase GeoTIFFs"
    n_images = renders + other_tifs + len(phase_tifs)
    if n_images == 0:
        raise InSARDataError(f"{path}: no image files, phase GeoTIFFs or JSON annotations found")
    why = f"{renders:,} rendered images"
    if phase_tifs:
        why += f"; {len(phase_tifs):,} .geo.diff_pha.tif file(s) read as images when they are"
        why += " renderings, else reported"
    return "images", why


def _store_shape(ws: Any) -> tuple[tuple[int, int], set[str]] | None:
    """(y, x) size and pixel variables of the workspace's store, or None when it is empty."""
    if not ws.has_data():
        return None
    ds = ws.open_data(lazy=True)
    pixel = {v for v in ds.data_vars if ds[v].ndim > 1}
    shape = (int(ds.sizes["y"]), int(ds.sizes["x"]))
    ds.close()
    return shape, pixel


_STYLE_NAMES = {"grey": "grey", "cyclic": "diverging", "rainbow": "hue cycle"}


def _renderings_read_as(staging: Path) -> str:
    """How many images of a staged image folder were read in each palette style, e.g.
    "392 diverging, 378 hue cycle": what a user checks when a palette is misread."""
    import numpy as np

    from insarexplore.data.io.store import open_dataset

    ds = open_dataset(staging, lazy=True)
    if "rendering" not in ds.variables:  # kept as RGB: nothing was read back
        return ""
    styles, counts = np.unique(ds["rendering"].values.astype(str), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return ", ".join(f"{counts[i]:,} {_STYLE_NAMES.get(styles[i], styles[i])}" for i in order)


def _ingested(ws: Any, format: str) -> dict[str, str]:
    """Sample id -> source file of what the workspace holds (for LiCSAR also the
    interferograms its patches came from), so that a folder ingested again adds only what is
    new (:func:`insarexplore.data.io._common.ingested_before`)."""
    ds = ws.open_data(lazy=True)
    sources = [str(s) for s in ds["source"].values] if "source" in ds else None
    if sources is None:
        return {}
    out = dict(zip(map(str, ds["sample"].values), sources))
    if format == "licsar" and "group" in ds:
        out.update(zip(map(str, ds["group"].values), sources))
    return out


def add_to_workspace(
    ws: Any,
    path: str | Path,
    *,
    format: str = "auto",
    size: int | Sequence[int] | None = None,
    fit: str = "auto",
    labels: Any = "auto",
    recover_phase: bool | None = None,
    palette: str | None = None,
    patch_size: int | None = None,
    stride: int | None = None,
    min_valid: float = 0.0,
    images: str | Path | None = None,
    id_prefix: str = "",
    strict: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> IntakeReport:
    """Stream the interferograms at ``path`` into the workspace ``ws`` (see the module doc).

    ``recover_phase`` None means: yes for a new store (renderings become wrapped phase, each
    read in its own palette style), and whatever the store holds for an existing one.
    ``id_prefix`` starts the sample ids of an image folder (for two folders whose relative
    paths coincide).
    """
    from insarexplore.data.io.ingest import ingest_hephaestus, ingest_image_folder, ingest_licsar

    path = Path(path).expanduser()
    notes: list[str] = []
    if format == "auto":
        format, why = detect_format(path)
        notes.append(f"reading {path} as {format} ({why})")
    elif format not in FORMATS:
        raise ValueError(f"format must be 'auto' or one of {FORMATS}; got {format!r}")
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if format != "licsar" and (patch_size or stride):
        raise ValueError(f"--patch-size/--stride apply to LiCSAR frames, not to {format}")
    if id_prefix and format != "images":
        raise ValueError(f"--id-prefix applies to image folders, not to {format}")
    if recover_phase is not None and format != "images":
        raise ValueError(
            f"--phase applies to image folders, not to {format}"
            + (" (its images are kept as RGB renderings)" if format == "hephaestus" else "")
        )
    if format == "hephaestus" and images is None:
        raise ValueError("--images: Hephaestus ingest needs the folder holding <frame>/... images")
    store = _store_shape(ws)
    drop: list[str] = []
    if store is not None:
        (sy, sx), pixel = store
        if format == "licsar":
            layers = sorted({"coherence", "displacement", "phase"} - pixel)
            if "image" in pixel:  # a store of renderings: what it does not hold is not kept
                drop.extend(layers)
                kept = "phase is kept and " if "phase" in pixel else ""
                notes.append(
                    f"the store holds renderings: the frames' {kept}rendered in the cyclic "
                    "palette" + (f"; their {', '.join(layers)} are not kept" if layers else "")
                )
            if patch_size is None and sy != sx:  # whole frames: they must be the store's size
                notes.append(f"reading whole frames, as the store holds ({sy}x{sx})")
            elif patch_size is None:
                patch_size = sy
                notes.append(f"cutting frames into {sy} px patches to fit the store")
        elif size is None:
            size = (sy, sx)
            notes.append(f"fitting images to the store's size {sy}x{sx} (--fit {fit})")
        if format == "images":
            if recover_phase is None:
                recover_phase = "phase" in pixel
            if "image" not in pixel:
                drop.append("image")
                notes.append("the store holds phase only: keeping the recovered phase")
    before = _ingested(ws, format) if store is not None else {}
    staging = ws.staging_path(format)
    try:
        if format == "images":
            report = ingest_image_folder(
                path,
                staging,
                mode="w",
                size=size,
                labels=labels,
                fit=fit,
                strict=strict,
                palette=palette,
                recover_phase=True if recover_phase is None else recover_phase,
                id_prefix=id_prefix,
                skip_ids=before,
                workers=workers,
                progress=progress,
            )
        elif format == "licsar":
            # about 16 MiB of patches (phase, coherence, displacement) per write: memory stays
            # near one frame plus one write, whatever the number of interferograms
            per_sample = 12 * (patch_size or 1024) ** 2
            report = ingest_licsar(
                path,
                staging,
                mode="w",
                chunk_size=max(4, (16 << 20) // per_sample),
                patch_size=patch_size,
                stride=stride,
                min_valid=min_valid,
                strict=strict,
                skip_ids=before,
                progress=progress,
            )
        else:
            report = ingest_hephaestus(
                path,
                images,
                staging,
                mode="w",
                size=size or 224,
                fit=fit if fit != "auto" else "resize",
                strict=strict,
                workers=workers,
                skip_ids=before,
                progress=progress,
            )
        if report.n_present:
            what = "files" if format == "images" else "interferograms"
            notes.append(
                f"{report.n_present:,} {what} already in the workspace (ingested before): not "
                "added again"
                + (" (--id-prefix adds a folder as new samples)" if what == "files" else "")
            )
        if report.n_written == 0:  # nothing new in a folder ingested before
            return IntakeReport(
                format=format,
                added=0,
                total=len(ws.sample_ids()),
                skipped=report.skipped,
                notes=notes,
            )
        if format == "images":
            read_as = _renderings_read_as(staging)
            if read_as:
                notes.append(
                    f"palettes read back to phase: {read_as} (--palette to read all as one)"
                )
        if format == "hephaestus":
            import zarr

            lost = int(zarr.open_group(str(staging), mode="r").attrs.get("n_without_images", 0))
            if lost:  # annotations whose interferogram is not under --images: said, not hidden
                notes.append(
                    f"{lost:,} annotation(s) have no image under {images}: not added "
                    "(are their frames' folders there?)"
                )
        total = ws.add_store(staging, drop=drop)
    finally:  # a failed ingest leaves no staging store behind
        shutil.rmtree(staging, ignore_errors=True)
    return IntakeReport(
        format=format, added=report.n_written, total=total, skipped=report.skipped, notes=notes
    )
