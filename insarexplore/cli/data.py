"""Commands that put interferograms into a workspace: ``synth`` and ``ingest``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from insarexplore.cli._common import (
    PROG,
    add_command,
    add_device,
    fraction,
    image_size,
    positive_float,
    positive_int,
    say,
    seed_int,
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

        ds = ws.open_data(lazy=True)
        new = np.flatnonzero(~np.isin(ds["sample"].values.astype(str), before.astype(str)))
        n = _render_pngs(
            ds.isel(sample=new), args.png_dir, args.palette, args.look, args.seed, args.flat
        )
        look = " as public sets ship them" if args.look == "real" else ""
        say(f"rendered {n:,} images ({args.palette} palette{look}) under {args.png_dir}")
    return 0


def _render_pngs(ds: Any, out: str, palette: str, look: str, seed: int, flat: bool) -> int:
    """Render a synthesised Dataset into class folders (``flat``: one folder): ``plain`` (one
    PNG per sample, the workspace's size) or ``real`` (no-data wedges in 30 %, RGBA 464 x 373
    scenes in 10 %, the rainbow palette shaded by amplitude), in blocks so memory stays
    bounded."""
    from insarexplore.data.synthetic import render_dataset
    from insarexplore.data.synthetic.styles import write_styled_folder

    if look == "plain" and palette != "grey":
        layout = "flat" if flat else "class_folders"
        return len(render_dataset(ds, out, palette=palette, layout=layout))
    styles = ("cyclic", "rainbow") if palette == "mixed" else (palette,)
    n, block = ds.sizes["sample"], 1024
    starts = range(0, n, block)
    if n > block:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="rendering", unit="block")
    real = look == "real"
    for k, start in enumerate(starts):
        part = ds.isel(sample=slice(start, start + block)).load()
        write_styled_folder(
            part,
            out,
            styles=styles,
            labels=None if flat else [str(v) or "unlabelled" for v in part["label"].values],
            wedge_p=0.3 if real else 0.0,
            rgba_p=0.1 if real else 0.0,
            seed=seed * 100_003 + k,
        )
    return n


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
  insarexplore synth ws/ -n 600 --size 227 --png-dir pool/ --palette grey --look real --flat
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

    p.add_argument("--size", type=image_size, default=64, help="pixels per side")
    p.add_argument("--classes", type=_classes, default=_CLASSES, help="comma-separated subset")
    p.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    p.add_argument("--pixel-spacing", type=positive_float, default=100.0, help="metres")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--chunk-size", type=positive_int, default=1024, help="samples per chunk")
    p.add_argument(
        "--png-dir", default=None, help="also render images here (class folders; --flat: one)"
    )
    p.add_argument(
        "--palette",
        choices=["cyclic", "rainbow", "grey", "mixed"],
        default="cyclic",
        help="palette of the renderings: cyclic (red-yellow-white-blue), rainbow (hue cycle), "
        "grey (grey level = wrapped phase), mixed (cyclic or rainbow per sample)",
    )
    p.add_argument(
        "--flat",
        action="store_true",
        help="renderings in one folder, no class sub-folders (an unlabelled pool)",
    )
    p.add_argument(
        "--look",
        choices=["plain", "real"],
        default="plain",
        help="plain: one clean PNG per sample; real: as public sets ship renderings (black "
        "no-data wedges in 30 %%, 464 x 373 RGBA scenes in 10 %%, rainbow shaded by amplitude)",
    )
    add_device(p)


class _SkipSummaries(logging.Filter):
    """Drops the readers' one-line summary of skipped files (the ingest lists them itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "skip_summary", False)


def _add(args: argparse.Namespace, ws: Any, source: Path) -> Any:
    from insarexplore.intake import add_to_workspace

    return add_to_workspace(
        ws,
        source,
        format=args.format,
        size=args.size,
        fit=args.fit,
        labels={"auto": "auto", "folders": True, "none": False}[args.labels],
        recover_phase={"auto": None, "on": True, "off": False}[args.phase],
        palette=args.palette,
        patch_size=args.patch_size,
        stride=args.stride,
        min_valid=args.min_valid,
        images=args.images,
        id_prefix=args.id_prefix,
        strict=args.strict,
        workers=args.workers,
    )


