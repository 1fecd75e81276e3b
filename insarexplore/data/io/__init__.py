"""Readers and stores: every reader returns the data model (see docs/ARCHITECTURE.md)."""

from insarexplore.data.io.store import (
    ZarrWriter,
    append_dataset,
    open_dataset,
    save_dataset,
    store_sample_ids,
)

__all__ = ["ZarrWriter", "append_dataset", "open_dataset", "save_dataset", "store_sample_ids"]
