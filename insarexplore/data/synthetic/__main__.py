"""Command line: ``python -m insarexplore.data.synthetic OUT.zarr -n 600 --size 64``.

Writes a synthetic set to a Zarr (or NetCDF) store, optionally renders PNGs into class folders
and a contact sheet. Examples::

    python -m insarexplore.data.synthetic syn.zarr -n 600 --size 64 --render pngs/
    python -m insarexplore.data.synthetic big.zarr -n 200000 --size 128 --workers 2
    python -m insarexplore.data.synthetic hard.nc -n 300 --difficulty hard --classes mogi,none
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from insarexplore.data.synthetic.parameters import CLASSES, DIFFICULTIES

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, generate, save, render; return the exit status."""
    ap = argparse.ArgumentParser(
        prog="python -m insarexplore.data.synthetic",
        description="Generate labelled synthetic Sentinel-1 interferograms.",
        epilog=__doc__.split("Examples::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("out", type=Path, help="output store (.zarr streams in chunks, or .nc)")
    ap.add_argument("-n", "--count", type=int, default=600, help="number of samples (600)")
    ap.add_argument("--size", type=int, default=64, help="pixels per side (64)")
    ap.add_argument("--classes", default=",".join(CLASSES), help="comma-separated class mix")
    ap.add_argument("--difficulty", default="medium", choices=tuple(DIFFICULTIES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pixel-spacing", type=float, default=100.0, help="metres per pixel")
    ap.add_argument("--device", default=None, help="torch device for the pixel work (cpu)")
    ap.add_argument("--workers", type=int, default=None, help="CPU threads (one per core)")
    ap.add_argument("--chunk-size", type=int, default=1024, help="samples per Zarr chunk")
    ap.add_argument("--render", type=Path, default=None, help="also write PNGs here")
    ap.add_argument("--palette", default="mixed", choices=("cyclic", "rainbow", "mixed"))
    args = ap.parse_args(argv)

    from insarexplore.data.synthetic.generator import generate, generate_to_zarr

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    kw = dict(size=args.size, classes=classes, difficulty=args.difficulty,
              pixel_spacing_m=args.pixel_spacing)  # fmt: skip
    t0 = time.perf_counter()
    try:
        if args.out.suffix == ".zarr":
            generate_to_zarr(args.out, args.count, chunk_size=args.chunk_size, seed=args.seed,
                             device=args.device, workers=args.workers, **kw)  # fmt: skip
            ds = None
        else:
            from insarexplore.data.io.store import save_dataset

            ds = generate(args.count, seed=args.seed, device=args.device, workers=args.workers,
                          progress=True, **kw)  # fmt: skip
            save_dataset(ds, args.out)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t0
    print(f"wrote {args.count} interferograms to {args.out} in {dt:.1f} s")
    if args.render is not None:
        from insarexplore.data.io.store import open_dataset
        from insarexplore.data.synthetic.render import contact_sheet, render_dataset

        ds = ds if ds is not None else open_dataset(args.out, lazy=False)
        paths = render_dataset(ds, args.render, palette=args.palette)
        sheet = args.render.parent / f"{args.render.name}_contact_sheet.png"  # not a sample
        contact_sheet(ds, sheet, palette=args.palette)
        print(f"rendered {len(paths)} PNGs under {args.render} (overview: {sheet})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
