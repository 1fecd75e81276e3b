"""Engine benchmarks (issue 5): scale of suggest, label store and UMAP.

* ``suggest`` over 1,000,000 x 128 float32 embeddings (diversity: k-center greedy; entropy).
* The label store holding 1,000,000 events: time to query current labels (and to write them).
* UMAP of 100,000 points (numba compilation timed separately).
* ``--projection``: a 10,000-sample projection in new processes (issue 16).

Label efficiency (active against random selection) is ``bench_efficiency.py``.

    python benchmarks/bench_engine.py            # full sizes
    python benchmarks/bench_engine.py --quick    # small sizes (minutes)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

AREA = "engine"
HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def _row(metric: str, value: float, unit: str, note: str = "") -> dict[str, Any]:
    return {"area": AREA, "metric": metric, "value": float(value), "unit": unit, "note": note}


def bench_suggest(n: int) -> list[dict]:
    from insarexplore.explore.active import suggest

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 128), dtype=np.float32)
    labelled = rng.choice(n, 1000, replace=False)
    proba = rng.dirichlet(np.ones(6), size=n).astype(np.float32)
    suggest(5, "diversity", embeddings=X[:2000])  # warm BLAS threads
    rows = []
    for strategy, kw in (("diversity", {"embeddings": X}), ("entropy", {"proba": proba})):
        best = np.inf
        for _ in range(3):
            t = time.perf_counter()
            suggest(50, strategy, labelled=labelled, **kw)
            best = min(best, time.perf_counter() - t)
        rows.append(
            _row(
                f"suggest_{strategy}_{n // 1000}k_x128",
                best,
                "s",
                "50 suggestions, 1,000 labelled; best of 3",
            )  # fmt: skip
        )
    return rows


def bench_label_store(n_events: int) -> list[dict]:
    from insarexplore.explore.labels import LabelStore

    n_samples = n_events // 4
    classes = [f"class{i}" for i in range(6)]
    with tempfile.TemporaryDirectory() as tmp:
        store = LabelStore(Path(tmp) / "labels.sqlite", author="bench", session="bench")
        t = time.perf_counter()
        for round_ in range(4):  # every sample relabelled 4 times: n_events events in all
            store.assign_many(
                ((f"s{j:07d}", classes[(j + round_) % 6]) for j in range(n_samples)),
                origin="model",
            )
        write = time.perf_counter() - t
        n = store._read("SELECT COUNT(*) FROM events")[0][0]
        store.close()
        store = LabelStore(Path(tmp) / "labels.sqlite")  # a fresh process-like open
        t = time.perf_counter()
        current = store.current()
        query = time.perf_counter() - t
        t = time.perf_counter()
        store.counts()
        counts = time.perf_counter() - t
        t = time.perf_counter()
        store.assign(["s0000001"], "class0")
        one = time.perf_counter() - t
        store.close()
    assert len(current) == n_samples
    note = f"{n:,} events over {n_samples:,} samples"
    return [
        _row(f"labels_current_query_{n // 1000}k_events", query, "s", note),
        _row(f"labels_counts_query_{n // 1000}k_events", counts, "s", note),
        _row(f"labels_write_{n // 1000}k_events", n / write, "events/s", "4 bulk operations"),
        _row("labels_single_assign", one * 1000, "ms", "one durable op (WAL, synchronous=FULL)"),
    ]


def bench_umap(n: int) -> list[dict]:
    from sklearn.datasets import make_blobs

    from insarexplore.explore.projection import Projector

    X, _ = make_blobs(n_samples=n, n_features=128, centers=20, random_state=0)
    X = X.astype(np.float32)
    t = time.perf_counter()
    Projector("umap").fit_transform(X[:5000])  # pays numba compilation (nndescent above 4,096)
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    Projector("umap").fit_transform(X)
    fit = time.perf_counter() - t
    t = time.perf_counter()
    Projector("pca").fit_transform(X)
    pca = time.perf_counter() - t
    return [
        _row(
            "umap_first_fit_5k_incl_compile",
            compile_s,
            "s",
            "5,000 points, first fit in the process",
        ),
        _row(f"umap_fit_{n // 1000}k_x128", fit, "s", "n_neighbors=15, seeded (1 thread)"),
        _row(f"pca_fit_{n // 1000}k_x128", pca, "s", ""),
    ]


# -- projection in a new process ---------------------------------------------------------------
_PROJECTION_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from sklearn.datasets import make_blobs
X, _ = make_blobs(n_samples=int(sys.argv[2]), n_features=128, centers=20, random_state=0)
X = X.astype(np.float32)
t1 = time.perf_counter()
knn = "umap"
if sys.argv[1] == "old":  # the projection as it was: plain import, seeded, one thread
    import umap
    xy = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1).fit(X).embedding_
else:
    from insarexplore.explore import projection
    if sys.argv[1] == "descent":  # the previous default: umap's own search, numba cache on
        projection.EXACT_KNN_MAX_ROWS = 0
    proj = projection.Projector("umap")
    xy = proj.fit_transform(X)
    knn = proj.knn_
t2 = time.perf_counter()
np.save(sys.argv[3], np.asarray(xy, np.float32))
print(json.dumps({"data_s": t1 - t0, "project_s": t2 - t1, "knn": knn}))
"""


