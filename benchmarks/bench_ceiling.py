"""How well deformation can be told from none at all in the training views: a supervised
encoder trained on labelled physics-made interferograms alone (the physics bank of
``ssl.physics``, no self-supervision), scored on bank images it never saw.

The proxy of ``bench_transfer.py`` draws its labelled sets from the same generator, by default
at the same difficulty (with other sites, renderings read back and wedges), so this indicates how far an
encoder of that size and view can go there: weak positives (under two fringes) and turbulent
none scenes overlap in the views. An indication from the configurations run, not a bound. Training views are pretraining's (``PhaseAugment``, crops of 35-100 % of a source
4/3 of the view's side); scoring is on the whole scene brought down to the view. Reported: the
AUC of the score 1 - P(none) and the balanced accuracy at its best threshold (chosen on the
scored images themselves: an upper bound, not a result a user gets).

    python benchmarks/bench_ceiling.py --arch resnet-micro --view 48 --steps 1500
    python benchmarks/bench_ceiling.py --arch resnet-tiny --view 64 --steps 1500
    python benchmarks/bench_ceiling.py --steps 9000 --bank 16384
    python benchmarks/bench_ceiling.py --steps 4500 --proxy   # also on the proxy's val set
    python benchmarks/bench_ceiling.py --steps 4500 --proxy --labelled-difficulty easy

``--proxy`` also scores the trained encoder and head on ``bench_transfer.py``'s **validation**
renderings (ingested as the user would, embedded as a model embeds): the zero-shot AUC and the
few-label probes of ``bench_transfer.score`` on the log-odds of 1 - P(none), the same protocol
as its ``deformation`` method, so the two compare directly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STORED = 227  # the proxy pool's stored size
TRAIN_SEED, TEST_SEED = 11, 12  # the banks' own generator seeds (not the proxy's)


def best_balanced_accuracy(pos: np.ndarray, score: np.ndarray) -> float:
    """The highest balanced accuracy of ``score > t`` over every threshold ``t``."""
    order = np.argsort(-score)
    p = pos[order].astype(float)
    tpr = np.cumsum(p) / max(p.sum(), 1.0)
    tnr = 1.0 - np.cumsum(1.0 - p) / max((1.0 - p).sum(), 1.0)
    return float(np.max(np.r_[0.5, (tpr + tnr) / 2.0]))


def proxy_scores(enc, head, none: int, view: int, difficulty: str = "medium") -> dict:
    """The encoder and head on bench_transfer's validation renderings: zero-shot AUC and the
    probes of ``bench_transfer.score`` on the log-odds of 1 - P(none) (validation only)."""
    import bench_transfer as bt
    import torch
    from sklearn.metrics import roc_auc_score

    from insarexplore.embed import Embedder

    name = bt.labelled_name("val", 400, 370, difficulty=difficulty)
    folder = bt.make_labelled("val", 400, 370, bt.OUT / name, difficulty=difficulty)
    embedder = Embedder(enc, progress=False, size=view, dihedral=True)
    vecs, y, groups, sites = bt.embed_folder(folder, embedder, STORED)
    with torch.no_grad():
        p = head(torch.from_numpy(np.asarray(vecs, np.float32))).softmax(1)[:, none].double()
    p = p.clamp(1e-7, 1 - 1e-7).numpy()
    logodds = np.log1p(-p) - np.log(p)  # of 1 - P(none)
    r = bt.score(logodds[:, None], y, groups, sites)
    out = {f"val {k}": round(v, 3) for k, v in r.items() if isinstance(v, float) and "_" not in k}
    return {"val zero-shot AUC": round(float(roc_auc_score(y != "none", logodds)), 3), **out}


def run_one(arch: str, view: int, steps: int, bank_n: int, test_n: int, batch: int = 128,
            lr: float = 2e-3, seed: int = 0, proxy: bool = False,
            difficulty: str = "medium") -> dict:  # fmt: skip
    import torch
    import torch.nn.functional as F
    from sklearn.metrics import roc_auc_score

    from insarexplore.models.encoders import build_encoder
    from insarexplore.ssl.augment import PhaseAugment, resize_batch
    from insarexplore.ssl.physics import make_physics_bank
    from insarexplore.ssl.train import view_source_size

    src = view_source_size(view, STORED)
    t0 = time.perf_counter()
    kw = dict(size=src, kind="phase", coherence=False, stored_size=STORED)
    train = make_physics_bank(bank_n, seed=TRAIN_SEED, **kw)
    test = make_physics_bank(test_n, seed=TEST_SEED, **kw)
    t_bank = time.perf_counter() - t0
    torch.manual_seed(seed)
    enc = build_encoder(arch, 4, channel_kind="phase", phase_input="gradient")
    head = torch.nn.Linear(enc.out_dim, len(train.classes))
    augment = PhaseAugment(view)
    params = [*enc.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
    t0 = time.perf_counter()
    from tqdm.auto import tqdm

    for _ in tqdm(range(steps), desc=f"{arch} {view} px", unit="step", leave=False):
        x, y, _ = train.sample(batch, torch.device("cpu"))
        loss = F.cross_entropy(head(enc(augment(x))), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    t_train = time.perf_counter() - t0
    enc.eval()
    none = train.classes.index("none")
    with torch.no_grad():
        xt = resize_batch(test.x.float(), view, phase=True)
        prob = torch.cat([head(enc(xt[i : i + 256])).softmax(1) for i in range(0, len(xt), 256)])
    score = 1.0 - prob[:, none].numpy()
    pos = (test.y != none).numpy()
    extra = proxy_scores(enc, head, none, view, difficulty) if proxy else {}
    return {**extra, **({"labelled_difficulty": difficulty} if proxy else {}),
        "arch": arch, "view": view, "steps": steps, "bank": bank_n, "test": test_n,
        "auc": round(float(roc_auc_score(pos, score)), 3),
        "best_bal_acc": round(best_balanced_accuracy(pos, score), 3),
        "six_class_acc": round(float((prob.argmax(1) == test.y).float().mean()), 3),
        "bank_s": round(t_bank, 1), "train_s": round(t_train, 1),
    }  # fmt: skip


AREA = "ceiling"


def run(quick: bool = False) -> list[dict]:
    """Rows for ``run_all.py``: the default encoder and view (tiny sizes with ``quick``)."""
    steps, bank, test = (30, 256, 128) if quick else (1500, 4096, 1024)
    r = run_one("resnet-micro", 48, steps, bank, test)
    note = f"resnet-micro, 48 px views, {steps} steps, {bank} bank images, {test} scored"
    return [{"area": AREA, "metric": f"supervised on the bank: {name}", "value": r[key],
             "unit": unit, "note": note}
            for name, key, unit in (("AUC", "auc", ""),
                                    ("best balanced accuracy", "best_bal_acc", "bal. acc."))]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet-micro")
    p.add_argument("--view", type=int, default=48, help="view side in px (the source: 4/3 of it)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--bank", type=int, default=4096, help="labelled training images")
    p.add_argument("--test", type=int, default=1024, help="held-out bank images scored")
    p.add_argument("--proxy", action="store_true",
                   help="also score on bench_transfer.py's validation renderings (its probes)")  # fmt: skip
    p.add_argument("--labelled-difficulty", choices=["medium", "easy"], default="medium",
                   help="with --proxy: the difficulty of the validation set scored (as "
                        "bench_transfer.py's option of that name; the bank stays medium)")  # fmt: skip
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    for name in ("view", "steps", "bank", "test"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1; got {getattr(args, name)}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    row = run_one(args.arch, args.view, args.steps, args.bank, args.test, proxy=args.proxy,
                  difficulty=args.labelled_difficulty)  # fmt: skip
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
