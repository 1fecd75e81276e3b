"""Colouring per-sample fields: one mapping used by the scatter, its legend, the map and gallery.

Categorical fields get a fixed qualitative palette (unlabelled samples light grey), numeric and
date fields a perceptual ramp (viridis; NaN grey), so a class has the same colour everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Coloring", "coloring", "category_color", "MISSING", "CATEGORY_COLORS", "RAMP"]

MISSING = "#c8c8c8"
# Tableau-like qualitative colours, readable on white and distinct for colour-blind users first
CATEGORY_COLORS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#9edae5",
    "#dbdb8d",
    "#393b79",
]


def category_color(i: int) -> str:
    """The colour of category ``i``: the table above, then hues a golden angle apart at two
    lightnesses (distinct from each other for a few hundred, never a repeat of the table)."""
    if i < len(CATEGORY_COLORS):
        return CATEGORY_COLORS[i]
    import colorsys

    j = i - len(CATEGORY_COLORS)
    hue = (0.07 + j * 0.381966) % 1.0
    value = (0.62, 0.82)[j % 2]
    saturation = (0.85, 0.6)[(j // 2) % 2]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


# viridis sampled at 8 stops
RAMP = ["#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"]


@dataclass
class Coloring:
    """How one field is coloured: ``kind`` categorical/numeric, per-sample ``colors`` (hex)."""

    field: str
    kind: str
    colors: np.ndarray  # object array of hex strings, one per sample
    categories: list[str] = field(default_factory=list)  # categorical: order of the key
    color_key: list[str] = field(default_factory=list)  # categorical: colour of each category
    codes: np.ndarray | None = None  # categorical: index into categories (-1 missing)
    values: np.ndarray | None = None  # numeric: float values (NaN missing)
    span: tuple[float, float] = (0.0, 1.0)  # numeric: value range of the ramp

    def legend_items(self, counts: bool = False) -> list[tuple[str, str]]:
        """``(colour, text)`` pairs for a legend; ``counts`` appends each category's size.

        Cluster ids read ``cluster 3`` and their missing value ``noise`` (samples HDBSCAN left
        in no cluster); other fields' missing value reads ``(none)``.
        """
        if self.kind == "categorical":
            cluster = self.field == "cluster"
            names = [f"cluster {c}" if cluster else c for c in self.categories]
            items = list(zip(self.color_key, names))
            sizes = self.category_counts()
            if self.codes is not None and (self.codes < 0).any():
                items.append((MISSING, "noise" if cluster else "(none)"))
            if counts:
                items = [(col, f"{text} ({n:,})") for (col, text), n in zip(items, sizes)]
            return items
        lo, hi = self.span
        return [(RAMP[0], _fmt(lo, self.field)), (RAMP[-1], _fmt(hi, self.field))]

    def category_counts(self) -> list[int]:
        """Samples per category, then the number of missing ones (categorical fields)."""
        if self.codes is None:
            return []
        k = len(self.categories)
        return np.bincount(np.where(self.codes < 0, k, self.codes), minlength=k + 1).tolist()


def _fmt(value: float, name: str) -> str:
    if name.endswith("date"):
        return str(pd.Timestamp(value, unit="D").date()) if np.isfinite(value) else "-"
    return f"{value:.3g}"


def _ramp(values: np.ndarray, span: tuple[float, float]) -> np.ndarray:
    lo, hi = span
    t = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    idx = np.where(np.isfinite(t), np.round(t * (len(RAMP) - 1)), -1).astype(int)
    lut = np.array([*RAMP, MISSING], dtype=object)
    return lut[idx]


def category_order(values: pd.Series, preferred: list[str] | None = None) -> list[str]:
    """Categories in a stable order: ``preferred`` (e.g. the label classes) first, then sorted."""
    present = [str(v) for v in pd.unique(values.dropna()) if str(v) != ""]
    first = list(preferred or [])  # keep every class's colour stable, present or not
    return list(dict.fromkeys([*first, *sorted(present)]))


def coloring(
    table: pd.DataFrame, name: str, kind: str, classes: list[str] | None = None
) -> Coloring:
    """Colour the field ``name`` of ``table`` (``kind`` from :func:`field_kinds`)."""
    col = table[name]
    if kind == "categorical":
        is_label = name in ("label", "predicted")
        as_str = col.astype(object).where(col.notna(), "").astype(str)
        if name == "cluster":
            as_str = as_str.where(col.to_numpy() >= 0, "")
        cats = category_order(as_str, classes if is_label else None)
        if name == "cluster":  # 0, 1, 2, ..., 10 (ids are numbered from the largest cluster)
            cats = sorted(cats, key=lambda v: (len(v), v))
        codes = pd.Index(cats, dtype=object).get_indexer(as_str).astype(np.int64)  # -1: none
        key = [category_color(i) for i in range(len(cats))]
        lut = np.array([*key, MISSING], dtype=object)
        return Coloring(name, kind, lut[codes], cats, key, codes=codes)
    if kind == "date":
        values = col.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype(np.float64)
        values[np.isnat(col.to_numpy(dtype="datetime64[ns]"))] = np.nan
    else:
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = values[np.isfinite(values)]
    span = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if name == "confidence":
        span = (0.0, 1.0) if not finite.size else (min(span[0], 0.5), 1.0)
    return Coloring(name, "numeric", _ramp(values, span), values=values, span=span)
