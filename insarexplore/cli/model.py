"""Commands that learn and apply representations: ``pretrain``, ``embed``, ``project``."""

from __future__ import annotations

import argparse
from typing import Any

from insarexplore.cli._common import (
    add_command,
    add_device,
    at_least,
    image_size,
    non_negative_float,
    non_negative_int,
    note_unembedded,
    open_workspace,
    positive_float,
    positive_int,
    say,
    seed_int,
    stretch_gain,
    unit_float,
)
from insarexplore.names import PHASE_INPUTS, RGB_INPUTS


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from insarexplore.pretraining import PretrainConfig, pretrain_workspace

    ws = open_workspace(args.workspace, need_data=True)
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
        physics=args.physics,
        embed_gain=args.embed_gain,
        embed_class_gain=args.embed_class_gain,
        **({"phase_input": args.phase_input} if args.phase_input else {}),
        **({"rgb_input": args.rgb_input} if args.rgb_input else {}),
        **budget,
    )
    from insarexplore.ssl.dist import cleanup_distributed, is_main_process

    ok = False
    try:
        version = pretrain_workspace(ws, config)
        main, ok = is_main_process(), True
    finally:  # under torchrun: every rank leaves its process group before the interpreter goes
        cleanup_distributed(wait=ok)
    if main:  # one line, not one per rank
        say(
            f"model {version} is now the workspace's current model; "
            f"next: insarexplore embed {ws.path}"
        )
    return 0


