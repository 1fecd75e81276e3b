"""Reading benchmarks: PNG folder -> Zarr ingestion speed and peak memory, Hephaestus
annotations, and a LiCSAR frame cut into patches.

Ingestion runs in a fresh subprocess per configuration so that its peak resident memory
(``ru_maxrss`` of the process plus its pool workers) is its own; the figure above the
post-import baseline shows that memory stays bounded as the folder grows.

    python benchmarks/bench_read.py            # 10,000 PNGs (128 x 128)
    python benchmarks/bench_read.py --quick    # 1,000 PNGs
    python benchmarks/bench_read.py --licsar-memory   # only: CLI ingest of 1 vs 20 LiCSAR pairs
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AREA = "read"
SIZE = 128
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"


def make_pngs(folder: Path, n: int, size: int = SIZE, seed: int = 0) -> Path:
    """Write ``n`` seeded PNG renderings (cyclic palette) in two class folders, LiCSAR names."""
    from PIL import Image

    from insarexplore.data.palettes import render_phase

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        cx, cy, amp, ramp = (
            rng.uniform(0.2, 0.8),
            rng.uniform(0.2, 0.8),
            rng.uniform(5, 40),
            rng.uniform(-5, 5),
        )
        unw = amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.03) + ramp * xx
        unw += rng.normal(0, 0.4, unw.shape)
        rgb = render_phase(np.mod(unw + np.pi, 2 * np.pi) - np.pi)
        name = f"079D_07694_131313_{20150101 + i % 28:08d}_20150301_{i // 4}_{i % 4}.png"
        out = folder / str(i % 2) / name
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(out, compress_level=1)
    return folder


def _child(folder: str, store: str, executor: str, workers: int, chunk: int) -> dict:
    """Runs in a subprocess: ingest, then report speed and peak memory as JSON."""
    import resource

    # import cost and memory go to the baseline, not the run (xarray pulls in dask lazily)
    import dask.array  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import insarexplore.data.io.store  # noqa: F401
    from insarexplore.data.io.ingest import ingest_image_folder

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = ingest_image_folder(
        folder,
        store,
        mode="w",
        executor=executor,
        workers=workers,
        chunk_size=chunk,
        progress=False,
    )
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "images_per_s": report.images_per_s, "seconds": report.seconds, "n": report.n_written,
        "baseline_mib": base / 1024, "peak_mib": own / 1024, "worker_peak_mib": kids / 1024,
    }  # fmt: skip


def _ingest(folder: Path, store: Path, executor: str, workers: int, chunk: int) -> dict:
    cmd = [sys.executable, __file__, "--child", str(folder), str(store), executor, str(workers),
           str(chunk)]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _licsar_row(tmp: Path, quick: bool) -> dict:
    import rasterio
    from rasterio.transform import from_origin

    from insarexplore.data.io.geotiff import read_licsar

    n = 1000 if quick else 3000
    pair = tmp / "079D_07694_131313" / "interferograms" / "20200101_20200113"
    pair.mkdir(parents=True)
    rng = np.random.default_rng(0)
    pha = rng.uniform(-np.pi, np.pi, (n, n)).astype(np.float32)
    profile = dict(driver="GTiff", height=n, width=n, count=1, dtype="float32", crs="EPSG:4326",
                   transform=from_origin(38.0, 14.5, 0.001, 0.001), nodata=-9999.0)  # fmt: skip
    for name, arr in (("diff_pha", pha), ("unw", pha * 3)):
        with rasterio.open(pair / f"20200101_20200113.geo.{name}.tif", "w", **profile) as dst:
            dst.write(arr, 1)
    t0 = time.perf_counter()
    ds = read_licsar(pair, patch_size=224, progress=False)
    dt = time.perf_counter() - t0
    return {"area": AREA, "metric": f"LiCSAR {n}x{n} frame -> 224 px patches", "value": dt,
            "unit": "s", "note": f"{ds.sizes['sample']} patches, phase + unw"}  # fmt: skip


def _cli_child(ws: str, folder: str) -> dict:
    """Runs in a subprocess: ``insarexplore ingest WS FOLDER`` (as a user would), peak RSS."""
    import resource

    import dask.array  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    from insarexplore import cli

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rc = cli.main(["ingest", ws, folder, "--patch-size", "224"])
    dt = time.perf_counter() - t0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"rc": rc, "seconds": dt, "baseline_mib": base / 1024, "peak_mib": own / 1024}


def _licsar_frames(root: Path, n: int, size: int) -> Path:
    """``n`` interferograms of one LiCSAR frame, ``size`` px square, phase + unwrapped."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(1)
    pha = rng.uniform(-np.pi, np.pi, (size, size)).astype(np.float32)
    profile = dict(driver="GTiff", height=size, width=size, count=1, dtype="float32",
                   crs="EPSG:4326", transform=from_origin(38.0, 14.5, 0.001, 0.001),
                   nodata=-9999.0)  # fmt: skip
    for i in range(n):
        d1 = np.datetime64("2020-01-01") + np.timedelta64(12 * i, "D")
        d2 = d1 + np.timedelta64(12, "D")
        pair = f"{str(d1).replace('-', '')}_{str(d2).replace('-', '')}"
        folder = root / "079D_07694_131313" / "interferograms" / pair
        folder.mkdir(parents=True)
        for name, arr in (("diff_pha", pha), ("unw", pha * 3)):
            with rasterio.open(folder / f"{pair}.geo.{name}.tif", "w", **profile) as dst:
                dst.write(arr, 1)
    return root


