"""Colour palettes for wrapped phase, rendering and recovery.

Two palette styles are common in public interferogram sets (see DATA_FORMATS.md):

* ``"cyclic"``: a cyclic diverging palette, phase -pi -> pi maps dark red -> red -> yellow ->
  white -> light blue -> dark blue -> back to dark red. This is the documented palette for phase
  recovery: every colour on it corresponds to one phase.
* ``"rainbow"``: a hue cycle (red -> yellow -> green -> cyan -> blue -> magenta -> red), optionally
  with brightness modulated by an amplitude image, as in LiCSAR previews.
* ``"grey"``: a cyclic grey ramp, black at -pi to white at +pi, then a jump back to black: how
  large unlabelled pools often ship. Grey has no hue, so the grey level itself is the phase.

:func:`detect_palette` tells the three apart from the pixels alone, and ``recover_phase(rgb,
"auto")`` uses it, so a folder mixing styles (as public sets do, in every class) reads as one
kind of data: wrapped phase, whatever the rendering.

Decorrelated areas need no special treatment: their random phase renders as fine speckle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PALETTES", "detect_palette", "palette_lut", "render_phase", "recover_phase"]

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
PALETTES = ("cyclic", "rainbow", "grey")
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
    elif palette == "grey":
        rgb = np.repeat(np.floor(t * 256.0)[:, None], 3, axis=1)
    else:
        raise ValueError(f"palette must be one of {PALETTES}; got {palette!r}")
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def render_phase(
    phase: np.ndarray,
    palette: str = "cyclic",
    coherence: np.ndarray | None = None,
    amplitude: np.ndarray | None = None,
    nodata_rgb: tuple[int, int, int] = (0, 0, 0),
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """Render wrapped phase (radians, any shape) as uint8 RGB of shape ``phase.shape + (3,)``.

    ``lut`` (an ``(n, 3)`` uint8 table, row ``i`` the colour of phase ``-pi + 2 pi i / n``)
    renders in that table instead of ``palette``'s.

    ``amplitude`` (0-1) darkens pixels, as radar-amplitude-modulated previews do; ``coherence``
    is accepted for the same purpose when no amplitude exists (it is not used to blank pixels:
    decorrelated phase renders as speckle, as in real products). NaN renders as ``nodata_rgb``.
    """
    ph = np.asarray(phase, dtype=np.float64)
    if lut is None:
        lut = palette_lut(palette)
    elif not (isinstance(lut, np.ndarray) and lut.dtype == np.uint8 and lut.ndim == 2
              and lut.shape[1] == 3 and len(lut) > 0):  # fmt: skip
        raise ValueError(f"lut must be an (n, 3) uint8 table; got {getattr(lut, 'shape', lut)!r}")
    valid = np.isfinite(ph)
    idx = np.floor((np.where(valid, ph, 0.0) + np.pi) / (2 * np.pi) * len(lut)).astype(np.int64)
    rgb = lut[np.mod(idx, len(lut))]
    shade = amplitude if amplitude is not None else None
    if shade is not None:
        s = np.clip(np.nan_to_num(np.asarray(shade, dtype=np.float64), nan=0.0), 0.0, 1.0)
        rgb = np.round(rgb * (0.25 + 0.75 * s[..., None])).astype(np.uint8)
    del coherence  # documented: decorrelation shows as speckle, not as blanking
    rgb[~valid] = np.asarray(nodata_rgb, dtype=np.uint8)
    return rgb


def detect_palette(rgb: np.ndarray) -> str:
    """Which palette style an 8-bit rendering ``(h, w, 3)`` uses: "grey", "cyclic" or "rainbow".

    Grey: nearly every lit pixel has equal channels. Otherwise the hue decides: the cyclic
    diverging palette runs red -> yellow -> white -> blue and has no green, while a hue cycle
    spends a fifth of every fringe between yellow-green and green; this test does not need the
    rendering's colours to match this module's tables exactly. The band stops short of cyan
    (hue 0.42 of the circle, where cyan is 0.5) and its pixels must be coloured (saturation
    (max - min) / max of at least 0.35), so that a diverging palette whose light blue leans cyan
    or teal, and pixels resampled or compressed between its yellow and its blue, are not taken
    for a hue cycle; a hue cycle keeps its saturation however amplitude darkens it.
    ``benchmarks/bench_palettes.py`` measures wrong detections, also of halved, quartered and
    JPEG renderings. Limits: a hue cycle washed out by resampling fine speckle, or of one
    dominant phase away from green, reads as "cyclic".
    """
    a = np.asarray(rgb).reshape(-1, 3).astype(np.int16)
    hi, lo = a.max(axis=1), a.min(axis=1)
    lit = hi > 12
    if not lit.any():
        return "grey"
    spread = (hi - lo)[lit]
    if np.mean(spread <= 12) > 0.9:
        return "grey"
    sat = lit & ((hi - lo) > 40)
    if not sat.any():
        return "grey"
    coloured = a[sat].astype(np.float64)
    hue = _hue(coloured)
    vivid = (coloured.max(axis=1) - coloured.min(axis=1)) >= 0.35 * coloured.max(axis=1)
    green = np.mean((hue > 0.22) & (hue < 0.42) & vivid)
    # measured (bench_palettes.py, and other scenes with saturated diverging tables and hue
    # cycles down to saturation 0.45): diverging renderings, also halved, quartered or JPEG,
    # at most 0.0124; hue cycles at least 0.016, but for pale ones whose speckle is washed out
    return "rainbow" if green > 0.013 else "cyclic"


def recover_phase(rgb: np.ndarray, palette: str = "cyclic") -> np.ndarray:
    """Recover wrapped phase (float32 radians, shape ``rgb.shape[:-1]``) from a rendering.

    ``palette`` "auto" detects the style first (:func:`detect_palette`). "grey": the grey
    level is the phase (-pi at black, 256 levels over one fringe); black counts as no data only
    where a whole 5 x 5 neighbourhood is black (the no-data wedges at swath edges), since black
    is also a phase. ``"rainbow"``: the hue angle is the phase (red at -pi), which needs no
    table: it holds for any hue cycle of the HSV kind whatever its saturation, starting hue
    offset aside, and whatever amplitude shading darkens it (shading scales the channels, not
    the hue). ``"cyclic"``: each pixel takes the phase of the nearest palette colour (Euclidean
    in RGB, via a k-d tree over the palette's table, queried once per distinct colour); the
    palette must be unshaded (its colours differ in brightness, so shading is not invertible),
    and a tool whose diverging palette is not this module's table reads with errors where the
    two part (``benchmarks/bench_palettes.py`` measures the error, ``bench_transfer.py --look
    foreign`` what it costs the model). Pure
    black (the no-data colour) becomes NaN. Recovery is exact up to the table resolution
    (2 pi / 1024) for lossless renderings in this module's tables; lossy (JPEG) or resampled
    images add errors where the palette changes fast.
    """
    if palette not in (*PALETTES, "auto"):
        raise ValueError(f"palette must be one of {PALETTES} or 'auto'; got {palette!r}")
    arr = np.asarray(rgb)
    if arr.ndim < 1 or arr.shape[-1] != 3:
        raise ValueError(f"rgb must end with 3 channels; got shape {arr.shape}")
    if arr.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8; got dtype {arr.dtype}")
    if palette == "auto":
        palette = detect_palette(arr)
    if palette == "grey":
        return _recover_grey(arr)
    if palette == "rainbow":
        return _recover_hue(arr)
    flat = arr.reshape(-1, 3).astype(np.int32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    cols = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
    cols = cols.astype(np.float64)
    _, idx = _palette_tree(palette).query(cols)
    centres = (-np.pi + 2 * np.pi * (np.asarray(idx) + 0.5) / _LUT_SIZE).astype(np.float32)
    centres[colours == 0] = np.nan
    return centres[inverse.reshape(-1)].reshape(arr.shape[:-1])


def _recover_hue(arr: np.ndarray) -> np.ndarray:
    """Phase from the hue angle (HSV hue 0 = red = -pi, half a table step added as for the
    tables' bin centres); black is no data, greys (no hue) read as red."""
    phase = (_hue(arr.astype(np.float32)) * (2 * np.pi) - np.pi + np.pi / _LUT_SIZE).astype(
        np.float32
    )
    phase = np.where(phase >= np.pi, phase - 2 * np.pi, phase).astype(np.float32)
    phase[arr.max(axis=-1) == 0] = np.nan
    return phase


def _hue(a: np.ndarray) -> np.ndarray:
    """HSV hue in [0, 1) of float RGB ``(..., 3)`` (0 red, 1/3 green, 2/3 blue; 0 for greys)."""
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    hi, lo = a.max(axis=-1), a.min(axis=-1)
    d = np.maximum(hi - lo, 1e-6)
    six = np.where(
        hi == r, np.mod((g - b) / d, 6.0), np.where(hi == g, (b - r) / d + 2, (r - g) / d + 4)
    )
    return six / 6.0


def _recover_grey(arr: np.ndarray) -> np.ndarray:
    grey = arr.astype(np.float32).mean(axis=-1)
    phase = ((grey + 0.5) / 256.0 * (2 * np.pi) - np.pi).astype(np.float32)
    if arr.ndim == 3:
        from scipy.ndimage import binary_dilation, binary_erosion

        black = arr.max(axis=-1) == 0
        # black pixels that are part of some 5 x 5 all-black block: wedges, not dark fringes
        block = np.ones((5, 5), bool)
        core = binary_erosion(black, structure=block, border_value=1)
        phase[binary_dilation(core, structure=block) & black] = np.nan
    return phase


_TREES: dict[str, object] = {}


def _palette_tree(palette: str):  # -> scipy.spatial.cKDTree
    """k-d tree over the palette's colour table (built once per palette)."""
    if palette not in _TREES:
        from scipy.spatial import cKDTree

        _TREES[palette] = cKDTree(palette_lut(palette).astype(np.float64))
    return _TREES[palette]
