"""Self-supervised pretraining: augmentations, objectives, distributed helpers, the loop."""

from insarexplore.ssl.augment import PhaseAugment
from insarexplore.ssl.augment_rgb import RGBAugment
from insarexplore.ssl.losses import MoCoLoss, NTXentLoss, VICRegLoss

__all__ = ["MoCoLoss", "NTXentLoss", "PhaseAugment", "RGBAugment", "VICRegLoss"]
