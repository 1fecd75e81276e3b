"""LiCSAR / COMET GeoTIFF interferograms -> the data model (via rioxarray).

Layout: ``<frame>/interferograms/<yyyymmdd>_<yyyymmdd>/<pair>.geo.diff_pha.tif`` (wrapped phase,
radians), optional ``<pair>.geo.cc.tif`` (coherence, 0-255 or 0-1) and ``<pair>.geo.unw.tif``
(unwrapped phase, radians). Dates and frame come from the file and folder names; the footprint
from the raster bounds (reprojected to EPSG:4326 when the file uses another CRS). Nodata -> NaN.

Sign convention: ``displacement = -wavelength / (4 pi) * unw``, line of sight, metres, positive
towards the satellite, so that ``phase = -4 pi / wavelength * displacement`` as in the data model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from insarexplore.data.io._common import (
    DATE_PAIR_RE,
    SkipLog,
    check_path,
    find_frame,
    logger,
    nothing_read,
    parse_date_pair,
)
from insarexplore.errors import InSARDataError

__all__ = [
    "LicsarPair",
    "find_licsar_pairs",
    "iter_licsar",
    "read_licsar",
    "read_licsar_pair",
]

PHASE_SUFFIX = ".geo.diff_pha.tif"
COHERENCE_SUFFIX = ".geo.cc.tif"
UNWRAPPED_SUFFIX = ".geo.unw.tif"
_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class LicsarPair:
    """The files of one interferogram and the metadata their names carry."""

    sample: str
    phase: Path
    coherence: Path | None
    unwrapped: Path | None
    frame: str
    primary_date: np.datetime64
    secondary_date: np.datetime64


def find_licsar_pairs(path: str | Path) -> list[LicsarPair]:
    """Every ``*.geo.diff_pha.tif`` under ``path`` (a frame, interferograms or pair folder, or
    the file itself) with its companion coherence/unwrapped files and parsed metadata."""
    root = check_path(path, "LiCSAR path").absolute()  # sources name their file from anywhere
    if root.is_file():
        if not root.name.endswith(PHASE_SUFFIX):
            raise InSARDataError(f"{root}: not a LiCSAR wrapped-phase file (*{PHASE_SUFFIX})")
        files, base = [root], root.parent
    else:
        files = sorted(p for p in root.rglob(f"*{PHASE_SUFFIX}") if p.is_file())
        base = root
    if not files:
        raise InSARDataError(f"no LiCSAR wrapped-phase files (*{PHASE_SUFFIX}) under {root}")
    pairs = []
    for f in files:
        stem = f.name[: -len(PHASE_SUFFIX)]
        primary, secondary, m = parse_date_pair(stem)
        if m is None:
            primary, secondary, m = parse_date_pair(f.parent.name)
        # nearest folder first: <frame>/interferograms/<pair>/<file>
        frame = find_frame(stem, *reversed(f.parent.parts))
        if frame and m is not None:
            sample = f"{frame}/{m.group(0)}"
        else:
            sample = f.relative_to(base).as_posix()[: -len(PHASE_SUFFIX)] if f != root else stem
        cc, unw = f.with_name(stem + COHERENCE_SUFFIX), f.with_name(stem + UNWRAPPED_SUFFIX)
        pairs.append(
            LicsarPair(
                sample=sample,
                phase=f,
                coherence=cc if cc.is_file() else None,
                unwrapped=unw if unw.is_file() else None,
                frame=frame,
                primary_date=primary,
                secondary_date=secondary,
            )
        )
    return pairs


def _read_band(path: Path, what: str) -> tuple[np.ndarray, tuple[float, ...], str]:
    """One band as float32 north-up (NaN = nodata), its EPSG:4326 bounds, and its source dtype."""
    from rasterio.errors import RasterioError

    try:
        with warnings.catch_warnings():
            # affine >= 2.4 flags rioxarray's `*` composition; not ours to fix, and noisy
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            return _read_band_unchecked(path, what)
    except InSARDataError:
        raise
    except (RasterioError, OSError, ValueError) as err:
        raise InSARDataError(f"{path}: cannot read {what} raster ({_first_cause(err)})") from err


def _first_cause(err: BaseException) -> str:
    """The message that says what went wrong: GDAL's own, where rasterio's only says "Read
    failed. See previous exception for details." (a truncated or corrupt file)."""
    seen: list[BaseException] = [err]
    while seen[-1].__cause__ is not None or seen[-1].__context__ is not None:
        nxt = seen[-1].__cause__ or seen[-1].__context__
        if nxt is None or nxt in seen or len(seen) > 8:
            break
        seen.append(nxt)
    useful = [str(e).strip() for e in seen if str(e).strip() and "previous exception" not in str(e)]
    return useful[-1] if useful else str(err)


