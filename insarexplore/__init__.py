"""insarexplore: explore Sentinel-1 interferogram archives without labelling them first.

Read or synthesise interferograms into one ``xarray.Dataset`` data model, pretrain encoders
with self-supervised learning, embed, project with UMAP, explore in a Panel dashboard, label,
and fine-tune from a few labels. Heavy libraries are imported lazily: ``import insarexplore``
stays fast, and each name below is loaded on first use.
"""

from __future__ import annotations

from insarexplore._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "InSARError": "insarexplore.errors",
    "InSARDataError": "insarexplore.errors",
    "SchemaError": "insarexplore.errors",
    "new_dataset": "insarexplore.data.schema",
    "validate": "insarexplore.data.schema",
    "concat": "insarexplore.data.schema",
    "save_dataset": "insarexplore.data.io.store",
    "open_dataset": "insarexplore.data.io.store",
    "append_dataset": "insarexplore.data.io.store",
    "Workspace": "insarexplore.workspace",
    "read_licsar": "insarexplore.data.io",
    "read_image_folder": "insarexplore.data.io",
    "read_hephaestus": "insarexplore.data.io",
    "read_hephaestus_annotations": "insarexplore.data.io",
    "ingest_image_folder": "insarexplore.data.io",
    "generate": "insarexplore.data.synthetic",
    "generate_to_zarr": "insarexplore.data.synthetic",
    "PretrainConfig": "insarexplore.ssl",
    "pretrain": "insarexplore.ssl",
    "Embedder": "insarexplore.embed",
    "embed_workspace": "insarexplore.embed",
    "build_encoder": "insarexplore.models",
    "load_encoder": "insarexplore.models",
    "LabelStore": "insarexplore.explore",
    "project": "insarexplore.explore",
    "cluster": "insarexplore.explore",
    "FewShotClassifier": "insarexplore.explore",
    "train_fewshot": "insarexplore.explore",
    "suggest": "insarexplore.explore",
    "suggest_workspace": "insarexplore.explore",
    "anomaly_scores": "insarexplore.explore",
    "Explorer": "insarexplore.app",
    "serve": "insarexplore.app",
    "run_demo": "insarexplore.demo",
}

__all__ = ["__version__", *_LAZY]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
