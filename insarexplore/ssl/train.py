"""The pretraining loop: one readable function, ``pretrain(source, config) -> model version``.

Runs on any workspace or store (phase or rendered RGB, unlabelled), on CPU, MPS or CUDA, on one
process or many (``torchrun --nproc_per_node=N``: DDP, sharded sampler, SimCLR negatives
gathered over ranks). The budget is epochs, steps or wall-clock minutes; for minutes the number
of steps is estimated from the measured step time and the cosine schedule is fitted to it.
A run saves ``checkpoint.pt`` every ``checkpoint_every`` steps (and when interrupted), so
re-running the same call continues where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from insarexplore.models.encoders import PRESETS, build_encoder
from insarexplore.models.serialization import save_encoder
from insarexplore.ssl import dist
from insarexplore.ssl.augment import PhaseAugment
from insarexplore.ssl.augment_rgb import RGBAugment
from insarexplore.ssl.checkpoint import (
    find_resumable,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from insarexplore.ssl.data import BlockShuffleSampler, ChannelDataset, worker_context
from insarexplore.ssl.methods import build_method
from insarexplore.ssl.metrics import MetricsLog, write_meta
from insarexplore.ssl.monitor import Monitor
from insarexplore.ssl.schedule import Plan, cosine_lr, refit

__all__ = ["PretrainConfig", "cosine_lr", "pretrain", "resolve_device"]

_RUNTIME_FIELDS = {
    "device", "num_workers", "progress", "resume", "checkpoint_every", "log_every",
    "monitor_every", "monitor_samples", "compile", "tensorboard",
}  # fmt: skip


@dataclasses.dataclass
class PretrainConfig:
    """Every pretraining option. Budget: ``epochs``, ``steps`` or ``minutes`` (the first one
    set wins in that order; none set means ``minutes=5``). ``lr`` None means
    ``1e-3 * global_batch / 128`` (AdamW). ``image_size`` None means the data's size, capped
    at the preset's ``image_size`` (48 px for the default ``resnet-micro``): on CPUs, more steps
    at a smaller size teach more than fewer at full size. ``phase_input`` and ``rgb_input``:
    the encoder's fixed input layer for phase data and for RGB renderings (ResNets only; see
    ``insarexplore.models.encoders.PhasorGradient`` and ``HueGradient``)."""

    arch: str = "resnet-micro"
    method: str = "simclr"
    epochs: float | None = None
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 128
    lr: float | None = None
    weight_decay: float = 0.05
    warmup_frac: float = 0.05
    min_lr_frac: float = 0.01
    grad_clip: float = 3.0
    temperature: float = 0.2
    proj_dim: int = 128
    hidden_dim: int = 512
    norm: str = "batch"  # "group": batch-independent (encoder GroupNorm, head LayerNorm)
    # ResNets on phase data: "gradient" feeds the phasors of neighbouring-pixel phase differences
    # (offset-invariant fringe rate, see models.encoders.PhasorGradient); "raw": cos/sin as is.
    phase_input: str = "gradient"
    rgb_input: str = "hue-gradient"
    encoder_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    image_size: int | None = None
    augment: dict[str, Any] = dataclasses.field(default_factory=dict)
    kind: str | None = None
    seed: int = 0
    device: str | None = None
    num_workers: int | None = None
    amp: bool = True
    channels_last: bool = True
    compile: bool = False
    checkpoint_every: int = 100
    log_every: int = 10
    monitor_every: int = 200
    monitor_samples: int = 600
    tensorboard: bool = True
    resume: bool = True
    progress: bool = True

    def resume_key(self, kind: str, in_channels: int) -> str:
        """Hash of the options that define a run (not how it is executed)."""
        other_input = "rgb_input" if kind == "phase" else "phase_input"  # not used by this kind
        skip = _RUNTIME_FIELDS | {other_input}
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        d.update(kind=kind, in_channels=in_channels, world=dist.get_world_size())
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def view_source_size(view: int, stored: int) -> int:
    """Size the training data is brought down to before views are cut: 4/3 of the view."""
    return min(stored, max(view, -(-view * 4 // 3)))


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA (this process's local rank), else MPS, else CPU."""
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None and dist.is_distributed():
            dev = torch.device("cuda", dist.get_local_rank())  # one GPU per torchrun process
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", dist.get_local_rank())
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _open_run(
    source: Any, out_dir: Any, cfg: PretrainConfig, key: str
) -> tuple[Any, str, Path, bool]:
    """(workspace or None, version, run folder, resuming?) chosen on rank 0, shared with all."""
    from insarexplore.workspace import Workspace

    ws = None
    if isinstance(source, Workspace):
        ws = source
    elif isinstance(source, str | Path) and (Path(source) / "workspace.json").exists():
        ws = Workspace.open(source)
    choice = [None, None, False]
    if dist.is_main_process():
        if out_dir is not None:
            run = Path(out_dir)
            resuming = cfg.resume and (run / "checkpoint.pt").exists()
            run.mkdir(parents=True, exist_ok=True)
            choice = [run.name, str(run), resuming]
        elif ws is not None:
            run = find_resumable(ws.models_dir, key) if cfg.resume else None
            if run is None:
                version, run = ws.new_model_dir(f"{cfg.method}-{cfg.arch}")
                choice = [version, str(run), False]
            else:
                choice = [run.name, str(run), True]
        else:
            raise ValueError("pretrain: give out_dir when the source is not a workspace")
    if dist.is_distributed():
        torch.distributed.broadcast_object_list(choice, src=0)
    return ws, choice[0], Path(choice[1]), bool(choice[2])


