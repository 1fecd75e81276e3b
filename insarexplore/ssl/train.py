"""The pretraining loop: ``train(data, config, run_dir) -> run_dir``, free of workspaces.

Runs on any store or in-memory Dataset (phase or rendered RGB, unlabelled), on CPU, MPS or
CUDA, on one process or many (``torchrun --nproc_per_node=N``: DDP with global batch norm,
chunks sharded over ranks, SimCLR negatives gathered over ranks). The budget is epochs, steps
or wall-clock minutes; for minutes the number of steps is estimated from the measured step time
(GPU work included) and the cosine schedule is fitted to it. A run saves ``checkpoint.pt``
every ``checkpoint_every`` steps (and when interrupted), so re-running the same call continues
where it stopped. Choosing a workspace's model folder and making the result its current model
is ``insarexplore.pretraining.pretrain_workspace``; ``pretrain(source, config)`` takes either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import numbers
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from insarexplore.errors import InSARDataError
from insarexplore.models.encoders import PRESETS, build_encoder
from insarexplore.models.physics_head import HEAD_FILE, checked_gain, save_physics_head
from insarexplore.models.serialization import save_encoder
from insarexplore.ssl import dist
from insarexplore.ssl.augment import PhaseAugment
from insarexplore.ssl.augment_rgb import RGBAugment
from insarexplore.ssl.checkpoint import (
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from insarexplore.ssl.data import (
    BatchSampler,
    BlockShuffleSampler,
    ChannelDataset,
    collate_batch,
    rank_shares,
    worker_context,
)
from insarexplore.ssl.methods import build_method
from insarexplore.ssl.metrics import MetricsLog, write_meta
from insarexplore.ssl.monitor import Monitor
from insarexplore.ssl.physics import WithPhysics, make_physics_bank, physics_row
from insarexplore.ssl.schedule import Plan, StepClock, cosine_lr, refit

__all__ = [
    "PretrainConfig",
    "cosine_lr",
    "data_source",
    "prepare_model",
    "pretrain",
    "resolve_device",
    "run_key",
    "setup_device",
    "train",
]

_RUNTIME_FIELDS = {
    "device", "num_workers", "progress", "resume", "checkpoint_every", "log_every",
    "monitor_every", "monitor_samples", "compile", "tensorboard", "embed_dihedral",
    "embed_gain", "embed_class_gain",
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
    # labelled physics-made interferograms beside the contrastive loss (see ssl.physics):
    # weight of their classification loss (0: self-supervised only; 2 chosen on
    # bench_transfer's validation set over 0, 0.5 and 5), bank size, bank batch (None: half)
    physics: float = 2.0
    physics_n: int = 4096
    physics_batch: int | None = None
    # smallest area share of a bank view's crop (a bank image's label is the whole scene's;
    # a small crop can cut the source out); None: the pool views' crop (augment's crop_scale).
    # 0.8 and 1.0 were within the run-to-run spread of None on bench_transfer's validation set
    physics_crop: float | None = None
    # weight of a supervised contrastive loss of the bank batch's embeddings (classes gathered
    # in the embedding itself, not only along the classifier's directions; at ``temperature``,
    # the contrastive method's); 0: none
    physics_supcon: float = 0.0
    # weight of a regression, from the embedding, of each bank image's signal strength and
    # turbulent delay (``ssl.physics.TARGETS``, Huber loss on log(1 + value)); 0: none.
    # 1.0 moved bench_transfer's validation probes at k = 10 by at most +0.002 as the mean of
    # two seeds (one seed's grouped probe -0.005, the other's +0.004), so it is off
    physics_regress: float = 0.0
    # share of each contrastive batch drawn from the bank instead of the data (its images as
    # unlabelled ones: the contrastive loss also sees deformation where the data hold little
    # of it); 0: the data only. 0.25 gave bench_transfer's validation probes at k = 10
    # +0.006 / +0.006 (LSO / grouped, mean of two seeds) with a pool of 10 % deformation and
    # -0.007 grouped with the default pool, so it is off
    physics_ssl: float = 0.0
    image_size: int | None = None
    # the model embeds each image as the mean of its 8 rotations/reflections (recorded with the
    # encoder, so every embedding of the model is made alike; 8 forward passes per image). On
    # bench_transfer's validation set, three models: a few-label probe on the deformation score
    # up by as much as 0.010 (8 of 9 model x k cells), the embeddings level (RESULTS.md)
    embed_dihedral: bool = True
    # with the physics bank, the model embeds with its features stretched along the bank
    # classifier's directions (models.physics_head; recorded in physics_head.pt; linear and
    # invertible, scores unchanged; 1: no stretch): by embed_gain along deformation against
    # none, by embed_class_gain along its other class directions (which source). On
    # bench_transfer's validation sets (RESULTS.md) the axis alone at 10 gave probes at k = 10
    # +0.019 LSO / +0.013 grouped over five models but cost the demo's map of sources 0.044;
    # with the class directions at 3: +0.016 / +0.015, and the demo's map 0.026
    embed_gain: float = 10.0
    embed_class_gain: float = 3.0
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

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 2:
            raise ValueError(  # one image has no others to be told apart from: no loss at all
                f"batch_size must be an integer of at least 2 (the other images of a batch are "
                f"what contrastive learning tells each apart from); got {self.batch_size!r}"
            )
        real = isinstance(self.physics, numbers.Real) and not isinstance(self.physics, bool)
        if not (real and math.isfinite(self.physics) and self.physics >= 0):
            raise ValueError(
                f"physics must be a weight >= 0 (0 turns the bank off); got {self.physics}"
            )
        for name in ("embed_gain", "embed_class_gain"):  # one type in meta.json, the head file
            setattr(self, name, checked_gain(getattr(self, name), name))
        if self.physics_n < 1:
            raise ValueError(f"physics_n must be at least 1; got {self.physics_n}")
        if self.physics_crop is not None and not 0 < self.physics_crop <= 1:
            raise ValueError(
                f"physics_crop must be an area share in (0, 1] (or None); got {self.physics_crop}"
            )
        for extra in ("physics_supcon", "physics_regress"):
            w = getattr(self, extra)
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"{extra} must be a weight >= 0; got {w}")
            if w > 0 and self.physics == 0:
                raise ValueError(f"{extra} needs the physics bank: physics is 0 (turned off)")
        if not (math.isfinite(self.physics_ssl) and 0 <= self.physics_ssl < 1):
            raise ValueError(f"physics_ssl must be a share in [0, 1); got {self.physics_ssl}")
        if self.physics_ssl > 0 and self.physics == 0:
            raise ValueError("physics_ssl needs the physics bank: physics is 0 (turned off)")
        if self.physics_batch is not None and self.physics_batch < 1:
            raise ValueError(
                f"physics_batch must be at least 1 (or None: half the batch); got {self.physics_batch}"
            )

    def resume_key(self, kind: str, in_channels: int) -> str:
        """Hash of the options that define a run (not how it is executed)."""
        other_input = "rgb_input" if kind == "phase" else "phase_input"  # not used by this kind
        skip = _RUNTIME_FIELDS | {other_input}
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}
        for later in ("physics_supcon", "physics_regress", "physics_ssl"):  # added later: runs
            if not getattr(self, later):  # without them keep their key
                d.pop(later)
        d.update(kind=kind, in_channels=in_channels, world=dist.get_world_size())
        return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def view_source_size(view: int, stored: int) -> int:
    """Size the training data is brought down to before views are cut: 4/3 of the view."""
    return min(stored, max(view, -(-view * 4 // 3)))


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA, else MPS, else CPU. A CUDA device without an index is
    this process's local rank (``LOCAL_RANK``, set by torchrun before any process group
    exists; 0 otherwise): one GPU per process."""
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", dist.get_local_rank())
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda", dist.get_local_rank())
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def setup_device(device: str | torch.device | None = None) -> torch.device:
    """This process's training device, bound before the process group starts (under NCCL a
    rank that has not set its device binds GPU 0), then the process group (torchrun only;
    NCCL for CUDA, gloo for ``--device cpu`` even where GPUs exist)."""
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)
    dist.init_distributed(dev)
    return dev


