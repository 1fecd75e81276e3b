"""Renderings shaped like the real public sets: grey and colour styles, shading, wedges, RGBA.

Public sets of Sentinel-1 renderings (DATA_FORMATS.md) differ from a clean palette rendering
in ways that matter to a reader and to a model: large unlabelled pools are greyscale (the grey
level is the wrapped phase), labelled sets mix a cyclic diverging palette and an
amplitude-shaded hue cycle in every class, black no-data wedges cut swath edges, sizes vary
(224, 227, some 464 x 373 scenes stored as RGBA with transparent no-data). ``render_styled``
makes one such image from a phase field; ``write_styled_folder`` writes a whole set, so tests
and benchmarks run on fixtures shaped like what users hold.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "STYLES",
    "amplitude_texture",
    "degraded",
    "diverging_lut",
    "foreign_lut",
    "hue_cycle_lut",
    "nodata_wedge",
    "render_styled",
    "write_styled_folder",
]

STYLES = ("grey", "cyclic", "rainbow")


def nodata_wedge(h: int, w: int, rng: np.random.Generator, max_fraction: float = 0.3) -> np.ndarray:
    """A black swath-edge wedge: True in a triangle cut off one corner (5 % to ``max_fraction``
    of the image)."""
    frac = rng.uniform(0.05, max_fraction)
    a, b = np.sqrt(2 * frac) * rng.uniform(0.7, 1.3), np.sqrt(2 * frac) / rng.uniform(0.7, 1.3)
    yy, xx = np.mgrid[0:h, 0:w]
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    corner = rng.integers(4)
    if corner & 1:
        u = 1 - u
    if corner & 2:
        v = 1 - v
    return u / a + v / b < 1


def amplitude_texture(h: int, w: int, seed: int, beta: float = 3.0) -> np.ndarray:
    """A smooth radar-amplitude-like field in [0.15, 1] (power-law noise: terrain), fixed by
    ``seed``, so that one site keeps one texture across its images."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    k = np.sqrt(fx**2 + fy**2)
    k[0, 0] = 1.0
    spec = (rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape)) * k ** (-beta / 2)
    spec[0, 0] = 0
    field = np.fft.irfft2(spec, s=(h, w))
    field = (field - field.min()) / max(np.ptp(field), 1e-9)
    return (0.15 + 0.85 * field).astype(np.float32)


def _anchored(anchors: np.ndarray, pos: np.ndarray, size: int) -> np.ndarray:
    """Float RGB ``(size, 3)`` interpolated between ``anchors`` (clipped to 0-255) at ``pos``."""
    t = np.arange(size) / size
    return np.stack([np.interp(t, pos, np.clip(anchors[:, c], 0, 255)) for c in range(3)], 1)


def diverging_lut(light_blue: Sequence[int], size: int = 1024) -> np.ndarray:
    """The reader's diverging table (``palettes.palette_lut("cyclic")``) with another light
    blue anchor, e.g. one that leans cyan or teal as some tools' do: ``(size, 3)`` uint8."""
    from insarexplore.data.palettes import _CYCLIC_ANCHORS

    anchors = _CYCLIC_ANCHORS.copy()
    anchors[4] = np.asarray(light_blue, dtype=np.float64)
    rgb = _anchored(anchors, np.linspace(0.0, 1.0, len(anchors)), size)
    return np.round(rgb).astype(np.uint8)


def hue_cycle_lut(saturation: float) -> np.ndarray:
    """The reader's hue-cycle table (``palettes.palette_lut("rainbow")``) at ``saturation``
    (1: as it is; lower: paler, every colour moved towards white): ``(1024, 3)`` uint8."""
    from insarexplore.data.palettes import palette_lut

    pure = palette_lut("rainbow").astype(np.float64)
    return np.round(255 - saturation * (255 - pure)).astype(np.uint8)


