"""What the demo shows (issue 16): runs the demo's preparation (no serving) and measures its map.

Runs :func:`insarexplore.demo.prepare_demo` (synthesis, pretraining for the demo's fixed step
budget, embedding, the 2-D map, the cluster proposals the dashboard shows) and reports:

* the kNN (k = 10, leave-one-out) accuracy of the generator's ``source_label`` on the 2-D map:
  how well the classes separate where the user looks (targets: >= 0.75);
* the number of cluster proposals on that map and the share of samples in none (targets: >= 4
  clusters, <= 30 % noise), with the purity of the clusters (majority class share);
* the pretraining steps done (and whether the wall-clock guard cut them short) and the time of
  each stage, with the load average, since the machine's load changes the times, not the map.

    python benchmarks/bench_demo.py                      # a fresh workspace under benchmarks/out
    python benchmarks/bench_demo.py --workspace DIR      # complete or reuse a demo workspace
    python benchmarks/bench_demo.py --quick              # the --quick demo sizes (smoke run)
    python benchmarks/bench_demo.py --minutes 60         # a busy machine: let the steps finish
    python benchmarks/bench_demo.py --steps 900          # another step budget for the demo
    python benchmarks/bench_demo.py --make --cold        # time `make demo` to a served dashboard
    python benchmarks/bench_demo.py --gains 1,1 10,3     # also maps of other embedding stretches

``--make`` times what the user waits for: ``make demo`` (install already done) in a fresh
workspace, from the command's start until the dashboard's URL answers HTTP 200, then stops the
server and measures the map as above. ``--cold`` gives it an empty numba cache (a machine's
first projection compiles UMAP's functions).

The map depends on the step budget, not on the machine's load; on a loaded machine the demo's
wall-clock guard (8 minutes on CPU) would cut pretraining short, so ``--minutes`` relaxes it to
measure what the budget gives (the times then show the load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

AREA = "demo"
OUT = Path(__file__).resolve().parent / "out"


def _row(metric: str, value: float, unit: str, note: str = "") -> dict:
    return {"area": AREA, "metric": metric, "value": float(value), "unit": unit, "note": note}


def knn_accuracy(xy: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Leave-one-out kNN accuracy: each point's majority label among its k nearest others."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels).astype(str)
    classes, y = np.unique(labels, return_inverse=True)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(xy)
    idx = nn.kneighbors(xy, return_distance=False)
    # drop each point itself (the first neighbour, or wherever it sits among exact duplicates)
    others = np.array([row[row != i][:k] for i, row in enumerate(idx)])
    votes = np.zeros((len(xy), len(classes)), dtype=np.int64)
    np.add.at(votes, (np.repeat(np.arange(len(xy)), k), y[others].ravel()), 1)
    return float((votes.argmax(axis=1) == y).mean())


def measure(ws, projection: str) -> dict:
    """kNN accuracy, clusters and noise of a prepared demo workspace."""
    from insarexplore.explore import cluster, project

    ids, xy = project(ws, method=projection)
    ids = np.asarray(ids).astype(str)
    truth = ws.open_data()["label"].to_series()
    truth.index = truth.index.astype(str)
    y = truth.reindex(ids).to_numpy().astype(str)
    frame = cluster(ws, space=projection)
    c = frame["cluster"].reindex(ids).to_numpy()
    members = c >= 0
    purity = 0.0
    if members.any():
        agree = 0
        for k in np.unique(c[members]):
            _, counts = np.unique(y[c == k], return_counts=True)
            agree += counts.max()
        purity = agree / members.sum()
    meta = json.loads((ws.model_dir(ws.current_model) / "meta.json").read_text())
    return {
        "n": len(ids),
        "knn10": knn_accuracy(xy, y, 10),
        "n_clusters": int(frame.attrs.get("n_clusters", len(np.unique(c[members])))),
        "noise": float((~members).mean()),
        "purity": float(purity),
        "cluster_method": frame.attrs.get("method", "hdbscan"),
        "cluster_description": frame.attrs.get("description", ""),
        "steps": int(meta.get("steps", -1)),
        "planned_steps": int(meta.get("planned_steps", meta.get("steps", -1))),
        "cut_short": bool(meta.get("cut_short", False)),
        "pretrain_s": float(meta.get("elapsed_s", float("nan"))),
    }


def run(
    quick: bool = False,
    workspace: str | Path | None = None,
    fresh: bool = False,
    minutes: float | None = None,
    steps: int | None = None,
) -> list:
    from insarexplore.demo import plan_demo, prepare_demo

    plan = plan_demo(quick=quick, minutes=minutes, steps=steps)
    path = Path(workspace) if workspace else OUT / f"demo-{'quick' if quick else 'default'}"
    if fresh and path.exists():
        shutil.rmtree(path)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    ws = prepare_demo(path, quick=quick, minutes=plan.minutes, steps=plan.steps, quiet=False)
    prep_s = time.perf_counter() - t0
    m = measure(ws, plan.projection)
    load1 = os.getloadavg()[0]
    steps_note = (
        f"cut short by the {plan.minutes:g}-min guard (planned {m['planned_steps']:,})"
        if m["cut_short"]
        else f"the demo's budget, {plan.arch}, batch {plan.batch_size}"
    )
    return [
        *_map_rows(m, plan.projection, steps_note),
        _row(
            "preparation time (this call)",
            prep_s,
            "s",
            f"steps already done are reused; load {load0:.1f} before, {load1:.1f} after, "
            f"{os.cpu_count()} cores",
        ),
    ]


def restretched_knn(ws, gains: tuple[float, float], projection: str) -> float:
    """kNN (k = 10) accuracy of ``source_label`` on a map fitted anew to the workspace's
    embeddings stretched with other ``gains`` (``PhysicsHead``: along deformation against
    none, along the head's other class directions; (1, 1): the encoder's plain features)."""
    from insarexplore.explore.deformation import restretched_embeddings
    from insarexplore.explore.projection import Projector

    try:
        ids, vectors = restretched_embeddings(ws, gains)
    except ValueError as exc:
        raise SystemExit(f"--gains: {exc}") from None
    xy = Projector(projection).fit_transform(vectors)
    truth = ws.open_data()["label"].to_series()
    truth.index = truth.index.astype(str)
    return knn_accuracy(xy, truth.reindex(np.asarray(ids).astype(str)).to_numpy(), 10)


def _gains(text: str) -> tuple[float, float]:
    try:
        g = tuple(float(v) for v in text.split(","))
    except ValueError:
        g = ()
    from insarexplore.names import STRETCH_GAINS as GAINS

    if len(g) != 2 or not all(GAINS[0] <= v <= GAINS[1] for v in g):
        raise argparse.ArgumentTypeError(
            f"GAIN,CLASS_GAIN: two numbers from {GAINS[0]:g} to {GAINS[1]:g}; got {text!r}"
        )
    return g  # type: ignore[return-value]


def _map_rows(m: dict, projection: str, steps_note: str) -> list:
    """The rows of what the map shows and how long pretraining took (see :func:`measure`)."""
    where = f"{m['n']:,} samples, {projection.upper()} map"
    return [
        _row("kNN (k=10) accuracy of source_label on the map", m["knn10"], "", where),
        _row("cluster proposals on the map", m["n_clusters"], "", m["cluster_description"]),
        _row("noise (samples in no cluster)", 100 * m["noise"], "%", m["cluster_method"]),
        _row("cluster purity (majority class share)", 100 * m["purity"], "%", "of clustered"),
        _row("pretraining steps done", m["steps"], "steps", steps_note),
        _row("pretraining time", m["pretrain_s"], "s", "from the model's meta.json"),
    ]


def _served(url: str, deadline: float) -> bool:
    """Poll ``url`` until it answers 200 (True) or ``deadline`` passes (False)."""
    import urllib.error
    import urllib.request

    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                if reply.status == 200 and reply.read(1):
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def run_make(
    workspace: str | Path | None = None,
    cold: bool = False,
    fresh: bool = False,
    timeout_min: float = 30,
):
    """``make demo`` in a fresh workspace, timed from its start to an answering dashboard."""
    import signal
    import subprocess
    import tempfile
    import threading

    from insarexplore.demo import plan_demo
    from insarexplore.workspace import Workspace

    root = Path(__file__).resolve().parents[1]
    path = Path(workspace) if workspace else OUT / "demo-make"
    if path.exists():
        if workspace and not fresh:  # a folder the user named is deleted only when asked
            print(f"bench_demo: {path} exists; --make needs a fresh workspace (--fresh)",
                  file=sys.stderr)  # fmt: skip
            raise SystemExit(2)
        shutil.rmtree(path)
    OUT.mkdir(parents=True, exist_ok=True)
    errors = OUT / "demo-make.stderr"
    env = dict(os.environ)
    cache = None
    if cold:
        cache = tempfile.mkdtemp(prefix="numba-cold-")
        env["NUMBA_CACHE_DIR"] = cache
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "demo", f"DEMO_DIR={path}", "DEMO_ARGS=--port 0"],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=errors.open("w"), text=True,
        start_new_session=True,
    )  # fmt: skip
    found: dict[str, str] = {}

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "insarexplore dashboard:" in line and "url" not in found:
                found["url"] = line.split("dashboard:", 1)[1].strip()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = t0 + 60 * timeout_min
    try:
        while "url" not in found and proc.poll() is None and time.perf_counter() < deadline:
            time.sleep(0.2)
        if "url" not in found:
            raise SystemExit(
                f"bench_demo: make demo printed no dashboard URL (rc {proc.poll()}; see {errors})"
            )
        if not _served(found["url"], deadline):
            raise SystemExit(f"bench_demo: {found['url']} did not answer within {timeout_min} min")
        served_s = time.perf_counter() - t0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        if cache:
            shutil.rmtree(cache, ignore_errors=True)
    load1 = os.getloadavg()[0]
    plan = plan_demo()
    m = measure(Workspace.open(path), plan.projection)
    numba = "empty numba cache" if cold else "numba cache as found"
    steps_note = "cut short by the guard" if m["cut_short"] else "the demo's budget"
    return [
        *_map_rows(m, plan.projection, steps_note),
        _row(
            "make demo to a served dashboard",
            served_s,
            "s",
            f"install done before; {numba}; load {load0:.1f} before, {load1:.1f} after, "
            f"{os.cpu_count()} cores",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the --quick demo sizes")
    parser.add_argument("--workspace", default=None, help="demo workspace to complete or reuse")
    parser.add_argument("--fresh", action="store_true", help="delete the workspace first")
    parser.add_argument("--minutes", type=float, default=None, help="pretraining guard (min)")
    parser.add_argument("--steps", type=int, default=None, help="pretraining steps (the demo's)")
    parser.add_argument(
        "--make",
        action="store_true",
        help="time `make demo` (fresh workspace) until the dashboard answers",
    )
    parser.add_argument(
        "--cold", action="store_true", help="with --make: an empty numba cache, as on a new machine"
    )
    parser.add_argument(
        "--gains",
        type=_gains,
        nargs="+",
        default=[],
        metavar="GAIN,CLASS_GAIN",
        help="also the kNN accuracy on maps fitted anew to the embeddings stretched with these "
        "gains instead of the model's (1,1: the plain features)",
    )
    args = parser.parse_args()
    if args.make and args.gains:
        parser.error("--gains measures a prepared workspace: run it without --make")
    if args.make:
        rows = run_make(args.workspace, cold=args.cold, fresh=args.fresh)
    else:
        rows = run(
            quick=args.quick,
            workspace=args.workspace,
            fresh=args.fresh,
            minutes=args.minutes,
            steps=args.steps,
        )
    if args.gains:
        from insarexplore.demo import plan_demo
        from insarexplore.workspace import Workspace

        path = Path(args.workspace) if args.workspace else OUT / (
            f"demo-{'quick' if args.quick else 'default'}")  # fmt: skip
        projection = plan_demo(quick=args.quick).projection
        for g in args.gains:
            acc = restretched_knn(Workspace.open(path), g, projection)
            rows.append(_row(f"kNN (k=10) on a map of gains {g[0]:g},{g[1]:g}", acc, "",
                             "UMAP fitted anew to the re-stretched embeddings"))  # fmt: skip
    width = max(len(r["metric"]) for r in rows)
    for r in rows:
        print(f"{r['metric']:<{width}}  {r['value']:>9.3f} {r['unit']:<5} {r['note']}")


if __name__ == "__main__":
    main()