def data_source(source: Any) -> Any:
    """The data of ``source``: a workspace's store (by its ``data_path``), else ``source``."""
    data_src = source.data_path if hasattr(source, "data_path") else source
    if isinstance(data_src, str | Path) and (Path(data_src) / "workspace.json").exists():
        data_src = Path(data_src) / "data.zarr"
    return data_src


def _probe(data_src: Any, cfg: PretrainConfig) -> tuple[str, int, int]:
    """(kind, channels, stored size) of the data, from its first chunk."""
    probe = ChannelDataset(data_src, kind=cfg.kind)
    return probe.kind, probe.shape[0], min(probe.shape[-2:])


def run_key(data_src: Any, cfg: PretrainConfig) -> str:
    """The resume key of ``cfg`` on this data (call after ``setup_device``: it counts ranks)."""
    kind, in_ch, _ = _probe(data_src, cfg)
    return cfg.resume_key(kind, in_ch)


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def _budget(cfg: PretrainConfig, steps_per_epoch: int) -> tuple[int, float | None]:
    """(planned steps, seconds or None)."""
    if cfg.epochs is not None:
        return max(1, round(cfg.epochs * steps_per_epoch)), None
    if cfg.steps is not None:
        return max(1, int(cfg.steps)), None
    minutes = 5.0 if cfg.minutes is None else float(cfg.minutes)
    return 10**9, minutes * 60.0  # refitted once the step time is known


