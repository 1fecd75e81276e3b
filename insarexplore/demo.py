"""The one-command demo: synthetic workspace -> pretrained encoder -> embeddings -> map -> dashboard.

``run_demo(path)`` (``insarexplore demo [DIR]``) walks the whole path a new user takes, each step
done only when its result is missing, so running it again reuses what is there and an
interrupted run picks up where it stopped (the generator writes its store atomically, pretraining
resumes from its checkpoint, embeddings are saved block by block, the map is cached).

The result does not depend on how busy the machine is: pretraining runs a fixed number of steps
chosen for the demo (1,200 on CPU: about 4 minutes on two idle cores), not a time budget. A
wall-clock guard (``minutes``, 8 on CPU) stops a run on a machine too busy to finish in
reasonable time; the demo then says so, keeps the encoder as trained so far and records
``cut_short`` in the model's ``meta.json``.

The demo's data (:data:`DEMO_CLASSES`, :data:`DEMO_DIFFICULTY`): physics-based synthetic
Sentinel-1 interferograms of four classes in equal numbers (Mogi point sources, dykes,
subsidence bowls and nuisance-only scenes) at the generator's ``easy`` difficulty: the
deformation is at least four times the atmospheric noise and makes at least two fringes, near
the scene centre, so the classes separate on the map at that step budget. Sills and earthquakes
(the generator's other classes) and the ``medium``/``hard`` levels (``insarexplore synth``) are
closer to real archives and need longer pretraining.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_CLASSES",
    "DEMO_DIFFICULTY",
    "DemoPlan",
    "plan_demo",
    "prepare_demo",
    "run_demo",
]

#: Classes of the demo's data, in equal numbers (sills and earthquakes, the generator's other two
#: classes, look too much like Mogi sources and dykes to separate at the demo's budget).
DEMO_CLASSES = ("mogi", "dyke", "subsidence", "none")
#: Generator difficulty of the demo's data (signal >= 4x the atmospheric noise, >= 2 fringes).
DEMO_DIFFICULTY = "easy"


@dataclasses.dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run (see :func:`plan_demo`).

    ``steps``: the pretraining budget; ``minutes``: the wall-clock guard that cuts pretraining
    short on a machine too busy to run ``steps`` in that time.
    """

    n: int
    size: int
    steps: int
    minutes: float
    arch: str
    batch_size: int
    device: str
    projection: str
    monitor: bool
    seed: int = 0
    difficulty: str = DEMO_DIFFICULTY
    classes: tuple[str, ...] = DEMO_CLASSES


def plan_demo(
    *,
    n: int | None = None,
    size: int | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    device: str | None = None,
    projection: str | None = None,
    quick: bool = False,
    seed: int = 0,
) -> DemoPlan:
    """Sizes for this machine; explicit arguments always win over the automatic choice.

    CPU: 3,000 x 64 px, ``resnet-micro`` (pretrained at 48 px), 1,200 SimCLR steps of batch 128
    (about 4 minutes on two idle cores; guard 8 minutes). CUDA: 20,000 x 64 px,
    ``resnet-small``, batch 256, 4,000 steps (guard 10 minutes). ``quick``: 240 x 32 px, 60 steps
    and a PCA map (no numba compilation), for tests.
    """
    from insarexplore.ssl.train import resolve_device

    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    if quick:
        auto = {
            "n": 240,
            "size": 32,
            "steps": 60,
            "minutes": 2.0,
            "arch": "resnet-tiny",
            "batch": 32,
            "projection": "pca",
            "monitor": False,
        }
    elif gpu:
        auto = {
            "n": 20_000,
            "size": 64,
            "steps": 4_000,
            "minutes": 10.0,
            "arch": "resnet-small",
            "batch": 256,
            "projection": "umap",
            "monitor": True,
        }
    else:
        auto = {
            "n": 3_000,
            "size": 64,
            "steps": 1_200,
            "minutes": 8.0,
            "arch": "resnet-micro",
            "batch": 128,
            "projection": "umap",
            "monitor": True,
        }
    count = int(n if n is not None else auto["n"])
    batch = int(auto["batch"])
    while batch > 8 and batch > count // 2:  # a few batches per epoch even on tiny sets
        batch //= 2
    plan = DemoPlan(
        n=count,
        size=int(size if size is not None else auto["size"]),
        steps=int(steps if steps is not None else auto["steps"]),
        minutes=float(minutes if minutes is not None else auto["minutes"]),
        arch=str(auto["arch"]),
        batch_size=batch,
        device=str(dev),
        projection=projection or str(auto["projection"]),
        monitor=bool(auto["monitor"]),
        seed=int(seed),
    )
    if plan.n < 16:
        raise ValueError(f"n must be at least 16 samples for a demo; got {plan.n}")
    if plan.size < 16:
        raise ValueError(f"size must be at least 16 pixels; got {plan.size}")
    if plan.steps < 1:
        raise ValueError(f"steps must be at least 1; got {plan.steps}")
    if not plan.minutes > 0:
        raise ValueError(f"minutes must be positive; got {plan.minutes}")
    if plan.projection not in ("umap", "pca"):
        raise ValueError(f"projection must be 'umap' or 'pca'; got {plan.projection!r}")
    return plan


