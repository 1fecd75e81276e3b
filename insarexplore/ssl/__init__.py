"""Self-supervised pretraining: augmentations, objectives, methods, distributed helpers, loop."""

from insarexplore.ssl.augment import PhaseAugment
from insarexplore.ssl.augment_rgb import RGBAugment
from insarexplore.ssl.data import BlockShuffleSampler, ChannelDataset
from insarexplore.ssl.losses import MoCoLoss, NTXentLoss, VICRegLoss
from insarexplore.ssl.methods import METHODS, MoCo, SimCLR, VICReg, build_method
from insarexplore.ssl.monitor import Monitor
from insarexplore.ssl.train import PretrainConfig, pretrain, resolve_device

__all__ = [
    "METHODS",
    "BlockShuffleSampler",
    "ChannelDataset",
    "MoCo",
    "MoCoLoss",
    "Monitor",
    "NTXentLoss",
    "PhaseAugment",
    "PretrainConfig",
    "RGBAugment",
    "SimCLR",
    "VICReg",
    "VICRegLoss",
    "build_method",
    "pretrain",
    "resolve_device",
]