def add_pretrain(sub: Any) -> None:
    p = add_command(
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
            "it trains data-parallel on every process (Ctrl-C stops every process at the same\n"
            "step). The finished model becomes current."
        ),
    )
    p.add_argument("workspace", help="workspace folder")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float, default=None, help="wall-clock (5)")
    budget.add_argument("--epochs", type=positive_float, default=None)
    budget.add_argument("--steps", type=positive_int, default=None)
    p.add_argument(
        "--arch",
        default="resnet-micro",
        help="resnet-micro (CPU default, 48 px), resnet-tiny (64 px), resnet-small, resnet18 "
        "(GPU, 224 px), resnet34, vit-tiny",
    )
    p.add_argument("--method", choices=["simclr", "moco", "vicreg"], default="simclr")
    p.add_argument("--batch-size", type=at_least(2), default=128, help="images a step (>= 2)")
    p.add_argument("--lr", type=positive_float, default=None, help="default scales with batch")
    p.add_argument(
        "--image-size",
        type=image_size,
        default=None,
        help="size of the training views in px (default: the data's, capped at the arch's)",
    )
    p.add_argument("--kind", choices=["phase", "rgb"], default=None, help="input channels")
    p.add_argument(
        "--phase-input",
        choices=PHASE_INPUTS,
        default=None,
        help="phase data, ResNets: what the first layer sees: fringe-rate phasors (offset-"
        "invariant; the default), the same plus coherence, or raw cos/sin",
    )
    p.add_argument(
        "--rgb-input",
        choices=RGB_INPUTS,
        default=None,
        help="RGB renderings, ResNets: the bands plus hue fringe-rate phasors (invariant to a "
        "shift along a cyclic palette; the default), or the bands alone",
    )
    p.add_argument(
        "--physics",
        type=non_negative_float,
        default=2.0,
        help="weight of the loss on labelled physics-made interferograms (deformation sources "
        "or none, made at the views' size and kind) beside the self-supervised one; 0 turns "
        "it off (default 2)",
    )
    p.add_argument(
        "--embed-gain",
        type=stretch_gain,
        default=10.0,
        help="with the physics bank: the model embeds with its features stretched by this "
        "factor along the bank classifier's direction of deformation against none, so the map, "
        "neighbours and few-label probes see deformation as a main direction (linear, "
        "invertible; scores unchanged); 1: no stretch (default 10)",
    )
    p.add_argument(
        "--embed-class-gain",
        type=stretch_gain,
        default=3.0,
        help="the same along the classifier's other class directions (which source: Mogi, "
        "dyke, ...); 1: no stretch (default 3)",
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument(
        "--workers", type=non_negative_int, default=None, help="DataLoader workers (0: none)"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    p.add_argument("--no-monitor", action="store_true", help="skip the kNN/linear-probe monitor")
    add_device(p)


def _cmd_embed(args: argparse.Namespace) -> int:
    ws = open_workspace(args.workspace, need_data=True)
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
            say(f"embedding on the dask cluster {client.scheduler.address} ...")
            ids, vectors = embed_with_dask(
                ws.data_path, ws.model_dir(version), client, batch_size=args.batch_size
            )
        from insarexplore.ssl.checkpoint import model_physics_head

        head = model_physics_head(ws.model_dir(version))  # as each worker's Embedder reads it
        stretch = head.gains if head is not None else [1.0, 1.0]
        ws.save_embeddings(version, ids, vectors, stretch=stretch)
        done = len(ids)
    else:
        from insarexplore.embed import embed_workspace

        done = embed_workspace(
            ws, version, args.device, only_missing=not args.all, batch_size=args.batch_size
        )
    say(f"embedded {done:,} samples with model {version}; next: insarexplore project {ws.path}")
    return 0


def add_embed(sub: Any) -> None:
    p = add_command(
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
    p.add_argument("--batch-size", type=positive_int, default=256)
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--scheduler", default=None, help="dask scheduler address")
    cluster.add_argument(
        "--dask-workers",
        type=positive_int,
        default=None,
        help="start a local dask cluster with N worker processes",
    )
    add_device(p)


def _cmd_project(args: argparse.Namespace) -> int:
    from insarexplore.explore.projection import project

    ws = open_workspace(args.workspace)
    kw: dict[str, Any] = {}
    if args.n_neighbors is not None:
        kw["n_neighbors"] = args.n_neighbors
    if args.min_dist is not None:
        kw["min_dist"] = args.min_dist
    if args.max_fit is not None:
        kw["max_fit"] = args.max_fit
    if args.seed is not None:
        kw["random_state"] = args.seed
    say(f"projecting embeddings with {args.method} (cached after the first fit) ...")
    note_unembedded(ws, args.model)
    ids, xy = project(ws, method=args.method, model_version=args.model, refit=args.refit, **kw)
    say(f"{len(ids):,} samples projected to 2-D; stored in {ws.artifacts_dir / 'projection'}")
    if args.clusters:
        from insarexplore.explore.clusters import cluster

        # on the map, as the dashboard proposes them (groups a user can lasso), and cached
        table = cluster(ws, model_version=args.model, space=args.method)
        n = int(table["cluster"].max()) + 1 if len(table) else 0
        say(
            f"{n} cluster proposals on the {args.method} map, as the dashboard shows them "
            f"({int((table['cluster'] < 0).sum()):,} samples unassigned)"
        )
    return 0


def add_project(sub: Any) -> None:
    p = add_command(
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
            "map made with the default parameters. UMAP is seeded (the same map every run);\n"
            "numba's compiled code is kept in $NUMBA_CACHE_DIR, else\n"
            "~/.cache/insarexplore/numba ($XDG_CACHE_HOME), so only a machine's first UMAP\n"
            "pays the compilation (about 40 s on 2 cores)."
        ),
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("--method", choices=["umap", "pca"], default="umap")
    p.add_argument("--model", default=None, help="model version (default: current)")
    p.add_argument("--n-neighbors", type=positive_int, default=None, help="UMAP n_neighbors")
    p.add_argument("--min-dist", type=unit_float, default=None, help="UMAP min_dist, 0 to 1")
    p.add_argument(
        "--max-fit", type=at_least(10), default=None, help="fit on a subsample of at most this many"
    )
    p.add_argument("--seed", type=seed_int, default=None, help="random seed (default 0)")
    p.add_argument("--refit", action="store_true", help="ignore the cached map")
    p.add_argument(
        "--clusters",
        action="store_true",
        help="also propose clusters (HDBSCAN) on the map with the default settings, the ones "
        "the dashboard shows",
    )
