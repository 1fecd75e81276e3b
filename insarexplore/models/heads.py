"""Projection and prediction heads for self-supervised objectives.

SimCLR and MoCo v2 put a 2-layer MLP projection head on the encoder; BYOL-style methods add a
prediction head; VICReg uses a wider 3-layer expander. The embeddings users see come from the
encoder, never from these heads (heads discard augmentation-variant information that is
useful downstream).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["PredictionHead", "ProjectionHead"]


class ProjectionHead(nn.Module):
    """MLP ``(B, in_dim) -> (B, out_dim)``: ``n_layers - 1`` Linear+BN+ReLU blocks, then Linear.

    ``last_bn`` adds an affine-free BatchNorm on the output (as used by VICReg/Barlow Twins).
    ``norm="layer"`` replaces the hidden BatchNorms by LayerNorms, which makes the head (and
    DDP training with a GroupNorm encoder) independent of how the batch is split.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int = 512,
        out_dim: int = 128,
        *,
        n_layers: int = 2,
        last_bn: bool = False,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if norm not in ("batch", "layer"):
            raise ValueError(f"norm must be 'batch' or 'layer', got {norm!r}")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(n_layers - 1):
            hidden_norm = (
                nn.BatchNorm1d(hidden_dim) if norm == "batch" else nn.LayerNorm(hidden_dim)
            )
            layers += [nn.Linear(dim, hidden_dim, bias=False), hidden_norm]
            layers.append(nn.ReLU(inplace=True))
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PredictionHead(ProjectionHead):
    """BYOL-style predictor ``(B, dim) -> (B, dim)``: a 2-layer MLP with a bottleneck."""

    def __init__(self, dim: int = 128, hidden_dim: int = 512) -> None:
        super().__init__(dim, hidden_dim, dim, n_layers=2)
