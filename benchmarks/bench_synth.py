"""Synthetic interferogram generation speed (64, 128, 224 px) and streaming memory.

Rates are steady-state interferograms per second (wall clock), plus the rate per CPU-second of
the single process, which is what one uncontended core delivers: in one process (torch on one thread) and in
two worker processes (``workers=2``, timed from the first finished block so that process
start-up is left out; start-up is reported separately). Peak memory of ``generate_to_zarr`` is
measured in a fresh process for two set sizes to show that it does not grow with the count.

    python benchmarks/bench_synth.py [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

__all__ = ["run"]

AREA = "synth"


def _rate(n: int, size: int, workers: int) -> tuple[float, float, float]:
    """(steady-state samples/s, seconds until the first block, samples per CPU-second)."""
    from insarexplore.data.synthetic import SyntheticConfig, iter_blocks

    cfg = SyntheticConfig(size=size)
    t0 = time.perf_counter()
    c0 = time.process_time()
    first = None
    done = 0
    for ds in iter_blocks(n, seed=1, config=cfg, workers=workers):
        if first is None:
            first = time.perf_counter()
            first_n = ds.sizes["sample"]
        done += ds.sizes["sample"]
    end = time.perf_counter()
    cpu = time.process_time() - c0  # this process only: meaningful for workers=1
    return (done - first_n) / (end - first), first - t0, done / cpu


_MEMORY_SCRIPT = """
import json, resource, sys, tempfile, time
from pathlib import Path
from insarexplore.data.synthetic import generate_to_zarr
n, size = int(sys.argv[1]), int(sys.argv[2])
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    generate_to_zarr(Path(tmp) / "s.zarr", n, size=size, chunk_size=1024, progress=False)
    dt = time.perf_counter() - t0
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rate": n / dt}))
"""


def _memory(n: int, size: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(n), str(size)], check=True,
                         capture_output=True, text=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows: generation rates per size and worker count, streaming peak memory."""
    from insarexplore.data.synthetic import generate

    generate(8, size=32)  # warm imports and caches
    rows: list[dict] = []
    sizes = {64: 1024, 128: 768, 224: 384} if quick else {64: 4096, 128: 2048, 224: 1024}
    for size, n in sizes.items():
        for workers in (1, 2):
            rate, startup, per_cpu = _rate(n, size, workers)
            rows.append({"area": AREA, "metric": f"generate {size}px, {workers} process(es)",
                         "value": round(rate, 1), "unit": "ifg/s",
                         "note": f"{n} samples, medium, 6 classes; first block after "
                                 f"{startup:.1f} s"})  # fmt: skip
            if workers == 1:  # wall time is unreliable on a shared machine; CPU time is less so
                rows.append({"area": AREA, "metric": f"generate {size}px per CPU-second",
                             "value": round(per_cpu, 1), "unit": "ifg/s",
                             "note": "one process, one torch thread: the rate one free core "
                                     "gives"})  # fmt: skip
    counts = (2048, 6144) if quick else (4096, 20480)
    for n in counts:
        m = _memory(n, 128)
        rows.append({"area": AREA, "metric": f"generate_to_zarr peak RSS, {n} x 128px",
                     "value": round(m["peak_mb"], 0), "unit": "MB",
                     "note": f"chunk 1024, 1 process, {m['rate']:.0f} ifg/s end to end"})  # fmt: skip
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    result = run(quick=quick)
    width = max(len(r["metric"]) for r in result)
    for r in result:
        print(f"{r['metric']:<{width}}  {r['value']:>10} {r['unit']:<6} {r['note']}")
