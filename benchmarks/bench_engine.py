"""Engine benchmarks (issue 5): scale of suggest, label store and UMAP; label efficiency.

* ``suggest`` over 1,000,000 x 128 float32 embeddings (diversity: k-center greedy; entropy).
* The label store holding 1,000,000 events: time to query current labels (and to write them).
* UMAP of 100,000 points (numba compilation timed separately).
* Label-efficiency curve on the synthetic benchmark (6 classes): macro-F1 on a held-out test set
  against labels per class (1, 2, 5, 10, 20, 50), for active versus random selection, linear
  probe versus encoder fine-tuning. Data and encoder are the quality benchmark's
  (``bench_quality.py``: 5,000 unlabelled 64 px pool samples, 1,200 test samples generated with
  another seed, the default encoder pretrained for 15 minutes, cached under benchmarks/out/ and
  shared by both benchmarks). Active selection starts cold with ``typical`` samples (centres of
  label-free k-means clusters, TypiClust) for the first label per class, then adds one label per
  class per round with ``margin_balanced`` (for each predicted class, the unlabelled sample
  predicted as it with the smallest margin); ``active-margin`` (linear probe only) does every
  round after the first with plain ``margin``, for comparison. 40 seeds: paired differences
  between selections vary by 0.02-0.07 from seed to seed (standard errors 0.003-0.012). Random
  selection draws the same total number of labels uniformly from the pool. The plot is saved as
  benchmarks/label_efficiency.png.

    python benchmarks/bench_engine.py            # full sizes
    python benchmarks/bench_engine.py --quick    # small sizes (minutes)
    python benchmarks/bench_engine.py --only efficiency --steps 1200   # fixed pretraining steps
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
PLOT = HERE / "label_efficiency.png"
BUDGETS = (1, 2, 5, 10, 20, 50)


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
if sys.argv[1] == "old":  # the projection as it was: plain import, seeded, one thread
    import umap
    xy = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0, n_jobs=1).fit(X).embedding_
else:
    from insarexplore.explore.projection import Projector
    xy = Projector("umap").fit_transform(X)
t2 = time.perf_counter()
np.save(sys.argv[3], np.asarray(xy, np.float32))
print(json.dumps({"data_s": t1 - t0, "project_s": t2 - t1}))
"""


def projection_speed(n: int = 10_000) -> list[dict]:
    """UMAP of ``n`` x 128 clustered Gaussian blobs (20 centres), each fit in a fresh Python
    process: the projection as it was (plain ``import umap``, seeded, single-threaded: numba
    compiles again in every process) against the default ``Projector("umap")`` with numba's
    disk cache, once with an empty cache folder (a machine's first projection, fills it) and
    once more in a new process (every later one). Times run from the import of umap to the
    coordinates (the blobs' generation is excluded); the maps are compared for identity."""
    import json
    import os
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        base = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        cached = {**base, "NUMBA_CACHE_DIR": str(Path(tmp) / "numba")}
        times, maps = {}, {}
        for name, kind, env in (
            ("old", "old", base),
            ("new_empty_cache", "new", cached),
            ("new", "new", cached),
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
            times[name] = json.loads(done.stdout.strip().splitlines()[-1])["project_s"]
            maps[name] = np.load(out)
    same = bool(np.array_equal(maps["old"], maps["new"]))
    note = f"{n:,} x 128, new process, n_neighbors=15, seeded (1 thread)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return [
        _row(f"projection_old_{n // 1000}k_new_process", times["old"], "s", note),
        _row(
            f"projection_new_{n // 1000}k_empty_cache",
            times["new_empty_cache"],
            "s",
            "first projection on the machine (fills the numba cache)",
        ),
        _row(f"projection_new_{n // 1000}k_new_process", times["new"], "s", "numba cache filled"),
        _row(
            "projection_speedup_old_over_new",
            times["old"] / times["new"],
            "x",
            f"maps identical: {same}; 1-min load average after: {load:.2f}",
        ),
    ]


