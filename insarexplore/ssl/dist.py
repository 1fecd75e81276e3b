"""Distributed helpers that are no-ops outside ``torch.distributed``.

Under ``torchrun`` the environment holds ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
``init_distributed(device)`` starts the process group from it: NCCL when the training device is
a GPU, gloo otherwise (``--device cpu`` on a machine with GPUs included); the caller sets the
CUDA device first (``setup_device``), so that every rank binds its own GPU. Everything else here
returns rank 0 / world size 1 when no process group exists, so the same training code runs on
one process and on many. ``sync_batchnorm`` makes batch-norm statistics global over ranks.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "CollectiveInterrupt",
    "SyncBatchNorm",
    "all_reduce_mean",
    "backend_for",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "gather",
    "gather_with_grad",
    "get_local_rank",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "sync_batchnorm",
]


def is_distributed() -> bool:
    """True when a process group is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


def backend_for(device: torch.device | str | None) -> str:
    """The process-group backend for a training device: NCCL for CUDA, gloo for the rest."""
    dev = torch.device(device) if device is not None else None
    if dev is None:
        return "nccl" if torch.cuda.is_available() else "gloo"
    return "nccl" if dev.type == "cuda" else "gloo"


def init_distributed(device: torch.device | str | None = None, backend: str | None = None) -> bool:
    """Start the process group when launched by torchrun; returns True if distributed.

    ``device`` is this rank's training device (set with ``torch.cuda.set_device`` before this
    call for CUDA); it picks the backend unless ``backend`` is given.
    """
    if dist.is_initialized():
        return is_distributed()
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return False
    backend = backend or backend_for(device)
    kwargs: dict[str, Any] = {}
    dev = torch.device(device) if device is not None else None
    if backend == "nccl" and dev is not None and dev.index is not None:
        kwargs["device_id"] = dev  # binds the communicator to this rank's GPU
    dist.init_process_group(backend=backend, **kwargs)
    return is_distributed()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (identity outside distributed runs)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def cleanup_distributed(wait: bool = True) -> None:
    """Tear the process group down; with ``wait``, once every rank is here (a rank that left
    while a peer was still finishing a collective could abort the peer under gloo). Without
    ``wait`` (a rank that failed) it goes at once: a peer that crashed would never arrive."""
    if dist.is_available() and dist.is_initialized():
        # garbage that still holds the group (a DDP wrapper kept only by a reference cycle)
        # would otherwise take it into the interpreter's finalization, where a gloo group's
        # teardown can abort the process ("terminate called ..."): collected now, it goes
        # while Python is alive. Objects still referenced (a propagating exception's frames)
        # are not garbage and stay
        gc.collect()
        if wait and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


class CollectiveInterrupt:
    """Ctrl-C of a distributed run, taken at the same step on every rank.

    torchrun passes SIGINT to every worker at whatever point each has reached: a rank that
    raised at once, while a peer still waited in one of the step's collectives, would pair the
    collectives of its checkpoint with the peer's of the step (undefined under gloo, a hang
    under NCCL). Between ``start()`` and ``stop()`` (or inside ``with``) a distributed run's
    SIGINT only sets a flag; ``check(step)`` at every ``every``-th step (the same steps on every
    rank) takes the largest flag over ranks and raises ``KeyboardInterrupt`` on all of them at
    once. Outside a process group, or off the main thread, SIGINT raises as usual and ``check``
    does nothing.
    """

    def __init__(self, device: torch.device | str = "cpu", every: int = 1) -> None:
        self.device, self.every = torch.device(device), max(1, int(every))
        self.hit, self.active = False, False
        self._previous: Any = None

    def _set(self, signum: int, frame: Any) -> None:
        self.hit = True

    def start(self) -> CollectiveInterrupt:
        self.active = is_distributed() and threading.current_thread() is threading.main_thread()
        if self.active:
            self._previous = signal.signal(signal.SIGINT, self._set)
        return self

    def stop(self) -> None:
        """SIGINT raises again (idempotent)."""
        if self.active:
            signal.signal(signal.SIGINT, self._previous)
            self.active = False

    def __enter__(self) -> CollectiveInterrupt:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def check(self, step: int) -> None:
        if not self.active or step % self.every:
            return
        flag = torch.tensor([1.0 if self.hit else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if float(flag.item()) > 0:
            raise KeyboardInterrupt


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums the incoming gradients over ranks and keeps this rank's
    slice: the gradient of a loss that each rank computes on the gathered tensor."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(out, x.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        stacked = torch.stack(grads)
        dist.all_reduce(stacked)
        return stacked[dist.get_rank()]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) from every rank into (world * B, ...), differentiably.

    Identity outside distributed runs. Every rank must pass the same shape.
    """
    if not is_distributed():
        return x
    return torch.cat(_GatherWithGrad.apply(x), dim=0)


@torch.no_grad()
def gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every rank without gradient (e.g. keys for a MoCo queue)."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over ranks (a copy; identity outside distributed runs)."""
    if not is_distributed():
        return x
    x = x.detach().clone()
    dist.all_reduce(x)
    return x / dist.get_world_size()


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are those of the global batch (every rank's samples),
    on any device and backend (``torch.nn.SyncBatchNorm`` needs a GPU). Outside distributed
    training or in eval mode it is plain batch norm. Inputs ``(N, C, ...)``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [d for d in range(x.dim()) if d != 1]
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], device=x.device, dtype=torch.float32)
        stats = torch.cat([xf.sum(dims), (xf * xf).sum(dims), count])
        stats = all_reduce(stats)  # differentiable sum over ranks
        c = x.shape[1]
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c : 2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = (
                    self.momentum
                    if self.momentum is not None
                    else 1.0 / float(self.num_batches_tracked)
                )
                unbiased = var * (n / (n - 1).clamp_min(1))
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.detach(), alpha=m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(module: nn.Module, device: torch.device | str) -> nn.Module:
    """``module`` with every batch norm made global over ranks: ``torch.nn.SyncBatchNorm`` on
    CUDA, :class:`SyncBatchNorm` elsewhere (gloo on CPU). Identity outside distributed runs.

    SimCLR-type methods otherwise normalise with statistics of one rank's two views, the known
    shortcut by which views recognise each other without learning features."""
    if not is_distributed():
        return module
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert(module)


def _convert(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, SyncBatchNorm | nn.SyncBatchNorm
    ):
        out = SyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )  # fmt: skip
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert(child))
    return out
