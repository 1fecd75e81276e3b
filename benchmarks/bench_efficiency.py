"""Label efficiency under the evaluation protocol (issue 15): active selection against random.

Data and encoder are the quality benchmark's (``bench_quality.py``): 64 px, six classes, a train
pool and a validation set from generator seed 1 split by frame, a test set from seed 2, the
default encoder pretrained on the pool without labels (same cached run). Budgets are totals of
6, 12, 30, 60, 120 and 300 labels (1, 2, 5, 10, 20, 50 per class on average); selection sees
the pool only. Fixed before running: 20 seeds (selections), 5 seeds for fine-tuning.

Selections:

* ``random``: the budget drawn uniformly from the pool;
* ``active``: the product's cold start ``typical`` (the most typical sample of each of the
  largest label-free k-means clusters; the number of clusters is chosen without labels and the
  class count is never given) for the first ``ROUND`` labels, then rounds of ``ROUND`` labels by
  ``margin_balanced``;
* ``active-margin``: the same cold start, then rounds of plain ``margin``.

Each label set is scored with the product's linear probe (``FewShotClassifier("linear")``) on
validation for every seed and budget; the schedule the product recommends is the better one on
validation. The test set is sealed and scored once per selection. Paired t-tests against random
per budget. ``C_FALLBACK`` (the probe's C when a class has fewer than two labels, so nothing can
be held out to choose it) is checked here on validation: every C of ``C_GRID`` on the label sets
(random and active, every budget) where the fallback applies; the product's value should be the
best one (the smallest C within 0.0005 of the best macro-F1). Fine-tuning (``finetune_encoder``,
at the model's trained size as ``finetune_workspace`` does) of random and active sets at 5
and 20 labels per class, 5 seeds, on validation and test.

    python benchmarks/bench_efficiency.py --steps 2000                # validation only
    python benchmarks/bench_efficiency.py --steps 2000 --splits val,test
    python benchmarks/bench_efficiency.py --quick
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_quality as bq  # noqa: E402

from insarexplore.explore.protocol import SealedTest, paired, summarise  # noqa: E402

AREA = "efficiency"
PLOT = HERE / "label_efficiency.png"
PER_CLASS = (1, 2, 5, 10, 20, 50)
N_REPORT_CLASSES = 6  # the budgets' unit for reporting; selection is never told it
ROUND = 5  # labels per active round after the cold start: a fixed batch, not the class count
SEEDS, FT_SEEDS, FT_PER_CLASS = 20, 5, (5, 20)
SCHEDULES = {
    # name: strategy after the cold start
    "active": "margin_balanced",
    "active-margin": "margin",
}


def budgets() -> list[int]:
    return [k * N_REPORT_CLASSES for k in PER_CLASS]


def embeddings(n_pool: int, n_test: int, steps: int):
    """(run, channels, embeddings, labels, pool rows, val rows, test rows) over the three
    sets concatenated, by the quality benchmark's default encoder."""
    from insarexplore.embed import Embedder

    pool, val, test = bq.protocol_data(n_pool, n_test)
    run = bq.ssl_run(pool, "phase", steps=steps)
    sets = (pool, val, test)
    x = np.concatenate([d.insar.to_channels("phase") for d in sets])
    X = Embedder(run, progress=False).fit().transform(x)
    y = np.concatenate([np.asarray(d["label"].values) for d in sets]).astype(str)
    edges = np.cumsum([0] + [d.sizes["sample"] for d in sets])
    rows = [np.arange(edges[i], edges[i + 1]) for i in range(3)]
    return run, x, X, y, *rows


def _round(Xp, yp, chosen: list[int], batch: int, seed: int, strategy: str) -> list[int]:
    from insarexplore.explore.active import suggest
    from insarexplore.explore.fewshot import FewShotClassifier

    if len(np.unique(yp[chosen])) < 2:
        picks = suggest(batch, "diversity", embeddings=Xp, labelled=chosen, seed=seed)
    else:
        proba = FewShotClassifier("linear").fit(Xp[chosen], yp[chosen]).predict_proba(Xp)
        picks = suggest(batch, strategy, proba=proba, embeddings=Xp, labelled=chosen, seed=seed)
    return [p.index for p in picks]


def selections(
    X, y, pool_rows, seed: int, totals: list[int] | None = None
) -> dict[str, dict[int, np.ndarray]]:
    """Label sets (rows of X) per total budget (``totals``, default :func:`budgets`): ``random``
    and one per schedule. Only pool labels of samples already chosen are read (as a person
    labelling them would give them)."""
    from insarexplore.explore.active import suggest

    totals = totals or budgets()
    order = np.random.default_rng(seed).permutation(pool_rows)
    sets = {"random": {b: order[:b] for b in totals}}
    Xp, yp = X[pool_rows], y[pool_rows]
    for name, strategy in SCHEDULES.items():
        chosen: list[int] = []  # positions in the pool
        out, r = {}, 0
        for b in totals:
            while len(chosen) < b:
                if not chosen:  # cold start: typical samples of label-free clusters
                    picks = suggest(ROUND, "typical", embeddings=Xp, labelled=[], seed=seed)
                    chosen += [p.index for p in picks]
                else:
                    chosen += _round(Xp, yp, chosen, ROUND, 1000 * seed + r, strategy)
                r += 1
            out[b] = pool_rows[np.array(chosen[:b])]
        sets[name] = out
    return sets