def degraded(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """A uint8 RGB rendering as tools and archives pass it on: ``"as rendered"``, ``"halved"``
    (box filter), ``"quartered"`` (bilinear) and ``"JPEG 50"`` (saved at quality 50)."""
    import io

    from PIL import Image

    h, w = rgb.shape[:2]
    im, buf = Image.fromarray(rgb), io.BytesIO()
    im.save(buf, "JPEG", quality=50)
    return {
        "as rendered": rgb,
        "halved": np.asarray(im.resize((w // 2, h // 2), Image.BOX)),
        "quartered": np.asarray(im.resize((w // 4, h // 4), Image.BILINEAR)),
        "JPEG 50": np.asarray(Image.open(buf).convert("RGB")),
    }


def foreign_lut(style: str, rng: np.random.Generator, size: int = 1024) -> np.ndarray:
    """A rendering tool's own table for ``style``: the same family of palette as the reader's
    table (``palettes.palette_lut``) but not its colours, as real sets are rendered.

    "cyclic": the diverging anchors (dark red, red, yellow, white, light blue, dark blue) each
    made lighter or darker (about 20 levels) and tinted a little (about 8 levels a channel;
    white a third of that), so that each keeps its hue, and spaced unevenly (each inner anchor
    up to 0.05 of the cycle off), started at a random phase. "rainbow": a hue cycle at
    saturation 0.7-1, started at a random hue. "grey": the plain ramp (grey renderings are read
    as documented).
    Returns an ``(size, 3)`` uint8 table for ``render_phase(lut=...)``.
    """
    from insarexplore.data.palettes import _CYCLIC_ANCHORS, palette_lut

    t = np.arange(size) / size
    if style == "grey":
        return palette_lut("grey", size)
    if style == "cyclic":
        anchors = _CYCLIC_ANCHORS.copy()
        # each anchor lighter or darker (20 levels) and tinted a little (8 a channel): the
        # same hues (white stays near white, light blue blue), another tool's tones
        scale = np.where(np.arange(len(anchors) - 1) == 3, 0.3, 1.0)[:, None]  # white: less
        anchors[:-1] += scale * rng.normal(0.0, 20.0, size=(len(anchors) - 1, 1))
        anchors[:-1] += scale * rng.normal(0.0, 8.0, size=(len(anchors) - 1, 3))
        anchors[-1] = anchors[0]
        pos = np.linspace(0.0, 1.0, len(anchors))
        pos[1:-1] += rng.uniform(-0.05, 0.05, size=len(pos) - 2)
        rgb = _anchored(anchors, pos, size)
    elif style == "rainbow":
        sat = rng.uniform(0.7, 1.0)
        h = (t + rng.uniform()) % 1.0 * 6.0
        x = 1 - np.abs(np.mod(h, 2) - 1)
        seg = np.floor(h).astype(int) % 6
        pure = np.stack([np.choose(seg, [1, x, 0, 0, x, 1]), np.choose(seg, [x, 1, 1, x, 0, 0]),
                         np.choose(seg, [0, 0, x, 1, 1, x])], 1)  # fmt: skip
        rgb = 255.0 * (1.0 - sat * (1.0 - pure))
    else:
        raise ValueError(f"style must be one of {STYLES}; got {style!r}")
    rgb = np.roll(rgb, int(rng.integers(size)), axis=0) if style == "cyclic" else rgb
    return np.clip(np.round(rgb), 1, 255).astype(np.uint8)


def render_styled(
    phase: np.ndarray,
    style: str,
    *,
    amplitude: np.ndarray | None = None,
    wedge: np.ndarray | None = None,
    size: tuple[int, int] | None = None,
    rgba: bool = False,
    lut: np.ndarray | None = None,
) -> np.ndarray:
    """One rendering of wrapped ``phase``: uint8 ``(h, w, 3)``, or ``(h, w, 4)`` with ``rgba``.

    ``style``: "grey" (cyclic grey ramp), "cyclic" (diverging palette) or "rainbow" (hue
    cycle, shaded by ``amplitude`` when given). ``wedge`` (bool mask) and NaN are no data:
    black, or transparent with ``rgba``. ``size`` (h, w) resamples the phasor first. ``lut``
    renders in that table (e.g. :func:`foreign_lut`) instead of the style's own.
    """
    from insarexplore.data.io._decode import fit_phase
    from insarexplore.data.palettes import render_phase

    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}; got {style!r}")
    ph = np.array(phase, dtype=np.float32)
    if wedge is not None:
        ph[wedge] = np.nan
    amp = amplitude
    if size is not None and tuple(size) != ph.shape:
        ph = fit_phase(ph, tuple(size), "resize")
        if amp is not None:
            from PIL import Image

            img = Image.fromarray(np.asarray(amp, dtype=np.float32), mode="F")
            amp = np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    shade = amp if style == "rainbow" else None
    rgb = render_phase(ph, palette=style, amplitude=shade, lut=lut)
    if not rgba:
        return rgb
    alpha = np.where(np.isfinite(ph), 255, 0).astype(np.uint8)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def write_styled_folder(
    ds: Any,
    out_dir: str | os.PathLike,
    *,
    styles: Sequence[str] | dict[str, Sequence[float]] = ("grey",),
    site: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    wedge_p: float = 0.3,
    rgba_p: float = 0.0,
    big_size: tuple[int, int] = (373, 464),
    seed: int = 0,
    tif_names: int = 0,
    foreign: bool = False,
    reverse: Sequence[str] = (),
) -> list[Path]:
    """Write every sample of a phase Dataset as a styled rendering under ``out_dir``.

    ``styles``: the styles to draw from uniformly, or ``{site: weights over STYLES}`` for a
    per-site mix (sites as in real sets, where one volcano's images share a look). ``site``
    per sample (default ``location_name``) also fixes the amplitude texture. ``labels``: one
    sub-folder per label (default: flat). ``rgba_p`` of the images become ``big_size`` RGBA
    scenes. The first ``tif_names`` images are saved as RGB TIFFs named
    ``*.geo.diff_pha.tif``, as some public sets ship them. File names are LiCSAR-like.
    ``foreign``: each site renders each style in its own :func:`foreign_lut` (one tool per
    site), so the reader's palette tables do not match the colours exactly. ``reverse``: the
    styles whose tables run the other way round the cycle (tools differ in the sign of phase
    they render), so that the reader reads their phase conjugated.
    """
    from PIL import Image

    from insarexplore.data.palettes import palette_lut
    from insarexplore.data.synthetic.render import file_name

    if isinstance(reverse, str) or not set(reverse) <= set(STYLES):
        raise ValueError(f"reverse must be a sequence of styles among {STYLES}; got {reverse!r}")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    n = ds.sizes["sample"]
    sites = np.asarray(site if site is not None else ds["location_name"].values).astype(str)
    h, w = ds.sizes["y"], ds.sizes["x"]
    textures: dict[str, np.ndarray] = {}
    luts: dict[tuple[str, str], np.ndarray] = {}
    paths = []
    phase = ds["phase"].values
    for i in range(n):
        s = sites[i]
        if isinstance(styles, dict):
            weights = np.asarray(styles.get(s, styles.get("*", (1, 1, 1))), dtype=float)
            style = STYLES[rng.choice(len(STYLES), p=weights / weights.sum())]
        else:
            style = styles[rng.integers(len(styles))]
        if s not in textures:
            textures[s] = amplitude_texture(h, w, seed=zlib.crc32(f"{s}|{seed}".encode()))
        wedge = nodata_wedge(h, w, rng) if rng.random() < wedge_p else None
        big = rng.random() < rgba_p
        if foreign and (s, style) not in luts:  # own stream: the draws above stay as without
            site_rng = np.random.default_rng(zlib.crc32(f"{s}|{style}|{seed}|lut".encode()))
            luts[s, style] = foreign_lut(style, site_rng)
        table = luts.get((s, style))
        if style in reverse:  # the table run backwards: row i shows phase -(-pi + 2 pi i / n)
            table = np.roll((palette_lut(style) if table is None else table)[::-1], 1, axis=0)
        img = render_styled(
            phase[i],
            style,
            amplitude=textures[s],
            wedge=wedge,
            size=big_size if big else None,
            rgba=big,
            lut=table,
        )
        folder = out / str(labels[i]) if labels is not None else out
        folder.mkdir(parents=True, exist_ok=True)
        name = file_name(ds, i)
        if i < tif_names:
            path = folder / name.replace(".png", ".geo.diff_pha.tif")
            Image.fromarray(img[..., :3]).save(path)
        else:
            path = folder / name
            Image.fromarray(img).save(path)
        paths.append(path)
    return paths
