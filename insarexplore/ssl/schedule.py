"""Learning-rate schedule fitted to a budget of steps or of wall-clock time.

A step budget fixes the cosine schedule's length up front. A time budget cannot: ``refit``
re-estimates the total number of steps from the measured seconds per step while training runs
(the same on every DDP rank), so warm-up and cosine decay end when the time does.
``StepClock`` measures the steps: on CUDA it waits for the GPU, and only every ``every`` steps,
so the time is GPU work (not how fast the CPU enqueues kernels) and the host does not stall
each step; the refit (an all-reduce under DDP) runs at those points only.
"""

from __future__ import annotations

import math
import time

import torch

from insarexplore.ssl import dist

__all__ = ["Plan", "StepClock", "cosine_lr", "refit"]


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


def refit(
    plan: Plan,
    seconds: float,
    elapsed: float,
    step: int,
    sec_per_step: float,
    device: torch.device | str = "cpu",
) -> bool:
    """Refit the planned total to the time left; True when the time is up.

    Under DDP every rank takes the smallest total (an all-reduce on ``device``: the training
    device, which is what the process group's backend expects)."""
    left = seconds - elapsed
    total = step + max(0, int(left / max(sec_per_step, 1e-9)))
    if dist.is_distributed():
        t = torch.tensor([total], dtype=torch.long, device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        total = int(t)
    plan.total = max(step, total)
    return plan.total <= step


class StepClock:
    """Wall-clock time of training steps that counts the device's work.

    ``tick(step)`` returns ``time.perf_counter()`` after ``torch.cuda.synchronize`` at every
    ``every``-th step (and None in between); on CPUs work is synchronous and ``every`` is 1
    unless given. ``rate`` is the smoothed images/s over the intervals between ticks.
    """

    def __init__(self, device: torch.device | str, images_per_step: int, every: int | None = None):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.every = max(1, int(every if every is not None else (10 if self.cuda else 1)))
        self.images_per_step = images_per_step
        self.rate = 0.0
        self._last: tuple[int, float] | None = None

    def sync(self) -> float:
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def start(self, step: int) -> float:
        now = self.sync()
        self._last = (step, now)
        return now

    def tick(self, step: int, force: bool = False) -> float | None:
        if not force and step % self.every:
            return None
        now = self.sync()
        if self._last is not None and step > self._last[0]:
            inst = self.images_per_step * (step - self._last[0]) / max(now - self._last[1], 1e-9)
            self.rate = 0.9 * self.rate + 0.1 * inst if self.rate else inst
        self._last = (step, now)
        return now
