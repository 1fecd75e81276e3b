"""The data model: one ``xarray.Dataset`` contract shared by every reader and every later stage.

See docs/ARCHITECTURE.md for the full contract. In short: dims ``sample``, ``y``, ``x`` (and
``band`` for RGB renderings); ``phase`` (wrapped radians, float32) and/or ``image`` (uint8 RGB);
optional ``coherence`` and ``displacement``; per-sample coordinates for footprint, dates, frame,
source file, label and group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from insarexplore.errors import InSARDataError, SchemaError

__all__ = [
    "SCHEMA_VERSION",
    "S1_WAVELENGTH_M",
    "FOOTPRINT_COORDS",
    "DATE_COORDS",
    "STRING_COORDS",
    "PER_SAMPLE_COORDS",
    "new_dataset",
    "validate",
    "concat",
    "problems",
]

SCHEMA_VERSION = 1
S1_WAVELENGTH_M = 0.05546576  # Sentinel-1 C band, 5.405 GHz

FOOTPRINT_COORDS = ("lon_min", "lat_min", "lon_max", "lat_max")
DATE_COORDS = ("primary_date", "secondary_date")
STRING_COORDS = ("frame", "source", "label", "group")
PER_SAMPLE_COORDS = FOOTPRINT_COORDS + DATE_COORDS + STRING_COORDS
_PIXEL_VARS = ("phase", "coherence", "displacement")
_PI32 = np.float32(np.pi)


def _strings(values: Any, n: int, name: str, default: str = "") -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=object)
    if isinstance(values, str):
        return np.full(n, values, dtype=object)
    arr = np.asarray(list(values), dtype=object)
    if arr.shape != (n,):
        raise InSARDataError(f"coordinate {name!r} has {arr.size} values for {n} samples")
    return np.array(["" if v is None else str(v) for v in arr], dtype=object)


def _floats(values: Any, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan, dtype=np.float64)
    arr = np.broadcast_to(np.asarray(values, dtype=np.float64), (n,)).copy()
    return arr


def _dates(values: Any, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    import pandas as pd

    try:
        arr = pd.to_datetime(
            np.broadcast_to(np.asarray(values, dtype=object), (n,)), format="mixed"
        )
    except (ValueError, TypeError) as exc:
        raise InSARDataError(f"coordinate {name!r}: cannot parse dates ({exc})") from exc
    return np.asarray(arr, dtype="datetime64[ns]")


def new_dataset(
    *,
    phase: np.ndarray | None = None,
    image: np.ndarray | None = None,
    coherence: np.ndarray | None = None,
    displacement: np.ndarray | None = None,
    sample: Sequence[str] | None = None,
    lon_min: Any = None,
    lat_min: Any = None,
    lon_max: Any = None,
    lat_max: Any = None,
    primary_date: Any = None,
    secondary_date: Any = None,
    frame: Any = None,
    source: Any = None,
    label: Any = None,
    group: Any = None,
    extra: Mapping[str, Any] | None = None,
    wavelength_m: float = S1_WAVELENGTH_M,
    pixel_spacing_m: float = float("nan"),
    check: bool = True,
) -> xr.Dataset:
    """Build a Dataset that follows the data model from plain arrays.

    Pixel arrays are ``(n, h, w)`` (``image``: ``(n, h, w, 3)`` or ``(n, h, w)`` grayscale).
    Per-sample values may be scalars (broadcast) or sequences of length ``n``. ``extra`` holds
    further per-sample metadata (e.g. source depth) stored as variables on ``sample``.
    Phase is re-wrapped into [-pi, pi).
    """
    if phase is None and image is None:
        raise InSARDataError("a dataset needs 'phase' or 'image' (got neither)")
    data_vars: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    shape: tuple[int, ...] | None = None
    if phase is not None:
        ph = np.asarray(phase, dtype=np.float32)
        if ph.ndim == 2:
            ph = ph[None]
        if ph.ndim != 3:
            raise InSARDataError(f"'phase' must be (sample, y, x); got shape {ph.shape}")
        data_vars["phase"] = (("sample", "y", "x"), wrap(ph))
        shape = ph.shape
    if image is not None:
        im = np.asarray(image)
        if im.dtype != np.uint8:
            raise InSARDataError(f"'image' must be uint8 RGB; got dtype {im.dtype}")
        if im.ndim == 3 and shape is not None and im.shape == shape:
            im = im[..., None]
        if im.ndim == 2:
            im = im[None, ..., None]
        if im.ndim == 3:  # (n, h, w) grayscale
            im = im[..., None]
        if im.ndim != 4 or im.shape[-1] not in (1, 3, 4):
            raise InSARDataError(f"'image' must be (sample, y, x, band); got shape {im.shape}")
        if im.shape[-1] == 1:
            im = np.repeat(im, 3, axis=-1)
        elif im.shape[-1] == 4:
            im = im[..., :3]
        if shape is not None and im.shape[:3] != shape:
            raise InSARDataError(f"'image' shape {im.shape[:3]} does not match 'phase' {shape}")
        data_vars["image"] = (("sample", "y", "x", "band"), np.ascontiguousarray(im))
        shape = shape or im.shape[:3]
    assert shape is not None
    for name, arr in (("coherence", coherence), ("displacement", displacement)):
        if arr is None:
            continue
        a = np.asarray(arr, dtype=np.float32)
        if a.ndim == 2:
            a = a[None]
        if a.shape != shape:
            raise InSARDataError(f"{name!r} shape {a.shape} does not match the images {shape}")
        data_vars[name] = (("sample", "y", "x"), a)
    n = shape[0]
    ids = _strings(sample, n, "sample") if sample is not None else None
    if ids is None:
        ids = np.array([f"s{i:07d}" for i in range(n)], dtype=object)
    coords: dict[str, Any] = {"sample": ids}
    for name, values in zip(FOOTPRINT_COORDS, (lon_min, lat_min, lon_max, lat_max)):
        coords[name] = ("sample", _floats(values, n, name))
    coords["primary_date"] = ("sample", _dates(primary_date, n, "primary_date"))
    coords["secondary_date"] = ("sample", _dates(secondary_date, n, "secondary_date"))
    coords["frame"] = ("sample", _strings(frame, n, "frame"))
    coords["source"] = ("sample", _strings(source, n, "source"))
    coords["label"] = ("sample", _strings(label, n, "label"))
    coords["group"] = ("sample", _strings(group, n, "group") if group is not None else ids.copy())
    for key, values in (extra or {}).items():
        arr = np.asarray(values)
        if arr.shape != (n,):
            raise InSARDataError(f"extra metadata {key!r} has shape {arr.shape}, expected ({n},)")
        if arr.dtype.kind in "US":
            arr = arr.astype(object)
        data_vars[key] = (("sample",), arr)
    if "band" in {d for v in data_vars.values() for d in v[0]}:
        coords["band"] = np.array(["r", "g", "b"], dtype=object)
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs.update(
        schema_version=SCHEMA_VERSION,
        wavelength_m=float(wavelength_m),
        pixel_spacing_m=float(pixel_spacing_m),
        crs="EPSG:4326",
    )
    if check:
        validate(ds)
    return ds


def wrap(phase: np.ndarray) -> np.ndarray:
    """Wrap radians into [-pi, pi) keeping float32 and NaN."""
    ph = np.asarray(phase, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        outside = (ph < -_PI32) | (ph >= _PI32)  # False for NaN
    if not outside.any():
        return ph  # already wrapped: skip the modulo (the generator's hot path)
    out = np.mod(ph + _PI32, np.float32(2 * np.pi)) - _PI32
    out[out >= _PI32] = -_PI32  # float rounding at the upper edge
    return out.astype(np.float32, copy=False)


def problems(ds: xr.Dataset, *, check_values: bool = True) -> list[str]:
    """Return every way ``ds`` violates the data model (empty when valid)."""
    out: list[str] = []
    if not isinstance(ds, xr.Dataset):
        return [f"expected an xarray.Dataset, got {type(ds).__name__}"]
    if "phase" not in ds and "image" not in ds:
        out.append("neither 'phase' nor 'image' is present (at least one is required)")
    expected = {
        "phase": ("sample", "y", "x"),
        "coherence": ("sample", "y", "x"),
        "displacement": ("sample", "y", "x"),
        "image": ("sample", "y", "x", "band"),
    }
    for name, dims in expected.items():
        if name in ds and ds[name].dims != dims:
            out.append(f"{name!r} has dims {ds[name].dims}, expected {dims}")
    for name in _PIXEL_VARS:
        if name in ds and ds[name].dtype != np.float32:
            out.append(f"{name!r} has dtype {ds[name].dtype}, expected float32")
    if "image" in ds:
        if ds["image"].dtype != np.uint8:
            out.append(f"'image' has dtype {ds['image'].dtype}, expected uint8")
        if ds.sizes.get("band") != 3:
            out.append(f"'image' has {ds.sizes.get('band')} bands, expected 3 (RGB)")
    if "sample" not in ds.coords:
        out.append("coordinate 'sample' (unique string ids) is missing")
    else:
        ids = ds["sample"].values
        if ids.dtype.kind not in "OUT":
            out.append(f"'sample' ids must be strings; got dtype {ids.dtype}")
        uniq, counts = np.unique(ids.astype(str), return_counts=True)
        dups = uniq[counts > 1]
        if dups.size:
            out.append(
                f"'sample' ids are not unique: {', '.join(map(str, dups[:10]))}"
                + (f" and {dups.size - 10} more" if dups.size > 10 else "")
            )
    for name in PER_SAMPLE_COORDS:
        if name == "group":
            continue
        if name not in ds.coords:
            out.append(f"per-sample coordinate {name!r} is missing")
        elif ds[name].dims != ("sample",):
            out.append(f"coordinate {name!r} has dims {ds[name].dims}, expected ('sample',)")
    for name in FOOTPRINT_COORDS:
        if name in ds.coords and ds[name].dtype.kind != "f":
            out.append(f"footprint {name!r} must be float degrees; got {ds[name].dtype}")
    for name in DATE_COORDS:
        if name in ds.coords and ds[name].dtype.kind != "M":
            out.append(f"date {name!r} must be datetime64; got {ds[name].dtype}")
    for key in ("schema_version", "wavelength_m"):
        if key not in ds.attrs:
            out.append(f"attribute {key!r} is missing")
    if ds.attrs.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        out.append(f"schema_version {ds.attrs['schema_version']} is not {SCHEMA_VERSION}")
    if check_values and not out:
        out.extend(_value_problems(ds))
    return out


def _value_problems(ds: xr.Dataset) -> list[str]:
    out: list[str] = []
    if "phase" in ds:
        ph = ds["phase"]
        lo, hi = float(ph.min(skipna=True)), float(ph.max(skipna=True))
        if np.isfinite(lo) and (lo < -np.pi - 1e-6 or hi >= np.pi + 1e-6):
            out.append(
                f"'phase' must be wrapped to [-pi, pi); found values in [{lo:.4g}, {hi:.4g}]"
            )
        all_nan = ph.isnull().all(dim=("y", "x"))
        if bool(all_nan.any()):
            bad = ds["sample"].values[all_nan.values]
            out.append(
                f"'phase' is all NaN for {bad.size} sample(s): {', '.join(map(str, bad[:5]))}"
            )
    if "coherence" in ds:
        c = ds["coherence"]
        lo, hi = float(c.min(skipna=True)), float(c.max(skipna=True))
        if np.isfinite(lo) and (lo < 0 or hi > 1):
            out.append(f"'coherence' must lie in [0, 1]; found [{lo:.4g}, {hi:.4g}]")
    lon_min, lon_max = ds["lon_min"].values, ds["lon_max"].values
    lat_min, lat_max = ds["lat_min"].values, ds["lat_max"].values
    with np.errstate(invalid="ignore"):
        bad = (
            (lon_min > lon_max)
            | (lat_min > lat_max)
            | (np.abs(lat_max) > 90)
            | (np.abs(lat_min) > 90)
        )
    if bad.any():
        ids = ds["sample"].values[bad]
        out.append(f"footprint is inverted or out of range for: {', '.join(map(str, ids[:5]))}")
    return out


def validate(ds: xr.Dataset, *, where: str = "dataset", check_values: bool = True) -> None:
    """Raise :class:`SchemaError` listing every violation of the data model."""
    found = problems(ds, check_values=check_values)
    if found:
        raise SchemaError(found, where=where)


def concat(datasets: Iterable[xr.Dataset]) -> xr.Dataset:
    """Concatenate data-model Datasets along ``sample``, refusing duplicate ids."""
    parts = list(datasets)
    if not parts:
        raise InSARDataError("concat needs at least one dataset")
    shapes = {(d.sizes.get("y"), d.sizes.get("x")) for d in parts}
    if len(shapes) > 1:
        raise InSARDataError(f"cannot concatenate images of different sizes: {sorted(shapes)}")
    ds = xr.concat(
        parts,
        dim="sample",
        data_vars="all",
        coords="different",
        compat="equals",
        join="outer",
        combine_attrs="override",
    )
    validate(ds, check_values=False)
    return ds
