"""Configuration of a synthetic set and the names of its per-sample variables."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from insarexplore.data.schema import S1_WAVELENGTH_M
from insarexplore.data.synthetic.parameters import CLASSES, DIFFICULTIES

__all__ = ["SyntheticConfig", "METADATA_VARS"]

# per-sample variables written to the dataset (NaN / "" where not applicable)
METADATA_VARS = (
    "depth_m", "volume_change_m3", "opening_m", "slip_m", "magnitude", "mechanism", "rake_deg",
    "strike_deg", "dip_deg", "length_m", "width_m", "subsidence_rate_m_per_yr", "source_lon",
    "source_lat", "source_row", "source_col", "pass_direction", "heading_deg", "incidence_deg",
    "baseline_days",
    "atmosphere_cm", "stratified_cm_per_km", "ramp_cm", "snr", "signal_fringes",
    "mean_coherence", "water_fraction", "location_name", "difficulty",
)  # fmt: skip


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything that defines a synthetic set besides the seed and the count."""

    size: int = 64
    classes: tuple[str, ...] = CLASSES
    difficulty: str = "medium"
    pixel_spacing_m: float = 100.0
    wavelength_m: float = S1_WAVELENGTH_M
    looks: float = 8.0  # effective looks of the phase noise
    nodata_fraction: float = 0.03  # share of samples with a no-data corner (NaN)
    block_size: int = 256  # samples per random stream; fixed so chunking never changes results
    max_tries: int = 20  # source redraws in the signal-to-nuisance acceptance
    id_prefix: str = "syn"
    okada_max_stride: int = 4  # coarsest sub-grid step for deep Okada sources (1 = every pixel)

    def __post_init__(self) -> None:
        if not isinstance(self.size, (int, np.integer)) or self.size < 8:
            raise ValueError(f"size must be an integer >= 8 pixels; got {self.size!r}")
        classes = tuple(self.classes) if not isinstance(self.classes, str) else (self.classes,)
        object.__setattr__(self, "classes", classes)
        if not classes:
            raise ValueError("classes must name at least one class (got an empty class mix)")
        bad = [c for c in classes if c not in CLASSES]
        if bad:
            raise ValueError(f"classes: unknown class {bad[0]!r}; choose from {CLASSES}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes must not repeat a class; got {classes}")
        if self.difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty must be one of {tuple(DIFFICULTIES)}; got {self.difficulty!r}")  # fmt: skip
        for name in ("pixel_spacing_m", "wavelength_m", "looks"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number; got {v!r}")
        if not 0.0 <= self.nodata_fraction <= 1.0:
            raise ValueError(f"nodata_fraction must lie in [0, 1]; got {self.nodata_fraction!r}")
        if self.block_size < 1 or self.max_tries < 1 or self.okada_max_stride < 1:
            raise ValueError("block_size, max_tries and okada_max_stride must be >= 1")
