"""Embeddings store: peak memory of making a model's whole set of embeddings again.

``embed`` makes every row again when the stored ones record another stretch (or cannot be
read). It writes them block by block to a staged file on disk that replaces the stored set in
one step (``Workspace.replacing_embeddings``); holding them all in memory and saving them at
once (the way before) grows with the archive. Each configuration runs in a fresh subprocess, so
its peak resident memory (``ru_maxrss``) above the post-import baseline is its own. Vectors are
random (the store is measured, not the encoder), 128 wide, in blocks of 8,192 as ``embed``.

    python benchmarks/bench_store.py            # 250,000 and 1,000,000 rows
    python benchmarks/bench_store.py --quick    # 50,000 and 200,000 rows

Target: the staged replacement's memory grows by at most half the vectors' own size
(128 x 4 bytes a row) as rows are added: the vectors are not held, only the ids (text, 32 bytes
a row and a few copies); the in-memory way is shown beside it for scale.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

AREA = "store"
DIM, BLOCK = 128, 8192


def _child(mode: str, n: int, folder: str) -> None:
    """Runs in a subprocess: store ``n`` rows once, then replace them all; print peak MiB."""
    import resource

    import numpy as np

    from insarexplore.workspace import Workspace

    ws = Workspace.create(Path(folder) / "ws")
    version, _ = ws.new_model_dir("bench")
    ids = np.array([f"s{i:07d}" for i in range(n)])
    rng = np.random.default_rng(0)
    ws.save_embeddings(version, ids[:1], rng.normal(size=(1, DIM)), stretch=(1, 1))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "staged":
        with ws.replacing_embeddings(version, ids, stretch=(10, 3)) as put:
            for start in range(0, n, BLOCK):
                put(start, rng.normal(size=(min(BLOCK, n - start), DIM)).astype(np.float32))
    else:  # every block kept in memory, then one save
        blocks = [
            rng.normal(size=(min(BLOCK, n - start), DIM)).astype(np.float32)
            for start in range(0, n, BLOCK)
        ]
        ws.save_embeddings(version, ids, np.concatenate(blocks), stretch=(10, 3))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got = ws.load_embeddings(version)[1].shape
    assert got == (n, DIM), got
    print(json.dumps({"mode": mode, "n": n, "peak_mib": (peak - base) / 1024}))


def measure(mode: str, n: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        cmd = [sys.executable, __file__, "--child", mode, str(n), folder]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


def run(quick: bool = False) -> list[dict]:
    sizes = (50_000, 200_000) if quick else (250_000, 1_000_000)
    rows, peaks = [], {}
    for mode in ("staged", "in-memory"):
        for n in sizes:
            peaks[mode, n] = measure(mode, n)
            rows.append({"area": AREA, "metric": f"replace all embeddings, {mode}, {n:,} rows",
                         "value": round(peaks[mode, n], 1), "unit": "MiB above baseline",
                         "note": f"{DIM} wide, blocks of {BLOCK:,}"})  # fmt: skip
    vectors = 100_000 * DIM * 4 / 2**20  # MiB the vectors of 100,000 rows take
    for mode in ("staged", "in-memory"):
        slope = (peaks[mode, sizes[1]] - peaks[mode, sizes[0]]) / (sizes[1] - sizes[0]) * 1e5
        rows.append({"area": AREA, "metric": f"growth per 100,000 rows, {mode}",
                     "value": round(slope / vectors, 2), "unit": "x the vectors' size",
                     "note": f"{slope:.1f} MiB; " + ("target <= 0.5: holding the vectors would "
                             "be >= 1" if mode == "staged" else "for scale")})  # fmt: skip
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        for row in run(quick="--quick" in sys.argv):
            print(f"{row['metric']:55s} {row['value']:>10} {row['unit']}  ({row['note']})")