def _read_band_unchecked(path: Path, what: str) -> tuple[np.ndarray, tuple[float, ...], str]:
    import rioxarray

    da = rioxarray.open_rasterio(path, masked=True)
    try:
        dtype = str(da.encoding.get("rasterio_dtype", da.encoding.get("dtype", da.dtype)))
        if da.sizes.get("band", 1) != 1:
            raise InSARDataError(
                f"{path}: {what} raster has {da.sizes['band']} bands, expected 1 "
                "(an RGB rendering? read it with read_image_folder)"
            )
        if da.rio.crs is None:
            raise InSARDataError(f"{path}: {what} raster has no CRS (not georeferenced)")
        transform = da.rio.transform()
        if transform.b != 0 or transform.d != 0:
            raise InSARDataError(f"{path}: {what} raster is on a rotated grid (unsupported)")
        grid = da if da.rio.crs.to_epsg() == 4326 else da.rio.reproject("EPSG:4326")
        transform = grid.rio.transform()
        bounds = tuple(float(v) for v in grid.rio.bounds())
        values = np.asarray(grid.values[0], dtype=np.float32)
    finally:
        da.close()
    if transform.e > 0:  # south-up grid: flip so that row 0 is the northern edge
        values = values[::-1].copy()
    return values, bounds, dtype


def _coherence(values: np.ndarray, dtype: str, path: Path) -> np.ndarray:
    """0-255 or 0-1 coherence -> float32 in [0, 1]."""
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 0.0
    low = float(finite.min()) if finite.size else 0.0
    if low < 0:
        raise InSARDataError(f"{path}: coherence has negative values (min {low:.4g})")
    if np.dtype(dtype).kind in "iu" or top > 1.0 + 1e-4:
        if top > 255:
            raise InSARDataError(
                f"{path}: coherence values up to {top:.4g} fit neither the 0-1 nor the 0-255 encoding"
            )
        values = values / np.float32(255.0)
    return np.clip(values, 0.0, 1.0).astype(np.float32)


def _read_layer(
    path: Path, name: str, shape: tuple[int, ...], bounds: tuple[float, ...], phase_name: str
) -> np.ndarray:
    """A coherence (in [0, 1]) or unwrapped-phase raster that matches its phase raster."""
    values, b, dt = _read_band(path, name)
    if values.shape != shape:
        raise InSARDataError(
            f"{path}: {name} raster is {values.shape[0]}x{values.shape[1]} but the phase "
            f"raster {phase_name} is {shape[0]}x{shape[1]}"
        )
    if not np.allclose(b, bounds, atol=1e-6, rtol=0):
        raise InSARDataError(f"{path}: {name} bounds {b} differ from the phase bounds {bounds}")
    return _coherence(values, dt, path) if name == "coherence" else values


