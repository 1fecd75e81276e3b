"""Decoding one rendered interferogram file (PNG/JPEG/TIFF) into uint8 RGB, with reasons on failure.

Kept free of xarray so that worker processes start fast. Every function returns a problem string
instead of raising, so one bad file never stops a folder: the caller decides (strict or skip).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_SUFFIXES",
    "FITS",
    "fit_phase",
    "load_image",
    "load_many",
    "probe_size",
    "probe_many",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
#: How images of another size reach the common size: "auto" centre-crops when the image is at
#: most 10 % (or 16 px) larger in both dimensions (e.g. 227 -> 224) and resizes otherwise;
#: "crop" always centre-crops (resizes when smaller); "resize" always resizes (bilinear);
#: "error" treats a different size as a bad file.
FITS = ("auto", "crop", "resize", "error")
_TIFF = (".tif", ".tiff")
#: Renderings larger than this many pixels are refused as bad files (a 20,000 x 20,000 PNG would
#: decode to 1.2 GB; public renderings are at most a few thousand pixels a side).
MAX_PIXELS = 64_000_000


def _too_large(w: int, h: int) -> str:
    return f"image too large ({w}x{h} px, more than {MAX_PIXELS:,} pixels)"


def _describe_raster(path: str) -> str:
    """Why a TIFF that PIL cannot decode is not a rendering (dtype, bands), via rasterio."""
    try:
        import rasterio

        with rasterio.open(path) as src:
            dtypes = set(src.dtypes)
            kind = "georeferenced " if src.crs is not None else ""
            return (
                f"{kind}raster with {src.count} band(s) of dtype {'/'.join(sorted(dtypes))}, "
                "not an 8-bit RGB or grayscale rendering (float phase GeoTIFFs: use read_licsar)"
            )
    except Exception as err:  # noqa: BLE001 - any failure here means "unreadable"
        return f"cannot decode image ({type(err).__name__}: {err})"


def probe_size(path: str) -> tuple[tuple[int, int] | None, str]:
    """(height, width) from the file header, or (None, problem)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError:
        return None, "file not found"
    except Image.DecompressionBombError as err:
        return None, f"image too large ({err})"
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        if Path(path).suffix.lower() in _TIFF:
            return None, _describe_raster(path)
        return None, f"not a readable image ({type(err).__name__}: {err})"
    if h < 1 or w < 1:
        return None, f"empty image ({h}x{w})"
    if w * h > MAX_PIXELS:
        return None, _too_large(w, h)
    return (h, w), ""


