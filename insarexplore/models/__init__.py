"""Encoders (ResNet family, small ViT), heads, and their saving/loading."""

from insarexplore.models.encoders import (
    PRESETS,
    ResNet,
    VisionTransformer,
    build_encoder,
    channel_kind_for,
    count_parameters,
)
from insarexplore.models.heads import PredictionHead, ProjectionHead
from insarexplore.models.serialization import (
    ModelMismatchError,
    build_from_config,
    load_encoder,
    save_encoder,
)

__all__ = [
    "PRESETS",
    "ModelMismatchError",
    "PredictionHead",
    "ProjectionHead",
    "ResNet",
    "VisionTransformer",
    "build_encoder",
    "build_from_config",
    "channel_kind_for",
    "count_parameters",
    "load_encoder",
    "save_encoder",
]
