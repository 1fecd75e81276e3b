"""Colour palettes for wrapped phase, rendering and recovery.

Two palette styles are common in public interferogram sets (see DATA_FORMATS.md):

* ``"cyclic"``: a cyclic diverging palette, phase -pi -> pi maps dark red -> red -> yellow ->
  white -> light blue -> dark blue -> back to dark red. This is the documented palette for phase
  recovery: every colour on it corresponds to one phase.
* ``"rainbow"``: a hue cycle (red -> yellow -> green -> cyan -> blue -> magenta -> red), optionally
  with brightness modulated by an amplitude image, as in LiCSAR previews.

Decorrelated areas need no special treatment: their random phase renders as fine speckle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PALETTES", "palette_lut", "render_phase", "recover_phase"]

# anchor colours of the cyclic palette at equally spaced phases starting at -pi
_CYCLIC_ANCHORS = np.array(
    [
        [110, 0, 20],  # -pi: dark red
        [220, 40, 30],  # red
        [250, 200, 40],  # yellow
        [255, 255, 245],  # white (phase 0)
        [120, 190, 240],  # light blue
        [20, 60, 170],  # dark blue
        [110, 0, 20],  # back to dark red (+pi == -pi)
    ],
    dtype=np.float64,
)
PALETTES = ("cyclic", "rainbow")
_LUT_SIZE = 1024


def palette_lut(palette: str = "cyclic", size: int = _LUT_SIZE) -> np.ndarray:
    """Return a ``(size, 3)`` uint8 table: row ``i`` is the colour of phase ``-pi + 2 pi i/size``."""
    t = np.arange(size) / size
    if palette == "cyclic":
        pos = np.linspace(0.0, 1.0, len(_CYCLIC_ANCHORS))
        rgb = np.stack([np.interp(t, pos, _CYCLIC_ANCHORS[:, c]) for c in range(3)], axis=1)
    elif palette == "rainbow":
        h = t * 6.0
        x = 1 - np.abs(np.mod(h, 2) - 1)
        seg = np.floor(h).astype(int) % 6
        r = np.choose(seg, [1, x, 0, 0, x, 1])
        g = np.choose(seg, [x, 1, 1, x, 0, 0])
        b = np.choose(seg, [0, 0, x, 1, 1, x])
        rgb = np.stack([r, g, b], axis=1) * 255.0
    else:
        raise ValueError(f"palette must be one of {PALETTES}; got {palette!r}")
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def render_phase(
    phase: np.ndarray,
    palette: str = "cyclic",
    coherence: np.ndarray | None = None,
    amplitude: np.ndarray | None = None,
    nodata_rgb: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Render wrapped phase (radians, any shape) as uint8 RGB of shape ``phase.shape + (3,)``.

    ``amplitude`` (0-1) darkens pixels, as radar-amplitude-modulated previews do; ``coherence``
    is accepted for the same purpose when no amplitude exists (it is not used to blank pixels:
    decorrelated phase renders as speckle, as in real products). NaN renders as ``nodata_rgb``.
    """
    ph = np.asarray(phase, dtype=np.float64)
    lut = palette_lut(palette)
    valid = np.isfinite(ph)
    idx = np.floor((np.where(valid, ph, 0.0) + np.pi) / (2 * np.pi) * _LUT_SIZE).astype(np.int64)
    rgb = lut[np.mod(idx, _LUT_SIZE)]
    shade = amplitude if amplitude is not None else None
    if shade is not None:
        s = np.clip(np.nan_to_num(np.asarray(shade, dtype=np.float64), nan=0.0), 0.0, 1.0)
        rgb = np.round(rgb * (0.25 + 0.75 * s[..., None])).astype(np.uint8)
    del coherence  # documented: decorrelation shows as speckle, not as blanking
    rgb[~valid] = np.asarray(nodata_rgb, dtype=np.uint8)
    return rgb


def recover_phase(rgb: np.ndarray, palette: str = "cyclic") -> np.ndarray:
    """Recover wrapped phase (float32 radians) from an RGB rendering in a known palette.

    Each pixel takes the phase of the nearest palette colour (Euclidean in RGB). Pure black
    (the no-data colour) becomes NaN. For ``"rainbow"`` renderings with amplitude shading,
    colours are normalised by their brightest channel first.
    """
    arr = np.asarray(rgb)
    if arr.shape[-1] != 3:
        raise ValueError(f"rgb must end with 3 channels; got shape {arr.shape}")
    flat = arr.reshape(-1, 3).astype(np.int32)
    lut = palette_lut(palette).astype(np.int32)
    nodata = (flat == 0).all(axis=1)
    if palette == "rainbow":
        peak = np.maximum(flat.max(axis=1, keepdims=True), 1)
        flat = np.round(flat * (255.0 / peak)).astype(np.int32)
    # exact lookup through a 32^3 colour cube: nearest LUT entry for every quantised colour
    cube = _nearest_cube(palette)
    q = np.clip(flat // 8, 0, 31)
    idx = cube[q[:, 0], q[:, 1], q[:, 2]].astype(np.int64)
    # refine among LUT neighbours of the cube guess using the exact colour
    cand = (idx[:, None] + np.arange(-16, 17)[None, :]) % _LUT_SIZE
    d = ((lut[cand] - flat[:, None, :]) ** 2).sum(axis=2)
    best = cand[np.arange(cand.shape[0]), d.argmin(axis=1)]
    out = (-np.pi + 2 * np.pi * (best + 0.5) / _LUT_SIZE).astype(np.float32)
    out[nodata] = np.nan
    out[out >= np.float32(np.pi)] = np.float32(-np.pi)
    return out.reshape(arr.shape[:-1])


_CUBES: dict[str, np.ndarray] = {}


def _nearest_cube(palette: str) -> np.ndarray:
    """32^3 table: index of the LUT colour nearest to each quantised RGB cell centre."""
    if palette not in _CUBES:
        lut = palette_lut(palette).astype(np.float32)
        centres = np.arange(32, dtype=np.float32) * 8 + 3.5
        grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1).reshape(-1, 3)
        best = np.empty(grid.shape[0], dtype=np.int32)
        for start in range(0, grid.shape[0], 4096):
            g = grid[start : start + 4096]
            d = (g**2).sum(1)[:, None] - 2 * g @ lut.T + (lut**2).sum(1)[None, :]
            best[start : start + 4096] = d.argmin(axis=1)
        _CUBES[palette] = best.reshape(32, 32, 32)
    return _CUBES[palette]