def prepare_model(
    model: nn.Module, cfg: PretrainConfig, device: torch.device
) -> tuple[nn.Module, nn.Module]:
    """``(model, train_model)`` for the loop: batch norm global over ranks under DDP, the
    encoder compiled with ``cfg.compile`` (the encoder only: its state-dict keys stay the same,
    and DDP's gradient hooks stay outside the compiled graph), DDP around the whole method
    (``broadcast_buffers=False`` for MoCo: its queue and key encoder are updated identically
    on every rank and need no copy from rank 0 before each forward)."""
    model = model.to(device)
    if dist.is_distributed() and cfg.norm == "batch":
        model = dist.sync_batchnorm(model, device)
    if device.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model.encoder.compile()
    train_model: nn.Module = model
    if dist.is_distributed():
        train_model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            broadcast_buffers=cfg.method != "moco",
        )
    return model, train_model


def train(
    data_src: Any,
    config: PretrainConfig | None,
    run_dir: str | Path,
    *,
    version: str | None = None,
    meta_extra: dict[str, Any] | None = None,
    on_step: Any = None,
) -> Path:
    """Pretrain an encoder on ``data_src`` (a store path or xarray Dataset) into ``run_dir``.

    ``run_dir`` gets ``encoder.pt``, ``checkpoint.pt``, ``metrics.csv`` and ``meta.json``
    (with ``version``, default the folder name, and ``meta_extra``). With ``config.resume`` a
    checkpoint in ``run_dir`` is continued. ``on_step(info: dict)`` is called after every step
    (progress hooks; on CUDA ``info["loss"]`` is refreshed every few steps, not every step,
    to keep the host from waiting for the GPU). Returns ``run_dir``.
    """
    cfg = config or PretrainConfig()
    device = setup_device(cfg.device)
    rank, world = dist.get_rank(), dist.get_world_size()
    cuda = device.type == "cuda"
    main = rank == 0
    kind, in_ch, stored = _probe(data_src, cfg)
    if cfg.image_size is not None and cfg.image_size > stored:
        raise InSARDataError(
            f"image_size {cfg.image_size}: larger than the stored images ({stored} px); views "
            f"are crops of them, so at most {stored}"
        )
    # views: image_size if given, else the data's size capped at the size the arch is built for
    size = cfg.image_size or min(stored, PRESETS.get(cfg.arch, {}).get("image_size", 4096))
    # views are cut from the data brought down to a third more than the view (random crops of
    # 35-100 % of the area then resample by about 0.6-1.3x): a step's cost follows the view
    data = ChannelDataset(
        data_src, kind=cfg.kind, max_size=view_source_size(size, stored), preload=False
    )  # fmt: skip
    key = cfg.resume_key(kind, in_ch)
    run = Path(run_dir)
    resuming = False
    if main:
        run.mkdir(parents=True, exist_ok=True)
        resuming = cfg.resume and (run / "checkpoint.pt").exists()
    resuming = bool(dist.broadcast_object(resuming))
    version = version or run.name

    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    enc_kw = {"image_size": size, **cfg.encoder_kwargs}  # recorded: embeddings resize to it
    if PRESETS.get(cfg.arch, {}).get("family") == "resnet":
        if kind == "phase" and in_ch == 4:
            enc_kw.setdefault("phase_input", cfg.phase_input)
        elif kind == "rgb" and in_ch == 3:
            enc_kw.setdefault("phase_input", cfg.rgb_input)
    encoder = build_encoder(cfg.arch, in_ch, channel_kind=kind, norm=cfg.norm, **enc_kw)
    encoder.config["embed_dihedral"] = bool(cfg.embed_dihedral)  # how embed.Embedder embeds
    method_kw: dict[str, Any] = {"proj_dim": cfg.proj_dim, "hidden_dim": cfg.hidden_dim}
    method_kw["head_norm"] = "batch" if cfg.norm == "batch" else "layer"
    if cfg.method in ("simclr", "moco"):
        method_kw["temperature"] = cfg.temperature
    model = build_method(cfg.method, encoder, **method_kw)
    lr = cfg.lr if cfg.lr is not None else 1e-3 * cfg.batch_size * world / 128
    workers = cfg.num_workers if cfg.num_workers is not None else (4 if cuda else 0)
    # each rank keeps in memory only the samples its sampler draws (its share of the chunks),
    # when the largest share fits (the same choice on every rank); each loader worker reads its
    # own stream of chunks (a chunk decoded once per epoch); a preloaded set is in memory already
    preload = data.fits(max(len(s) for s in rank_shares(len(data), data.chunk, world)))
    streams = workers if workers > 0 and not preload else 1
    sampler = BlockShuffleSampler(
        data, batch_size=cfg.batch_size, block=data.chunk, seed=cfg.seed, streams=streams
    )
    if preload:
        data.preload(sampler.share, progress=cfg.progress and main)
    spe = sampler.batches_per_epoch
    total, seconds = _budget(cfg, spe)
    plan = Plan(total, cfg.warmup_frac, cfg.min_lr_frac)
    bank, bank_batch = None, cfg.physics_batch or max(1, cfg.batch_size // 2)
    if cfg.physics > 0:  # a short fixed budget needs no more bank images than it can draw
        per_step = bank_batch + round(cfg.physics_ssl * cfg.batch_size)  # labelled + unlabelled
        draws = total * per_step * world  # every rank draws from its own slice of the bank
        n_bank = cfg.physics_n if seconds is not None else min(cfg.physics_n, draws)
        bank = make_physics_bank(
            max(256, n_bank), view_source_size(size, stored), kind=kind, stored_size=stored,
            coherence="coherence" in data.ds, seed=cfg.seed + 7919, progress=cfg.progress and main,
            rank=rank, world=world,
        )  # fmt: skip
        model = WithPhysics(model, len(bank.classes), cfg.physics, supcon=cfg.physics_supcon,
                            temperature=cfg.temperature, regress=cfg.physics_regress)  # fmt: skip
    step, elapsed_before = 0, 0.0
    ckpt = None
    if resuming:
        ckpt = load_checkpoint(
            run / "checkpoint.pt", encoder_config=encoder.config, method=cfg.method
        )
        model.load_state_dict(ckpt["model"])
    model, train_model = prepare_model(model, cfg, device)
    encoder = model.encoder
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, plan.factor)
    torch.manual_seed(cfg.seed + 1000 * rank)  # augmentations differ per rank
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        plan.total = int(ckpt["total_steps"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, elapsed_before = int(ckpt["step"]), float(ckpt["elapsed_s"])
        states = ckpt["rng"]
        if rank < len(states):
            set_rng_state(states[rank], device)
        else:  # more ranks than the run had: fresh, distinct streams for the new ones
            torch.manual_seed(cfg.seed + 1000 * rank + step)
        seconds = ckpt.get("seconds_budget")
        del ckpt
    loader = DataLoader(
        data,
        batch_sampler=BatchSampler(sampler),
        collate_fn=collate_batch,
        num_workers=workers,
        pin_memory=cuda,
        persistent_workers=workers > 0,
        multiprocessing_context=worker_context() if workers > 0 else None,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    aug_cls = PhaseAugment if kind == "phase" else RGBAugment
    # no conjugated views for phase read from renderings: on bench_transfer's validation set they
    # cost 0.024 balanced accuracy at every k (paired, p < 0.001); cfg.augment can ask for them
    augment = aug_cls(size, **cfg.augment)
    bank_augment = augment
    if cfg.physics_crop is not None:  # bank views: crops that keep most of the scene
        bank_augment = aug_cls(size, **{**cfg.augment, "crop_scale": (cfg.physics_crop, 1.0)})
    monitor = None
    if main and cfg.monitor_every > 0:
        monitor = Monitor.from_dataset(data.ds, kind, cfg.monitor_samples, cfg.seed)
    log = MetricsLog(run, enabled=main, tensorboard=cfg.tensorboard)
    meta = {
        "version": version, "status": "running", "resume_key": key, "kind": kind,
        "in_channels": in_ch, "image_size": size, "config": dataclasses.asdict(cfg),
        "encoder_config": encoder.config, "n_samples": len(data), "world_size": world,
        "data_fingerprint": None, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(meta_extra or {}),
    }  # fmt: skip
    if main:
        write_meta(run, meta)

    def checkpoint() -> None:
        states = [rng_state(device)]  # this rank's CPU generator and its own GPU's
        if dist.is_distributed():
            gathered: list[Any] = [None] * world
            torch.distributed.all_gather_object(gathered, states[0])
            states = gathered
        if main:
            save_checkpoint(
                run / "checkpoint.pt", model=model.state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), step=step, total_steps=plan.total,
                elapsed_s=elapsed_before + clock.sync() - t0, seconds_budget=seconds,
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
    # time and the budget refit (an all-reduce under DDP) every few steps on GPUs and under
    # DDP, where reading the clock means waiting for the device; every step on one CPU process
    clock = StepClock(device, cfg.batch_size * world, 10 if cuda or dist.is_distributed() else 1)
    t0 = clock.start(step)
    t_calib, calib_step = None, step
    stop, loss_value, step_loss = False, float("nan"), float("nan")
    model.train()
    # under DDP, Ctrl-C stops every rank at one step (checked every step on CPU, every 10 on
    # GPUs, where reading the flag waits for the device)
    interrupt = dist.CollectiveInterrupt(device, every=10 if cuda else 1).start()
    try:
        while step < plan.total and not stop:
            sampler.set_epoch(step // spe, step % spe)
            for x in loader:
                x = x.to(device, non_blocking=True).float()  # float16 over the bus
                # the batch's last rows: bank images, as unlabelled ones (a row of data kept)
                m = min(len(x) - 1, round(cfg.physics_ssl * len(x))) if bank is not None else 0
                if m > 0:
                    x = torch.cat([x[: len(x) - m], bank.sample(m, device)[0]])
                views = [augment(x), augment(x)]
                if bank is not None:
                    xs, ys, zs = bank.sample(bank_batch, device)
                    views.append(bank_augment(xs))
                if cuda and cfg.channels_last:
                    views = [v.contiguous(memory_format=torch.channels_last) for v in views]
                with amp:
                    labels = [ys, zs] if bank is not None else []
                    loss = train_model(*views, *labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                scheduler.step()
                step += 1
                logging = step % cfg.log_every == 0 or step == plan.total
                now = clock.tick(step, force=logging)
                if now is not None:
                    step_loss = float(loss.detach())
                    if t_calib is None and step - calib_step >= 2:
                        t_calib, calib_step = now, step  # first steps pay warm-up: from here
                    elif t_calib is not None and seconds is not None and step > calib_step:
                        stop = refit(plan, seconds, elapsed_before + now - t0, step,
                                     (now - t_calib) / (step - calib_step), device)  # fmt: skip
                        bar.total = plan.total
                if logging or stop:
                    loss_value = float(dist.all_reduce_mean(loss.detach().float()))
                    row = {"step": step, "epoch": step / spe, "loss": loss_value,
                           "lr": scheduler.get_last_lr()[0], "img_per_s": clock.rate,
                           "elapsed_s": elapsed_before + (now or clock.sync()) - t0,
                           **physics_row(model)}  # fmt: skip
                    if monitor is not None and (
                        step % cfg.monitor_every == 0 or step == plan.total
                    ):
                        row.update(monitor.evaluate(model.encoder, device))
                    log.write(row)
                    bar.set_postfix(loss=f"{loss_value:.3f}", img_s=f"{clock.rate:.0f}")
                bar.update(1)
                if step % cfg.checkpoint_every == 0 and step < plan.total:
                    checkpoint()
                if on_step is not None:
                    on_step(
                        {"step": step, "total": plan.total, "loss": step_loss,
                         "img_per_s": clock.rate}
                    )  # fmt: skip
                interrupt.check(step)
                if step >= plan.total or stop:
                    break
    except KeyboardInterrupt:
        try:
            checkpoint()
        finally:  # no rank leaves (and tears its process group down) while rank 0 saves
            log.close()
            bar.close()
            dist.barrier()
        raise
    finally:
        interrupt.stop()
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
        head = getattr(model, "classifier", None) if bank is not None else None
        if head is not None:  # the bank's classifier: deformation scores of the embeddings
            save_physics_head(run / HEAD_FILE, head, bank.classes, embed_gain=cfg.embed_gain,
                              embed_class_gain=cfg.embed_class_gain)  # fmt: skip
        else:  # never a head left by an earlier run in the same folder
            (run / HEAD_FILE).unlink(missing_ok=True)
        meta.update(status="done", steps=step, elapsed_s=elapsed_before + clock.sync() - t0,
                    final_loss=loss_value, final_metrics=log.last)  # fmt: skip
        write_meta(run, meta)
    log.close()
    dist.barrier()
    return run


def _is_workspace(source: Any) -> bool:
    if hasattr(source, "models_dir") and hasattr(source, "set_current_model"):
        return True
    return isinstance(source, str | Path) and (Path(source) / "workspace.json").exists()


def pretrain(
    source: Any,
    config: PretrainConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    on_step: Any = None,
) -> str:
    """Pretrain an encoder on ``source`` (Workspace, workspace/store path, or xarray Dataset).

    With ``out_dir`` the model folder is ``out_dir`` and its path is returned. Without it the
    source must be a workspace: the run is
    ``insarexplore.pretraining.pretrain_workspace(source, config)`` (the model lands in a new
    model folder, or the unfinished one of the same config, and becomes the current model; the
    version is returned). ``on_step(info: dict)`` is called after every step (progress hooks).
    An interrupted run (Ctrl-C, or killed) resumes when called again with the same config.
    """
    if out_dir is None:
        if not _is_workspace(source):
            raise ValueError("pretrain: give out_dir when the source is not a workspace")
        from insarexplore.pretraining import pretrain_workspace  # the workspace layer

        return pretrain_workspace(source, config, on_step=on_step)
    cfg = config or PretrainConfig()
    fingerprint = getattr(source, "data_fingerprint", None)
    extra = {"data_fingerprint": fingerprint()} if callable(fingerprint) else None
    return str(train(data_source(source), cfg, out_dir, meta_extra=extra, on_step=on_step))