# -- label efficiency -----------------------------------------------------------------------
def _pretrained(n_pool: int, n_test: int, minutes: float, steps: int | None):
    """Embeddings of the quality benchmark's pool and test set (issue 4) by its pretrained
    encoder: the same data (64 px, 6 classes, seeds 1 and 2) and the same cached run, so the two
    tables describe one encoder. Returns (run folder, channels, embeddings, labels, pool rows,
    test rows)."""
    import sys

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import bench_quality as bq

    from insarexplore.embed import Embedder

    pool, test = bq.make_data(n_pool, seed=1), bq.make_data(n_test, seed=2)
    run = bq.ssl_run(pool, "phase", minutes=minutes, steps=steps)
    x = np.concatenate([pool.insar.to_channels("phase"), test.insar.to_channels("phase")])
    X = Embedder(run, progress=False).fit().transform(x)
    y = np.concatenate([pool["label"].values, test["label"].values]).astype(str)
    return run, x, X, y, np.arange(n_pool), np.arange(n_pool, n_pool + n_test)


def _uncertainty_round(X, y, chosen, batch, seed, strategy):
    from insarexplore.explore.active import suggest
    from insarexplore.explore.fewshot import FewShotClassifier

    if len(np.unique(y[chosen])) < 2:
        picks = suggest(batch, "diversity", embeddings=X, labelled=chosen, seed=seed)
    else:
        clf = FewShotClassifier("linear").fit(X[chosen], y[chosen])
        proba = clf.predict_proba(X)
        picks = suggest(batch, strategy, proba=proba, embeddings=X, labelled=chosen, seed=seed)
    return [p.index for p in picks]


SCHEDULES = {
    # name: strategy of round r (one label per class per round); round 0 has no labels yet
    "active": lambda r: "typical" if r == 0 else "margin_balanced",
    "active-margin": lambda r: "typical" if r == 0 else "margin",
}


def _selections(X, y, pool_idx, n_classes, seed, schedules=SCHEDULES):
    """Label sets (row indices of X) per budget: ``random``, and one set per active schedule.
    Active selection sees only the pool (the test rows are neither candidates nor clusters)."""
    from insarexplore.explore.active import suggest

    rng = np.random.default_rng(seed)
    order = rng.permutation(pool_idx)
    sets = {"random": {k: order[: k * n_classes] for k in BUDGETS}}
    Xp, yp = X[pool_idx], y[pool_idx]
    for name, strategy_of in schedules.items():
        chosen: list[int] = []  # positions in the pool
        active_sets, r = {}, 0
        for k in BUDGETS:
            while len(chosen) < k * n_classes:
                strategy = strategy_of(r)
                if strategy == "typical":  # the labels left in this budget, not the class count
                    left = k * n_classes - len(chosen)
                    picks = suggest(left, "typical", embeddings=Xp, labelled=chosen, seed=seed)
                    chosen += [p.index for p in picks]
                else:
                    chosen += _uncertainty_round(
                        Xp, yp, np.array(chosen, dtype=np.int64), n_classes, seed + r, strategy
                    )
                r += 1
            active_sets[k] = pool_idx[np.array(chosen[: k * n_classes])]
        sets[name] = active_sets
    return sets


def _f1_probe(X, y, train, test) -> float:
    from sklearn.metrics import f1_score

    from insarexplore.explore.fewshot import FewShotClassifier

    if len(np.unique(y[train])) < 2:
        return 0.0
    clf = FewShotClassifier("linear").fit(X[train], y[train])
    return float(f1_score(y[test], clf.predict(X[test]), average="macro"))


def _f1_finetune(run, x, y, train, test, seed) -> float:
    import torch

    from insarexplore.explore.finetune import finetune_encoder
    from insarexplore.models.serialization import load_encoder

    if len(np.unique(y[train])) < 2:
        return 0.0
    encoder, _ = load_encoder(run)
    model, _ = finetune_encoder(
        encoder, x[train], y[train], epochs=15, patience=4, batch_size=32, seed=seed, progress=False
    )
    with torch.no_grad():
        emb = np.concatenate(
            [model(torch.from_numpy(x[i : i + 512])).numpy() for i in range(0, len(x), 512)]
        )
    return _f1_probe(emb, y, train, test)


