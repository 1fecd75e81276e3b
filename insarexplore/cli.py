"""The ``insarexplore`` command line: a thin layer over the library.

Every command parses its arguments and calls one or two library functions; nothing here holds
logic the Python API lacks. Heavy libraries are imported inside the command functions, so
``insarexplore --help`` answers at once. Errors on bad input print one clear line and exit 2
(``--debug`` shows the traceback); Ctrl-C exits 130 and leaves the workspace consistent, so
running the same command again resumes (stores are written atomically, training checkpoints).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

PROG = "insarexplore"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEFAULT_DEMO_DIR = "demo-workspace"

_HANDLED = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


# -- helpers ----------------------------------------------------------------------------------
def _say(message: str) -> None:
    """Progress notes go to stderr, so stdout stays clean for data (--json, CSV)."""
    print(message, file=sys.stderr, flush=True)


def _open(path: str | Path, *, need_data: bool = False):  # -> Workspace
    from insarexplore.workspace import Workspace

    ws = Workspace.open(path)
    if need_data and not ws.has_data():
        raise ValueError(
            f"{ws.path}: the workspace has no data yet "
            "(add some with `insarexplore synth` or `insarexplore ingest`)"
        )
    return ws


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def _add_command(
    sub: Any,
    name: str,
    func: Callable[[argparse.Namespace], int | None],
    summary: str,
    examples: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A sub-command with its one-line summary, a description and an examples epilog."""
    parser = sub.add_parser(
        name,
        help=summary,
        description=description or summary,
        epilog="examples:\n" + examples.strip("\n"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
    )
    parser.set_defaults(func=func, command=name)
    return parser


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default=None,
        metavar="DEV",
        help="torch device: cpu, cuda, cuda:1, mps (default: best available)",
    )


# -- demo -------------------------------------------------------------------------------------
def _cmd_demo(args: argparse.Namespace) -> int:
    from insarexplore.demo import run_demo

    run_demo(
        args.directory,
        n=args.n,
        size=args.size,
        minutes=args.minutes,
        device=args.device,
        projection=args.projection,
        quick=args.quick,
        seed=args.seed,
        serve=not args.no_serve,
        port=args.port,
        address=args.address,
        show=args.show,
    )
    if args.no_serve:
        _say(f"demo workspace ready; serve it with: insarexplore serve {args.directory}")
    return 0


def _add_demo(sub: Any) -> None:
    p = _add_command(
        sub,
        "demo",
        _cmd_demo,
        "synthesise, pretrain, embed, project, then serve the dashboard (the whole path)",
        f"""
  insarexplore demo                        # ./{DEFAULT_DEMO_DIR}, about 5 minutes on 2 CPU cores
  insarexplore demo ~/insar-demo --show    # and open a browser tab
  insarexplore demo --device cuda          # more samples, larger encoder, longer budget
  insarexplore demo --quick --port 0       # tiny smoke test on a free port
  insarexplore demo --no-serve             # build only (Binder's postBuild does this)
""",
        description=(
            "One command from nothing to a served dashboard: synthesise about 3,000 labelled\n"
            "interferograms (64 px), pretrain an encoder briefly (sized to the machine: about\n"
            "5 minutes in all on 2 CPU cores; more data, a larger model and a longer budget on\n"
            "a GPU), embed, fit the UMAP map, then serve the dashboard and print its URL.\n"
            "Each step is skipped when its result exists: re-running reuses what is done,\n"
            "and an interrupted run resumes."
        ),
    )
    p.add_argument(
        "directory", nargs="?", default=DEFAULT_DEMO_DIR, help=f"workspace (./{DEFAULT_DEMO_DIR})"
    )
    p.add_argument("-n", type=_positive_int, default=None, help="samples (3000; 20000 on GPU)")
    p.add_argument("--size", type=_positive_int, default=None, help="pixels per side (64)")
    p.add_argument("--minutes", type=_positive_float, default=None, help="pretraining budget")
    p.add_argument("--projection", choices=["umap", "pca"], default=None, help="map (umap)")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-serve", action="store_true", help="build the workspace, do not serve")
    p.add_argument("--port", type=int, default=5006, help="dashboard port (0: any free port)")
    p.add_argument("--address", default="127.0.0.1", help="bind address (default: local only)")
    p.add_argument("--show", action="store_true", help="open a browser tab")
    _add_device(p)


