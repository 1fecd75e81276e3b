"""Learning-rate schedule fitted to a budget of steps or of wall-clock time.

A step budget fixes the cosine schedule's length up front. A time budget cannot: ``refit``
re-estimates the total number of steps from the measured seconds per step while training runs
(the same on every DDP rank), so warm-up and cosine decay end when the time does.
"""

from __future__ import annotations

import math

import torch

from insarexplore.ssl import dist

__all__ = ["Plan", "cosine_lr", "refit"]


def cosine_lr(step: int, total: int, warmup: int, min_frac: float) -> float:
    """Learning-rate factor: linear warm-up to 1, then cosine decay to ``min_frac``."""
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_frac + (1 - min_frac) * 0.5 * (1 + math.cos(math.pi * t))


class Plan:
    """The step budget; ``total`` may be refitted while a minutes-budget run calibrates."""

    def __init__(self, total: int, warmup_frac: float, min_lr_frac: float) -> None:
        self.total, self.warmup_frac, self.min_lr_frac = total, warmup_frac, min_lr_frac

    def factor(self, step: int) -> float:
        warmup = max(1, int(self.warmup_frac * self.total))
        return cosine_lr(step, self.total, warmup, self.min_lr_frac)


def refit(plan: Plan, seconds: float, elapsed: float, step: int, sec_per_step: float) -> bool:
    """Refit the planned total to the time left; True when the time is up."""
    left = seconds - elapsed
    total = step + max(0, int(left / max(sec_per_step, 1e-9)))
    if dist.is_distributed():
        on = "cuda" if torch.distributed.get_backend() == "nccl" else "cpu"  # NCCL: GPU tensors
        t = torch.tensor([total], dtype=torch.long, device=on)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        total = int(t)
    plan.total = max(step, total)
    return plan.total <= step
