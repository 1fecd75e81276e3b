"""Commands that put interferograms into a workspace: ``synth`` and ``ingest``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from insarexplore.cli._common import (
    add_command,
    add_device,
    fraction,
    positive_float,
    positive_int,
    say,
)

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
    say(f"synthesised {args.n:,} interferograms ({args.size} px) into {ws.path} (now {total:,})")
    if args.png_dir:
        import numpy as np

        from insarexplore.data.synthetic import render_dataset

        ds = ws.open_data()
        new = ~np.isin(ds["sample"].values.astype(str), before.astype(str))
        paths = render_dataset(
            ds.isel(sample=np.flatnonzero(new)), args.png_dir, palette=args.palette
        )
        say(f"rendered {len(paths):,} PNGs ({args.palette} palette) under {args.png_dir}")
    return 0


def add_synth(sub: Any) -> None:
    p = add_command(
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
    p.add_argument("-n", type=positive_int, default=3000, help="number of samples")
    p.add_argument("--size", type=positive_int, default=64, help="pixels per side")
    p.add_argument("--classes", type=_classes, default=_CLASSES, help="comma-separated subset")
    p.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    p.add_argument("--pixel-spacing", type=positive_float, default=100.0, help="metres")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=positive_int, default=1024, help="samples per chunk")
    p.add_argument("--png-dir", default=None, help="also render PNGs here (class folders)")
    p.add_argument("--palette", choices=["cyclic", "rainbow", "mixed"], default="cyclic")
    add_device(p)


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
    say(f"reading {source} as {fmt} ...")
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
    say(
        f"added {added:,} samples to {ws.path} (now {total:,})"
        + (f"; skipped {len(skipped)} file(s), first: {skipped[0]}" if skipped else "")
    )
    return 0


def add_ingest(sub: Any) -> None:
    p = add_command(
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
    p.add_argument("--workers", type=positive_int, default=None, help="reader threads")
    g = p.add_argument_group("LiCSAR GeoTIFF frames")
    g.add_argument("--patch-size", type=positive_int, default=None, help="cut frames into N px")
    g.add_argument("--stride", type=positive_int, default=None, help="patch step (default N)")
    g.add_argument("--min-valid", type=fraction, default=0.0, help="drop emptier patches")
    g = p.add_argument_group("image folders and Hephaestus")
    g.add_argument("--size", type=positive_int, default=None, help="common image size in px")
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
