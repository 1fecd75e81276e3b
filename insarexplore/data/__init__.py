"""The data model, its accessor, palettes, readers and the synthetic generator.

Importing this package registers the ``ds.insar`` accessor.
"""

from insarexplore.data import accessor as _accessor  # noqa: F401  (registers ds.insar)
from insarexplore.data.schema import S1_WAVELENGTH_M, SCHEMA_VERSION, concat, new_dataset, validate

__all__ = ["S1_WAVELENGTH_M", "SCHEMA_VERSION", "concat", "new_dataset", "validate"]