def bench_label_efficiency(n_pool: int, n_test: int, minutes: float, seeds: int,
                           ft_budgets: tuple[int, ...], steps: int | None = None) -> list[dict]:  # fmt: skip
    run, x, X, y, pool_idx, test_idx = _pretrained(n_pool, n_test, minutes, steps)
    classes = np.unique(y)
    curves: dict[tuple[str, str], list[list[float]]] = {}
    for seed in range(seeds):
        selections = _selections(X, y, pool_idx, len(classes), seed)
        for sel_name, sets in selections.items():
            lp = [_f1_probe(X, y, sets[k], test_idx) for k in BUDGETS]
            curves.setdefault(("linear probe", sel_name), []).append(lp)
            if ft_budgets and seed == 0 and sel_name in ("random", "active"):
                ft = [
                    _f1_finetune(run, x, y, sets[k], test_idx, seed) if k in ft_budgets else np.nan
                    for k in BUDGETS
                ]
                curves.setdefault(("fine-tuning", sel_name), []).append(ft)
    rows = []
    for (head, sel), runs in curves.items():
        arr = np.asarray(runs, dtype=float)
        for j, k in enumerate(BUDGETS):
            if np.isnan(arr[:, j]).all():
                continue
            rows.append(
                _row(
                    f"f1_{head.replace(' ', '_')}_{sel}_{k}_per_class",
                    np.nanmean(arr[:, j]),
                    "macro-F1",
                    f"+-{np.nanstd(arr[:, j]):.3f} over {arr.shape[0]} seed(s)",
                )  # fmt: skip
            )
    _print_table(curves)
    rand = np.asarray(curves[("linear probe", "random")])
    for sel in ("active", "active-margin"):
        act = np.asarray(curves[("linear probe", sel)])
        gain, spread = (act - rand).mean(axis=0), (act - rand).std(axis=0)
        name = sel.replace("-", "_")
        for j, k in enumerate(BUDGETS):
            per_seed = ", ".join(f"{v:+.3f}" for v in (act - rand)[:, j])
            rows.append(_row(f"{name}_minus_random_linear_probe_{k}_per_class", gain[j], "macro-F1",
                             f"+-{spread[j]:.3f} over paired seeds ({per_seed})"))  # fmt: skip
    _plot(curves, n_pool, 64)
    budget = f"{steps} steps" if steps else f"{minutes:g} min"
    note = f"pool {n_pool}, 64 px, pretrain {budget}, held-out test {len(test_idx)}"
    rows.append(_row("label_efficiency_plot", 1.0, "file", f"{PLOT.name}; {note}"))
    return rows


def _print_table(curves: dict) -> None:
    print("macro-F1 by labels per class:", "  ".join(f"{k:>6}" for k in BUDGETS))
    for (head, sel), runs in curves.items():
        arr = np.nanmean(np.asarray(runs, dtype=float), axis=0)
        print(f"  {head:>12} {sel:>7}:", "  ".join(f"{v:6.3f}" for v in arr))


def _plot(curves: dict, n: int, size: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {"random": "--", "active": "-", "active-margin": ":"}
    colours = {"linear probe": "tab:blue", "fine-tuning": "tab:orange"}
    for (head, sel), runs in curves.items():
        arr = np.asarray(runs, dtype=float)
        ok = ~np.isnan(arr).all(axis=0)
        mean, std = np.nanmean(arr[:, ok], axis=0), np.nanstd(arr[:, ok], axis=0)
        ks = np.asarray(BUDGETS)[ok]
        ax.errorbar(ks, mean, yerr=std, ls=styles[sel], color=colours[head], marker="o",
                    capsize=3, label=f"{head}, {sel}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(BUDGETS, [str(k) for k in BUDGETS])
    ax.set_xlabel("labels per class")
    ax.set_ylabel("macro-F1 (held-out test set)")
    ax.set_title(f"Label efficiency, synthetic 6 classes ({n} samples, {size} px)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)
    plt.close(fig)


def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    rows += bench_suggest(1_000_000)
    rows += bench_label_store(100_000 if quick else 1_000_000)
    rows += bench_umap(10_000 if quick else 100_000)
    if quick:
        rows += bench_label_efficiency(600, 300, 1.0, seeds=2, ft_budgets=(5,))
    else:
        rows += bench_label_efficiency(5000, 1200, 15.0, seeds=40, ft_budgets=(1, 5, 20, 50))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", choices=("suggest", "labels", "umap", "efficiency"))
    parser.add_argument("--steps", type=int, default=None,
                        help="label efficiency: pretraining steps instead of minutes")  # fmt: skip
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
    elif args.only == "efficiency":
        rows = (
            bench_label_efficiency(600, 300, 1.0, seeds=2, ft_budgets=(5,), steps=args.steps)
            if args.quick
            else bench_label_efficiency(
                5000, 1200, 15.0, seeds=40, ft_budgets=(1, 5, 20, 50), steps=args.steps
            )
        )
    else:
        rows = run(quick=args.quick)
    width = max(len(r["metric"]) for r in rows)
    for r in rows:
        print(f"{r['metric']:<{width}}  {r['value']:>12.4g} {r['unit']:<10} {r['note']}")


if __name__ == "__main__":
    main()