class _Steps:
    """Numbered step headers with timings on stderr."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self.k, self.t0 = total, quiet, 0, time.perf_counter()

    def __call__(self, text: str) -> None:
        self.k += 1
        if not self.quiet:
            elapsed = time.perf_counter() - self.t0
            print(f"[{self.k}/{self.total} {elapsed:5.0f} s] {text}", file=sys.stderr, flush=True)


def _model_ready(ws: Any) -> bool:
    version = ws.current_model
    return bool(version) and (ws.model_dir(version) / "encoder.pt").exists()


def prepare_demo(
    path: str | Path,
    *,
    n: int | None = None,
    size: int | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    device: str | None = None,
    projection: str | None = None,
    quick: bool = False,
    seed: int = 0,
    quiet: bool = False,
) -> Any:
    """Build (or complete) the demo workspace at ``path`` and return it, without serving.

    Steps, each skipped when done: synthesise ``n`` labelled interferograms; pretrain an encoder
    for ``steps`` (cut short after ``minutes`` of wall clock, with a message); embed the samples
    that lack an embedding; fit and cache the 2-D map, the cluster proposals (on that map) and
    the anomaly scores the dashboard shows.
    """
    from insarexplore.workspace import Workspace

    plan = plan_demo(
        n=n,
        size=size,
        steps=steps,
        minutes=minutes,
        device=device,
        projection=projection,
        quick=quick,
        seed=seed,
    )
    step = _Steps(5 if not quick else 4, quiet)
    ws = Workspace.create(path, exist_ok=True)

    if ws.has_data():
        step(f"data: reusing {len(ws.sample_ids()):,} samples in {ws.data_path}")
    else:
        from insarexplore.data.synthetic import generate_to_zarr

        step(
            f"data: synthesising {plan.n:,} interferograms of {plan.size} px "
            f"({len(plan.classes)} classes, {plan.difficulty} difficulty)"
        )
        gen_device = plan.device if plan.device.startswith("cuda") else None
        generate_to_zarr(
            ws.data_path,
            plan.n,
            size=plan.size,
            seed=plan.seed,
            device=gen_device,
            progress=not quiet,
            difficulty=plan.difficulty,
            classes=plan.classes,
        )

    if _model_ready(ws):
        step(f"model: reusing {ws.current_model}")
    else:
        from insarexplore.ssl.train import PretrainConfig

        step(
            f"model: pretraining {plan.arch} (SimCLR) for {plan.steps:,} steps on {plan.device}"
            f" (guard: {plan.minutes:g} min)"
        )
        config = PretrainConfig(
            arch=plan.arch,
            steps=plan.steps,
            batch_size=plan.batch_size,
            device=plan.device,
            seed=plan.seed,
            monitor_every=PretrainConfig.monitor_every if plan.monitor else 0,
            progress=not quiet,
        )
        pretrain_guarded(ws, config, plan.minutes)

    from insarexplore.embed import embed_workspace

    missing = len(ws.missing_embedding_ids())
    step(f"embeddings: {missing:,} samples to embed" if missing else "embeddings: up to date")
    if missing:
        embed_workspace(ws, device=plan.device, progress=not quiet)

    from insarexplore.explore import anomaly_scores, cluster, project

    step(f"map: {plan.projection.upper()} of the embeddings (cached after the first fit)")
    project(ws, method=plan.projection)
    if not quick:
        step("clusters and anomaly scores for the dashboard (cached)")
    found = cluster(ws, space=plan.projection)
    if not quiet and found.attrs.get("description"):
        print(f"  {found.attrs['description']}", file=sys.stderr, flush=True)
    anomaly_scores(ws)
    return ws


class GuardStop(KeyboardInterrupt):
    """Raised from the step hook when the wall-clock guard trips (pretraining checkpoints)."""

    def __init__(self, step: int, total: int, seconds: float) -> None:
        super().__init__(f"wall-clock guard after {seconds:.0f} s at step {step} of {total}")
        self.step, self.total, self.seconds = step, total, seconds


def pretrain_guarded(ws: Any, config: Any, minutes: float) -> dict[str, Any]:
    """``pretrain(ws, config)`` for ``config.steps`` steps, stopped after ``minutes`` of wall clock.

    When the guard trips, the encoder as trained so far becomes the current model (its
    ``meta.json`` says ``cut_short``, with the steps done and planned) and a message on stderr
    says so. Returns ``{"version", "steps", "planned", "cut_short", "seconds"}``.
    """
    from insarexplore.pretraining import pretrain_workspace

    t0 = time.perf_counter()
    limit = float(minutes) * 60.0

    def guard(info: dict[str, Any]) -> None:
        elapsed = time.perf_counter() - t0
        if elapsed > limit and info["step"] < info["total"]:
            raise GuardStop(int(info["step"]), int(info["total"]), elapsed)

    try:
        version = pretrain_workspace(ws, config, on_step=guard)
    except GuardStop as stop:
        version = _keep_cut_short(ws, t0, stop)
        rate = stop.step / max(stop.seconds, 1e-9)
        print(
            f"pretraining cut short by the wall-clock guard ({minutes:g} min): "
            f"{stop.step:,} of {stop.total:,} steps done ({rate:.2g} steps/s; the machine is "
            f"busy). The map will separate the classes less than the demo intends. For the "
            f"full run, use a new folder and a longer guard (--minutes).",
            file=sys.stderr,
            flush=True,
        )
        return {
            "version": version,
            "steps": stop.step,
            "planned": stop.total,
            "cut_short": True,
            "seconds": stop.seconds,
        }
    steps = int(config.steps) if config.steps is not None else -1
    return {
        "version": version,
        "steps": steps,
        "planned": steps,
        "cut_short": False,
        "seconds": time.perf_counter() - t0,
    }


def _keep_cut_short(ws: Any, t0: float, stop: GuardStop) -> str:
    """Make the checkpoint a cut-short run left behind the current model's encoder."""
    import json

    from insarexplore.models.serialization import (
        build_from_config,
        load_state_checked,
        save_encoder,
    )
    from insarexplore.ssl.checkpoint import encoder_state, load_checkpoint
    from insarexplore.ssl.metrics import write_meta

    runs = []
    for meta_path in Path(ws.models_dir).glob("*/meta.json"):
        run = meta_path.parent
        ckpt = run / "checkpoint.pt"
        meta = json.loads(meta_path.read_text())
        if meta.get("status") == "running" and ckpt.exists():
            runs.append((ckpt.stat().st_mtime, run, meta))
    if not runs:
        raise RuntimeError("the wall-clock guard stopped pretraining but left no checkpoint")
    _, run, meta = max(runs, key=lambda r: r[0])
    blob = load_checkpoint(run / "checkpoint.pt")
    encoder = build_from_config(blob["encoder_config"])
    state = encoder_state(blob["model"])
    load_state_checked(encoder, state, where=str(run / "checkpoint.pt"))
    save_encoder(run / "encoder.pt", encoder, blob["encoder_config"])
    meta.update(
        status="done",
        steps=int(blob["step"]),
        planned_steps=stop.total,
        cut_short=True,
        guard_s=round(stop.seconds, 1),
        elapsed_s=float(blob.get("elapsed_s", stop.seconds)),
    )
    write_meta(run, meta)
    ws.set_current_model(run.name)
    return run.name


