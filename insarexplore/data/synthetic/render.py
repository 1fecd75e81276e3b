"""Write a phase Dataset as PNG renderings, the way public labelled sets ship interferograms.

One sub-folder per class, LiCSAR-style file names that the image-folder reader parses back
(``<place>_<frame>_<primary>_<secondary>_<id>.png``), cyclic or rainbow palettes (or a mix, as
in real labelled sets, so that models cannot key on the palette). Also a contact sheet for
looking at many samples at once.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["render_dataset", "contact_sheet", "file_name"]

_PALETTE_CHOICES = ("cyclic", "rainbow", "mixed")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "unknown"


def _date(value: Any) -> str:
    d = np.datetime64(value, "D")
    return "00000000" if np.isnat(d) else str(d).replace("-", "")


def file_name(ds: Any, i: int) -> str:
    """LiCSAR-style name of sample ``i``: place, frame, dates and id."""
    place = ds["location_name"].values[i] if "location_name" in ds else "scene"
    frame = str(ds["frame"].values[i]) or "000X_00000_000000"
    sid = _slug(ds["sample"].values[i])
    d1, d2 = _date(ds["primary_date"].values[i]), _date(ds["secondary_date"].values[i])
    return f"{_slug(place)}_{frame}_{d1}_{d2}_{sid}.png"


def _palette_for(palette: str, sample_id: str) -> str:
    if palette != "mixed":
        return palette
    # fixed per sample id (independent of order and of the process)
    return "rainbow" if zlib.crc32(sample_id.encode()) % 2 else "cyclic"


def _rgb(ds: Any, i: int, palette: str) -> np.ndarray:
    from insarexplore.data.palettes import render_phase

    phase = ds["phase"].values[i]
    amp = None
    if palette == "rainbow" and "coherence" in ds:
        coh = np.nan_to_num(ds["coherence"].values[i], nan=0.0)
        amp = np.clip(0.35 + 0.9 * coh, 0.0, 1.0)  # LiCSAR-like amplitude shading
    return render_phase(phase, palette=palette, amplitude=amp)


def render_dataset(
    ds: Any,
    out_dir: str | os.PathLike,
    *,
    palette: str = "cyclic",
    layout: str = "class_folders",
    progress: bool | None = None,
) -> list[Path]:
    """Render every sample's phase to ``out_dir/<label>/<LiCSAR-style name>.png``.

    ``palette``: "cyclic", "rainbow" or "mixed" (each sample gets one of the two, fixed by its
    id). ``layout``: "class_folders" (one sub-folder per label, "unlabelled" when empty) or
    "flat". Returns the written paths in sample order.
    """
    from PIL import Image

    if palette not in _PALETTE_CHOICES:
        raise ValueError(f"palette must be one of {_PALETTE_CHOICES}; got {palette!r}")
    if layout not in ("class_folders", "flat"):
        raise ValueError(f"layout must be 'class_folders' or 'flat'; got {layout!r}")
    if "phase" not in ds:
        raise ValueError("ds: render_dataset needs a 'phase' variable")
    out = Path(out_dir)
    n = ds.sizes["sample"]
    labels = ds["label"].values if "label" in ds.coords else np.full(n, "", dtype=object)
    ids = ds["sample"].values
    show = progress if progress is not None else n > 2000
    it: Any = range(n)
    if show:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="rendering", unit="png")
    paths: list[Path] = []
    for i in it:
        folder = out / (_slug(labels[i]) if str(labels[i]) else "unlabelled") if layout == "class_folders" else out  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / file_name(ds, i)
        Image.fromarray(_rgb(ds, i, _palette_for(palette, str(ids[i])))).save(path)
        paths.append(path)
    return paths


def contact_sheet(
    ds: Any, path: str | os.PathLike, *, per_class: int = 8, palette: str = "cyclic",
    scale: int = 2,
) -> Path:  # fmt: skip
    """One PNG with a row per class (``per_class`` samples each) for looking at a set."""
    from PIL import Image, ImageDraw

    labels = ds["label"].values.astype(str)
    classes = list(dict.fromkeys(labels))
    h, w = ds.sizes["y"] * scale, ds.sizes["x"] * scale
    pad, text_w = 4, 90
    sheet = Image.new("RGB", (text_w + per_class * (w + pad), len(classes) * (h + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, cls in enumerate(classes):
        idx = np.flatnonzero(labels == cls)[:per_class]
        y0 = r * (h + pad)
        draw.text((4, y0 + h // 2 - 6), cls, fill="black")
        for c, i in enumerate(idx):
            pal = _palette_for(palette, str(ds["sample"].values[i]))
            tile = Image.fromarray(_rgb(ds, int(i), pal)).resize((w, h), Image.NEAREST)
            sheet.paste(tile, (text_w + c * (w + pad), y0))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