def _to_rgb(img, suffix: str) -> tuple[np.ndarray | None, str]:
    """PIL image -> uint8 (h, w, 3); grayscale is replicated to three bands."""
    mode = img.mode
    if mode in ("RGB", "L"):
        arr = np.asarray(img)
    elif mode in ("I;16", "I;16B", "I;16L") or (mode == "I" and suffix not in _TIFF):
        arr16 = np.asarray(img).astype(np.int64)
        if arr16.min() < 0 or arr16.max() > 65535:
            return None, f"integer image (mode {mode}) with values outside 0-65535"
        arr = (arr16 // 257).astype(np.uint8)
    elif mode in ("F", "I", "I;32"):
        kind = "float32" if mode == "F" else "int32"
        return None, (
            f"single-band {kind} raster, not an 8-bit RGB or grayscale rendering "
            "(float phase GeoTIFFs: use read_licsar)"
        )
    elif "A" in mode or "transparency" in img.info:  # RGBA, LA, PA, P with a transparent index
        rgba = np.asarray(img.convert("RGBA"))
        arr = np.where(rgba[:, :, 3:] >= 128, rgba[:, :, :3], 0).astype(np.uint8)  # clear: no data
    else:  # P, CMYK, YCbCr, 1: let PIL convert
        arr = np.asarray(img.convert("RGB"))
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.dtype != np.uint8:
        return None, f"unsupported pixel dtype {arr.dtype} (mode {mode})"
    return np.ascontiguousarray(arr), ""


def _fit(arr: np.ndarray, size: tuple[int, int], fit: str) -> tuple[np.ndarray | None, str]:
    h, w = arr.shape[:2]
    th, tw = size
    if (h, w) == (th, tw):
        return arr, ""
    if fit == "error":
        return None, f"size {h}x{w} differs from the common size {th}x{tw}"
    slack_h, slack_w = max(16, th // 10), max(16, tw // 10)
    larger = h >= th and w >= tw
    if larger and (fit == "crop" or (fit == "auto" and h - th <= slack_h and w - tw <= slack_w)):
        y0, x0 = (h - th) // 2, (w - tw) // 2
        return np.ascontiguousarray(arr[y0 : y0 + th, x0 : x0 + tw]), ""
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((tw, th), Image.Resampling.BILINEAR)), ""


def fit_phase(phase: np.ndarray, size: tuple[int, int], fit: str) -> np.ndarray:
    """Bring a wrapped-phase image to ``size`` as :func:`_fit` brings an RGB one: centre crop,
    or a resize of the phasor (cos, sin) so that fringes are not smeared across the wrap."""
    h, w = phase.shape
    th, tw = size
    if (h, w) == (th, tw):
        return phase
    slack_h, slack_w = max(16, th // 10), max(16, tw // 10)
    larger = h >= th and w >= tw
    if larger and (fit == "crop" or (fit == "auto" and h - th <= slack_h and w - tw <= slack_w)):
        y0, x0 = (h - th) // 2, (w - tw) // 2
        return np.ascontiguousarray(phase[y0 : y0 + th, x0 : x0 + tw])
    from PIL import Image

    valid = np.isfinite(phase)
    z = np.where(valid, phase, 0.0)

    def resize(a: np.ndarray) -> np.ndarray:
        img = Image.fromarray(a.astype(np.float32), mode="F")
        return np.asarray(img.resize((tw, th), Image.Resampling.BILINEAR))

    c, s, v = resize(np.cos(z) * valid), resize(np.sin(z) * valid), resize(valid.astype(float))
    out = np.arctan2(s, c).astype(np.float32)
    out[v < 0.5] = np.nan
    return out


def load_image(
    path: str, size: tuple[int, int] | None = None, fit: str = "auto"
) -> tuple[np.ndarray | None, tuple[int, int], str]:
    """Decode ``path`` to uint8 (h, w, 3) at ``size``: (array, original size, problem)."""
    from PIL import Image, UnidentifiedImageError

    suffix = Path(path).suffix.lower()
    try:
        with Image.open(path) as img:
            if img.size[0] * img.size[1] > MAX_PIXELS:  # header only: never decoded
                return None, (img.size[1], img.size[0]), _too_large(*img.size)
            img.load()  # forces a full decode: truncated files fail here, not later
            arr, problem = _to_rgb(img, suffix)
    except FileNotFoundError:
        return None, (0, 0), "file not found"
    except Image.DecompressionBombError as err:
        return None, (0, 0), f"image too large ({err})"
    except UnidentifiedImageError as err:
        if suffix in _TIFF:
            return None, (0, 0), _describe_raster(path)
        return None, (0, 0), f"not a readable image ({err})"
    except (OSError, ValueError, SyntaxError) as err:
        msg = str(err) or type(err).__name__
        return None, (0, 0), f"corrupt or truncated image ({type(err).__name__}: {msg})"
    if arr is None:
        return None, (0, 0), problem
    orig = (int(arr.shape[0]), int(arr.shape[1]))
    flat = arr.reshape(-1, 3)
    if (flat == flat[0]).all():
        return (
            None,
            orig,
            f"blank image: every pixel has the colour {tuple(int(v) for v in flat[0])}",
        )
    if size is not None:
        arr, problem = _fit(arr, size, fit)
        if arr is None:
            return None, orig, problem
    return arr, orig, ""


def load_many(
    paths: Sequence[str], size: tuple[int, int] | None, fit: str, palette: str | None = None
) -> list[tuple[np.ndarray | None, tuple[int, int], str, np.ndarray | None]]:
    """:func:`load_image` over a batch (one task per batch keeps pool overhead low).

    With ``palette`` (a palette name, or "auto" to detect each image's own), each image's phase
    is also recovered in the worker, at the image's own resolution before it is fitted to
    ``size`` (4th item: ``(phase, palette used)``, else None).
    """
    out = []
    for p in paths:
        if palette is None:
            arr, orig, problem = load_image(p, size, fit)
            out.append((arr, orig, problem, None))
            continue
        from insarexplore.data.palettes import detect_palette, recover_phase

        arr, orig, problem = load_image(p, None, fit)
        phase = None
        if arr is not None:
            used = detect_palette(arr) if palette == "auto" else palette
            ph = recover_phase(arr, palette=used)
            if size is not None:
                arr, problem = _fit(arr, size, fit)
                ph = fit_phase(ph, size, fit) if arr is not None else None
            phase = (ph, used) if arr is not None else None
        out.append((arr, orig, problem, phase))
    return out


def probe_many(paths: Sequence[str]) -> list[tuple[tuple[int, int] | None, str]]:
    """:func:`probe_size` over a batch."""
    return [probe_size(p) for p in paths]
