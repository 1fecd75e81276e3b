"""Representation quality on the synthetic benchmark under the evaluation protocol (issue 15).

Six classes (mogi, sill, dyke, earthquake, subsidence, none), 64 px. The protocol
(``insarexplore.explore.protocol``), fixed before running:

* data: ``n_pool`` samples from generator seed 1, split by frame (``explore.splits``) into a
  train pool (80 %: pretraining, without labels, and the source of every few-label draw) and a
  validation set (20 %, frames the pool does not have); a test set of ``n_test`` samples from
  generator seed 3 (seed 2 was the test set of this benchmark before it had a validation set,
  when earlier defaults were set on it, so it is not used). The generator draws frames from a
  fixed list of places, so most test frames also occur in the pool: validation measures new
  frames, test new interferograms. The test labels are sealed: each reported configuration is
  scored on them once.
* draws: ``--seeds`` (default 20) draws of ``--labels`` (default 10) labels per class from the
  train pool; every representation is scored on the same draws, so differences are paired.
* representations, each with the product's linear probe (``FewShotClassifier("linear")``, C
  chosen by cross-validation on the drawn labels themselves):
  ``ssl`` (the encoder pretrained on the pool; its options are this script's options),
  ``random-init`` (the same encoder untrained), ``pca`` (64 components of the raw channels,
  fitted on the pool); ``ssl-knn``: the SSL features with the product's kNN probe;
  ``supervised``: a CNN trained from scratch on the drawn labels with the same augmentations,
  at its own best: the preset (``--sup-presets``) with the best mean validation score over the
  first 5 draws is the one reported.
* every choice (the supervised preset here; the SSL configuration across runs of this script) is
  made on validation (``--splits val``); ``--splits val,test`` also scores the test set, once per
  configuration, with paired t-tests of ``ssl`` against each baseline over the draws.

The physics bank (``PretrainConfig.physics``) is off here by default: its labelled interferograms
come from the same generator and the same six classes as this benchmark's test set, so with it
the ``ssl`` row would not be label-free (``--physics 2`` measures it anyway).

    python benchmarks/bench_quality.py --steps 2000                       # validation only
    python benchmarks/bench_quality.py --steps 2000 --splits val,test     # and the test set
    python benchmarks/bench_quality.py --steps 2000 --method vicreg       # an ablation row
    python benchmarks/bench_quality.py --quick                           # smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from insarexplore.explore.protocol import (  # noqa: E402
    DEFAULT_SEEDS,
    SealedTest,
    draw_per_class,
    paired,
    summarise,
)

AREA = "quality"
OUT = Path(__file__).resolve().parent / "out"
POOL_SEED, TEST_SEED = 1, 3
PROBED = ("ssl", "ssl-knn", "random-init", "pca")
BASELINES = ("random-init", "pca", "supervised", "ssl-knn")
SELECT_DRAWS = 5  # draws used to choose the supervised preset on validation
SUPERVISED_VERSION = 1  # bump when supervised_predict's training changes (cache key)


# -- data ------------------------------------------------------------------------------------
def make_data(n: int, seed: int, difficulty: str = "medium"):
    """Synthetic phase samples (cached under benchmarks/out as Zarr) with labels."""
    from insarexplore.data.io.store import open_dataset, save_dataset
    from insarexplore.data.synthetic import generate

    path = OUT / f"quality-{difficulty}-{n}-{seed}.zarr"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        save_dataset(generate(n, size=64, seed=seed, difficulty=difficulty), path)
    return open_dataset(path, lazy=False)


def protocol_data(n_pool: int, n_test: int):
    """(pool, validation, test) Datasets: pool and validation from generator seed ``POOL_SEED``
    split by frame (no frame on both sides), test from ``TEST_SEED``."""
    from insarexplore.explore.splits import group_train_test_split

    full = make_data(n_pool, seed=POOL_SEED)
    train, val = group_train_test_split(full, test_size=0.2, by=("group", "frame"), seed=0)
    return full.isel(sample=train), full.isel(sample=val), make_data(n_test, seed=TEST_SEED)


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


# -- representations ---------------------------------------------------------------------------
def pretrain_config(options: dict[str, Any] | None = None, **budget):
    """The default ``PretrainConfig`` with the benchmark's overrides (``options``: field ->
    value, e.g. ``{"method": "vicreg"}``) and budget (``steps`` or ``minutes``)."""
    from insarexplore.ssl.train import PretrainConfig

    options = dict(options or {})
    options.setdefault("physics", 0.0)
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    unknown = set(options) - fields
    if unknown:
        raise ValueError(f"unknown PretrainConfig fields: {sorted(unknown)}")
    return PretrainConfig(monitor_every=0, tensorboard=False, **options, **budget)


def ssl_run(pool, kind: str, *, minutes: float | None = 15.0, steps: int | None = None,
            options: dict[str, Any] | None = None, log=print) -> Path:  # fmt: skip
    """The encoder pretrained on ``pool`` (no labels) with ``options``, cached under ``OUT`` by
    its config: a finished run is reused (the label-efficiency benchmark shares it), an
    interrupted one resumes. Budget: ``steps`` if given, else ``minutes`` of wall clock."""
    from insarexplore.ssl.train import pretrain

    budget = {"steps": steps} if steps else {"minutes": minutes}
    cfg = pretrain_config(options, **budget)
    key = cfg.resume_key(kind, 4 if kind == "phase" else 3)
    run = OUT / f"ssl-{kind}-{pool.sizes['sample']}-{key}"
    meta = run / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("status") == "done":
        log(f"[{kind}] reusing the pretrained encoder in {run}")
        return run
    what = f"{steps} steps" if steps else f"{minutes:g} min"
    log(f"[{kind}] pretraining {cfg.arch}/{cfg.method} on {pool.sizes['sample']} samples ({what})")
    pretrain(pool, cfg, out_dir=run)
    return run


def features(xs: list[np.ndarray], run: Path) -> dict[str, tuple[np.ndarray, ...]]:
    """Features of the (pool, val, test) channels ``xs`` per representation: ``ssl``,
    ``random-init``, ``pca``."""
    import torch
    from sklearn.decomposition import PCA

    from insarexplore.embed import Embedder
    from insarexplore.models.serialization import build_from_config

    meta = json.loads((run / "meta.json").read_text())
    ssl = Embedder(run, progress=False).fit()
    torch.manual_seed(0)
    rand = Embedder(build_from_config(meta["encoder_config"]), progress=False).fit()
    flat = [x.reshape(len(x), -1) for x in xs]
    pca = PCA(64, random_state=0).fit(flat[0])
    return {
        "ssl": tuple(ssl.transform(x) for x in xs),
        "random-init": tuple(rand.transform(x) for x in xs),
        "pca": tuple(pca.transform(f) for f in flat),
    }


def probe_predict(method: str, x_train, y_train, *xs) -> list[np.ndarray]:
    """The product's few-shot classifier (``"linear"`` or ``"knn"``) fitted on the drawn labels,
    predictions for each of ``xs``."""
    from insarexplore.explore.fewshot import FewShotClassifier

    clf = FewShotClassifier(method, calibrate=False).fit(x_train, y_train)
    return [clf.predict(x) for x in xs]


def _input_layer(kind: str) -> str:
    """The default pretraining input layer for ``kind`` (the supervised CNN uses it too)."""
    from insarexplore.ssl.train import PretrainConfig

    d = PretrainConfig()
    return d.phase_input if kind == "phase" else d.rgb_input


def supervised_predict(x_train, y_train, xs, kind: str, preset: str, seed: int,
                       steps: int) -> list[np.ndarray]:  # fmt: skip
    """A ``preset`` CNN (with the default input layer for this kind) + linear head trained
    from scratch on the drawn labels, augmented as in pretraining; predictions for each of
    ``xs``."""
    import torch
    from torch import nn

    from insarexplore.models import build_encoder
    from insarexplore.ssl import PhaseAugment, RGBAugment

    torch.manual_seed(seed)
    enc = build_encoder(preset, x_train.shape[1], phase_input=_input_layer(kind))
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
    out = []
    with torch.no_grad():
        for x in xs:
            pred = [model(torch.as_tensor(x[i : i + 256])).argmax(1) for i in range(0, len(x), 256)]
            out.append(classes[torch.cat(pred).numpy()])
    return out


# -- the protocol ------------------------------------------------------------------------------
def _f1(y_true, y_pred) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro"))


def evaluate_kind(pool, val, test, kind: str, run: Path, *, seeds: int, per_class: int,
                  sup_presets: tuple[str, ...], sup_steps: int, score_test: bool,
                  log=print) -> dict[str, Any]:  # fmt: skip
    """Validation scores of every representation over the same draws; the supervised preset
    chosen on validation; with ``score_test``, test scores through a :class:`SealedTest`
    (once per representation). Returns ``{"val": {name: [f1 per draw]}, "test": ...,
    "chosen": preset, "paired": ...}``."""
    xs = [d.insar.to_channels(kind) for d in (pool, val, test)]
    feats = features(xs, run)
    feats["ssl-knn"] = feats["ssl"]
    y_pool = np.asarray(pool["label"].values).astype(str)
    y_val = np.asarray(val["label"].values).astype(str)
    sealed = SealedTest(
        np.arange(test.sizes["sample"]), np.asarray(test["label"].values).astype(str)
    )
    draws = [draw_per_class(y_pool, np.arange(len(y_pool)), per_class, np.random.default_rng(s))
             for s in range(seeds)]  # fmt: skip

    val_scores: dict[str, list[float]] = {}
    test_preds: dict[str, list[np.ndarray]] = {}
    for name in PROBED:
        f_pool, f_val, f_test = feats[name]
        method = "knn" if name == "ssl-knn" else "linear"
        for idx in draws:
            pv, pt = probe_predict(method, f_pool[idx], y_pool[idx], f_val, f_test)
            val_scores.setdefault(name, []).append(_f1(y_val, pv))
            test_preds.setdefault(name, []).append(pt)
        log(f"[{kind}] {name:12s} val {summarise(val_scores[name])}")

    # the supervised baseline at its own best: the preset chosen on validation (first draws)
    def trained(preset: str, s: int) -> tuple[np.ndarray, np.ndarray]:
        # (val, test) predictions; they do not depend on the SSL configuration, so they are
        # cached (under OUT/supervised) and shared by every configuration's run
        path = OUT / "supervised" / f"{kind}-{preset}-{s}-{_key(kind, preset, s)}.json"
        if path.exists():
            v, t = json.loads(path.read_text())
            return np.asarray(v), np.asarray(t)
        idx = draws[s]
        v, t = supervised_predict(xs[0][idx], y_pool[idx], xs[1:], kind, preset, s, sup_steps)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([v.tolist(), t.tolist()]))
        return v, t

    def _key(kind: str, preset: str, s: int) -> str:
        # everything the predictions depend on: the samples (ids of the draw, validation and
        # test), the model and its training; not the SSL configuration
        ids = [np.asarray(d["sample"].values).astype(str) for d in (pool, val, test)]
        parts = [kind, preset, sup_steps, SUPERVISED_VERSION, _input_layer(kind), ids[0][draws[s]].tolist(),
                 ids[1].tolist(), ids[2].tolist()]  # fmt: skip
        return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]

    sup: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for preset in sup_presets:
        sup[preset] = [trained(preset, s) for s in range(min(SELECT_DRAWS, seeds))]
        log(f"[{kind}] supervised {preset}: val {summarise([_f1(y_val, p[0]) for p in sup[preset]])}"
            f" over the first {len(sup[preset])} draws")  # fmt: skip
    chosen = max(sup_presets, key=lambda p: np.mean([_f1(y_val, v) for v, _ in sup[p]]))
    runs = sup[chosen]
    runs += [trained(chosen, s) for s in range(len(runs), seeds)]
    val_scores["supervised"] = [_f1(y_val, v) for v, _ in runs]
    test_preds["supervised"] = [t for _, t in runs]
    log(f"[{kind}] supervised ({chosen}) val {summarise(val_scores['supervised'])}")

    draw_ids = np.asarray(pool["sample"].values).astype(str)[np.concatenate(draws)].tolist()
    result: dict[str, Any] = {"val": val_scores, "chosen": chosen, "draws": seeds,
                              "per_class": per_class,
                              "draws_hash": hashlib.sha1(json.dumps(draw_ids).encode()).hexdigest()}  # fmt: skip
    result["val_paired"] = {b: paired(val_scores["ssl"], val_scores[b]) for b in BASELINES}
    if score_test:
        result["test"] = {
            name: sealed.evaluate(f"{kind}/{name}", lambda y, p=preds: [_f1(y, q) for q in p])
            for name, preds in test_preds.items()
        }
        result["test_paired"] = {
            b: paired(result["test"]["ssl"], result["test"][b]) for b in BASELINES
        }
        result["ledger"] = list(sealed.ledger)
    return result


def _ledger(config: str, kinds: tuple[str, ...]) -> None:
    """Append the configurations scored on the test set to ``OUT/quality-test-ledger.json``, and
    say when one was scored before (a rerun reproduces a figure; it must not become a choice)."""
    path = OUT / "quality-test-ledger.json"
    seen = json.loads(path.read_text()) if path.exists() else []
    for kind in kinds:
        entry = f"{config}/{kind}"
        if entry in seen:
            print(f"note: {entry} was scored on the test set before; this reproduces it")
        else:
            seen.append(entry)
    OUT.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seen, indent=1))


def config_name(options: dict[str, Any], steps: int | None, minutes: float | None) -> str:
    parts = [f"{k}={v}" for k, v in sorted(options.items())]
    return "+".join(["default", *parts]) + (f"@{steps}steps" if steps else f"@{minutes:g}min")


def run(quick: bool = False, *, n_pool: int | None = None, n_test: int | None = None,
        minutes: float | None = None, steps: int | None = None, seeds: int | None = None,
        per_class: int = 10, kinds: tuple[str, ...] = ("phase", "rgb"),
        options: dict[str, Any] | None = None, sup_presets: tuple[str, ...] = ("resnet-micro", "resnet-tiny"),
        sup_steps: int | None = None, splits: tuple[str, ...] = ("val",),
        log=print) -> list[dict[str, Any]]:  # fmt: skip
    """The quality table as rows for ``run_all``; ``quick`` shrinks every size for a smoke run."""
    options = dict(options or {})
    n_pool = n_pool or (600 if quick else 5000)
    n_test = n_test or (300 if quick else 1200)
    if steps is None and minutes is None:
        steps = 20 if quick else 2000
    seeds = seeds or (3 if quick else DEFAULT_SEEDS)
    sup_steps = sup_steps or (30 if quick else 300)
    if quick:
        sup_presets = sup_presets[:1]
    score_test = "test" in splits
    config = config_name(options, steps, minutes)
    log(f"quality benchmark {config}: {n_pool} samples (pool + validation) and {n_test} test, "
        f"{seeds} draws of {per_class} labels per class, kinds {', '.join(kinds)}, "
        f"scoring {' and '.join(splits)}")  # fmt: skip
    pool, val, test = protocol_data(n_pool, n_test)
    rows: list[dict[str, Any]] = []
    results = {}
    for kind in kinds:
        if kind == "rgb":
            p, v, t = render_mixed(pool, 1), render_mixed(val, 3), render_mixed(test, 2)
        else:
            p, v, t = pool, val, test
        t0 = time.perf_counter()
        run_dir = ssl_run(p, kind, minutes=minutes, steps=steps, options=options, log=log)
        meta = json.loads((run_dir / "meta.json").read_text())
        res = evaluate_kind(p, v, t, kind, run_dir, seeds=seeds, per_class=per_class,
                            sup_presets=sup_presets, sup_steps=sup_steps, score_test=score_test,
                            log=log)  # fmt: skip
        res.update(pretrain_steps=meta["steps"], pretrain_s=meta["elapsed_s"],
                   wall_s=time.perf_counter() - t0, n_pool=p.sizes["sample"],
                   n_val=v.sizes["sample"], n_test=t.sizes["sample"])  # fmt: skip
        results[kind] = res
        rows += _rows(config, kind, res, per_class)
    if score_test and not quick:
        _ledger(config, kinds)
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"{config}-{n_pool}-{'_'.join(kinds)}-{seeds}x{per_class}-{'_'.join(splits)}"
    out = OUT / f"quality-{name.replace('/', '_')}.json"
    out.write_text(json.dumps(results, indent=1, default=float))
    log(f"results: {out}")
    return rows


def _rows(config: str, kind: str, res: dict[str, Any], per_class: int) -> list[dict[str, Any]]:
    rows = []
    note = (f"{config}; {res['draws']} draws of {per_class}/class; pool {res['n_pool']}, "
            f"val {res['n_val']}, test {res['n_test']}")  # fmt: skip
    for split in ("val", "test"):
        if split not in res:
            continue
        for name, v in res[split].items():
            s = summarise(np.asarray(v) * 100)
            extra = f" ({res['chosen']})" if name == "supervised" else ""
            rows.append({"area": AREA, "metric": f"{kind} {split} macro-F1 {name}{extra}",
                         "value": s.mean, "unit": "%", "note": f"se {s.se:.1f}, sd {s.std:.1f}; {note}"})  # fmt: skip
        for b, c in res[f"{split}_paired"].items():
            rows.append({"area": AREA, "metric": f"{kind} {split} ssl minus {b}",
                         "value": c["diff"] * 100, "unit": "points",
                         "note": f"paired se {c['se'] * 100:.1f}, p {c['p']:.2g}"})  # fmt: skip
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'metric':44s} {'value':>8s} unit    note"]
    lines += [f"{r['metric']:44s} {r['value']:8.2f} {r['unit']:7s} {r['note']}" for r in rows]
    return "\n".join(lines)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for field, value in (("arch", args.arch), ("method", args.method), ("image_size", args.image_size),
                         ("batch_size", args.batch_size), ("physics", args.physics)):  # fmt: skip
        if value is not None:
            opts[field] = value
    if args.input is not None:
        if args.kinds not in ("phase", "rgb"):
            raise SystemExit("error: --input needs --kinds phase or --kinds rgb (one input layer)")
        opts["phase_input" if args.kinds == "phase" else "rgb_input"] = args.input
    return opts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--n-pool", type=int, default=None, help="pool + validation samples (5000)")
    p.add_argument("--n-test", type=int, default=None, help="test samples (1200)")
    p.add_argument("--steps", type=int, default=None, help="pretraining steps (2000)")
    p.add_argument(
        "--minutes", type=float, default=None, help="pretraining minutes instead of steps"
    )
    p.add_argument("--seeds", type=int, default=None, help=f"label draws ({DEFAULT_SEEDS})")
    p.add_argument("--labels", type=int, default=10, help="labels per class per draw (10)")
    p.add_argument("--kinds", default="phase,rgb", help="phase, rgb or both (phase,rgb)")
    p.add_argument("--splits", default="val", help="val, or val,test to score the test set too")
    p.add_argument("--arch", default=None, help="encoder preset (resnet-micro)")
    p.add_argument(
        "--method", default=None, choices=("simclr", "moco", "vicreg"), help="SSL method"
    )
    p.add_argument("--image-size", type=int, default=None, help="view size (the preset's, 48)")
    p.add_argument(
        "--input", default=None, help="input layer: raw, gradient (phase) / hue-gradient (rgb)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="pretraining batch (128)")
    p.add_argument("--physics", type=float, default=None, help="physics-bank weight (0 here)")
    p.add_argument("--sup-presets", default="resnet-micro,resnet-tiny",
                   help="supervised baseline presets, the best on validation is reported")  # fmt: skip
    p.add_argument("--sup-steps", type=int, default=None, help="supervised training steps (300)")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    a = p.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if not set(a.kinds.split(",")) <= {"phase", "rgb"}:
        p.error(f"--kinds: expected phase, rgb or phase,rgb, got {a.kinds!r}")
    splits = tuple(a.splits.split(","))
    if not set(splits) <= {"val", "test"} or "val" not in splits:
        p.error(f"--splits: expected val or val,test, got {a.splits!r}")
    rows = run(a.quick, n_pool=a.n_pool, n_test=a.n_test, minutes=a.minutes, steps=a.steps,
               seeds=a.seeds, per_class=a.labels, kinds=tuple(a.kinds.split(",")), options=_options(a),
               sup_presets=tuple(a.sup_presets.split(",")), sup_steps=a.sup_steps, splits=splits)  # fmt: skip
    print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
