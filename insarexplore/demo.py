"""The one-command demo: synthetic workspace -> pretrained encoder -> embeddings -> map -> dashboard.

``run_demo(path)`` (``insarexplore demo [DIR]``) walks the whole path a new user takes, each step
done only when its result is missing, so running it again reuses what is there and an
interrupted run picks up where it stopped (the generator writes its store atomically, pretraining
resumes from its checkpoint, embeddings are saved block by block, the map is cached).

Sizes are chosen for the machine: on CPU about 3,000 samples at 64 px and a pretraining budget
that brings the whole demo to about five minutes on two cores; on a GPU more samples, a larger
encoder and a longer budget. ``quick=True`` is a smoke-test size (a minute or two).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["DemoPlan", "plan_demo", "prepare_demo", "run_demo", "serve_until_stopped"]


@dataclasses.dataclass(frozen=True)
class DemoPlan:
    """Sizes of one demo run (see :func:`plan_demo`)."""

    n: int
    size: int
    minutes: float
    arch: str
    batch_size: int
    device: str
    projection: str
    monitor: bool
    seed: int = 0


def plan_demo(
    *,
    n: int | None = None,
    size: int | None = None,
    minutes: float | None = None,
    device: str | None = None,
    projection: str | None = None,
    quick: bool = False,
    seed: int = 0,
) -> DemoPlan:
    """Sizes for this machine; explicit arguments always win over the automatic choice.

    CPU: 3,000 x 64 px, ``resnet-micro`` (pretrained at 48 px), 3.5 minutes of pretraining
    (five minutes in all on two cores). CUDA: 20,000 x 64 px, ``resnet-small``, batch 256,
    5 minutes. ``quick``: 240 x 32 px, a few seconds of pretraining and a PCA map (no numba
    compilation), for tests.
    """
    from insarexplore.ssl.train import resolve_device

    dev = resolve_device(device)
    gpu = dev.type == "cuda"
    if quick:
        auto = {
            "n": 240,
            "size": 32,
            "minutes": 0.2,
            "arch": "resnet-tiny",
            "batch": 32,
            "projection": "pca",
            "monitor": False,
        }
    elif gpu:
        auto = {
            "n": 20_000,
            "size": 64,
            "minutes": 5.0,
            "arch": "resnet-small",
            "batch": 256,
            "projection": "umap",
            "monitor": True,
        }
    else:
        auto = {
            "n": 3_000,
            "size": 64,
            "minutes": 3.5,
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
    minutes: float | None = None,
    device: str | None = None,
    projection: str | None = None,
    quick: bool = False,
    seed: int = 0,
    quiet: bool = False,
) -> Any:
    """Build (or complete) the demo workspace at ``path`` and return it, without serving.

    Steps, each skipped when done: synthesise ``n`` labelled interferograms; pretrain an encoder
    for ``minutes``; embed the samples that lack an embedding; fit and cache the 2-D map, the
    cluster proposals and the anomaly scores the dashboard shows.
    """
    from insarexplore.workspace import Workspace

    plan = plan_demo(
        n=n,
        size=size,
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

        step(f"data: synthesising {plan.n:,} interferograms of {plan.size} px (6 classes)")
        gen_device = plan.device if plan.device.startswith("cuda") else None
        generate_to_zarr(
            ws.data_path,
            plan.n,
            size=plan.size,
            seed=plan.seed,
            device=gen_device,
            progress=not quiet,
        )

    if _model_ready(ws):
        step(f"model: reusing {ws.current_model}")
    else:
        from insarexplore.ssl.train import PretrainConfig, pretrain

        step(f"model: pretraining {plan.arch} (SimCLR) for {plan.minutes:g} min on {plan.device}")
        config = PretrainConfig(
            arch=plan.arch,
            minutes=plan.minutes,
            batch_size=plan.batch_size,
            device=plan.device,
            seed=plan.seed,
            monitor_every=PretrainConfig.monitor_every if plan.monitor else 0,
            progress=not quiet,
        )
        pretrain(ws, config)

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
    cluster(ws)
    anomaly_scores(ws)
    return ws


def serve_until_stopped(server: Any, address: str = "127.0.0.1") -> str:
    """Start a Bokeh server made with ``start=False``, print its URL, block until stopped.

    The line ``insarexplore dashboard: <url>`` goes to stdout once the socket is bound, so
    scripts and tests can wait for it. Ctrl-C (or SIGINT) stops the server cleanly.
    """
    host = "127.0.0.1" if address in ("", "0.0.0.0", "::") else address
    url = f"http://{host}:{server.port}{server.prefix or ''}/"
    server.start()
    print(f"insarexplore dashboard: {url}", flush=True)
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("dashboard stopped", file=sys.stderr, flush=True)
    return url


def run_demo(
    path: str | Path = "demo-workspace",
    *,
    n: int | None = None,
    size: int | None = None,
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

    With ``serve=True`` this prints the dashboard URL and blocks until Ctrl-C; ``port=0`` picks
    a free port. Returns the workspace.
    """
    ws = prepare_demo(
        path,
        n=n,
        size=size,
        minutes=minutes,
        device=device,
        projection=projection,
        quick=quick,
        seed=seed,
        quiet=quiet,
    )
    if serve:
        from insarexplore.app.server import serve as make_server

        if port == 0:
            port = _free_port(address)
        plan = plan_demo(projection=projection, quick=quick, device=device)
        server = make_server(
            ws, address=address, port=port, show=show, projection=plan.projection, start=False
        )
        serve_until_stopped(server, address)
    return ws


def _free_port(address: str) -> int:
    """A port free right now (the dashboard must know its port for websocket origins)."""
    import socket

    with socket.socket() as s:
        s.bind((address if address not in ("", "0.0.0.0") else "127.0.0.1", 0))
        return int(s.getsockname()[1])
