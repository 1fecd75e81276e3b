"""Self-supervised objectives, each a small ``nn.Module``.

* ``NTXentLoss``: SimCLR's normalised-temperature cross entropy; in DDP the negatives are the
  projections of every rank (gathered with gradient).
* ``MoCoLoss``: MoCo v2's InfoNCE against a FIFO queue of momentum-encoder keys.
* ``VICRegLoss``: variance-invariance-covariance regularisation (no negatives at all).
* ``SupConLoss``: supervised contrastive loss of labelled samples (Khosla et al. 2020): the
  positives of a sample are the others of its class in the batch.

Each is tested against a naive loop-based implementation in ``tests/ssl/test_losses.py``.
Losses run in float32 with autocast turned off inside them: under bf16 autocast the logits and
covariances would otherwise come from bf16 matrix products (``.float()`` alone does not stop it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from insarexplore.ssl.dist import gather, gather_with_grad, get_rank


def _fp32(x: Tensor):
    """A context that turns autocast off on ``x``'s device (losses compute in float32)."""
    return torch.autocast(device_type=x.device.type, enabled=False)


__all__ = ["MoCoLoss", "NTXentLoss", "SupConLoss", "VICRegLoss"]


class NTXentLoss(nn.Module):
    """SimCLR loss of two views ``z1, z2: (B, D)`` -> scalar.

    For each of the 2N projections (N = B times world size) the positive is the other view of the
    same sample and the negatives are the other 2N - 2 projections:
    ``l_i = -log(exp(s_ip / t) / sum_{k != i} exp(s_ik / t))`` with cosine similarities ``s``;
    the loss is the mean over the 2B local rows (the DDP average of ranks gives the mean of all).
    """

    def __init__(self, temperature: float = 0.2, gather_distributed: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        if z1.shape != z2.shape or z1.ndim != 2:
            raise ValueError(f"z1 and z2 must both be (B, D), got {z1.shape} and {z2.shape}")
        with _fp32(z1):
            return self._loss(z1, z2)

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        z1 = F.normalize(z1.float(), dim=1)
        z2 = F.normalize(z2.float(), dim=1)
        b = z1.shape[0]
        if self.gather_distributed:
            all1, all2 = gather_with_grad(z1), gather_with_grad(z2)
            offset = get_rank() * b if all1.shape[0] != b else 0
        else:
            all1, all2, offset = z1, z2, 0
        n = all1.shape[0]
        columns = torch.cat([all1, all2], dim=0)  # (2N, D)
        rows = torch.cat([z1, z2], dim=0)  # (2B, D)
        logits = rows @ columns.T / self.temperature  # (2B, 2N)
        local = torch.arange(b, device=z1.device) + offset
        self_idx = torch.cat([local, local + n])
        pos_idx = torch.cat([local + n, local])
        logits[torch.arange(2 * b, device=z1.device), self_idx] = float("-inf")
        return F.cross_entropy(logits, pos_idx)


class SupConLoss(nn.Module):
    """Supervised contrastive loss of features ``z: (B, D)`` with class labels ``y: (B,)``.

    With cosine similarities ``s`` over the local batch, for each sample ``i`` that has at
    least one other of its class: ``l_i = -mean_{p in P(i)} log(exp(s_ip / t) /
    sum_{k != i} exp(s_ik / t))``; the loss is the mean over those samples (0 when none has).
    Local batch only: under DDP each rank's bank batch is its own (the gradients are averaged).
    ``WithPhysics`` applies it to the encoder's embeddings themselves (no projection head), so
    that the classes gather in what is stored and probed.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        if z.ndim != 2 or y.shape != z.shape[:1]:
            raise ValueError(
                f"z must be (B, D) and y (B,), got {tuple(z.shape)} and {tuple(y.shape)}"
            )
        with _fp32(z):
            z = F.normalize(z.float(), dim=1)
            eye = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
            logits = (z @ z.T / self.temperature).masked_fill(eye, float("-inf"))
            log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
            pos = (y[:, None] == y[None, :]) & ~eye
            n_pos = pos.sum(1)
            per = log_prob.masked_fill(~pos, 0.0).sum(1) / n_pos.clamp(min=1)
            has = (n_pos > 0).float()  # no host sync: samples alone in their class weigh 0
            return -(per * has).sum() / has.sum().clamp(min=1)


class MoCoLoss(nn.Module):
    """MoCo v2 InfoNCE of queries ``q: (B, D)`` against their keys ``k: (B, D)`` -> scalar.

    Negatives come from a queue of ``queue_size`` past keys (D = ``dim``). In training mode the
    keys of this step (gathered over ranks, without gradient) are enqueued after the loss is
    computed, replacing the oldest ones. Keys are treated as constants (no gradient).
    """

    queue: Tensor
    ptr: Tensor

    def __init__(self, dim: int = 128, queue_size: int = 4096, temperature: float = 0.2) -> None:
        super().__init__()
        if queue_size < 1 or temperature <= 0:
            raise ValueError("queue_size must be >= 1 and temperature > 0")
        self.temperature = temperature
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def forward(self, q: Tensor, k: Tensor) -> Tensor:
        with _fp32(q):
            return self._loss(q, k)

    def _loss(self, q: Tensor, k: Tensor) -> Tensor:
        q = F.normalize(q.float(), dim=1)
        k = F.normalize(k.detach().float(), dim=1)
        pos = (q * k).sum(dim=1, keepdim=True)  # (B, 1)
        neg = q @ self.queue.clone().detach().T  # (B, K)
        logits = torch.cat([pos, neg], dim=1) / self.temperature
        loss = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
        if self.training:
            self._enqueue(gather(k))
        return loss

    @torch.no_grad()
    def _enqueue(self, keys: Tensor) -> None:
        size = self.queue.shape[0]
        keys = keys[-size:]
        idx = (self.ptr + torch.arange(len(keys), device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.ptr.copy_((self.ptr + len(keys)) % size)


class VICRegLoss(nn.Module):
    """VICReg loss of two views ``z1, z2: (B, D)`` -> scalar.

    ``sim_coeff * MSE(z1, z2) + std_coeff * (hinge(z1) + hinge(z2)) / 2
    + cov_coeff * (offdiag(cov(z1))^2 + offdiag(cov(z2))^2).sum() / D`` where
    ``hinge(z) = mean_d relu(1 - sqrt(var_d(z) + eps))``. Variance and covariance use the batch
    gathered over ranks, as in the reference implementation.
    """

    def __init__(
        self,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        eps: float = 1e-4,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        self.sim_coeff, self.std_coeff, self.cov_coeff = sim_coeff, std_coeff, cov_coeff
        self.eps = eps
        self.gather_distributed = gather_distributed

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        with _fp32(z1):
            return self._loss(z1, z2)

    def _loss(self, z1: Tensor, z2: Tensor) -> Tensor:
        z1, z2 = z1.float(), z2.float()
        invariance = F.mse_loss(z1, z2)
        if self.gather_distributed:
            z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        n, d = z1.shape
        if n < 2:
            raise ValueError("VICReg needs a batch of at least 2 samples")
        z1 = z1 - z1.mean(dim=0)
        z2 = z2 - z2.mean(dim=0)
        std1 = torch.sqrt(z1.var(dim=0) + self.eps)
        std2 = torch.sqrt(z2.var(dim=0) + self.eps)
        variance = (F.relu(1 - std1).mean() + F.relu(1 - std2).mean()) / 2
        cov1 = z1.T @ z1 / (n - 1)
        cov2 = z2.T @ z2 / (n - 1)
        off = ~torch.eye(d, dtype=torch.bool, device=z1.device)
        covariance = (cov1[off].pow(2).sum() + cov2[off].pow(2).sum()) / d
        return self.sim_coeff * invariance + self.std_coeff * variance + self.cov_coeff * covariance