def licsar_cli_memory(tmp: Path, quick: bool) -> list[dict]:
    """Issue 13: the command line streams LiCSAR frames: peak memory is flat from 1 to 20."""
    size = 1000 if quick else 2000
    counts = (1, 4) if quick else (1, 20, 40)
    rows, peaks = [], {}
    for n in counts:
        src = _licsar_frames(tmp / f"licsar-{n}", n, size)
        cmd = [sys.executable, __file__, "--cli-child", str(tmp / f"ws-licsar-{n}"), str(src)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"CLI ingest of {n} pairs failed: {out.stderr[-2000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        peaks[n] = r["peak_mib"] - r["baseline_mib"]
        rows.append({"area": AREA, "metric": f"CLI ingest {n} LiCSAR interferogram(s), peak RSS",
                     "value": peaks[n], "unit": "MiB",
                     "note": f"{size}x{size} px, 224 px patches, {r['seconds']:.1f} s, "
                             f"above {r['baseline_mib']:.0f} MiB after imports"})  # fmt: skip
    for lo, hi in zip(counts, counts[1:]):
        rows.append({"area": AREA, "metric": f"CLI ingest peak ratio {hi} / {lo} interferograms",
                     "value": peaks[hi] / max(peaks[lo], 1e-9), "unit": "x",
                     "note": "flat is about 1 (whole-archive reading grows with the count)"})  # fmt: skip
    return rows


def run(quick: bool = False) -> list[dict]:
    n = 1_000 if quick else 10_000
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench_read_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_pngs(tmp / "pngs", n)
        gen = time.perf_counter() - t0
        configs = [("thread", 2), ("process", 2)]
        if not quick:
            make_pngs(tmp / "small", 1_000, seed=1)
        for executor, workers in configs:
            r = _ingest(tmp / "pngs", tmp / f"{executor}.zarr", executor, workers, 512)
            note = f"{n} PNGs {SIZE}x{SIZE}, {workers} {executor} workers, chunk 512"
            rows += [
                {"area": AREA, "metric": f"ingest PNG -> Zarr ({executor} pool)",
                 "value": r["images_per_s"], "unit": "images/s", "note": note},
                {"area": AREA, "metric": f"ingest peak RSS above imports ({executor} pool)",
                 "value": r["peak_mib"] - r["baseline_mib"], "unit": "MiB",
                 "note": f"peak {r['peak_mib']:.0f} MiB, after imports {r['baseline_mib']:.0f} MiB, "
                         f"largest worker {r['worker_peak_mib']:.0f} MiB"},
            ]  # fmt: skip
        if not quick:  # bounded memory: 10x fewer files, about the same peak
            r = _ingest(tmp / "small", tmp / "small.zarr", "thread", 2, 512)
            rows.append({"area": AREA, "metric": "ingest peak RSS above imports, 1,000 files",
                         "value": r["peak_mib"] - r["baseline_mib"], "unit": "MiB",
                         "note": "same settings as the 10,000-file thread run"})  # fmt: skip
        rows.append({"area": AREA, "metric": "generate PNG renderings (setup)", "value": n / gen,
                     "unit": "images/s", "note": "render_phase + PIL save"})  # fmt: skip
        rows.append(_licsar_row(tmp, quick))
        rows += licsar_cli_memory(tmp, quick)
    archive = SHARED / "data" / "hephaestus" / "annotations.tar.gz"
    if archive.exists():
        from insarexplore.data.io.hephaestus import read_hephaestus_annotations

        t0 = time.perf_counter()
        df = read_hephaestus_annotations(archive)
        rows.append({"area": AREA, "metric": "Hephaestus annotations (tar.gz) -> table",
                     "value": time.perf_counter() - t0, "unit": "s",
                     "note": f"{len(df)} JSON files, read from the archive in memory"})  # fmt: skip
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--cli-child":
        print(json.dumps(_cli_child(sys.argv[2], sys.argv[3])))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--licsar-memory":
        with tempfile.TemporaryDirectory(prefix="bench_read_") as tmp:
            for r in licsar_cli_memory(Path(tmp), "--quick" in sys.argv):
                print(f"{r['metric']:<50}  {r['value']:>8.3g}  {r['unit']:<4}  {r['note']}")
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        folder, store, executor, workers, chunk = sys.argv[2:7]
        print(json.dumps(_child(folder, store, executor, int(workers), int(chunk))))
        sys.exit(0)
    quick = "--quick" in sys.argv
    results = run(quick=quick)
    width = max(len(r["metric"]) for r in results)
    print(f"{'metric':<{width}}  {'value':>10}  unit       note")
    for r in results:
        print(f"{r['metric']:<{width}}  {r['value']:>10.3g}  {r['unit']:<9}  {r['note']}")