# -- info -------------------------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> int:
    status = _open(args.workspace).status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(f"workspace  {status['path']}")
    data = status.get("data")
    if data:
        variables = ", ".join(data["variables"])
        print(f"data       {data['samples']:,} samples, {data['size']} px ({variables})")
    else:
        print("data       none yet (insarexplore synth / ingest)")
    models = status.get("models") or []
    current = status.get("current_model")
    print(f"models     {len(models)}" + (f"; current {current}" if current else ""))
    for version, emb in (status.get("embeddings") or {}).items():
        missing = f", {emb['missing']:,} samples missing" if emb["missing"] else ""
        print(f"embedding  {version}: {emb['n']:,} x {emb['dim']}{missing}")
    for art in status.get("artifacts") or []:
        flag = "STALE" if art["stale"] else "current"
        print(f"artefact   {art['kind']}/{art['key']}: {flag}")
    print(f"labels     {'labels.sqlite' if status.get('labels_db') else 'none yet'}")
    return 0


def _add_info(sub: Any) -> None:
    p = _add_command(
        sub,
        "info",
        _cmd_info,
        "show what a workspace holds and which results are stale",
        """
  insarexplore info demo-workspace
  insarexplore info demo-workspace --json | jq .embeddings
""",
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")


# -- synth ------------------------------------------------------------------------------------
_CLASSES = ("mogi", "sill", "dyke", "earthquake", "subsidence", "none")


def _classes(text: str) -> tuple[str, ...]:
    names = tuple(c.strip() for c in text.split(",") if c.strip())
    bad = [c for c in names if c not in _CLASSES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown class {bad[0]!r}" if bad else "empty class list")
    return names


def _cmd_synth(args: argparse.Namespace) -> int:
    from insarexplore.data.synthetic import SyntheticConfig, generate, generate_to_zarr
    from insarexplore.workspace import Workspace

    config = SyntheticConfig(
        size=args.size,
        classes=args.classes,
        difficulty=args.difficulty,
        pixel_spacing_m=args.pixel_spacing,
    )
    ws = Workspace.create(args.workspace, exist_ok=True)
    before = ws.sample_ids()
    if ws.has_data():
        # appended in one atomic step: an interrupted run adds nothing
        ds = generate(args.n, seed=args.seed, device=args.device, config=config, progress=True)
        total = ws.add_data(ds)
    else:
        # streamed into a temporary store that replaces data.zarr only when complete
        generate_to_zarr(
            ws.data_path,
            args.n,
            seed=args.seed,
            device=args.device,
            config=config,
            chunk_size=args.chunk_size,
        )
        total = len(ws.sample_ids())
    _say(f"synthesised {args.n:,} interferograms ({args.size} px) into {ws.path} (now {total:,})")
    if args.png_dir:
        import numpy as np

        from insarexplore.data.synthetic import render_dataset

        ds = ws.open_data()
        new = ~np.isin(ds["sample"].values.astype(str), before.astype(str))
        paths = render_dataset(ds.isel(sample=np.flatnonzero(new)), args.png_dir,
                               palette=args.palette)  # fmt: skip
        _say(f"rendered {len(paths):,} PNGs ({args.palette} palette) under {args.png_dir}")
    return 0


def _add_synth(sub: Any) -> None:
    p = _add_command(
        sub,
        "synth",
        _cmd_synth,
        "synthesise labelled Sentinel-1 interferograms into a workspace",
        """
  insarexplore synth ws/ -n 3000                            # 6 classes, 64 px
  insarexplore synth ws/ -n 600 --classes mogi,dyke,none --difficulty easy
  insarexplore synth ws/ -n 200000 --size 128 --device cuda
  insarexplore synth ws/ -n 600 --png-dir renders/ --palette mixed   # also PNG renderings
""",
        description=(
            "Physics-based interferograms (Mogi, sills, dykes, earthquakes, subsidence, none)\n"
            "with atmosphere, decorrelation and real locations. A seed and a count fully\n"
            "determine the set; into an existing workspace the samples are appended (use\n"
            "another --seed: sample ids carry it)."
        ),
    )
    p.add_argument("workspace", help="workspace folder (created if missing)")
    p.add_argument("-n", type=_positive_int, default=3000, help="number of samples")
    p.add_argument("--size", type=_positive_int, default=64, help="pixels per side")
    p.add_argument("--classes", type=_classes, default=_CLASSES, help="comma-separated subset")
    p.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    p.add_argument("--pixel-spacing", type=_positive_float, default=100.0, help="metres")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=_positive_int, default=1024, help="samples per chunk")
    p.add_argument("--png-dir", default=None, help="also render PNGs here (class folders)")
    p.add_argument("--palette", choices=["cyclic", "rainbow", "mixed"], default="cyclic")
    _add_device(p)


# -- pretrain ---------------------------------------------------------------------------------
def _cmd_pretrain(args: argparse.Namespace) -> int:
    from insarexplore.ssl.train import PretrainConfig, pretrain

    ws = _open(args.workspace, need_data=True)
    budget = {k: getattr(args, k) for k in ("minutes", "epochs", "steps")}
    if all(v is None for v in budget.values()):
        budget["minutes"] = 5.0
    config = PretrainConfig(
        arch=args.arch,
        method=args.method,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        num_workers=args.workers,
        compile=args.compile,
        image_size=args.image_size,
        kind=args.kind,
        resume=not args.fresh,
        monitor_every=0 if args.no_monitor else PretrainConfig.monitor_every,
        **budget,
    )
    version = pretrain(ws, config)
    _say(
        f"model {version} is now the workspace's current model; next: insarexplore embed {ws.path}"
    )
    return 0


def _add_pretrain(sub: Any) -> None:
    p = _add_command(
        sub,
        "pretrain",
        _cmd_pretrain,
        "pretrain a self-supervised encoder on a workspace (no labels needed)",
        """
  insarexplore pretrain ws/ --minutes 5                       # CPU-sized default
  insarexplore pretrain ws/ --epochs 100 --arch resnet18 --batch-size 256 --device cuda
  torchrun --nproc_per_node=4 -m insarexplore.cli pretrain ws/ --epochs 100 --arch resnet18
""",
        description=(
            "Self-supervised pretraining (SimCLR, MoCo v2 or VICReg) with InSAR-aware\n"
            "augmentations. The budget is minutes, epochs or steps. A checkpoint is written\n"
            "regularly and on Ctrl-C: the same command again resumes the run. Under torchrun\n"
            "it trains data-parallel on every process. The finished model becomes current."
        ),
    )
    p.add_argument("workspace", help="workspace folder")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=_positive_float, default=None, help="wall-clock (5)")
    budget.add_argument("--epochs", type=_positive_float, default=None)
    budget.add_argument("--steps", type=_positive_int, default=None)
    p.add_argument("--arch", default="resnet-tiny", help="resnet-tiny, resnet-small, resnet18, ...")
    p.add_argument("--method", choices=["simclr", "moco", "vicreg"], default="simclr")
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--lr", type=_positive_float, default=None, help="default scales with batch")
    p.add_argument("--image-size", type=_positive_int, default=None, help="crop size in px")
    p.add_argument("--kind", choices=["phase", "rgb"], default=None, help="input channels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    p.add_argument("--no-monitor", action="store_true", help="skip the kNN/linear-probe monitor")
    _add_device(p)


# -- ingest -----------------------------------------------------------------------------------
def _detect_format(path: Path) -> str:
    """licsar (``*.geo.diff_pha.tif`` inside), hephaestus (JSON annotations) or images."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    name = path.name.lower()
    if path.is_file():
        if name.endswith((".tar.gz", ".tgz", ".tar", ".json")):
            return "hephaestus"
        if name.endswith(".geo.diff_pha.tif"):
            return "licsar"
        raise ValueError(f"{path}: cannot tell its format; pass --format")
    if next(path.rglob("*.geo.diff_pha.tif"), None) is not None:
        return "licsar"
    if next(path.glob("*.json"), None) is not None:
        return "hephaestus"
    return "images"


def _ingest_images(ws: Any, source: Path, args: argparse.Namespace) -> tuple[int, list]:
    """Stream an image folder into the store; into an existing store via a staging store, so
    an interrupted ingest adds nothing and can simply be run again."""
    import shutil

    from insarexplore.data.io.images import ingest_image_folder
    from insarexplore.data.io.store import open_dataset

    opts: dict[str, Any] = {
        "size": args.size,
        "labels": {"auto": "auto", "folders": True, "none": False}[args.labels],
        "fit": args.fit,
        "strict": args.strict,
        "palette": args.palette,
        "recover_phase": args.recover_phase,
        "workers": args.workers,
    }
    if not ws.has_data():
        report = ingest_image_folder(source, ws.data_path, mode="w-", **opts)
        return report.n_written, report.skipped
    staging = ws.path / ".ingest-staging.zarr"
    try:
        report = ingest_image_folder(source, staging, mode="w", **opts)
        ws.add_data(open_dataset(staging, lazy=True))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report.n_written, report.skipped


def _cmd_ingest(args: argparse.Namespace) -> int:
    from insarexplore.workspace import Workspace

    source = Path(args.path).expanduser()
    fmt = args.format if args.format != "auto" else _detect_format(source)
    if fmt == "hephaestus" and not args.images:
        raise ValueError("--images: Hephaestus ingest needs the folder holding <frame>/... images")
    if fmt != "licsar" and (args.patch_size or args.stride):
        raise ValueError(f"--patch-size/--stride apply to LiCSAR frames, not to {fmt}")
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    _say(f"reading {source} as {fmt} ...")
    ws = Workspace.create(args.workspace, exist_ok=True)
    if fmt == "images":
        added, skipped = _ingest_images(ws, source, args)
    else:
        if fmt == "licsar":
            from insarexplore.data.io.geotiff import read_licsar

            ds = read_licsar(
                source,
                patch_size=args.patch_size,
                stride=args.stride,
                min_valid=args.min_valid,
                strict=args.strict,
            )
        else:
            from insarexplore.data.io.hephaestus import read_hephaestus

            ds = read_hephaestus(
                source,
                args.images,
                size=args.size or 224,
                fit=args.fit if args.fit != "auto" else "resize",
                strict=args.strict,
                workers=args.workers,
            )
        skipped = json.loads(ds.attrs.get("skipped", "[]") or "[]")
        ws.add_data(ds)
        added = ds.sizes["sample"]
    total = len(ws.sample_ids())
    _say(
        f"added {added:,} samples to {ws.path} (now {total:,})"
        + (f"; skipped {len(skipped)} file(s), first: {skipped[0]}" if skipped else "")
    )
    return 0


def _add_ingest(sub: Any) -> None:
    p = _add_command(
        sub,
        "ingest",
        _cmd_ingest,
        "add LiCSAR GeoTIFF frames, image folders or Hephaestus data to a workspace",
        """
  insarexplore ingest ws/ /data/licsar/079D_07694_131313 --patch-size 224
  insarexplore ingest ws/ /data/renderings/ --size 224          # one sub-folder per class
  insarexplore ingest ws/ annotations.tar.gz --images /data/hephaestus/
""",
        description=(
            "Read interferograms into the workspace's data store (created if needed; appended\n"
            "to otherwise). The format is detected from PATH unless --format is given. Bad files\n"
            "are skipped and reported (use --strict to stop at the first one)."
        ),
    )
    p.add_argument("workspace", help="workspace folder (created if missing)")
    p.add_argument("path", help="frame folder, image folder, or Hephaestus annotations")
    p.add_argument("--format", choices=["auto", "licsar", "images", "hephaestus"], default="auto")
    p.add_argument("--strict", action="store_true", help="fail on the first bad file")
    p.add_argument("--workers", type=_positive_int, default=None, help="reader threads")
    g = p.add_argument_group("LiCSAR GeoTIFF frames")
    g.add_argument("--patch-size", type=_positive_int, default=None, help="cut frames into N px")
    g.add_argument("--stride", type=_positive_int, default=None, help="patch step (default N)")
    g.add_argument("--min-valid", type=_fraction, default=0.0, help="drop emptier patches")
    g = p.add_argument_group("image folders and Hephaestus")
    g.add_argument("--size", type=_positive_int, default=None, help="common image size in px")
    g.add_argument(
        "--fit",
        choices=["auto", "crop", "resize", "error"],
        default="auto",
        help="how images of other sizes reach --size",
    )
    g.add_argument(
        "--labels",
        choices=["auto", "folders", "none"],
        default="auto",
        help="class labels from sub-folder names",
    )
    g.add_argument("--recover-phase", action="store_true", help="recover phase from the palette")
    g.add_argument("--palette", default=None, help="palette of the renderings (cyclic, rainbow)")
    g.add_argument("--images", default=None, help="Hephaestus image root")


# -- embed ------------------------------------------------------------------------------------
def _cmd_embed(args: argparse.Namespace) -> int:
    ws = _open(args.workspace, need_data=True)
    version = args.model or ws.current_model
    if not version:
        raise ValueError(f"{ws.path}: no model yet (run `insarexplore pretrain {args.workspace}`)")
    if args.scheduler or args.dask_workers:
        from contextlib import ExitStack

        from distributed import Client, LocalCluster

        from insarexplore.embed import embed_with_dask

        with ExitStack() as stack:
            if args.scheduler:
                client = stack.enter_context(Client(args.scheduler))
            else:
                cluster = stack.enter_context(
                    LocalCluster(
                        n_workers=args.dask_workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                    )
                )
                client = stack.enter_context(Client(cluster))
            _say(f"embedding on the dask cluster {client.scheduler.address} ...")
            ids, vectors = embed_with_dask(
                ws.data_path, ws.model_dir(version), client, batch_size=args.batch_size
            )
        ws.save_embeddings(version, ids, vectors)
        done = len(ids)
    else:
        from insarexplore.embed import embed_workspace

        done = embed_workspace(ws, version, args.device, only_missing=not args.all,
                               batch_size=args.batch_size)  # fmt: skip
    _say(f"embedded {done:,} samples with model {version}; next: insarexplore project {ws.path}")
    return 0


def _add_embed(sub: Any) -> None:
    p = _add_command(
        sub,
        "embed",
        _cmd_embed,
        "embed the workspace's samples with a pretrained model (only the new ones)",
        """
  insarexplore embed ws/                                   # current model, missing samples
  insarexplore embed ws/ --device cuda --batch-size 1024
  insarexplore embed ws/ --dask-workers 4                  # local dask.distributed cluster
  insarexplore embed ws/ --scheduler tcp://10.0.0.5:8786   # an existing cluster
""",
        description=(
            "Compute (n_samples, dim) embeddings and store them by sample id. By default only\n"
            "samples without an embedding are embedded, saved block by block: an interrupted\n"
            "run keeps its work. With a dask.distributed cluster one task runs per storage\n"
            "chunk (the workspace must be reachable from every worker)."
        ),
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("--model", default=None, help="model version (default: current)")
    p.add_argument("--all", action="store_true", help="re-embed every sample")
    p.add_argument("--batch-size", type=_positive_int, default=256)
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", default=None, help="dask scheduler address")
    cluster.add_argument("--dask-workers", type=_positive_int, default=None,
                         help="start a local dask cluster with N worker processes")  # fmt: skip
    _add_device(p)


# -- project ----------------------------------------------------------------------------------
def _cmd_project(args: argparse.Namespace) -> int:
    from insarexplore.explore.project import project

    ws = _open(args.workspace)
    kw: dict[str, Any] = {}
    if args.n_neighbors is not None:
        kw["n_neighbors"] = args.n_neighbors
    if args.min_dist is not None:
        kw["min_dist"] = args.min_dist
    if args.max_fit is not None:
        kw["max_fit"] = args.max_fit
    if args.seed is not None:
        kw["random_state"] = args.seed
    _say(f"projecting embeddings with {args.method} (cached after the first fit) ...")
    ids, xy = project(ws, method=args.method, model_version=args.model, refit=args.refit, **kw)
    _say(f"{len(ids):,} samples projected to 2-D; stored in {ws.artifacts_dir / 'projection'}")
    if args.clusters:
        from insarexplore.explore.cluster import cluster

        table = cluster(ws, model_version=args.model)
        n = int(table["cluster"].max()) + 1 if len(table) else 0
        _say(f"{n} cluster proposals ({int((table['cluster'] < 0).sum()):,} samples unassigned)")
    return 0


def _add_project(sub: Any) -> None:
    p = _add_command(
        sub,
        "project",
        _cmd_project,
        "project embeddings to 2-D (UMAP or PCA), cached in the workspace",
        """
  insarexplore project ws/                       # UMAP with the dashboard's defaults
  insarexplore project ws/ --method pca
  insarexplore project ws/ --refit --clusters
""",
        description=(
            "Fit a 2-D map of the current model's embeddings once and cache it; samples embedded\n"
            "later are placed into the existing map without refitting. The dashboard uses the\n"
            "map made with the default parameters."
        ),
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("--method", choices=["umap", "pca"], default="umap")
    p.add_argument("--model", default=None, help="model version (default: current)")
    p.add_argument("--n-neighbors", type=_positive_int, default=None, help="UMAP n_neighbors")
    p.add_argument("--min-dist", type=float, default=None, help="UMAP min_dist")
    p.add_argument("--max-fit", type=_positive_int, default=None, help="fit on a subsample")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--refit", action="store_true", help="ignore the cached map")
    p.add_argument("--clusters", action="store_true", help="also propose clusters (HDBSCAN)")


# -- serve ------------------------------------------------------------------------------------
def _cmd_serve(args: argparse.Namespace) -> int:
    from insarexplore.app.server import serve
    from insarexplore.demo import _free_port, serve_until_stopped

    ws = _open(args.workspace)
    if args.port == 0:
        args.port = _free_port(args.address)
    _say(f"loading {ws.path} ...")
    server = serve(
        ws,
        address=args.address,
        port=args.port,
        allow_websocket_origin=args.allow_websocket_origin,
        prefix=args.prefix,
        user=args.user,
        show=args.show,
        projection=args.projection,
        start=False,
    )
    serve_until_stopped(server, args.address)
    return 0


def _add_serve(sub: Any) -> None:
    from insarexplore.app.server import build_parser as add_serve_arguments

    p = _add_command(
        sub,
        "serve",
        _cmd_serve,
        "serve the explorer dashboard of a workspace in the browser",
        """
  insarexplore serve demo-workspace                      # http://127.0.0.1:5006/
  insarexplore serve ws/ --port 8080 --user alice --show
  insarexplore serve ws/ --address 0.0.0.0 --allow-websocket-origin myhost:5006
  insarexplore serve ws/ --prefix /user/me/proxy/5006     # behind JupyterHub's proxy
""",
        description=(
            "Serve the dashboard (scatter, map, gallery, labelling, few-shot model) of a\n"
            "workspace. Binds to 127.0.0.1 unless --address says otherwise. Every tab writes to\n"
            "the workspace's label store; labels are recorded with --user as author."
        ),
    )
    add_serve_arguments(p)


# -- labels -----------------------------------------------------------------------------------
_LABEL_FORMATS = ("csv", "geojson", "hephaestus")


def _label_format(path: Path, given: str) -> str:
    if given != "auto":
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".geojson":
        return "geojson"
    if suffix == ".json" or path.is_dir() or suffix in (".gz", ".tar", ".tgz") or not suffix:
        return "hephaestus"
    raise ValueError(f"{path}: cannot tell the label format from the suffix; pass --format")


def _label_store(ws: Any, author: str | None = None):  # -> LabelStore
    from insarexplore.explore.labels import LabelStore

    return LabelStore(ws.labels_path, author=author, known_ids=ws.sample_ids())


def _cmd_labels_export(args: argparse.Namespace) -> int:
    from insarexplore.explore import labelio

    ws = _open(args.workspace)
    out = Path(args.output).expanduser()
    fmt = _label_format(out, args.format)
    with _label_store(ws) as store:
        if fmt == "csv":
            n = labelio.export_csv(store, out, ws)
        elif fmt == "geojson":
            n = labelio.export_geojson(store, out, ws, include_unlabelled=args.all)
        else:
            n = labelio.export_hephaestus(store, out, ws)
    _say(f"wrote {n:,} labelled samples to {out} ({fmt})")
    return 0


def _cmd_labels_import(args: argparse.Namespace) -> int:
    from insarexplore.explore import labelio

    ws = _open(args.workspace)
    src = Path(args.file).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or folder")
    fmt = _label_format(src, args.format)
    known = ws.sample_ids()
    with _label_store(ws, author=args.author) as store:
        if fmt == "csv":
            n = labelio.import_csv(store, src, known_ids=known)
        elif fmt == "geojson":
            n = labelio.import_geojson(store, src, known_ids=known)
        else:
            n = labelio.import_hephaestus(store, src, ws, known_ids=known)
        counts = store.counts()
    summary = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
    _say(f"imported {n:,} labels from {src} ({fmt}); now: {summary}")
    return 0


def _cmd_labels_counts(args: argparse.Namespace) -> int:
    ws = _open(args.workspace)
    if not ws.labels_path.exists():
        _say(f"{ws.path}: no labels yet")
        return 0
    with _label_store(ws) as store:
        counts = store.counts()
    for label, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"{count:>9,}  {label}")
    return 0


def _add_labels(sub: Any) -> None:
    p = _add_command(
        sub,
        "labels",
        lambda args: p.print_help(sys.stderr) or EXIT_USAGE,
        "export, import or count the labels of a workspace",
        """
  insarexplore labels export ws/ labels.csv
  insarexplore labels export ws/ labels.geojson         # footprints with labels, opens in QGIS
  insarexplore labels import ws/ colleague.csv --author bob
  insarexplore labels counts ws/
""",
        description=(
            "Labels live in the workspace's labels.sqlite, an append-only event log. Export\n"
            "writes the current labels; import adds events with origin 'import' (labels for\n"
            "sample ids the workspace does not hold are refused, with the list of ids)."
        ),
    )
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    fmt_help = "csv, geojson or hephaestus (default: from the file suffix)"
    e = _add_command(
        actions,
        "export",
        _cmd_labels_export,
        "write the current labels to CSV, GeoJSON or Hephaestus-style JSON",
        """
  insarexplore labels export ws/ labels.csv
  insarexplore labels export ws/ labels.geojson --all
  insarexplore labels export ws/ annotations/ --format hephaestus   # one JSON per sample
""",
    )
    e.set_defaults(command="labels export")
    e.add_argument("workspace", help="workspace folder")
    e.add_argument("output", help="output file (.csv, .geojson, .json) or folder")
    e.add_argument("--format", choices=["auto", *_LABEL_FORMATS], default="auto", help=fmt_help)
    e.add_argument("--all", action="store_true", help="GeoJSON: include unlabelled samples")
    i = _add_command(
        actions,
        "import",
        _cmd_labels_import,
        "add labels from CSV (sample,label), GeoJSON or Hephaestus JSON",
        """
  insarexplore labels import ws/ labels.csv
  insarexplore labels import ws/ annotations.tar.gz --format hephaestus
""",
    )
    i.set_defaults(command="labels import")
    i.add_argument("workspace", help="workspace folder")
    i.add_argument("file", help="CSV, GeoJSON, Hephaestus JSON file, folder or .tar.gz")
    i.add_argument("--format", choices=["auto", *_LABEL_FORMATS], default="auto", help=fmt_help)
    i.add_argument("--author", default=None, help="recorded author (default: OS user)")
    c = _add_command(
        actions,
        "counts",
        _cmd_labels_counts,
        "how many samples carry each label",
        "  insarexplore labels counts ws/\n",
    )
    c.set_defaults(command="labels counts")
    c.add_argument("workspace", help="workspace folder")


# -- suggest ----------------------------------------------------------------------------------
_STRATEGIES = ("entropy", "margin", "least_confidence", "diversity", "geo_diversity")


def _cmd_suggest(args: argparse.Namespace) -> int:
    from insarexplore.explore.active import suggest_workspace

    ws = _open(args.workspace)
    picks = suggest_workspace(
        ws, args.n, args.strategy, method=args.method, model_version=args.model, seed=args.seed
    )
    rows = [
        {"rank": r, "sample": s.sample, "score": s.score, "reason": s.reason}
        for r, s in enumerate(picks, 1)
    ]
    if args.output:
        import csv

        out = Path(args.output).expanduser()
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["rank", "sample", "score", "reason"])
            writer.writeheader()
            writer.writerows(rows)
        _say(f"wrote {len(rows)} suggestions to {out}")
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not args.output:
        width = max([len(str(r["sample"])) for r in rows] + [6])
        print(f"{'rank':>4}  {'sample':<{width}}  {'score':>8}  reason")
        for r in rows:
            print(f"{r['rank']:>4}  {r['sample']:<{width}}  {r['score']:>8.4f}  {r['reason']}")
    return 0


def _add_suggest(sub: Any) -> None:
    p = _add_command(
        sub,
        "suggest",
        _cmd_suggest,
        "propose the samples to label next (active learning)",
        """
  insarexplore suggest ws/ -n 20                       # most uncertain under the few-shot model
  insarexplore suggest ws/ --strategy diversity        # works before any label exists
  insarexplore suggest ws/ --strategy geo_diversity -o next.csv
""",
        description=(
            "Rank unlabelled samples by how much labelling them should help. Uncertainty\n"
            "strategies (entropy, margin, least_confidence) fit a few-shot classifier on the\n"
            "current labels (at least 2 classes) when its stored predictions are out of date;\n"
            "diversity needs no labels; geo_diversity avoids overlapping footprints."
        ),
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("-n", type=_positive_int, default=20, help="how many (default 20)")
    p.add_argument("--strategy", choices=_STRATEGIES, default="entropy")
    p.add_argument(
        "--method", choices=["linear", "prototype", "knn"], default="linear", help="classifier"
    )
    p.add_argument("--model", default=None, help="model version (default: current)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default=None, help="also write a CSV")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


# -- the parser and main --------------------------------------------------------------------
_COMMANDS: list[Callable[[Any], None]] = [
    _add_demo,
    _add_synth,
    _add_ingest,
    _add_pretrain,
    _add_embed,
    _add_project,
    _add_serve,
    _add_labels,
    _add_suggest,
    _add_info,
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (every sub-command with its help and examples)."""
    from insarexplore import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Explore archives of Sentinel-1 interferograms: synthesise or ingest them, pretrain\n"
            "a self-supervised encoder, embed, project, and label them in a dashboard."
        ),
        epilog=(
            "start here:\n"
            "  insarexplore demo                 # synthetic workspace -> model -> dashboard\n"
            "  insarexplore COMMAND --help       # options and examples of one command"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    from insarexplore.errors import InSARError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    debug = bool(getattr(args, "debug", False) or os.environ.get("INSAREXPLORE_DEBUG"))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        _say(
            f"\n{PROG} {args.command}: interrupted. What was finished is saved; "
            "run the same command again to resume."
        )
        return EXIT_INTERRUPTED
    except (InSARError, *_HANDLED) as exc:
        if debug:
            raise
        _say(f"{PROG} {args.command}: error: {exc}")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