def _budget(cfg: PretrainConfig, steps_per_epoch: int) -> tuple[int, float | None]:
    """(planned steps, seconds or None)."""
    if cfg.epochs is not None:
        return max(1, round(cfg.epochs * steps_per_epoch)), None
    if cfg.steps is not None:
        return max(1, int(cfg.steps)), None
    minutes = 5.0 if cfg.minutes is None else float(cfg.minutes)
    return 10**9, minutes * 60.0  # refitted once the step time is known


def pretrain(
    source: Any,
    config: PretrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    on_step: Any = None,
) -> str:
    """Pretrain an encoder on ``source`` (Workspace, workspace/store path, or xarray Dataset).

    With a workspace the model lands in ``ws.new_model_dir(...)`` and becomes the current
    model; the model version is returned. Otherwise ``out_dir`` is the model folder and its
    path is returned. ``on_step(info: dict)`` is called after every step (progress hooks).
    An interrupted run (Ctrl-C, or killed) resumes when called again with the same config.
    """
    cfg = config or PretrainConfig()
    dist.init_distributed()
    rank, world = dist.get_rank(), dist.get_world_size()
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    if cuda and device.index is not None:
        torch.cuda.set_device(device)
    data_src = source.data_path if hasattr(source, "data_path") else source
    if isinstance(data_src, str | Path) and (Path(data_src) / "workspace.json").exists():
        data_src = Path(data_src) / "data.zarr"
    probe = ChannelDataset(data_src, kind=cfg.kind)
    kind, in_ch, stored = probe.kind, probe.shape[0], min(probe.shape[-2:])
    # views: image_size if given, else the data's size capped at the size the arch is built for
    size = cfg.image_size or min(stored, PRESETS.get(cfg.arch, {}).get("image_size", 4096))
    # views are cut from the data brought down to a third more than the view (random crops of
    # 35-100 % of the area then resample by about 0.6-1.3x): a step's cost follows the view
    del probe
    data = ChannelDataset(
        data_src, kind=cfg.kind, max_size=view_source_size(size, stored),
        progress=cfg.progress and dist.is_main_process(),
    )  # fmt: skip
    key = cfg.resume_key(kind, in_ch)
    ws, version, run, resuming = _open_run(source, out_dir, cfg, key)

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    enc_kw = {"image_size": size, **cfg.encoder_kwargs}  # recorded: embeddings resize to it
    if PRESETS.get(cfg.arch, {}).get("family") == "resnet":
        if kind == "phase" and in_ch == 4:
            enc_kw.setdefault("phase_input", cfg.phase_input)
        elif kind == "rgb" and in_ch == 3:
            enc_kw.setdefault("phase_input", cfg.rgb_input)
    encoder = build_encoder(cfg.arch, in_ch, channel_kind=kind, norm=cfg.norm, **enc_kw)
    method_kw: dict[str, Any] = {"proj_dim": cfg.proj_dim, "hidden_dim": cfg.hidden_dim}
    method_kw["head_norm"] = "batch" if cfg.norm == "batch" else "layer"
    if cfg.method in ("simclr", "moco"):
        method_kw["temperature"] = cfg.temperature
    model = build_method(cfg.method, encoder, **method_kw).to(device)
    if cuda and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    lr = cfg.lr if cfg.lr is not None else 1e-3 * cfg.batch_size * world / 128
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=lr)
    sampler = BlockShuffleSampler(data, batch_size=cfg.batch_size, block=data.chunk, seed=cfg.seed)
    spe = sampler.batches_per_epoch
    total, seconds = _budget(cfg, spe)
    plan = Plan(total, cfg.warmup_frac, cfg.min_lr_frac)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, plan.factor)
    step, elapsed_before = 0, 0.0
    torch.manual_seed(cfg.seed + 1000 * rank)  # augmentations differ per rank
    if resuming:
        ckpt = load_checkpoint(
            run / "checkpoint.pt", encoder_config=encoder.config, method=cfg.method
        )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        plan.total = int(ckpt["total_steps"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, elapsed_before = int(ckpt["step"]), float(ckpt["elapsed_s"])
        set_rng_state(ckpt["rng"][rank] if rank < len(ckpt["rng"]) else ckpt["rng"][0])
        seconds = ckpt.get("seconds_budget")
    train_model: nn.Module = model
    if dist.is_distributed():
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if cuda else None
        )
    if cfg.compile:
        train_model = torch.compile(train_model)
    workers = cfg.num_workers if cfg.num_workers is not None else (4 if cuda else 0)
    loader = DataLoader(
        data,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=cuda,
        drop_last=True,
        persistent_workers=workers > 0,
        multiprocessing_context=worker_context() if workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    aug_cls = PhaseAugment if kind == "phase" else RGBAugment
    aug_kw = dict(cfg.augment)
    if kind == "phase" and data.ds.attrs.get("palette"):
        # phase read back from renderings: whether a palette runs with phase or against it is
        # unknown (grey pools and colour sets often disagree), so views may be conjugated
        aug_kw.setdefault("conjugate_p", 0.5)
    augment = aug_cls(size, **aug_kw)
    main = rank == 0
    monitor = None
    if main and cfg.monitor_every > 0:
        monitor = Monitor.from_dataset(data.ds, kind, cfg.monitor_samples, cfg.seed)
    log = MetricsLog(run, enabled=main, tensorboard=cfg.tensorboard)
    meta = {
        "version": version, "status": "running", "resume_key": key, "kind": kind,
        "in_channels": in_ch, "image_size": size, "config": dataclasses.asdict(cfg),
        "encoder_config": encoder.config, "n_samples": len(data), "world_size": world,
        "data_fingerprint": ws.data_fingerprint() if ws is not None else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip
    if main:
        write_meta(run, meta)

    def checkpoint() -> None:
        states = [rng_state()]
        if dist.is_distributed():
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        if main:
            save_checkpoint(
                run / "checkpoint.pt", model=model.state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), step=step, total_steps=plan.total,
                elapsed_s=elapsed_before + time.perf_counter() - t0, seconds_budget=seconds,
                rng=states, method=cfg.method, encoder_config=encoder.config,
            )  # fmt: skip

    from tqdm.auto import tqdm

    bar = tqdm(total=plan.total if seconds is None else None, initial=step,
               disable=not (cfg.progress and main), desc="pretrain", unit="step")  # fmt: skip
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cuda and cfg.amp
        else contextlib.nullcontext()
    )
    t0 = time.perf_counter()
    t_calib, steps_at_calib = None, step
    stop, loss_value, rate = False, float("nan"), 0.0
    model.train()
    try:
        while step < plan.total and not stop:
            sampler.set_epoch(step // spe, step % spe)
            t_last = time.perf_counter()
            for x in loader:
                x = x.to(device, non_blocking=True)
                v1, v2 = augment(x), augment(x)
                if cuda and cfg.channels_last:
                    v1 = v1.contiguous(memory_format=torch.channels_last)
                    v2 = v2.contiguous(memory_format=torch.channels_last)
                with amp:
                    loss = train_model(v1, v2)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                now = time.perf_counter()
                inst = cfg.batch_size * world / max(now - t_last, 1e-9)
                rate = 0.9 * rate + 0.1 * inst if rate else inst  # smoothed images/s
                t_last = now
                if step - steps_at_calib == 2:
                    t_calib = now  # the first steps pay warm-up costs: time from here
                if seconds is not None and t_calib is not None and step > steps_at_calib + 2:
                    stop = refit(
                        plan,
                        seconds,
                        elapsed_before + now - t0,
                        step,
                        (now - t_calib) / max(1, step - steps_at_calib - 2),
                    )
                    bar.total = plan.total
                if step % cfg.log_every == 0 or step == plan.total or stop:
                    loss_value = float(dist.all_reduce_mean(loss.detach().float()))
                    row = {"step": step, "epoch": step / spe, "loss": loss_value,
                           "lr": scheduler.get_last_lr()[0], "img_per_s": rate,
                           "elapsed_s": elapsed_before + now - t0}  # fmt: skip
                    if monitor is not None and (
                        step % cfg.monitor_every == 0 or step == plan.total
                    ):
                        row.update(monitor.evaluate(model.encoder, device))
                    log.write(row)
                    bar.set_postfix(loss=f"{loss_value:.3f}", img_s=f"{rate:.0f}")
                bar.update(1)
                if step % cfg.checkpoint_every == 0 and step < plan.total:
                    checkpoint()
                if on_step is not None:
                    on_step(
                        {
                            "step": step,
                            "total": plan.total,
                            "loss": float(loss.detach()),
                            "img_per_s": rate,
                        }
                    )
                if step >= plan.total or stop:
                    break
    except KeyboardInterrupt:
        checkpoint()
        log.close()
        bar.close()
        raise
    bar.close()
    plan.total = step  # a time budget may stop early: record what was done
    checkpoint()
    if main:
        if monitor is not None and log.last.get("step") != step:
            log.write(
                {
                    "step": step,
                    "epoch": step / spe,
                    "loss": loss_value,
                    **monitor.evaluate(model.encoder, device),
                }
            )
        save_encoder(run / "encoder.pt", model.encoder)
        meta.update(status="done", steps=step, elapsed_s=elapsed_before + time.perf_counter() - t0,
                    final_loss=loss_value, final_metrics=log.last)  # fmt: skip
        write_meta(run, meta)
        if ws is not None:
            ws.set_current_model(version)
    log.close()
    dist.barrier()
    return version if ws is not None else str(run)
