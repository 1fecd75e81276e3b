"""Readers and stores: every reader returns the data model (see docs/ARCHITECTURE.md).

Names are imported on first use, so ``import insarexplore.data.io`` does not pull in rasterio.
"""

from __future__ import annotations

from insarexplore._lazy import lazy_exports

_LAZY = {
    "ZarrWriter": "store",
    "append_dataset": "store",
    "open_dataset": "store",
    "save_dataset": "store",
    "store_sample_ids": "store",
    "read_licsar": "geotiff",
    "iter_licsar": "geotiff",
    "find_licsar_pairs": "geotiff",
    "read_licsar_pair": "geotiff",
    "read_image_folder": "images",
    "list_image_files": "images",
    "parse_image_name": "images",
    "read_hephaestus": "hephaestus",
    "read_hephaestus_annotations": "hephaestus",
    "hephaestus_image_paths": "hephaestus",
    "join_hephaestus": "hephaestus",
    "ingest_image_folder": "ingest",
    "ingest_licsar": "ingest",
    "ingest_hephaestus": "ingest",
    "IngestReport": "ingest",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, {k: f".{v}" for k, v in _LAZY.items()})
