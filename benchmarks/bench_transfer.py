"""Proxy for the real-renderings check: pretrain on a grey pool, probe colour renderings of
held-out sites with few labels.

The real set this stands in for (issue 13): an unlabelled pool of greyscale renderings (227 px,
with two RGB ``.tif`` renderings among them) and a small labelled set of colour renderings
(cyclic palette and amplitude-shaded hue cycle in every class, 224 px, some 464 x 373 RGBA,
black no-data wedges), deformation from five volcanoes (one holds half the positives) and
no-deformation from one region. Everything here is made by the physics generator and
``data.synthetic.styles``; each site has its own look (palette mix, amplitude texture, source
type), so site and palette are shortcuts, as in the real set.

The path is the user's: ``add_to_workspace`` (what ``insarexplore ingest`` runs, no format or
size options) on the pool and on both labelled sets, ``pretrain`` with a fixed step budget,
``embed_workspace``. Then a logistic probe (standardised features, C = 1, fixed) on k = 5/10/20
labels per class, balanced accuracy, two protocols:

* grouped: labelled interferograms split by group, half train pool / half test;
* leave-site-out: each deformation site in turn is the test site; its positives and one fold of
  the negatives (by group) are the test set, the rest the train pool; ``lso@all`` trains on the
  whole train pool (the features' ceiling with every label).

Protocol (fixed before running): two labelled sets with their own generator seeds and their own
sites, ``validation`` and ``test``. Every choice (configuration) is compared on validation; the
test set is scored once per reported configuration. 10 label draws per (k, site). Baselines,
under the same protocol: a colour histogram (8 x 8 x 8 bins of the RGB rendering) and the same
encoder with random weights.

    python benchmarks/bench_transfer.py                 # default configuration, val + test
    python benchmarks/bench_transfer.py --config rgb    # renderings kept as RGB (--phase off)
    python benchmarks/bench_transfer.py --steps 300 --n-pool 600 --quick
    python benchmarks/bench_transfer.py --look foreign  # labelled sets in other tools' palettes
    python benchmarks/bench_transfer.py --splits val --relook reversed,foreign+reversed
    python benchmarks/bench_transfer.py --splits val --pool-deformation 0.1
    python benchmarks/bench_transfer.py --splits val --labelled-difficulty easy

``--look foreign`` renders each site's labelled images in that site's own palette tables of the
same families (``data.synthetic.styles.foreign_lut``), which the reader does not hold: what real
sets, rendered by tools other than this project, cost the reader and the model.

``--relook LOOK[,LOOK]`` scores the trained model, nothing retrained, on the validation set
rendered again in other conventions (other tools' tables, palettes run the other way round the
cycle): what a set's rendering costs one model. ``--pool-deformation F`` makes a pool with that
share of deformation (default 1/3; real archives hold less: 9 % of Hephaestus's annotated
interferograms). ``--labelled-difficulty easy`` draws the labelled sets (not the pool, not the
bank) at the generator's ``easy`` difficulty: positives as sets labelled by people who saw
deformation hold them; at ``medium`` (the default) no encoder measured tells the classes apart
beyond about 0.92 (``bench_ceiling.py``), while the real set's best published figure is 0.971.

``--map`` measures what the dashboard's UMAP map of the workspace is organised by (validation
only): whether a neighbour vote on it tells the grey pool from the colour renderings (the real
workspace's map was split by style), and deformation from none.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from insarexplore.explore.protocol import (  # noqa: E402
    SealedTest,
    draw_per_class,
    paired,
    summarise,
)

OUT = Path(__file__).resolve().parent / "out" / "transfer"
KS = (5, 10, 20)
N_DRAWS = 10
# five deformation sites per labelled set; the first holds about half of the positives
SPLIT_SITES = {
    "val": ["Taal", "Agung", "Merapi", "Sakurajima", "Kilauea"],
    "test": ["Sierra Negra", "Fernandina", "Wolf", "Erta Ale", "Campi Flegrei"],
}
SITE_SHARE = (0.5, 0.15, 0.13, 0.12, 0.10)
NEG_REGION = {"val": "Alu-Dalafilla", "test": "Piton de la Fournaise"}
SPLIT_SEED = {"val": 101, "test": 202}


def _site_looks(sites: list[str], rng: np.random.Generator) -> dict[str, list[float]]:
    """Per-site palette mix over (grey, cyclic, rainbow): colour only, both styles present."""
    looks = {}
    for s in sites:
        p = rng.uniform(0.15, 0.85)
        looks[s] = [0.0, p, 1 - p]
    return looks


POOL_DEFORMATION = 1 / 3  # share of the pool with deformation (real archives hold less)


def pool_name(n: int, deformation: float = POOL_DEFORMATION) -> str:
    """The pool folder's name: ``pool-N``, with ``-defF`` when its deformation share is not the
    default's."""
    return f"pool-{n}" + ("" if deformation == POOL_DEFORMATION else f"-def{deformation:g}")