def read_licsar_pair(
    pair: LicsarPair,
    *,
    wavelength_m: float | None = None,
    zero_nodata: bool = True,
    on_bad_layer: Callable[[Path, str], None] | None = None,
) -> xr.Dataset:
    """One interferogram as a one-sample Dataset; raises InSARDataError naming the bad file.

    ``zero_nodata``: exact zeros of the wrapped and unwrapped phase are no data (LiCSAR writes 0
    outside the frame and over masked water, often without a nodata tag; a measured float phase
    is never exactly 0). Coherence and displacement are NaN wherever the phase is.
    ``on_bad_layer(file, problem)``: called for a coherence or unwrapped file that cannot be
    used, and the pair is read without that layer; without it such a file raises.
    """
    from insarexplore.data.schema import S1_WAVELENGTH_M, new_dataset

    wavelength = S1_WAVELENGTH_M if wavelength_m is None else float(wavelength_m)
    phase, bounds, dtype = _read_band(pair.phase, "wrapped phase")
    if np.dtype(dtype).kind != "f":
        raise InSARDataError(
            f"{pair.phase}: wrapped phase has dtype {dtype}, expected float radians"
        )
    if zero_nodata:
        phase[phase == 0] = np.nan
    if not np.isfinite(phase).any():
        raise InSARDataError(f"{pair.phase}: wrapped phase is all NaN / nodata")
    top = float(np.nanmax(np.abs(phase)))
    if top > 2 * np.pi + 0.01:  # [-pi, pi) or [0, 2 pi) are wrapped; beyond, wrapping again
        raise InSARDataError(  # would make a valid-looking phase of anything
            f"{pair.phase}: wrapped phase reaches {top:.4g}, beyond 2 pi: not wrapped phase in "
            "radians (degrees? unwrapped phase?)"
        )
    extra: dict[str, np.ndarray] = {}
    layers: dict[str, np.ndarray] = {}
    for name, path in (("coherence", pair.coherence), ("unwrapped", pair.unwrapped)):
        if path is None:
            continue
        try:
            values = _read_layer(path, name, phase.shape, bounds, pair.phase.name)
        except InSARDataError as err:
            if on_bad_layer is None:
                raise
            on_bad_layer(path, f"{name} not loaded: {str(err).removeprefix(f'{path}: ')}")
            continue
        if name != "coherence" and zero_nodata:
            values[values == 0] = np.nan
        values[np.isnan(phase)] = np.nan
        layers[name] = values
    displacement = None
    if "unwrapped" in layers:
        displacement = (-wavelength / (4 * np.pi) * layers["unwrapped"]).astype(np.float32)
    extra["has_coherence"] = np.array(["coherence" in layers])
    extra["has_displacement"] = np.array(["unwrapped" in layers])
    h = phase.shape[0]
    ds = new_dataset(
        phase=phase[None],
        coherence=layers["coherence"][None] if "coherence" in layers else None,
        displacement=None if displacement is None else displacement[None],
        sample=[pair.sample],
        lon_min=bounds[0],
        lat_min=bounds[1],
        lon_max=bounds[2],
        lat_max=bounds[3],
        primary_date=[pair.primary_date],
        secondary_date=[pair.secondary_date],
        frame=pair.frame,
        source=str(pair.phase),
        extra=extra,
        wavelength_m=wavelength,
        pixel_spacing_m=(bounds[3] - bounds[1]) / h * _M_PER_DEG,
    )
    return ds


def _check_options(patch_size: int | None, stride: int | None, min_valid: float) -> None:
    if patch_size is not None and patch_size < 1:
        raise ValueError(f"patch_size must be a positive number of pixels; got {patch_size}")
    if stride is not None and patch_size is None:
        raise ValueError("stride needs patch_size")
    if not 0.0 <= min_valid < 1.0:
        raise ValueError(f"min_valid must lie in [0, 1); got {min_valid}")


