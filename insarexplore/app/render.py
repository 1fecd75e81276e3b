"""PNG renderings of one sample for the dashboard: thumbnails, map overlays and detail images.

Everything the browser sees of an interferogram is rendered here, on the server, from the data
model; the browser never names a file.
"""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["encode_png", "png_data_url", "render_sample", "resize_nearest"]


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode a ``(H, W, 3)`` or ``(H, W, 4)`` uint8 array as PNG bytes."""
    from PIL import Image

    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"rgb must have shape (H, W, 3|4); got {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr, mode="RGBA" if arr.shape[2] == 4 else "RGB").save(buf, format="PNG")
    return buf.getvalue()


def png_data_url(png: bytes) -> str:
    """Return ``data:image/png;base64,...`` for PNG bytes (used for map overlays)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def resize_nearest(img: np.ndarray, size: int) -> np.ndarray:
    """Resize the two leading axes of ``img`` so that the longer side is ``size`` (nearest)."""
    h, w = img.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    rows = np.minimum((np.arange(nh) / scale).astype(int), h - 1)
    cols = np.minimum((np.arange(nw) / scale).astype(int), w - 1)
    return img[rows][:, cols]


def _grey(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    v = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1)
    g = np.where(np.isfinite(v), v * 255, 0).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


def _diverging(values: np.ndarray) -> np.ndarray:
    """Blue-white-red rendering of a signed field, symmetric about zero."""
    finite = values[np.isfinite(values)]
    vmax = float(np.nanpercentile(np.abs(finite), 99)) if finite.size else 1.0
    t = np.clip(values / max(vmax, 1e-12), -1, 1)
    t = np.where(np.isfinite(t), t, 0.0)
    white = np.array([247, 247, 247], dtype=np.float64)
    red = np.array([178, 24, 43], dtype=np.float64)
    blue = np.array([33, 102, 172], dtype=np.float64)
    pos = t[..., None].clip(0, None)
    neg = (-t[..., None]).clip(0, None)
    rgb = white + pos * (red - white) + neg * (blue - white)
    return rgb.astype(np.uint8)


def render_sample(
    arrays: dict[str, np.ndarray],
    layer: str = "phase",
    *,
    size: int | None = None,
    palette: str = "cyclic",
    transparent_nodata: bool = False,
) -> bytes:
    """Render one sample's ``layer`` (phase, image, coherence, displacement) as PNG bytes.

    ``arrays`` maps variable names to that sample's 2-D (or ``(y, x, band)``) arrays. Phase uses
    the cyclic palette; no-data pixels are transparent when ``transparent_nodata`` (map overlays).
    """
    from insarexplore.data.palettes import render_phase

    if layer == "phase" and "phase" not in arrays and "image" in arrays:
        layer = "image"
    if layer not in arrays:
        raise ValueError(f"layer {layer!r} is not available; have {sorted(arrays)}")
    values = np.asarray(arrays[layer])
    if layer == "phase":
        rgb = render_phase(np.asarray(values, dtype=np.float32), palette=palette)
        valid = np.isfinite(values)
    elif layer == "image":
        rgb = values.astype(np.uint8)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=-1)
        valid = np.ones(rgb.shape[:2], dtype=bool)
    elif layer == "coherence":
        rgb, valid = _grey(values, 0.0, 1.0), np.isfinite(values)
    elif layer == "displacement":
        rgb, valid = _diverging(values.astype(np.float64)), np.isfinite(values)
    else:
        raise ValueError(f"layer must be phase, image, coherence or displacement; got {layer!r}")
    rgb = np.asarray(rgb, dtype=np.uint8)
    if transparent_nodata:
        alpha = np.where(valid, 255, 0).astype(np.uint8)
        rgb = np.concatenate([rgb, alpha[..., None]], axis=-1)
    if size is not None:
        rgb = resize_nearest(rgb, size)
    return encode_png(rgb)