def make_pool(n: int, out: Path, seed: int = 7, deformation: float = POOL_DEFORMATION) -> Path:
    """Grey renderings at 227 px, mostly no deformation (a share ``deformation`` with it), flat
    folder, two RGB .tif files."""
    from insarexplore.data.synthetic import generate
    from insarexplore.data.synthetic.styles import write_styled_folder

    if out.exists():
        return out
    n_def = n // 3 if deformation == POOL_DEFORMATION else int(round(n * deformation))
    parts = [
        generate(n_def, size=227, classes=("mogi", "sill", "dyke"), seed=seed, progress=False),
        generate(n - n_def, size=227, classes=("none",), seed=seed + 1, progress=False),
    ]

    def write(tmp: Path) -> None:
        for k, ds in enumerate(parts):
            write_styled_folder(ds, tmp, styles=("grey",), wedge_p=0.3, seed=seed + k,
                                tif_names=1)  # fmt: skip

    return _publish(out, write)


def _publish(out: Path, write) -> Path:
    """``write(folder)`` into a private temporary folder beside ``out``, then moved into place:
    runs side by side never write into one another's; one that finds ``out`` made meanwhile by
    another keeps that one."""
    import tempfile

    out.parent.mkdir(parents=True, exist_ok=True)
    box = Path(tempfile.mkdtemp(prefix=f"{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write(box / "folder")
        try:
            (box / "folder").rename(out)
        except OSError:
            if not out.exists():
                raise
    finally:
        shutil.rmtree(box, ignore_errors=True)
    return out


def labelled_name(split: str, n_pos: int, n_neg: int, look: str = "exact",
                  difficulty: str = "medium") -> str:  # fmt: skip
    """The folder name of a labelled set: ``labelled-SPLIT-POS-NEG``, then ``-LOOK`` for a look
    other than the exact one and ``-DIFFICULTY`` for a difficulty other than medium."""
    return "".join([f"labelled-{split}-{n_pos}-{n_neg}", "" if look == "exact" else f"-{look}",
                    "" if difficulty == "medium" else f"-{difficulty}"])  # fmt: skip


def labelled_dataset(split: str, n_pos: int, n_neg: int, difficulty: str = "medium"):
    """The generator's interferograms of one labelled split (with their parameters), the site
    of each, and the random stream that then gives each site its look; ``difficulty`` is the
    generator's (``easy``: positives of at least two fringes and four times the nuisance)."""
    from insarexplore.data.schema import concat
    from insarexplore.data.synthetic import generate

    seed = SPLIT_SEED[split]
    rng = np.random.default_rng(seed)
    counts = np.round(np.array(SITE_SHARE) * n_pos).astype(int)
    parts, site_of = [], []
    for j, (s, c) in enumerate(zip(SPLIT_SITES[split], counts)):
        # each site deforms in its own way: a preferred source type
        prefs = rng.permutation(["mogi", "sill", "dyke"])[:2]
        ds = generate(int(c), size=224, classes=tuple(prefs), seed=seed * 100 + j, progress=False,
                      id_prefix=f"{split}-{j}", difficulty=difficulty)  # fmt: skip
        parts.append(ds)
        site_of += [s] * int(c)
    neg = generate(n_neg, size=224, classes=("none",), seed=seed * 100 + 99, progress=False,
                   id_prefix=f"{split}-neg", difficulty=difficulty)  # fmt: skip
    parts.append(neg)
    site_of += [NEG_REGION[split]] * n_neg
    return concat(parts), site_of, rng


def make_labelled(split: str, n_pos: int, n_neg: int, out: Path, foreign: bool = False,
                  reverse: tuple[str, ...] = (), difficulty: str = "medium") -> Path:  # fmt: skip
    """Colour renderings of one split: class folders ``deformation/`` and ``none/``; with
    ``foreign``, each site's renderings use its own palette tables (``foreign_lut``), which the
    reader's do not match, as real sets' tools do not; the styles in ``reverse`` are rendered
    with their tables run backwards (read back, their phase is conjugated); ``difficulty`` is
    the generator's (``labelled_dataset``)."""
    from insarexplore.data.synthetic.styles import write_styled_folder

    if out.exists():
        return out
    ds, site_of, rng = labelled_dataset(split, n_pos, n_neg, difficulty)
    labels = np.where(np.asarray(site_of) == NEG_REGION[split], "none", "deformation")
    looks = _site_looks([*SPLIT_SITES[split], NEG_REGION[split]], rng)

    def write(tmp: Path) -> None:
        write_styled_folder(ds, tmp, styles=looks, site=site_of, labels=list(labels),
                            wedge_p=0.3, rgba_p=0.1, seed=SPLIT_SEED[split], foreign=foreign,
                            reverse=reverse)  # fmt: skip
        sites = json.dumps(dict(zip(ds["sample"].values.tolist(), site_of)))
        (tmp / "sites.json").write_text(sites)

    return _publish(out, write)


def _literal(text: str):
    """A config value from the command line: a Python literal (0.8, None, 4096), else text."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def code_version() -> str:
    """A short hash of the package's source (every ``insarexplore/**/*.py``): cached
    workspaces record the code that built them, so figures from stale caches are named."""
    import hashlib

    root = Path(__file__).resolve().parents[1] / "insarexplore"
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def build_workspace(config: str, data: dict[str, Path], steps: int, arch: str, seed: int = 0,
                    look: str = "exact", difficulty: str = "medium", rebuild: bool = False):  # fmt: skip
    """Ingest pool + both labelled sets as a user would, pretrain, embed; cached per config and
    per look and difficulty of the labelled sets (``rebuild``: ingest and pretrain anew). A
    cached workspace built by other code is used as it is, and says so."""
    from insarexplore.embed import embed_workspace
    from insarexplore.intake import add_to_workspace
    from insarexplore.pretraining import PretrainConfig, pretrain_workspace
    from insarexplore.workspace import Workspace

    pool = "".join(f"-{t}" for t in data["pool"].name.split("-")[2:])  # a pool of another mix
    sets = ("" if look == "exact" else f"-{look}") + (
        "" if difficulty == "medium" else f"-{difficulty}"
    )
    ws_path = OUT / f"ws-{config}-{steps}-{arch}{sets}{pool}"
    reading = config.split("+")[0]
    phase = {"default": None, "rgb": False}[reading]
    ingested = OUT / f"ingested-{reading}-{data['pool'].name}-{data['val'].name}"
    if rebuild:
        for folder in (ingested, ws_path):
            (folder / "done").unlink(missing_ok=True)
    if not (ingested / "done").exists():  # the user's two ingests, shared by runs that read alike
        shutil.rmtree(ingested, ignore_errors=True)
        ws = Workspace.create(ingested)
        t0 = time.perf_counter()
        for key in ("pool", "val", "test"):
            r = add_to_workspace(ws, data[key], recover_phase=phase, progress=False)
            print(f"  ingest {key}: {r.added} added, notes: {r.notes}", flush=True)
        (ingested / "ingest_s").write_text(f"{time.perf_counter() - t0:.1f}")
        (ingested / "done").write_text("")
    if not (ws_path / "done").exists():
        shutil.rmtree(ws_path, ignore_errors=True)
        ws = Workspace.create(ws_path)
        shutil.copytree(ingested / "data.zarr", ws.data_path)
        t_ingest = float((ingested / "ingest_s").read_text())
        options = config.split("+")[1:]  # "+conj": conjugated views; "+noconj": none (default)
        augment = {"conjugate_p": 0.5} if "conj" in options else {}
        augment = {"conjugate_p": 0.0} if "noconj" in options else augment
        # "+physics=0": no labelled physics bank; "+physics=1": its loss weight; any field=value
        fields = {k: v for k, v in (o.split("=", 1) for o in options if "=" in o)}
        overrides = {k: _literal(v) for k, v in fields.items()}
        base = dict(arch=arch, steps=steps, seed=seed, progress=False, monitor_every=0,
                    tensorboard=False, augment=augment)  # fmt: skip
        cfg = PretrainConfig(**{**base, **overrides})  # "+seed=1": another seed
        t0 = time.perf_counter()
        version = pretrain_workspace(ws, cfg)
        t_pre = time.perf_counter() - t0
        embed_workspace(ws, version, progress=False)
        meta = json.loads((ws.model_dir(version) / "meta.json").read_text())
        (ws_path / "timing.json").write_text(json.dumps({
            "ingest_s": t_ingest, "pretrain_s": t_pre, "steps": steps,
            "img_per_s": steps * cfg.batch_size * 2 / t_pre, "kind": meta["kind"],
            "code": code_version(),
        }))  # fmt: skip
        (ws_path / "done").write_text("")
    built = json.loads((ws_path / "timing.json").read_text()).get("code", "not recorded")
    if built != code_version():
        print(f"note: {ws_path.name} was built by code {built}, the code now is {code_version()}: "
              "its model and stored embeddings are of that code (--rebuild to build it anew)",
              flush=True)  # fmt: skip
    return Workspace.open(ws_path)


def _colour_histogram(images: np.ndarray) -> np.ndarray:
    q = (images.astype(np.int32) // 32).reshape(len(images), -1, 3)
    idx = (q[..., 0] * 8 + q[..., 1]) * 8 + q[..., 2]
    h = np.stack([np.bincount(r, minlength=512) for r in idx]).astype(np.float32)
    return h / h.sum(1, keepdims=True)


EMBED: dict = {}  # Embedder options (--embed-size, --views): re-embed instead of the stored
_EMBEDDED: dict = {}


def _embeddings(ws, ds, split_ids: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The workspace's stored embeddings of ``split_ids`` or, with ``EMBED`` options, the
    model's embeddings of them made now with those options (once per set of ids)."""
    if not EMBED:
        vids, vecs, _ = ws.load_embeddings()
        order = {s: i for i, s in enumerate(np.asarray(vids).astype(str))}
        return vecs[[order[s] for s in split_ids]]
    key = (str(ws.path), tuple(split_ids))
    if key not in _EMBEDDED:
        from insarexplore.embed import Embedder

        sub = ds.isel(sample=np.sort(pos))
        emb = Embedder(ws.resolve_model(None), ws, progress=False, **EMBED)
        _EMBEDDED[key] = emb.fit(sub.isel(sample=slice(0, 1))).transform(sub)[
            np.argsort(np.argsort(pos))]  # fmt: skip
    return _EMBEDDED[key]


def _model_features(model_dir: Path, vecs: np.ndarray, method: str) -> np.ndarray:
    """``ssl``: the embeddings ``vecs`` themselves; "physics" and "deformation": the model's
    physics head on them, its six class logits or the zero-shot score alone (what
    explore.deformation_scores gives: deformation against none, the bank's prior taken out) as
    log-odds (a shift of the head's own 1 - P(none) by log 5: the probes see the same)."""
    if method == "ssl":
        return vecs
    from insarexplore.explore.deformation import model_physics_head

    head = model_physics_head(model_dir)
    if "gains" in EMBED:  # embeddings made now with another stretch: the head takes that out
        head = dataclasses.replace(head, gain=EMBED["gains"][0], class_gain=EMBED["gains"][1])
    if method == "physics":
        return head.logits(vecs)
    d = np.clip(head.deformation(vecs).astype(np.float64), 1e-7, 1 - 1e-7)
    return (np.log(d) - np.log1p(-d))[:, None]  # log-odds: linear in the head's logits


def features(ws, split_ids: np.ndarray, method: str) -> np.ndarray:
    """Features of the given ids: "ssl" (the workspace's embeddings), "physics" (the logits of
    the model's physics head on them), "deformation" (the log-odds of its zero-shot score alone), "hist",
    "random"; "A+B" is the features of A and B side by side."""
    if "+" in method:
        return np.hstack([features(ws, split_ids, m) for m in method.split("+")])
    ds = ws.open_data(lazy=True)
    ids = np.asarray(ds["sample"].values).astype(str)
    pos = np.searchsorted(ids, split_ids, sorter=np.argsort(ids))
    pos = np.argsort(ids)[pos]
    if method in ("ssl", "physics", "deformation"):
        vecs = _embeddings(ws, ds, split_ids, pos)
        return _model_features(ws.model_dir(ws.resolve_model(None)), vecs, method)
    sub = ds.isel(sample=np.sort(pos))
    back = np.argsort(np.argsort(pos))
    if method == "hist":
        return _colour_histogram(sub["image"].values)[back]
    if method == "random":
        import torch

        from insarexplore.embed import Embedder
        from insarexplore.models.serialization import build_from_config, load_encoder

        # the workspace's model rebuilt with random weights: the same architecture, input
        # layers and training size, embedded as the model embeds (one view or the mean of 8)
        _, trained = load_encoder(ws.model_dir(ws.resolve_model(None)))
        torch.manual_seed(0)  # the same random weights in every run
        enc = build_from_config(trained).eval()
        emb = Embedder(enc, progress=False, dihedral=bool(trained.get("embed_dihedral")))
        return emb.fit(sub.isel(sample=slice(0, 1))).transform(sub)[back]
    raise ValueError(method)


def _probe(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    clf.fit(x[train], y[train])
    return float(balanced_accuracy_score(y[test], clf.predict(x[test])))


def score(x: np.ndarray, y: np.ndarray, groups: np.ndarray, sites: np.ndarray) -> dict:
    """Balanced accuracy at each k: grouped and leave-site-out, mean over draws (and sites)."""
    out: dict[str, float] = {}
    ug = np.unique(groups)
    neg = y == "none"
    neg_groups = np.unique(groups[neg])
    fold_of = {g: i % 5 for i, g in enumerate(np.random.default_rng(0).permutation(neg_groups))}
    pos_sites = [s for s in dict.fromkeys(sites[~neg])]
    for k in KS:
        grouped, lso = [], []
        for d in range(N_DRAWS):
            rng = np.random.default_rng(1000 * k + d)
            test_groups = set(rng.choice(ug, size=len(ug) // 2, replace=False))
            is_test = np.array([g in test_groups for g in groups])
            train = draw_per_class(y, np.flatnonzero(~is_test), k, rng)
            grouped.append(_probe(x, y, train, np.flatnonzero(is_test)))
            for j, s in enumerate(pos_sites):
                held = (sites == s) | (neg & np.array([fold_of.get(g, -1) == j for g in groups]))
                train = draw_per_class(y, np.flatnonzero(~held), k, rng)
                lso.append(_probe(x, y, train, np.flatnonzero(held)))
        out[f"grouped@{k}"] = summarise(grouped).mean
        out[f"lso@{k}"] = summarise(lso).mean
        out[f"lso@{k}_se"] = summarise(lso).se
        out[f"lso@{k}_draws"] = lso  # the same draws for every method: paired comparisons
    # the features' own ceiling: every label outside the held-out site (and negative fold)
    full = []
    for j, s in enumerate(pos_sites):
        held = (sites == s) | (neg & np.array([fold_of.get(g, -1) == j for g in groups]))
        full.append(_probe(x, y, np.flatnonzero(~held), np.flatnonzero(held)))
    out["lso@all"] = summarise(full).mean
    return out


def _split_rows(ws, labelled: Path):
    """The workspace's sample table rows ingested from the labelled folder ``labelled``."""
    table = ws.open_data(lazy=True).insar.sample_table()
    # the folder's own files: labelled-val-400-370/ is not labelled-val-400-370-easy/
    return table[table["source"].astype(str).str.startswith(str(labelled) + os.sep)]


def evaluate(ws, data: dict[str, Path], split: str, methods: list[str], config: str) -> dict:
    """Scores of each method on one labelled set. Validation labels are read directly; test
    labels stay sealed and are handed out once per configuration and method."""
    labelled = data[split]
    site_of = json.loads((labelled / "sites.json").read_text())
    rows = _split_rows(ws, labelled)
    ids = rows.index.to_numpy().astype(str)
    groups = rows["group"].to_numpy().astype(str)
    # sample ids of the folder are paths; the site is kept by the generator's id in the name
    sites = np.array([site_of[_gen_id(s, site_of)] for s in ids])
    if split != "test":
        y = rows["label"].to_numpy().astype(str)
        return {m: _scores(features(ws, ids, m), y, groups, sites, m) for m in methods}
    sealed = SealedTest(np.arange(len(ids)), rows["label"].to_numpy().astype(str))
    out = {}
    for m in methods:
        x = features(ws, ids, m)
        out[m] = sealed.evaluate(
            f"{config}/{m}", lambda yt, x=x, m=m: _scores(x, yt, groups, sites, m)
        )
    return out


def _scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, sites: np.ndarray, method: str):
    """``score``, and for the zero-shot score with no labels at all: its AUC and the balanced
    accuracy of its own threshold (a score of 0.5, log-odds 0)."""
    out = score(x, y, groups, sites)
    if method == "deformation":
        from sklearn.metrics import balanced_accuracy_score, roc_auc_score

        pos = y != "none"
        out["zero-shot AUC"] = float(roc_auc_score(pos, x[:, 0]))
        out["zero-shot bal.acc"] = float(balanced_accuracy_score(pos, x[:, 0] > 0))
    return out


def errors(ws, data: dict[str, Path], args: argparse.Namespace) -> dict:
    """Where the zero-shot score errs on the **validation** set (never test): its AUC for the
    positives of each signal strength (the generator's ``signal_fringes``) against all the
    negatives, and how the negatives' scores follow their nuisances (Spearman)."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    ds, _, _ = labelled_dataset("val", args.n_pos, args.n_neg, args.labelled_difficulty)
    params = ds.drop_dims(["y", "x"]).to_dataframe().set_index(ds["sample"].values.astype(str))
    site_of = json.loads((data["val"] / "sites.json").read_text())
    ids = _split_rows(ws, data["val"]).index.astype(str)
    # the score's log-odds (ranks, hence AUC and Spearman, as of the score itself)
    score = features(ws, ids.to_numpy(), "deformation")[:, 0]
    p = params.loc[[_gen_id(s, site_of) for s in ids]]
    pos = (p["label"] != "none").to_numpy()
    out = {"auc": float(roc_auc_score(pos, score)), "by_fringes": {}, "negatives": {}}
    fringes = p["signal_fringes"].to_numpy()
    for lo, hi in ((0, 2), (2, 4), (4, 8), (8, np.inf)):
        m = pos & (fringes >= lo) & (fringes < hi)
        if m.any():
            auc = roc_auc_score(np.r_[np.ones(m.sum()), np.zeros((~pos).sum())],
                                np.r_[score[m], score[~pos]])  # fmt: skip
            out["by_fringes"][f"{lo}-{hi}"] = {"n": int(m.sum()), "auc": float(auc)}
    for v in ("atmosphere_cm", "stratified_cm_per_km", "ramp_cm", "mean_coherence"):
        rho = spearmanr(score[~pos], np.abs(p[v].to_numpy()[~pos].astype(float))).statistic
        out["negatives"][v] = float(rho)
    return out


def map_structure(ws, data: dict[str, Path]) -> dict:
    """What the dashboard's map is organised by (**validation** labels only; issue 13 saw a
    real workspace's map split by rendering style). On the workspace's UMAP map (the
    dashboard's, made by ``explore.projection.project``) and on the embeddings themselves, a
    15-nearest-neighbour vote over 5 folds: telling the grey pool (as many images, drawn at
    random, as the validation set) from the colour renderings of the validation set, as the
    AUC of each image's share of colour neighbours (0.5: mixed; near 1: apart) and the
    balanced accuracy of the vote; and deformation from none in the validation set (folds by
    group, balanced accuracy)."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    from insarexplore.explore.projection import project

    t0 = time.perf_counter()
    if "gains" in EMBED:  # --gains: the stored embeddings stretched anew, and their own map
        from insarexplore.explore.deformation import restretched_embeddings
        from insarexplore.explore.projection import Projector

        ids, vectors = restretched_embeddings(ws, EMBED["gains"])
        xy = Projector("umap").fit_transform(vectors)
    else:
        ids, xy = project(ws, "umap")
        _, vectors, _ = ws.load_embeddings()
    seconds = time.perf_counter() - t0
    row = {s: i for i, s in enumerate(np.asarray(ids).astype(str))}
    val = _split_rows(ws, data["val"])
    pool = _split_rows(ws, data["pool"]).index.astype(str)
    pool = np.random.default_rng(0).choice(pool, size=min(len(pool), len(val)), replace=False)
    both = np.array([row[s] for s in (*pool, *val.index.astype(str))])
    style = np.r_[np.zeros(len(pool)), np.ones(len(val))]
    labelled = both[len(pool) :]
    deformed = (val["label"].astype(str) != "none").to_numpy()
    groups = val["group"].astype(str).to_numpy()

    def vote(x: np.ndarray, y: np.ndarray, g: np.ndarray | None = None) -> tuple[float, float]:
        cv = GroupKFold(5) if g is not None else StratifiedKFold(5, shuffle=True, random_state=0)
        share = cross_val_predict(KNeighborsClassifier(15), x, y, cv=cv, groups=g,
                                  method="predict_proba")[:, 1]  # fmt: skip
        acc = balanced_accuracy_score(y, share > 0.5)
        return round(float(roc_auc_score(y, share)), 3), round(float(acc), 3)

    xy, vectors = np.asarray(xy, np.float64), np.asarray(vectors, np.float64)
    (sm_auc, sm), (se_auc, se) = vote(xy[both], style), vote(vectors[both], style)
    return {
        "style_map_auc": sm_auc, "style_map": sm,
        "style_embeddings_auc": se_auc, "style_embeddings": se,
        "deformation_map": vote(xy[labelled], deformed, groups)[1],
        "deformation_embeddings": vote(vectors[labelled], deformed, groups)[1],
        "umap_s": round(seconds, 1),
    }  # fmt: skip


# other rendering conventions for --relook: the reader's own tables (exact), other tools'
# tables of the same families (foreign), and palettes run the other way round the cycle
LOOKS = {
    "exact": {},
    "foreign": {"foreign": True},
    "reversed": {"reverse": ("cyclic", "rainbow")},
    "reversed-cyclic": {"reverse": ("cyclic",)},
    "reversed-rainbow": {"reverse": ("rainbow",)},
    "foreign+reversed": {"foreign": True, "reverse": ("cyclic", "rainbow")},
}


def embed_folder(folder: Path, embedder, size: int, recover_phase: bool | None = None):
    """A labelled folder made here, ingested as the user would (``recover_phase`` as
    ``add_to_workspace`` takes it) into a scratch workspace at ``size``, and embedded by
    ``embedder`` (an ``Embedder``, fitted here): ``(vectors, labels, groups, sites)`` in one
    order. The scratch workspace is removed; runs side by side each have their own."""
    import tempfile

    from insarexplore.intake import add_to_workspace
    from insarexplore.workspace import Workspace

    OUT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"scratch-{folder.name}-", dir=OUT))
    try:
        tmp = Workspace.create(scratch / "ws")
        add_to_workspace(tmp, folder, size=size, recover_phase=recover_phase, progress=False)
        ds = tmp.open_data(lazy=True)
        vecs = embedder.fit(ds.isel(sample=slice(0, 1))).transform(ds)
        rows = ds.insar.sample_table().loc[ds["sample"].values]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    site_of = json.loads((folder / "sites.json").read_text())
    sites = np.array([site_of[_gen_id(s, site_of)] for s in rows.index.astype(str)])
    y = rows["label"].to_numpy().astype(str)
    return vecs, y, rows["group"].to_numpy().astype(str), sites


def relook(ws, look: str, methods: list[str], args: argparse.Namespace) -> dict:
    """The trained model of ``ws`` on the **validation** set rendered in another look: the set
    is rendered again (the same interferograms, sites and draws), ingested as the user would
    (read as the configuration reads) into a scratch workspace at the store's size, embedded
    with the model (with ``EMBED``'s options) and scored. Nothing is trained, so the looks are
    compared on one model; that model's pretraining saw the exact look's images (unlabelled,
    as the user's workspace holds them), the other looks' never."""
    from insarexplore.embed import Embedder

    name = labelled_name("val", args.n_pos, args.n_neg, look, args.labelled_difficulty)
    folder = make_labelled("val", args.n_pos, args.n_neg, OUT / name, **LOOKS[look],
                           difficulty=args.labelled_difficulty)  # fmt: skip
    model_dir = ws.model_dir(ws.resolve_model(None))
    phase = {"default": None, "rgb": False}[args.config.split("+")[0]]
    store = ws.open_data(lazy=True).sizes["y"]
    vecs, y, groups, sites = embed_folder(
        folder, Embedder(model_dir, progress=False, **EMBED), store, recover_phase=phase
    )
    return {m: _scores(_model_features(model_dir, vecs, m), y, groups, sites, m) for m in methods}


def comparisons(by_method: dict[str, dict]) -> dict[str, dict]:
    """SSL against each baseline, paired over the same draws, per k (leave-site-out)."""
    out = {}
    for other in by_method:
        if other == "ssl" or "ssl" not in by_method:
            continue
        for k in KS:
            out[f"ssl-{other}@{k}"] = paired(
                by_method["ssl"][f"lso@{k}_draws"], by_method[other][f"lso@{k}_draws"]
            )
    return out


def _gen_id(sample: str, site_of: dict[str, str]) -> str:
    from insarexplore.data.synthetic.render import _slug

    stem = Path(sample).stem
    for gid in site_of:
        if stem.endswith(_slug(gid)):
            return gid
    raise KeyError(sample)


AREA = "transfer"


def run(quick: bool = False) -> list[dict]:
    """Rows for ``run_all.py``: the default configuration, validation and test, with baselines."""
    args = ["--baselines"] + (["--quick"] if quick else [])
    out = main(args, rows=True)
    assert isinstance(out, list)
    return out


def _rows(config: str, results: dict, timing: dict) -> list[dict]:
    rows = []
    for split, by_method in results.items():
        if split not in SPLIT_SEED:  # val_errors, val_map: not probe scores
            continue
        for method, r in by_method.items():
            for k in KS:
                for proto in ("lso", "grouped"):
                    rows.append({"area": AREA, "metric": f"{split} {method} {proto} k={k}",
                                 "value": r[f"{proto}@{k}"], "unit": "bal. acc.",
                                 "note": f"{config}, {timing['steps']} steps, kind "
                                         f"{timing['kind']}"})  # fmt: skip
    return rows


def main(argv: list[str] | None = None, rows: bool = False) -> int | list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="default",
                   help="default | rgb | default+conj (conjugated views) | default+noconj | "
                        "default+FIELD=VALUE (a PretrainConfig field, e.g. +physics=0)")  # fmt: skip
    p.add_argument("--steps", type=int, default=1500, help="pretraining steps")
    p.add_argument("--arch", default="resnet-micro")
    p.add_argument("--n-pool", type=int, default=3000)
    p.add_argument("--pool-deformation", type=float, default=POOL_DEFORMATION,
                   help="share of the grey pool with deformation (default 1/3; real archives "
                        "hold less: 9%% of Hephaestus's annotated interferograms)")  # fmt: skip
    p.add_argument("--n-pos", type=int, default=400)
    p.add_argument("--n-neg", type=int, default=370)
    p.add_argument("--splits", default="val,test", help="which labelled sets to score")
    p.add_argument("--methods", default="ssl,physics,deformation",
                   help="ssl (the embeddings), physics (the physics head's logits on them), "
                        "deformation (its zero-shot score alone); A+B: both side by side")  # fmt: skip
    p.add_argument("--baselines", action="store_true", help="also colour histogram, random init")
    p.add_argument("--errors", action="store_true",
                   help="where the zero-shot score errs on validation: by signal strength, and "
                        "what the negatives it scores high have")  # fmt: skip
    p.add_argument("--map", action="store_true",
                   help="what the dashboard's UMAP map is organised by (validation): "
                        "grey pool against colour renderings, deformation against none")  # fmt: skip
    p.add_argument("--embed-size", type=int, default=None,
                   help="re-embed the labelled sets at this side (default: the stored "
                        "embeddings, made at the model's training size)")  # fmt: skip
    p.add_argument("--views", choices=["one", "dihedral"], default=None,
                   help="re-embed the labelled sets from one view of each image or as the mean "
                        "over its 8 rotations/reflections (default: the stored embeddings, "
                        "made as the model records)")  # fmt: skip
    p.add_argument("--gains", default=None, metavar="GAIN,CLASS_GAIN",
                   help="re-embed the labelled sets with the features stretched by GAIN along "
                        "the physics head's direction of deformation and CLASS_GAIN along its "
                        "other class directions (1,1: none; default: the stored embeddings, "
                        "made with the gains the model records)")  # fmt: skip
    p.add_argument("--look", choices=["exact", "foreign"], default="exact",
                   help="labelled sets rendered in the reader's own palette tables (exact) or "
                        "in each site's own tables of the same palette families (foreign), as "
                        "real sets' rendering tools do")  # fmt: skip
    p.add_argument("--relook", default=None, metavar="LOOK[,LOOK]",
                   help="also score the trained model, nothing retrained (unlike --look, "
                        "which builds and pretrains a workspace of that look), on the "
                        "validation set rendered again in each look, whatever --splits says: "
                        f"{', '.join(LOOKS)} (reversed: palettes run the other way round the "
                        "cycle, so their phase reads back conjugated); with exact among them, "
                        "each other look is compared with it, paired over the same draws")  # fmt: skip
    p.add_argument("--labelled-difficulty", choices=["medium", "easy"], default="medium",
                   help="the generator's difficulty for the labelled sets (the pool and the "
                        "physics bank stay medium): easy draws positives of at least two "
                        "fringes and four times the nuisance, as sets labelled by people who "
                        "saw deformation hold; negatives keep the same atmosphere")  # fmt: skip
    p.add_argument("--rebuild", action="store_true",
                   help="ingest and pretrain anew even when a cached workspace of this "
                        "configuration exists (cached ones built by other code are named, "
                        "not rebuilt)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (1 when other jobs share the cores: avoids oversubscription)")  # fmt: skip
    args = p.parse_args(argv)
    if not 0 < args.pool_deformation < 1:
        p.error(f"--pool-deformation must be a share in (0, 1); got {args.pool_deformation}")
    unknown = set(args.relook.split(",")) - set(LOOKS) if args.relook else set()
    if unknown:
        p.error(f"--relook: unknown look {sorted(unknown)[0]!r}; choose from {', '.join(LOOKS)}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    global OUT
    EMBED.clear()
    _EMBEDDED.clear()
    EMBED.update({"size": args.embed_size} if args.embed_size else {})
    EMBED.update({"dihedral": args.views == "dihedral"} if args.views else {})
    if args.gains is not None:
        try:
            gains = tuple(float(g) for g in args.gains.split(","))
        except ValueError:
            gains = ()
        from insarexplore.names import STRETCH_GAINS as GAINS

        if len(gains) != 2 or not all(GAINS[0] <= g <= GAINS[1] for g in gains):
            p.error(f"--gains: two numbers from {GAINS[0]:g} to {GAINS[1]:g}, GAIN,CLASS_GAIN; "
                    f"got {args.gains!r}")  # fmt: skip
        EMBED["gains"] = gains
    tag = "".join([f"-embed{args.embed_size}" if args.embed_size else "",
                   f"-{args.views}" if args.views else "",
                   f"-gains{args.gains}" if args.gains is not None else "",
                   "-foreign" if args.look == "foreign" else "",
                   "" if args.labelled_difficulty == "medium" else f"-{args.labelled_difficulty}",
                   "".join(f"-{t}" for t in pool_name(args.n_pool, args.pool_deformation)
                           .split("-")[2:]),
                   "" if sorted(args.splits.split(",")) == ["test", "val"]
                   else "-" + "+".join(sorted(args.splits.split(",")))])  # fmt: skip
    if args.quick:
        args.n_pool, args.n_pos, args.n_neg, args.steps = 300, 60, 50, 20
        OUT = OUT.with_name("transfer-quick")
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    name = pool_name(args.n_pool, args.pool_deformation)
    data = {"pool": make_pool(args.n_pool, OUT / name, deformation=args.pool_deformation)}
    for split in ("val", "test"):
        name = labelled_name(split, args.n_pos, args.n_neg, args.look, args.labelled_difficulty)
        data[split] = make_labelled(split, args.n_pos, args.n_neg, OUT / name,
                                    foreign=args.look == "foreign",
                                    difficulty=args.labelled_difficulty)  # fmt: skip
    print(f"fixtures ready in {time.perf_counter() - t0:.0f} s", flush=True)
    ws = build_workspace(args.config, data, args.steps, args.arch, look=args.look,
                         difficulty=args.labelled_difficulty, rebuild=args.rebuild)  # fmt: skip
    timing = json.loads((ws.path / "timing.json").read_text())
    print(f"workspace {ws.path.name}: {timing}", flush=True)
    methods = args.methods.split(",") + (["hist", "random"] if args.baselines else [])
    head_methods = [m for m in methods if {"physics", "deformation"} & set(m.split("+"))]
    from insarexplore.explore.deformation import model_physics_head

    no_head = model_physics_head(ws.model_dir(ws.resolve_model(None))) is None
    if no_head and EMBED.get("gains", (1.0, 1.0)) != (1.0, 1.0):
        p.error(f"--gains {args.gains}: {args.config}'s model has no physics head to stretch along")
    if head_methods:
        if no_head:
            print(f"the model has no physics head (pretrained without the bank): no {head_methods}")
            methods = [m for m in methods if m not in head_methods]
    results = {}
    for split in args.splits.split(","):
        name = args.config + "".join(f" {k}={v}" for k, v in sorted(EMBED.items()))
        results[split] = evaluate(ws, data, split, methods, name)
        for m, r in results[split].items():
            cells = "  ".join(f"{k} {v:.3f}" for k, v in r.items() if "_" not in k)
            print(f"{args.config:16s} {split:4s} {m:6s} {cells}", flush=True)
        for name, c in comparisons(results[split]).items():
            print(f"{args.config:16s} {split:4s} paired {name}: {c['diff']:+.3f} +- {c['se']:.3f}"
                  f" (p {c['p']:.2g})", flush=True)  # fmt: skip
    if args.errors and "deformation" in methods:
        results["val_errors"] = errors(ws, data, args)
        print(f"{args.config:16s} val  score errors: {json.dumps(results['val_errors'])}")
    looks = args.relook.split(",") if args.relook else []
    for look in looks:
        model_methods = [m for m in methods if m in ("ssl", "physics", "deformation")]
        results[f"val_look_{look}"] = relook(ws, look, model_methods, args)
        for m, r in results[f"val_look_{look}"].items():
            cells = "  ".join(f"{k} {v:.3f}" for k, v in r.items() if "_" not in k)
            print(f"{args.config:16s} val look {look}: {m:6s} {cells}", flush=True)
    for look in (x for x in looks if x != "exact" and "exact" in looks):
        for m, r in results[f"val_look_{look}"].items():
            base = results["val_look_exact"][m]
            cells = "  ".join(f"LSO k={k} {c['diff']:+.3f} +- {c['se']:.3f}" for k, c in (
                (k, paired(r[f"lso@{k}_draws"], base[f"lso@{k}_draws"])) for k in KS))  # fmt: skip
            print(f"{args.config:16s} val look {look} - exact: {m:6s} {cells}", flush=True)
    if args.map:
        results["val_map"] = map_structure(ws, data)
        print(f"{args.config:16s} val  map (kNN bal. acc.): {json.dumps(results['val_map'])}")
    out = OUT / f"results-{args.config}-{args.steps}-{args.arch}{tag}.json"
    before = json.loads(out.read_text()) if out.exists() else None
    if before and before.get("timing") == timing:  # the same workspace, other methods: added
        kept = before["results"]
        for key, value in results.items():
            split = key in SPLIT_SEED and isinstance(kept.get(key), dict)
            kept[key] = {**kept[key], **value} if split else value
        results = kept
    tmp = out.with_name(out.name + ".tmp")
    record = {"args": vars(args), "timing": timing, "code_now": code_version(), "results": results}
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(out)
    print(f"written {out}")
    return _rows(args.config, results, timing) if rows else 0


if __name__ == "__main__":
    raise SystemExit(main())