def _odd_sizes(pairs: list[LicsarPair], path: str | Path) -> dict[Path, str]:
    """From the headers: the pairs whose size differs from the rest of their frame, with why.

    The pairs of one frame share its size; an odd one (a truncated file, a reprocessed pair) is
    skipped and named. Frames of different sizes cannot share a Dataset without ``patch_size``:
    that raises, as does a frame with no majority size."""
    import rasterio
    from rasterio.errors import RasterioError

    sizes: dict[str, dict[tuple[int, int], list[LicsarPair]]] = {}
    for pair in pairs:
        try:
            with rasterio.open(pair.phase) as src:
                shape = (src.height, src.width)
        except RasterioError:
            continue  # reported as a bad file when it is read
        sizes.setdefault(pair.frame, {}).setdefault(shape, []).append(pair)
    odd: dict[Path, str] = {}
    usual: dict[tuple[int, int], str] = {}
    for frame, by_size in sizes.items():
        ranked = sorted(by_size.items(), key=lambda kv: -len(kv[1]))
        (shape, members), rest = ranked[0], ranked[1:]
        if rest and len(rest[0][1]) == len(members):
            detail = "; ".join(f"{v[0].sample}: {h}x{w}" for (h, w), v in ranked[:4])
            raise InSARDataError(
                f"{path}: the pairs of frame {frame or '(none)'} have different sizes ({detail}) "
                "and none is the most common; pass patch_size to cut them into patches of one size"
            )
        usual.setdefault(shape, members[0].sample)
        for (h, w), others in rest:
            for pair in others:
                odd[pair.phase] = (
                    f"size {h}x{w} differs from the {len(members)} other pairs of frame "
                    f"{frame or '(none)'} ({shape[0]}x{shape[1]}); cut patches (patch_size, --patch-size) to keep it"
                )
    if len(usual) > 1:
        detail = "; ".join(f"{sid}: {h}x{w}" for (h, w), sid in usual.items())
        raise InSARDataError(
            f"{path}: interferograms have different sizes ({detail}); read the frames one at a "
            "time or pass patch_size to cut them into patches of one size"
        )
    return odd


def _warn_dates(pairs: list[LicsarPair], path: str | Path) -> None:
    """One warning for names whose dates are impossible (kept, with no dates) or reversed."""
    impossible = [
        p.phase
        for p in pairs
        if (np.isnat(p.primary_date) or np.isnat(p.secondary_date))
        and (DATE_PAIR_RE.search(p.phase.name) or DATE_PAIR_RE.search(p.phase.parent.name))
    ]
    backwards = [p.phase for p in pairs if p.secondary_date < p.primary_date]
    for files, what in (
        (impossible, "a date in the name is not a calendar date; kept without dates"),
        (backwards, "the name puts the later date first; kept as named (primary, secondary)"),
    ):
        if files:
            more = f" and {len(files) - 1} more" if len(files) > 1 else ""
            logger.warning(
                "%s: %d of %d interferograms: %s (%s%s)",
                path,
                len(files),
                len(pairs),
                what,
                files[0],
                more,
            )


def iter_licsar(
    path: str | Path,
    *,
    patch_size: int | None = None,
    stride: int | None = None,
    min_valid: float = 0.0,
    strict: bool = False,
    wavelength_m: float | None = None,
    zero_nodata: bool = True,
    progress: bool = True,
    skipped: SkipLog | None = None,
    skip_ids: Collection[str] = frozenset(),
) -> Iterator[xr.Dataset]:
    """Yield one Dataset per readable interferogram under ``path`` (its patches, with
    ``patch_size``), one frame in memory at a time. Every part has the same variables: when any
    pair has coherence or unwrapped phase, pairs without them get NaN. Options as
    :func:`read_licsar`; bad files go to ``skipped`` (or raise when ``strict``). Pairs whose
    sample id is in ``skip_ids`` are left out unread."""
    from tqdm.auto import tqdm

    from insarexplore.data import accessor as _accessor  # noqa: F401  (registers ds.insar)

    _check_options(patch_size, stride, min_valid)
    skipped = skipped if skipped is not None else SkipLog(strict=strict)
    pairs = [p for p in find_licsar_pairs(path) if p.sample not in skip_ids]
    odd = _odd_sizes(pairs, path) if patch_size is None else {}
    _warn_dates(pairs, path)
    want = [
        name
        for name, present in (
            ("coherence", any(p.coherence is not None for p in pairs)),
            ("displacement", any(p.unwrapped is not None for p in pairs)),
        )
        if present
    ]
    seen: dict[str, Path] = {}
    for pair in tqdm(pairs, desc="LiCSAR", unit="ifg", disable=not progress or len(pairs) < 2):
        if pair.sample in seen:
            problem = f"duplicate sample id {pair.sample!r} (also {seen[pair.sample]})"
            skipped.fail(pair.phase, problem)
            continue
        if pair.phase in odd:
            skipped.fail(pair.phase, odd[pair.phase])
            continue
        layers: list[tuple[Path, str]] = []  # reported once the pair itself is read
        try:
            ds = read_licsar_pair(
                pair,
                wavelength_m=wavelength_m,
                zero_nodata=zero_nodata,
                on_bad_layer=None if skipped.strict else lambda *bad: layers.append(bad),  # noqa: B023
            )
            if patch_size is not None:
                ds = ds.insar.patches(patch_size, stride, min_valid=max(min_valid, 1e-9))
        except InSARDataError as err:
            skipped.fail(pair.phase, str(err).removeprefix(f"{pair.phase}: "))
            continue
        for file, why in layers:
            skipped.partial(file, why)
        seen[pair.sample] = pair.phase
        for name in want:
            if name not in ds:
                nan = np.full(ds["phase"].shape, np.nan, np.float32)
                ds = ds.assign({name: (ds["phase"].dims, nan)})
        yield ds


