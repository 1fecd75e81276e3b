"""Tiny, seeded fixture files for the reader tests: LiCSAR GeoTIFFs and rendered images.

Tests write their own files into ``tmp_path`` with these helpers (rasterio for GeoTIFFs with real
georeferencing and nodata, PIL for PNG/JPEG/TIFF renderings); nothing is downloaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

WEST, NORTH, RES = 38.0, 14.5, 0.001  # a LiCSAR-like 0.001 degree grid near Afar
NODATA = -9999.0


def write_geotiff(
    path: Path,
    array: np.ndarray,
    *,
    west: float = WEST,
    north: float = NORTH,
    res: float = RES,
    nodata: float | None = None,
    crs: str = "EPSG:4326",
) -> Path:
    """Write a north-up single- or multi-band GeoTIFF (``array`` is (h, w) or (bands, h, w))."""
    import rasterio
    from rasterio.transform import from_origin

    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="GTiff",
        height=arr.shape[1],
        width=arr.shape[2],
        count=arr.shape[0],
        dtype=arr.dtype.name,
        crs=crs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        profile["transform"] = from_origin(west, north, res, res)
    if nodata is not None:
        profile["nodata"] = nodata
    with warnings.catch_warnings():  # affine's PendingDeprecationWarning inside rasterio
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr)
    return path


def write_licsar_pair(
    root: Path,
    frame: str = "079D_07694_131313",
    primary: str = "20150819",
    secondary: str = "20150912",
    *,
    shape: tuple[int, int] = (40, 48),
    west: float = WEST,
    north: float = NORTH,
    coherence: str | None = "uint8",
    unwrapped: bool = True,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write ``<root>/<frame>/interferograms/<pair>/<pair>.geo.{diff_pha,cc,unw}.tif``.

    The unwrapped phase is a smooth ramp plus a bump; the wrapped phase is its wrap. A 4x5 block
    in the north-west corner is nodata in every layer. ``coherence``: "uint8" (0-255, nodata 0),
    "float" (0-1) or None. Returns the arrays written (NaN at nodata) and the folder.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    unw = 0.3 * xx - 0.2 * yy + 6.0 * np.exp(-((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / 60.0)
    unw = (unw + rng.normal(0, 0.05, shape)).astype(np.float32)
    pha = (np.mod(unw + np.pi, 2 * np.pi) - np.pi).astype(np.float32)
    nodata = np.zeros(shape, bool)
    nodata[:4, :5] = True
    pair = f"{primary}_{secondary}"
    folder = root / frame / "interferograms" / pair
    out: dict[str, np.ndarray] = {"folder": folder}  # type: ignore[dict-item]
    write_geotiff(
        folder / f"{pair}.geo.diff_pha.tif",
        np.where(nodata, NODATA, pha).astype(np.float32),
        west=west,
        north=north,
        nodata=NODATA,
    )
    out["phase"] = np.where(nodata, np.nan, pha).astype(np.float32)
    if unwrapped:
        write_geotiff(
            folder / f"{pair}.geo.unw.tif",
            np.where(nodata, NODATA, unw).astype(np.float32),
            west=west,
            north=north,
            nodata=NODATA,
        )
        out["unw"] = np.where(nodata, np.nan, unw).astype(np.float32)
    if coherence is not None:
        coh = rng.uniform(0.05, 1.0, shape).astype(np.float32)
        if coherence == "uint8":
            raw = np.clip(np.round(coh * 255), 1, 255).astype(np.uint8)
            raw[nodata] = 0
            write_geotiff(folder / f"{pair}.geo.cc.tif", raw, west=west, north=north, nodata=0)
            out["coherence"] = np.where(nodata, np.nan, raw / np.float32(255)).astype(np.float32)
        else:
            write_geotiff(folder / f"{pair}.geo.cc.tif", coh, west=west, north=north)
            out["coherence"] = np.where(nodata, np.nan, coh).astype(np.float32)  # masked by phase
    return out


def write_image(path: Path, rgb: np.ndarray, **save_kwargs) -> Path:
    """Save a uint8 (h, w, 3) or (h, w) array with PIL (format from the suffix)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path, **save_kwargs)
    return path


def fringe_phase(shape: tuple[int, int] = (32, 32), seed: int = 0) -> np.ndarray:
    """Seeded wrapped phase with a few fringes (float32, radians in [-pi, pi))."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    cx, cy, amp = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(8, 20)
    unw = amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.05) + rng.uniform(-3, 3) * xx
    return (np.mod(unw + np.pi, 2 * np.pi) - np.pi).astype(np.float32)


def rendered(
    shape: tuple[int, int] = (32, 32), seed: int = 0, palette: str = "cyclic"
) -> np.ndarray:
    """A uint8 RGB rendering of :func:`fringe_phase` in ``palette``."""
    from insarexplore.data.palettes import render_phase

    return render_phase(fringe_phase(shape, seed), palette=palette)
