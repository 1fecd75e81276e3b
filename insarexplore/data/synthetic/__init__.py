"""Physics-based synthetic Sentinel-1 interferograms with labels and source parameters.

Sources (Mogi, Okada 1985 rectangles), atmosphere (power-law screens, stratified delay over a
fractal DEM, ramps), decorrelation (coherence maps, coherence-consistent phase noise), real
locations, the batched generator and PNG rendering.
"""

from insarexplore.data.synthetic.generator import (
    METADATA_VARS,
    SyntheticConfig,
    generate,
    generate_to_zarr,
    iter_blocks,
)
from insarexplore.data.synthetic.locations import LOCATIONS, Location
from insarexplore.data.synthetic.parameters import CLASSES, DIFFICULTIES
from insarexplore.data.synthetic.render import contact_sheet, render_dataset
from insarexplore.data.synthetic.sources import mogi, okada85, rectangular_dislocation

__all__ = [
    "CLASSES",
    "DIFFICULTIES",
    "LOCATIONS",
    "METADATA_VARS",
    "Location",
    "SyntheticConfig",
    "contact_sheet",
    "generate",
    "generate_to_zarr",
    "iter_blocks",
    "mogi",
    "okada85",
    "rectangular_dislocation",
    "render_dataset",
]