def read_licsar(
    path: str | Path,
    *,
    patch_size: int | None = None,
    stride: int | None = None,
    min_valid: float = 0.0,
    strict: bool = False,
    wavelength_m: float | None = None,
    zero_nodata: bool = True,
    progress: bool = True,
) -> xr.Dataset:
    """Read LiCSAR interferograms under ``path`` into one Dataset (optionally cut into patches).

    ``path`` is a frame folder, its ``interferograms`` folder, one pair folder, or one
    ``*.geo.diff_pha.tif``. Sample ids are ``<frame>/<primary>_<secondary>`` (patches append
    ``_r<row>_c<col>`` and keep the pair id as ``group``). With ``patch_size`` every frame is cut
    into ``patch_size`` squares every ``stride`` pixels (default: no overlap), each with its own
    footprint; patches whose valid fraction is at most ``min_valid`` are dropped (all-NaN ones
    always). Without ``patch_size``, a pair whose size differs from the rest of its frame is
    skipped (and named), and frames of different sizes cannot share one Dataset and raise
    :class:`InSARDataError`. Pairs missing the coherence or unwrapped file get NaN there
    (see the ``has_coherence`` / ``has_displacement`` variables). Exact zeros of the phase are
    no data unless ``zero_nodata=False`` (see :func:`read_licsar_pair`). Bad files are skipped and
    listed in ``ds.attrs["skipped"]`` (JSON), or raise when ``strict``. For archives larger than
    memory, use :func:`insarexplore.data.io.ingest.ingest_licsar`.
    """
    from insarexplore.data.schema import concat

    skipped = SkipLog(strict=strict)
    pairs = find_licsar_pairs(path)
    n = len(pairs)
    parts = list(
        iter_licsar(
            path,
            patch_size=patch_size,
            stride=stride,
            min_valid=min_valid,
            wavelength_m=wavelength_m,
            zero_nodata=zero_nodata,
            progress=progress,
            skipped=skipped,
        )
    )
    if not parts:
        raise nothing_read(path, n, "interferograms", skipped)
    if len({(p.sizes["y"], p.sizes["x"]) for p in parts}) > 1:  # e.g. after reprojection
        detail = "; ".join(f"{p['sample'].values[0]}: {p.sizes['y']}x{p.sizes['x']}" for p in parts)
        raise InSARDataError(f"{path}: interferograms have different sizes ({detail[:500]})")
    ds = parts[0] if len(parts) == 1 else concat(parts)
    ds.attrs["pixel_spacing_m"] = float(np.median([p.attrs["pixel_spacing_m"] for p in parts]))
    ds.attrs["skipped"] = skipped.to_json()
    skipped.warn(f"read_licsar({path})", n)
    return ds
