"""Representation quality on the synthetic benchmark (issue 4): few labels, macro-F1.

Six classes (mogi, sill, dyke, earthquake, subsidence, none), ``n_pool`` unlabelled 64 px
samples for pretraining and a held-out test set generated with another seed. For each seed, 10
labels per class are drawn from the pool and four representations are compared on the test set:

* ``ssl``: the pretrained encoder (default config, time budget ``minutes``) + linear probe
  (the product's ``FewShotClassifier("linear")``: C chosen by cross-validation on the labels);
* ``random-init``: the same encoder, untrained + linear probe;
* ``pca``: PCA (64 components, fitted on the pool) of the raw input channels + linear probe;
* ``supervised``: the same CNN trained from scratch on the 60 labels (with the same
  augmentations), its own linear head.

All run once on phase channels and once on RGB renderings of the same samples, rendered in a
mix of the two public palette styles (cyclic; hue cycle shaded by coherence), as labelled public
sets are. Pretraining uses no labels.

    python benchmarks/bench_quality.py            # 5,000 samples, 15 min pretraining per kind
    python benchmarks/bench_quality.py --quick    # 600 samples, 1 min per kind (smoke run)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

AREA = "quality"
OUT = Path(__file__).resolve().parent / "out"
METHODS = ("ssl", "random-init", "pca", "supervised")


def make_data(n: int, seed: int, difficulty: str = "medium"):
    """Synthetic phase samples (cached under benchmarks/out as Zarr) with labels."""
    from insarexplore.data.io.store import open_dataset, save_dataset
    from insarexplore.data.synthetic import generate

    path = OUT / f"quality-{difficulty}-{n}-{seed}.zarr"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        save_dataset(generate(n, size=64, seed=seed, difficulty=difficulty), path)
    return open_dataset(path, lazy=False)


def render_mixed(ds, seed: int = 0):
    """RGB renderings of a phase Dataset: half cyclic palette, half hue cycle shaded by
    coherence, chosen at random per sample (every class gets both)."""
    from insarexplore.data.palettes import render_phase
    from insarexplore.data.schema import new_dataset

    rng = np.random.default_rng(seed)
    phase = ds["phase"].values
    coh = ds["coherence"].values if "coherence" in ds else None
    images = np.empty((*phase.shape, 3), dtype=np.uint8)
    for i in range(len(phase)):
        if rng.random() < 0.5:
            images[i] = render_phase(phase[i], "cyclic")
        else:
            amp = None if coh is None else np.sqrt(np.clip(coh[i], 0, 1))
            images[i] = render_phase(phase[i], "rainbow", amplitude=amp)
    return new_dataset(image=images, sample=ds["sample"].values, label=ds["label"].values)


def few_labels(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
            for c in np.unique(labels)
        ]
    )


def probe_f1(train_x, train_y, test_x, test_y) -> float:
    """Macro-F1 of the product's linear probe (standardised features, logistic regression with
    C chosen by cross-validated log-loss on the few labels themselves)."""
    from sklearn.metrics import f1_score

    from insarexplore.explore.fewshot import FewShotClassifier

    clf = FewShotClassifier("linear", calibrate=False).fit(train_x, train_y)
    return float(f1_score(test_y, clf.predict(test_x), average="macro"))


def supervised_f1(x_train, y_train, x_test, y_test, kind: str, seed: int, steps: int,
                  encoder_config: dict | None = None) -> float:  # fmt: skip
    """The same encoder (``encoder_config``: the SSL encoder's, default resnet-micro) + linear
    head trained from scratch on the few labels (augmented)."""
    import torch
    from sklearn.metrics import f1_score
    from torch import nn

    from insarexplore.models import build_encoder
    from insarexplore.models.serialization import build_from_config
    from insarexplore.ssl import PhaseAugment, RGBAugment

    torch.manual_seed(seed)
    if encoder_config is None:
        enc = build_encoder("resnet-micro", x_train.shape[1])
    else:
        enc = build_from_config(encoder_config)
    classes, y = np.unique(y_train, return_inverse=True)
    model = nn.Sequential(enc, nn.Linear(enc.out_dim, len(classes)))
    aug = (PhaseAugment if kind == "phase" else RGBAugment)(x_train.shape[-1])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    xt, yt = torch.as_tensor(x_train), torch.as_tensor(y)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (min(64, len(xt)),))
        loss = nn.functional.cross_entropy(model(aug(xt[idx])), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        pred = torch.cat(
            [
                model(torch.as_tensor(x_test[i : i + 256])).argmax(1)
                for i in range(0, len(x_test), 256)
            ]
        )
    return float(f1_score(y_test, classes[pred.numpy()], average="macro"))


def ssl_run(pool, kind: str, *, minutes: float | None = 15.0, steps: int | None = None,
            log=print) -> Path:  # fmt: skip
    """The default encoder pretrained on ``pool`` (no labels), cached under ``OUT`` by its
    config: a finished run is reused (the label-efficiency benchmark shares it), an interrupted
    one resumes. Budget: ``steps`` if given, else ``minutes`` of wall clock."""
    from insarexplore.ssl.train import PretrainConfig, pretrain

    cfg = PretrainConfig(minutes=None if steps else minutes, steps=steps, monitor_every=0,
                         tensorboard=False)  # fmt: skip
    key = cfg.resume_key(kind, 4 if kind == "phase" else 3)
    run = OUT / f"ssl-{kind}-{pool.sizes['sample']}-{key}"
    meta = run / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("status") == "done":
        log(f"[{kind}] reusing the pretrained encoder in {run}")
        return run
    budget = f"{steps} steps" if steps else f"{minutes:g} min"
    log(f"[{kind}] pretraining the default encoder on {pool.sizes['sample']} samples ({budget})")
    pretrain(pool, cfg, out_dir=run)
    return run


def evaluate_kind(pool, test, kind: str, *, minutes: float | None, seeds: list[int], sup_steps: int,
                  per_class: int = 10, steps: int | None = None,
                  log=print) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    from sklearn.decomposition import PCA

    from insarexplore.embed import Embedder
    from insarexplore.models.serialization import build_from_config

    info: dict[str, Any] = {}
    run = ssl_run(pool, kind, minutes=minutes, steps=steps, log=log)
    meta = json.loads((run / "meta.json").read_text())
    info["pretrain_s"], info["pretrain_steps"] = meta["elapsed_s"], meta["steps"]
    encoder_config = meta["encoder_config"]
    log(f"[{kind}] pretrained {meta['steps']} steps in {info['pretrain_s']:.0f} s")
    ssl = Embedder(run, progress=False).fit()
    pool_y = np.asarray(pool["label"].values).astype(str)
    test_y = np.asarray(test["label"].values).astype(str)
    x_pool = pool.insar.to_channels(kind)
    x_test = test.insar.to_channels(kind)
    feats = {"ssl": (ssl.transform(x_pool), ssl.transform(x_test))}
    import torch

    torch.manual_seed(0)
    rand = Embedder(build_from_config(encoder_config), progress=False).fit()
    feats["random-init"] = (rand.transform(x_pool), rand.transform(x_test))
    pca = PCA(64, random_state=0).fit(x_pool.reshape(len(x_pool), -1))
    feats["pca"] = (
        pca.transform(x_pool.reshape(len(x_pool), -1)),
        pca.transform(x_test.reshape(len(x_test), -1)),
    )
    scores: dict[str, list[float]] = {m: [] for m in METHODS}
    for seed in seeds:
        idx = few_labels(pool_y, per_class, seed)
        for m in ("ssl", "random-init", "pca"):
            scores[m].append(probe_f1(feats[m][0][idx], pool_y[idx], feats[m][1], test_y))
        scores["supervised"].append(
            supervised_f1(
                x_pool[idx], pool_y[idx], x_test, test_y, kind, seed, sup_steps, encoder_config
            )  # fmt: skip
        )
        log(f"[{kind}] seed {seed}: " + ", ".join(f"{m} {scores[m][-1]:.3f}" for m in METHODS))
    rows = []
    for m in METHODS:
        v = np.array(scores[m]) * 100
        rows.append({"area": AREA, "metric": f"{kind} macro-F1 {m}", "value": float(v.mean()),
                     "unit": "%", "note": f"std {v.std(ddof=1) if len(v) > 1 else 0:.1f} over {len(v)} label draws, "
                     f"{per_class} labels/class, test n={len(test_y)}"})  # fmt: skip
    margin = min(np.mean(scores["ssl"]) - np.mean(scores[m]) for m in METHODS[1:]) * 100
    rows.append({"area": AREA, "metric": f"{kind} ssl margin over best baseline", "value": float(margin),
                 "unit": "points", "note": f"pretraining {info['pretrain_steps']} steps, {info['pretrain_s'] / 60:.1f} min"})  # fmt: skip
    return rows, info


def run(quick: bool = False, *, n_pool: int | None = None, n_test: int | None = None,
        minutes: float | None = None, seeds: int | None = None, kinds: tuple[str, ...] = ("phase", "rgb"),
        sup_steps: int | None = None, steps: int | None = None,
        log=print) -> list[dict[str, Any]]:  # fmt: skip
    """The quality table; ``quick`` shrinks every size for a smoke run. ``steps`` replaces the
    wall-clock budget by a step count (for loaded machines: the same training whatever the load)."""
    import torch

    n_pool = n_pool or (600 if quick else 5000)
    n_test = n_test or (300 if quick else 1200)
    minutes = minutes if minutes is not None else (1.0 if quick else 15.0)
    n_seeds = seeds or (2 if quick else 5)
    sup_steps = sup_steps or (60 if quick else 300)
    gen_s = (n_pool + n_test) * 0.02
    est = gen_s + len(kinds) * (minutes * 60 + n_seeds * (sup_steps * 0.25 + 5) + 30)
    budget = f"{steps} steps" if steps else f"{minutes:g} min"
    log(f"quality benchmark: {n_pool} pool + {n_test} test samples, {budget} of pretraining per "
        f"kind, {n_seeds} seeds; estimated total {est / 60:.0f} min on 2 CPU cores "
        f"(data generation is cached in {OUT})")  # fmt: skip
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pool = make_data(n_pool, seed=1)
    test = make_data(n_test, seed=2)
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        p, t = (pool, test) if kind == "phase" else (render_mixed(pool, 1), render_mixed(test, 2))
        r, _ = evaluate_kind(p, t, kind, minutes=minutes, seeds=list(range(n_seeds)),
                             sup_steps=sup_steps, steps=steps, log=log)  # fmt: skip
        rows += r
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'metric':48s} {'value':>8s} unit    note"]
    lines += [f"{r['metric']:48s} {r['value']:8.2f} {r['unit']:7s} {r['note']}" for r in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--n-pool", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="pretraining steps instead of --minutes (same run whatever the load)",
    )
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--kinds", default="phase,rgb")
    parser.add_argument("--sup-steps", type=int, default=None, help="supervised baseline steps")
    a = parser.parse_args()
    print(_table(run(a.quick, n_pool=a.n_pool, minutes=a.minutes, seeds=a.seeds,
                     kinds=tuple(a.kinds.split(",")), sup_steps=a.sup_steps, steps=a.steps)))  # fmt: skip