def projection_speed(n: int = 10_000) -> list[dict]:
    """UMAP of ``n`` x 128 clustered Gaussian blobs (20 centres), each fit in a fresh Python
    process: the projection as it was (plain ``import umap``, seeded, single-threaded, umap's
    NN-descent: numba compiles everything again in every process) against the default
    ``Projector("umap")`` (exact neighbours by brute force up to ``EXACT_KNN_MAX_ROWS`` rows,
    numba's disk cache), once with an empty cache folder (a machine's first projection, fills
    it) and once more in a new process (every later one); and the previous default (disk
    cache, umap's NN-descent, compiled in every process), timed in a second process after one
    that fills its cache. Times run from the import of umap to the coordinates (the blobs'
    generation is excluded). Maps are compared by kNN preservation (the fraction of each
    point's 15 nearest neighbours in the input found among its 15 nearest on the map; also
    for 150), the default's two maps (empty and filled cache) for identity, and the previous
    default's map with the old one."""
    import json
    import os
    import subprocess
    import sys

    from sklearn.datasets import make_blobs

    def knn_preservation(X: np.ndarray, xy: np.ndarray, k: int) -> float:
        """Mean fraction of each point's ``k`` nearest neighbours in ``X`` (exact, itself left
        out) that are among its ``k`` nearest on the map ``xy``: fidelity without labels."""
        from sklearn.neighbors import NearestNeighbors

        def neighbours(A: np.ndarray) -> np.ndarray:
            nn = NearestNeighbors(
                n_neighbors=k + 1, algorithm="brute" if A.shape[1] > 3 else "auto"
            )
            return nn.fit(A).kneighbors(A, return_distance=False)[:, 1:]

        a, b = neighbours(np.asarray(X, np.float64)), neighbours(np.asarray(xy, np.float64))
        hits = [(a[s : s + 500, :, None] == b[s : s + 500, None, :]).any(axis=2).sum()
                for s in range(0, len(a), 500)]  # fmt: skip
        return float(sum(hits) / a.size)

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    with tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        cached = {**base, "NUMBA_CACHE_DIR": str(Path(tmp) / "numba")}
        times, maps, knn = {}, {}, {}
        for name, kind, env in (
            ("old", "old", base),
            ("new_empty_cache", "new", cached),
            ("new", "new", cached),
            ("descent_fill", "descent", cached),
            ("descent", "descent", cached),
        ):
            out = Path(tmp) / f"{name}.npy"
            done = subprocess.run(
                [sys.executable, "-c", _PROJECTION_CHILD, kind, str(n), str(out)],
                env=env,
                cwd=HERE.parent,
                capture_output=True,
                text=True,
                check=True,
            )
            report = json.loads(done.stdout.strip().splitlines()[-1])
            times[name], knn[name] = report["project_s"], report["knn"]
            maps[name] = np.load(out)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    X, _ = make_blobs(n_samples=n, n_features=128, centers=20, random_state=0)
    X = X.astype(np.float32)
    kept = {
        (name, k): knn_preservation(X, maps[name], k)
        for name in ("old", "new", "descent")
        for k in (15, 150)
    }
    same = bool(np.array_equal(maps["new_empty_cache"], maps["new"]))
    same_fallback = bool(np.array_equal(maps["old"], maps["descent"]))
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    note = f"{n:,} x 128, new process, n_neighbors=15, seeded; OMP_NUM_THREADS={threads}"
    tag = f"{n // 1000}k"
    return [
        _row(f"projection_old_{tag}_new_process", times["old"], "s", f"plain umap; {note}"),
        _row(
            f"projection_new_{tag}_empty_cache",
            times["new_empty_cache"],
            "s",
            f"first projection on the machine (fills the numba cache); knn={knn['new']}",
        ),
        _row(f"projection_new_{tag}_new_process", times["new"], "s", "numba cache filled"),
        _row(
            f"projection_umap_search_{tag}_new_process",
            times["descent"],
            "s",
            "previous default: numba cache filled, umap's NN-descent compiled in the process",
        ),
        _row(
            "projection_speedup_old_over_new",
            times["old"] / times["new"],
            "x",
            f"new map identical in two new processes: {same}; umap's search map identical "
            f"to the old one: {same_fallback}",
        ),
        *(
            _row(
                f"projection_knn_preservation_{label}_{tag}",
                kept[(name, 15)],
                "",
                f"of the 15 nearest in the input, among the 15 nearest on the map (150: "
                f"{kept[(name, 150)]:.4f}; chance within a blob of {n // 20:,}: "
                f"{15 / (n // 20 - 1):.3f})",
            )
            for label, name in (("old", "old"), ("new", "new"), ("umap_search", "descent"))
        ),
        _row(
            "projection_load_average",
            load[0],
            "",
            "1/5/15-min before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(
                *load_before, *load
            ),
        ),
    ]


def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    rows += bench_suggest(1_000_000)
    rows += bench_label_store(100_000 if quick else 1_000_000)
    rows += bench_umap(10_000 if quick else 100_000)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", choices=("suggest", "labels", "umap"))
    parser.add_argument("--projection", action="store_true",
                        help="only the projection in new processes: old seeded run vs default")  # fmt: skip
    args = parser.parse_args()
    if args.projection:
        rows = projection_speed(10_000)
    elif args.only == "suggest":
        rows = bench_suggest(1_000_000)
    elif args.only == "labels":
        rows = bench_label_store(100_000 if args.quick else 1_000_000)
    elif args.only == "umap":
        rows = bench_umap(10_000 if args.quick else 100_000)
    else:
        rows = run(quick=args.quick)
    width = max(len(r["metric"]) for r in rows)
    for r in rows:
        print(f"{r['metric']:<{width}}  {r['value']:>12.4g} {r['unit']:<10} {r['note']}")


if __name__ == "__main__":
    main()