def _cmd_ingest(args: argparse.Namespace) -> int:
    from insarexplore.workspace import Workspace

    source = Path(args.path).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    ws = Workspace.create(args.workspace, exist_ok=True)
    had = len(ws.source_labels())
    readers = logging.getLogger("insarexplore.data.io")
    listed_below = _SkipSummaries()  # the readers' summary of skipped files: listed below
    readers.addFilter(listed_below)
    try:
        report = _add(args, ws, source)
    finally:
        readers.removeFilter(listed_below)
    for note in report.notes:
        say(note)
    skipped = report.skipped
    say(
        f"added {report.added:,} samples to {ws.path} (now {report.total:,})"
        + (
            f"; skipped {len(skipped)} file(s), first: {skipped[0]['file']}: "
            f"{skipped[0]['problem']}"
            if skipped
            else ""
        )
    )
    for entry in skipped[1 : None if args.list_skipped else 10]:
        say(f"  skipped {entry['file']}: {entry['problem']}")
    if len(skipped) > 10 and not args.list_skipped:
        say(f"  ... and {len(skipped) - 10:,} more (--list-skipped shows them all)")
    if report.added and len(ws.source_labels()) > had:
        from insarexplore.cli.explore import summary, unadopted_source_labels

        waiting = unadopted_source_labels(ws)
        if waiting:
            say(
                f"the data came with labels ({summary(waiting)}): kept with it and shown as "
                "the source's; "
                f"`{PROG} labels import {ws.path} --from-data` makes them labels that "
                "suggestions and the few-shot model use"
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
            "to otherwise). The format is detected from what most files in PATH are unless\n"
            "--format is given. Renderings (grey, cyclic or hue-cycle palettes, mixed in one\n"
            "folder) are read back to wrapped phase, each in its own palette. Into an existing\n"
            "store, new data takes the store's size (printed). Every format is streamed with\n"
            "bounded memory; an interrupted ingest adds nothing. Bad files are skipped and\n"
            "reported (use --strict to stop at the first one)."
        ),
    )
    p.add_argument("workspace", help="workspace folder (created if missing)")
    p.add_argument("path", help="frame folder, image folder, or Hephaestus annotations")
    p.add_argument("--format", choices=["auto", "licsar", "images", "hephaestus"], default="auto")
    p.add_argument("--strict", action="store_true", help="fail on the first bad file")
    p.add_argument("--workers", type=positive_int, default=None, help="reader threads")
    p.add_argument(
        "--list-skipped", action="store_true", help="name every skipped file (default: 10)"
    )
    g = p.add_argument_group("LiCSAR GeoTIFF frames")
    g.add_argument("--patch-size", type=image_size, default=None, help="cut frames into N px")
    g.add_argument("--stride", type=positive_int, default=None, help="patch step (default N)")
    g.add_argument("--min-valid", type=fraction, default=0.0, help="drop emptier patches")
    g = p.add_argument_group("image folders and Hephaestus")
    g.add_argument("--size", type=image_size, default=None, help="common image size in px")
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
    g.add_argument(
        "--phase",
        choices=["auto", "on", "off"],
        default="auto",
        help="image folders: read renderings back to wrapped phase (auto: yes for a new store, "
        "as the store holds for an existing one)",
    )
    g.add_argument(
        "--recover-phase",
        dest="phase",
        action="store_const",
        const="on",
        help="same as --phase on",
    )
    g.add_argument(
        "--palette",
        choices=["auto", "grey", "cyclic", "rainbow"],
        default=None,
        help="palette of the renderings (default auto: detected per image)",
    )
    g.add_argument("--images", default=None, help="Hephaestus image root")
    g.add_argument(
        "--id-prefix",
        default="",
        help="start every sample id with this (two folders with the same file names)",
    )
