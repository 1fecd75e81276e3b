"""SSL methods as building blocks: an encoder, its heads and an objective, ``forward(x1, x2)``.

Each method takes two augmented views ``(B, C, H, W)`` and returns the scalar loss; the
encoder stays available as ``.encoder`` for embedding. ``build_method(name, encoder)`` picks
one of ``METHODS``.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from insarexplore.models.heads import ProjectionHead
from insarexplore.ssl.losses import MoCoLoss, NTXentLoss, VICRegLoss

__all__ = ["METHODS", "MoCo", "SimCLR", "VICReg", "build_method"]


class SimCLR(nn.Module):
    """SimCLR: shared encoder + 2-layer projection head + NT-Xent over both views."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        proj_dim: int = 128,
        hidden_dim: int = 512,
        temperature: float = 0.2,
        head_norm: str = "batch",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = ProjectionHead(encoder.out_dim, hidden_dim, proj_dim, norm=head_norm)
        self.criterion = NTXentLoss(temperature)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        z = self.projector(self.encoder(torch.cat([x1, x2])))
        z1, z2 = z.chunk(2)
        return self.criterion(z1, z2)


class MoCo(nn.Module):
    """MoCo v2: query encoder + projector, momentum (EMA) key copies, InfoNCE against a queue.

    The loss is symmetrised over the two views. ``momentum`` 0.99 suits short runs on small
    archives (0.999 in the paper is tuned for ImageNet-length training).
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        proj_dim: int = 128,
        hidden_dim: int = 512,
        temperature: float = 0.2,
        queue_size: int = 4096,
        momentum: float = 0.99,
        head_norm: str = "batch",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = ProjectionHead(encoder.out_dim, hidden_dim, proj_dim, norm=head_norm)
        self.key_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.key_projector = copy.deepcopy(self.projector).requires_grad_(False)
        self.criterion = MoCoLoss(proj_dim, queue_size, temperature)
        self.momentum = momentum

    @torch.no_grad()
    def _update_keys(self) -> None:
        pairs = [(self.encoder, self.key_encoder), (self.projector, self.key_projector)]
        for online, target in pairs:
            for p, k in zip(online.parameters(), target.parameters()):
                k.mul_(self.momentum).add_(p.detach(), alpha=1 - self.momentum)
            for b, kb in zip(online.buffers(), target.buffers()):
                kb.copy_(b)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        q1, q2 = self.projector(self.encoder(torch.cat([x1, x2]))).chunk(2)
        with torch.no_grad():
            if self.training:
                self._update_keys()
            # keys per view, so that batch-norm statistics are not shared with the queries
            k1 = self.key_projector(self.key_encoder(x1))
            k2 = self.key_projector(self.key_encoder(x2))
        return (self.criterion(q1, k2) + self.criterion(q2, k1)) / 2


class VICReg(nn.Module):
    """VICReg: encoder + 3-layer expander (``proj_dim`` wide) + variance/invariance/covariance."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        proj_dim: int = 512,
        hidden_dim: int = 512,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        head_norm: str = "batch",
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = ProjectionHead(
            encoder.out_dim, hidden_dim, proj_dim, n_layers=3, norm=head_norm
        )
        self.criterion = VICRegLoss(sim_coeff, std_coeff, cov_coeff)

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        z1, z2 = self.projector(self.encoder(torch.cat([x1, x2]))).chunk(2)
        return self.criterion(z1, z2)


METHODS: dict[str, type[nn.Module]] = {"simclr": SimCLR, "moco": MoCo, "vicreg": VICReg}


def build_method(name: str, encoder: nn.Module, **kwargs) -> nn.Module:
    """``METHODS[name](encoder, **kwargs)`` with a clear error for unknown names."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    return METHODS[name](encoder, **kwargs)