def _probe(X, y, train, rows, C: float | str = "auto") -> np.ndarray | None:
    from insarexplore.explore.fewshot import FewShotClassifier

    if len(np.unique(y[train])) < 2:
        return None
    return FewShotClassifier("linear", C=C).fit(X[train], y[train]).predict(X[rows])


def _f1(y_true, pred) -> float:
    from sklearn.metrics import f1_score

    return 0.0 if pred is None else float(f1_score(y_true, pred, average="macro"))


def _finetuned(run, x, y, train, seed: int) -> np.ndarray:
    """Embeddings of every row by the encoder fine-tuned on ``train``; ``x`` is at the model's
    size (``at_model_size``), where ``finetune_workspace`` trains."""
    from insarexplore.embed import Embedder
    from insarexplore.explore.finetune import finetune_encoder
    from insarexplore.models.serialization import load_encoder

    encoder, config = load_encoder(run)
    model, _ = finetune_encoder(encoder, x[train], y[train], epochs=15, patience=4, batch_size=32,
                                seed=seed, progress=False)  # fmt: skip
    # at the size it was fine-tuned at, from as many views as the embeddings it is compared with
    emb = Embedder(model, batch_size=512, progress=False, resize=False,
                   dihedral=bool(config.get("embed_dihedral")))  # fmt: skip
    return emb.fit().transform(x)


def bench(n_pool: int, n_test: int, steps: int, *, seeds: int = SEEDS, ft_seeds: int = FT_SEEDS,
          score_test: bool = False, log=print) -> dict[str, Any]:  # fmt: skip
    from insarexplore.explore.fewshot import C_GRID

    run, x, X, y, pool_rows, val_rows, test_rows = embeddings(n_pool, n_test, steps)
    y_val = y[val_rows]
    sealed = SealedTest(np.arange(len(test_rows)), y[test_rows])
    y = y.copy()
    y[test_rows] = ""  # from here on, the test labels exist only inside ``sealed``
    from tqdm.auto import tqdm

    sets = [
        selections(X, y, pool_rows, s) for s in tqdm(range(seeds), desc="selections", unit="seed")
    ]
    names = ["random", *SCHEDULES]
    val = {n: [[_f1(y_val, _probe(X, y, s[n][b], val_rows)) for b in budgets()] for s in sets]
           for n in names}  # fmt: skip
    for n in names:
        log(f"{n:14s} val " + "  ".join(f"{np.mean(c):.3f}" for c in np.array(val[n]).T))
    res: dict[str, Any] = {"budgets": budgets(), "seeds": seeds, "steps": steps, "val": val}
    res["val_paired"] = {n: [paired(np.array(val[n])[:, j], np.array(val["random"])[:, j])
                             for j in range(len(budgets()))] for n in SCHEDULES}  # fmt: skip
    res["recommended"] = max(SCHEDULES, key=lambda n: np.mean(val[n]))
    log(f"schedule chosen on validation: {res['recommended']}")

    # C_FALLBACK on validation: the label sets where it applies (a class with < 2 labels)
    from insarexplore.explore.fewshot import C_FALLBACK

    fallback_sets = [
        s[n][b]
        for s in sets
        for n in names
        for b in budgets()
        if len(np.unique(y[s[n][b]])) >= 2
        and np.unique(y[s[n][b]], return_counts=True)[1].min() < 2
    ]
    res["c_fallback_sets"] = len(fallback_sets)
    res["c_fallback_val"] = {
        str(C): float(np.mean([_f1(y_val, _probe(X, y, t, val_rows, C)) for t in fallback_sets]))
        for C in C_GRID
    }
    # the smallest C (the strongest regularisation) within the printed precision of the best
    top = max(res["c_fallback_val"].values())
    res["c_fallback_best"] = float(
        min(C for C in C_GRID if res["c_fallback_val"][str(C)] >= top - 5e-4)
    )
    res["c_fallback_product"] = float(C_FALLBACK)
    log(
        f"C_FALLBACK on validation ({len(fallback_sets)} label sets): "
        + ", ".join(f"{c} {v:.3f}" for c, v in res["c_fallback_val"].items())
        + f"; best {res['c_fallback_best']:g}, product {C_FALLBACK:g}"
    )

    # fine-tuning: random and the recommended schedule, fixed seeds and budgets
    from insarexplore.explore.finetune import at_model_size
    from insarexplore.models.serialization import load_encoder

    x_model = at_model_size(x, load_encoder(run)[1])  # resized once for every run below
    ft_b = [k * N_REPORT_CLASSES for k in FT_PER_CLASS]
    ft_pred: dict[str, list[list[Any]]] = {}
    res["ft_val"] = {}
    for n in ("random", res["recommended"]):
        for s in range(ft_seeds):
            row_v, row_t = [], []
            for b in ft_b:
                emb = _finetuned(run, x_model, y, sets[s][n][b], s)
                row_v.append(_f1(y_val, _probe(emb, y, sets[s][n][b], val_rows)))
                row_t.append(_probe(emb, y, sets[s][n][b], test_rows))
            res["ft_val"].setdefault(n, []).append(row_v)
            ft_pred.setdefault(n, []).append(row_t)
        log(
            f"fine-tuning {n:8s} val " + "  ".join(f"{v:.3f}" for v in np.mean(res["ft_val"][n], 0))
        )
    res["ft_budgets"] = ft_b

    if score_test:

        def curves(labels, name):
            return [
                [_f1(labels, _probe(X, y, s[name][b], test_rows)) for b in budgets()] for s in sets
            ]

        res["test"] = {n: sealed.evaluate(f"probe/{n}", lambda t, n=n: curves(t, n)) for n in names}
        res["test_paired"] = {n: [paired(np.array(res["test"][n])[:, j], np.array(res["test"]["random"])[:, j])
                                  for j in range(len(budgets()))] for n in SCHEDULES}  # fmt: skip
        res["ft_test"] = {
            n: sealed.evaluate(f"finetune/{n}", lambda t, p=p: [[_f1(t, q) for q in r] for r in p])
            for n, p in ft_pred.items()
        }
        res["ledger"] = list(sealed.ledger)
    return res