def run_demo(
    path: str | Path = "demo-workspace",
    *,
    n: int | None = None,
    size: int | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    device: str | None = None,
    projection: str | None = None,
    quick: bool = False,
    seed: int = 0,
    serve: bool = True,
    port: int = 5006,
    address: str = "127.0.0.1",
    show: bool = False,
    quiet: bool = False,
) -> Any:
    """Prepare the demo workspace (see :func:`prepare_demo`), then serve its dashboard.

    With ``serve=True`` this prints the dashboard URL (``insarexplore dashboard: <url>``, with
    ``?token=`` when the address needs one) and blocks until Ctrl-C; ``port=0`` picks a free
    port. Returns the workspace.
    """
    ws = prepare_demo(
        path,
        n=n,
        size=size,
        steps=steps,
        minutes=minutes,
        device=device,
        projection=projection,
        quick=quick,
        seed=seed,
        quiet=quiet,
    )
    if serve:
        from insarexplore.app.server import serve as make_server
        from insarexplore.app.server import serve_until_stopped

        plan = plan_demo(projection=projection, quick=quick, device=device)
        # port 0: serve() picks a free port itself (it must know it for websocket origins)
        server = make_server(
            ws,
            address=address,
            port=port,
            show=show,
            projection=plan.projection,
            start=False,
            announce=False,
        )
        for line in server.access.warnings:
            print(f"insarexplore demo: warning: {line}", file=sys.stderr, flush=True)
        serve_until_stopped(server)
    return ws