def _rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    note = f"{res['seeds']} seeds, pretrain {res['steps']} steps"
    for split in ("val", "test"):
        if split not in res:
            continue
        for n, runs in res[split].items():
            for j, b in enumerate(res["budgets"]):
                s = summarise(np.array(runs)[:, j])
                rows.append({"area": AREA, "metric": f"{split} probe {n} {b} labels", "value": s.mean,
                             "unit": "macro-F1", "note": f"se {s.se:.3f}; {note}"})  # fmt: skip
        for n, cs in res[f"{split}_paired"].items():
            for b, c in zip(res["budgets"], cs):
                rows.append({"area": AREA, "metric": f"{split} {n} minus random {b} labels",
                             "value": c["diff"], "unit": "macro-F1",
                             "note": f"paired se {c['se']:.3f}, p {c['p']:.2g}"})  # fmt: skip
    return rows


def _plot(res: dict[str, Any], split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {"random": "--", "active": "-", "active-margin": ":"}
    per_class = np.asarray(res["budgets"]) / N_REPORT_CLASSES
    for n, runs in res[split].items():
        a = np.asarray(runs)
        ax.errorbar(per_class, a.mean(0), yerr=a.std(0, ddof=1) / np.sqrt(len(a)), ls=styles[n],
                    marker="o", capsize=3, label=f"linear probe, {n}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(per_class, [f"{k:g}" for k in per_class])
    ax.set_xlabel("labels per class (total / 6)")
    ax.set_ylabel(f"macro-F1 ({'held-out test set' if split == 'test' else 'validation'})")
    ax.set_title(f"Label efficiency, synthetic 6 classes ({res['seeds']} seeds, mean +- se)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)
    plt.close(fig)


def run(quick: bool = False, *, steps: int | None = None, splits: tuple[str, ...] = ("val",),
        log=print) -> list[dict[str, Any]]:  # fmt: skip
    if quick:
        res = bench(
            600, 300, steps or 20, seeds=2, ft_seeds=1, score_test="test" in splits, log=log
        )
    else:
        res = bench(5000, 1200, steps or 2000, score_test="test" in splits, log=log)
        _plot(res, "test" if "test" in res else "val")
    bq.OUT.mkdir(parents=True, exist_ok=True)
    out = bq.OUT / f"efficiency-{res['steps']}-{'_'.join(splits)}{'-quick' if quick else ''}.json"
    out.write_text(json.dumps(res, indent=1, default=float))
    log(f"results: {out}")
    return _rows(res)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--steps", type=int, default=None, help="pretraining steps (2000)")
    p.add_argument("--splits", default="val", help="val, or val,test to score the test set too")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    splits = tuple(a.splits.split(","))
    if not set(splits) <= {"val", "test"} or "val" not in splits:
        p.error(f"--splits: expected val or val,test, got {a.splits!r}")
    for r in run(a.quick, steps=a.steps, splits=splits):
        print(f"{r['metric']:<40} {r['value']:>8.3f} {r['unit']:<9} {r['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
