"""Commands over labels and results: ``labels``, ``suggest``, ``scores``, ``info``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from insarexplore.cli._common import (
    EXIT_USAGE,
    PROG,
    add_command,
    note_unembedded,
    open_workspace,
    positive_int,
    say,
    seed_int,
)
from insarexplore.names import FEWSHOT_METHODS, STRATEGIES

_LABEL_FORMATS = ("csv", "geojson", "hephaestus")
LABEL_LOCK_TIMEOUT = 60.0  # seconds a label writer waits for another one's lock


def _label_format(path: Path, given: str) -> str:
    if given != "auto":
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".geojson":
        return "geojson"
    if suffix == ".json" or path.is_dir() or suffix in (".gz", ".tar", ".tgz") or not suffix:
        return "hephaestus"
    raise ValueError(f"{path}: cannot tell the label format from the suffix; pass --format")


def _label_store(ws: Any, author: str | None = None, *, readonly: bool = False):
    from insarexplore.explore.labels import LabelStore

    if readonly:  # readers take no lock and write nothing (also on read-only workspaces)
        return LabelStore(ws.labels_path, timeout=LABEL_LOCK_TIMEOUT, readonly=True)
    return LabelStore(
        ws.labels_path, author=author, known_ids=ws.sample_ids(), timeout=LABEL_LOCK_TIMEOUT
    )


def _output(ws: Any, text: str, force: bool) -> Path:
    """Where ``-o``/``--output`` writes: never over the workspace's own files, and over an
    existing file only with ``--force``."""
    out = Path(text).expanduser()
    if ws.owns(out):
        raise ValueError(f"{out}: is part of the workspace {ws.path}; write exports elsewhere")
    if (out.exists() or out.is_symlink()) and not force and not out.is_dir():
        raise ValueError(f"{out}: already exists (pass --force to replace it)")
    return out


def _export_target(text: str, given: str) -> tuple[Path, str]:
    """The export path and format; a path that names neither a known file type nor a folder
    (an existing one, or one written with a trailing /) is an error naming it."""
    out = Path(text).expanduser()
    as_folder = text.endswith(("/", os.sep))
    if given == "auto" and not out.suffix and not as_folder and not out.is_dir():
        raise ValueError(
            f"{out}: no file suffix; name a .csv, .geojson or .json file, or end the path "
            "with / for a folder of Hephaestus JSON files"
        )
    return out, _label_format(out, given)


def _cmd_labels_export(args: argparse.Namespace) -> int:
    from insarexplore.explore import labelio

    ws = open_workspace(args.workspace)
    out, fmt = _export_target(args.output, args.format)
    _output(ws, args.output, force=True)  # --force is the exporters' own check
    target: Any = str(out) + os.sep if str(args.output).endswith(("/", os.sep)) else out
    if not ws.labels_path.exists():
        if not (fmt == "geojson" and args.all):
            raise ValueError(f"{ws.path}: no labels yet, nothing to export")
        n = labelio.export_geojson(None, out, ws, include_unlabelled=True, overwrite=args.force)
        say(f"wrote {n:,} footprints (no labels yet) to {out} ({fmt})")
        return 0
    with _label_store(ws, readonly=True) as store:
        n_labelled = len(store.current())
        if fmt == "csv":
            n = labelio.export_csv(store, out, ws, overwrite=args.force)
        elif fmt == "geojson":
            n = labelio.export_geojson(
                store, out, ws, include_unlabelled=args.all, overwrite=args.force
            )
        else:
            n = labelio.export_hephaestus(store, target, ws, overwrite=args.force)
    if n == n_labelled:
        say(f"wrote {n:,} labelled samples to {out} ({fmt})")
    else:  # --all: the unlabelled ones too
        say(f"wrote {n:,} samples ({n_labelled:,} labelled) to {out} ({fmt})")
    return 0


def _cmd_labels_import(args: argparse.Namespace) -> int:
    from insarexplore.explore import labelio

    ws = open_workspace(args.workspace)
    if args.from_data == bool(args.file):
        raise ValueError("labels import: name a FILE or give --from-data (one of the two)")
    if args.from_data:
        return _import_source_labels(ws, args.author)
    src = Path(args.file).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or folder")
    fmt = _label_format(src, args.format)
    known = ws.sample_ids()
    with _label_store(ws, author=args.author) as store:
        if fmt == "csv":
            n = labelio.import_csv(store, src, known_ids=known)
        elif fmt == "geojson":
            n = labelio.import_geojson(store, src, known_ids=known)
        else:
            n = labelio.import_hephaestus(store, src, ws, known_ids=known)
        counts = store.counts()
    say(f"imported {n:,} labels from {src} ({fmt}); now: {summary(counts)}")
    return 0


def summary(counts: dict[str, int]) -> str:
    """``a 20, b 10``: counts, most first."""
    return ", ".join(
        f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def _import_source_labels(ws: Any, author: str | None) -> int:
    """``labels import --from-data``: :func:`labelio.adopt_source_labels`, said in a line."""
    from insarexplore.explore.labelio import adopt_source_labels

    given = ws.source_labels()
    if not given:
        raise ValueError(
            f"{ws.path}: the data came with no labels (ingest class folders or annotations)"
        )
    with _label_store(ws, author=author) as store:
        done = adopt_source_labels(given, store)
        counts = store.counts()
    n = sum(done.added.values())
    say(
        (f"recorded {n:,} label(s) the data came with ({summary(done.added)})" if n else
         "nothing new to record")
        + (f"; {done.kept:,} sample(s) already labelled, or decided by hand, left as they are"
           if done.kept else "")
        + f"; now: {summary(counts) or 'no labels'}"
    )  # fmt: skip
    for label, (why, count) in sorted(done.refused.items()):
        say(f"  skipped {count:,} sample(s) labelled {label!r} in the data: a label {why}")
    return 0


def unadopted_source_labels(ws: Any) -> dict[str, int]:
    """Counts of the labels the data came with that the label store could still take."""
    from collections import Counter

    from insarexplore.explore.labelio import waiting_source_labels

    given = ws.source_labels()
    if not given:
        return {}
    if not ws.labels_path.exists():
        return dict(Counter(waiting_source_labels(given, None).values()))
    with _label_store(ws, readonly=True) as store:
        return dict(Counter(waiting_source_labels(given, store).values()))


def _cmd_labels_counts(args: argparse.Namespace) -> int:
    ws = open_workspace(args.workspace)
    waiting = unadopted_source_labels(ws)
    if not ws.labels_path.exists():
        say(f"{ws.path}: no labels yet")
    else:
        with _label_store(ws, readonly=True) as store:
            counts = store.counts()
        for label, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{count:>9,}  {label}")
    if waiting:
        say(
            f"the data came with {sum(waiting.values()):,} labels not in the label store "
            f"({summary(waiting)}): "
            f"`{PROG} labels import {ws.path} --from-data` makes them labels"
        )
    return 0


def add_labels(sub: Any) -> None:
    p = add_command(
        sub,
        "labels",
        lambda args: p.print_help(sys.stderr) or EXIT_USAGE,
        "export, import or count the labels of a workspace",
        """
  insarexplore labels export ws/ labels.csv
  insarexplore labels export ws/ labels.geojson         # footprints with labels, opens in QGIS
  insarexplore labels import ws/ colleague.csv --author bob
  insarexplore labels counts ws/
""",
        description=(
            "Labels live in the workspace's labels.sqlite, an append-only event log. Export\n"
            "writes the current labels; import adds events with origin 'import' (labels for\n"
            "sample ids the workspace does not hold are refused, with the list of ids)."
        ),
    )
    actions = p.add_subparsers(title="actions", metavar="ACTION")
    fmt_help = "csv, geojson or hephaestus (default: from the file suffix)"
    e = add_command(
        actions,
        "export",
        _cmd_labels_export,
        "write the current labels to CSV, GeoJSON or Hephaestus-style JSON",
        """
  insarexplore labels export ws/ labels.csv
  insarexplore labels export ws/ labels.geojson --all
  insarexplore labels export ws/ annotations/ --format hephaestus   # one JSON per sample
""",
    )
    e.set_defaults(command="labels export")
    e.add_argument("workspace", help="workspace folder")
    e.add_argument("output", help="output file (.csv, .geojson, .json) or folder")
    e.add_argument("--format", choices=["auto", *_LABEL_FORMATS], default="auto", help=fmt_help)
    e.add_argument("--all", action="store_true", help="GeoJSON: include unlabelled samples")
    e.add_argument(
        "--force", action="store_true", help="replace an existing file (or folder's JSON files)"
    )
    i = add_command(
        actions,
        "import",
        _cmd_labels_import,
        "add labels from CSV (sample,label), GeoJSON or Hephaestus JSON",
        """
  insarexplore labels import ws/ labels.csv
  insarexplore labels import ws/ annotations.tar.gz --format hephaestus
  insarexplore labels import ws/ --from-data     # the class folders' labels, as ingested
""",
    )
    i.set_defaults(command="labels import")
    i.add_argument("workspace", help="workspace folder")
    i.add_argument("file", nargs="?", help="CSV, GeoJSON, Hephaestus JSON file, folder or .tar.gz")
    i.add_argument(
        "--from-data",
        action="store_true",
        help="instead of a file: the labels the data came with (class folders, annotations "
        "read at ingest), for samples you have not labelled yourself",
    )
    i.add_argument("--format", choices=["auto", *_LABEL_FORMATS], default="auto", help=fmt_help)
    i.add_argument("--author", default=None, help="recorded author (default: OS user)")
    c = add_command(
        actions,
        "counts",
        _cmd_labels_counts,
        "how many samples carry each label",
        "  insarexplore labels counts ws/\n",
    )
    c.set_defaults(command="labels counts")
    c.add_argument("workspace", help="workspace folder")


def _cmd_suggest(args: argparse.Namespace) -> int:
    from insarexplore.explore.workspace_suggest import suggest_workspace

    ws = open_workspace(args.workspace)
    out = _output(ws, args.output, args.force) if args.output else None
    note_unembedded(ws, args.model)
    picks = suggest_workspace(
        ws, args.n, args.strategy, method=args.method, model_version=args.model, seed=args.seed
    )
    rows = [
        {"rank": r, "sample": s.sample, "score": s.score, "reason": s.reason}
        for r, s in enumerate(picks, 1)
    ]
    if out is not None:
        from insarexplore.explore.labelio import write_rows_csv

        write_rows_csv(out, rows, ["rank", "sample", "score", "reason"])
        say(f"wrote {len(rows)} suggestions to {out}")
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not args.output:
        width = max([len(str(r["sample"])) for r in rows] + [6])
        print(f"{'rank':>4}  {'sample':<{width}}  {'score':>8}  reason")
        for r in rows:
            print(
                f"{r['rank']:>4}  {_printable(r['sample']):<{width}}  {r['score']:>8.4f}  {r['reason']}"
            )
    return 0


def add_suggest(sub: Any) -> None:
    p = add_command(
        sub,
        "suggest",
        _cmd_suggest,
        "propose the samples to label next (active learning)",
        """
  insarexplore suggest ws/ -n 20                       # most uncertain under the few-shot model
  insarexplore suggest ws/ --strategy diversity        # works before any label exists
  insarexplore suggest ws/ --strategy geo_diversity -o next.csv
  insarexplore suggest ws/ --strategy typical          # first labels: centres of clusters
  insarexplore suggest ws/ --strategy margin_diverse   # uncertain, but not near-duplicates
  insarexplore suggest ws/ --strategy margin_balanced  # uncertain, one per predicted class
  insarexplore suggest ws/ --strategy anomaly          # most anomalous first
""",
        description=(
            "Rank unlabelled samples by how much labelling them should help. Uncertainty\n"
            "strategies (entropy, margin, least_confidence, margin_diverse, margin_balanced)\n"
            "fit a few-shot classifier on the current labels (at least 2 classes) when its\n"
            "stored predictions are out of date; diversity and typical need no labels\n"
            "(typical: the centres of unlabelled clusters, for the first labels);\n"
            "geo_diversity avoids overlapping footprints; margin_diverse spreads uncertain\n"
            "picks over the embedding space, margin_balanced over the predicted classes (the\n"
            "default; on the synthetic benchmark no schedule beats random labels yet, see\n"
            "benchmarks/RESULTS.md);\n"
            "anomaly takes the most anomalous samples."
        ),
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("-n", type=positive_int, default=20, help="how many (default 20)")
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="margin_balanced",
        help="default margin_balanced (start with typical when nothing is labelled yet)",
    )
    p.add_argument("--method", choices=FEWSHOT_METHODS, default="linear", help="classifier")
    p.add_argument("--model", default=None, help="model version (default: current)")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("-o", "--output", default=None, help="also write a CSV")
    p.add_argument("--force", action="store_true", help="replace an existing --output file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _printable(text: str) -> str:
    """``text`` for a terminal table: control characters (tabs, newlines, escapes) as ``?``."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def _cmd_scores(args: argparse.Namespace) -> int:
    from insarexplore.explore.deformation import ranked_deformation

    ws = open_workspace(args.workspace)
    out = _output(ws, args.output, args.force) if args.output else None
    note_unembedded(ws, args.model)
    table = ranked_deformation(ws, model_version=args.model, unlabelled=args.unlabelled)
    if out is not None:
        from insarexplore.explore.labelio import write_rows_csv

        rows = table.reset_index().to_dict("records")
        write_rows_csv(out, rows, ["sample", *table.columns])
        say(f"wrote the scores of {len(rows):,} samples to {out}")
    top = table.head(args.n)
    if args.json:
        print(json.dumps(top.reset_index().to_dict("records"), indent=2))
    elif top.empty:
        say("no samples to score" + (" without a label" if args.unlabelled else ""))
    elif not args.output:
        given = top["source_label"] if "source_label" in top else [""] * len(top)
        shown = [mine or (f"({src})" if src else "") for mine, src in zip(top["label"], given)]
        width = max([len(str(s)) for s in top.index] + [6])
        print(f"{'rank':>4}  {'sample':<{width}}  {'deformation':>11}  likely source  label")
        for r, ((sample, row), label) in enumerate(zip(top.iterrows(), shown), 1):
            print(f"{r:>4}  {_printable(sample):<{width}}  {row['deformation']:>11.3f}  "
                  f"{row['source']:<13}  {_printable(label)}")  # fmt: skip
    return 0


def add_scores(sub: Any) -> None:
    p = add_command(
        sub,
        "scores",
        _cmd_scores,
        "rank samples by their zero-shot deformation score (no labels needed)",
        """
  insarexplore scores ws/                          # the 20 samples that look most deformed
  insarexplore scores ws/ --unlabelled -n 50       # the same, among samples nobody labelled
  insarexplore scores ws/ -o scores.csv            # every sample's score and P(source)
""",
        description=(
            "Score every embedded sample with the model's physics head: the classifier of\n"
            "physics-made interferograms (Mogi, sill, dyke, earthquake, subsidence, none)\n"
            "trained beside the contrastive loss (pretrain --physics, on by default).\n"
            "deformation: the probability of deformation against none, in [0, 1], the two\n"
            "taken as equally likely beforehand (0.5: no evidence either way); source = the\n"
            "most likely deformation class; label: yours, or (in brackets) the one the data\n"
            "came with. Needs no labels and no second pass over the images. On the transfer\n"
            "proxy (benchmarks/RESULTS.md) its 0.5 cut gives 0.91 balanced accuracy on\n"
            "held-out sites; a few labels (the dashboard's few-shot model) adapt the cut to\n"
            "your archive."
        ),
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("-n", type=positive_int, default=20, help="how many to print (default 20)")
    p.add_argument("--unlabelled", action="store_true", help="only samples without a label")
    p.add_argument("--model", default=None, help="model version (default: current)")
    p.add_argument("-o", "--output", default=None, help="write every sample's scores to a CSV")
    p.add_argument("--force", action="store_true", help="replace an existing --output file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _cmd_info(args: argparse.Namespace) -> int:
    status = open_workspace(args.workspace).status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
        return 0
    print(f"workspace  {status['path']}")
    data = status.get("data")
    if data:
        variables = ", ".join(data["variables"])
        print(f"data       {data['samples']:,} samples, {data['size']} px ({variables})")
    else:
        print("data       none yet (insarexplore synth / ingest)")
    models = status.get("models") or []
    current = status.get("current_model")
    print(f"models     {len(models)}" + (f"; current {current}" if current else ""))
    if status.get("current_model_missing"):
        print(f"model      {current} (current): MISSING: no saved encoder in models/{current}")
    for version, why in (status.get("unfinished_runs") or {}).items():
        print(f"run        {version}: {why}")
    embedded = status.get("embeddings") or {}
    if current and current not in embedded:
        print(f"embedding  {current} (current): none yet (run `{PROG} embed`)")
    for version, emb in embedded.items():
        if version == current:
            version = f"{version} (current)"
        elif current:
            version = f"{version} (not the current model's)"
        if emb.get("old_format"):
            print(f"embedding  {version}: old unsafe format, not read (run `insarexplore embed`)")
        elif emb.get("unreadable"):
            print(f"embedding  {version}: UNREADABLE: {emb['unreadable']}")
        else:
            missing = f", {emb['missing']:,} samples missing" if emb["missing"] else ""
            print(f"embedding  {version}: {emb['n']:,} x {emb['dim']}{missing}")
    for art in status.get("artifacts") or []:
        flag = "STALE" if art["stale"] else "current"
        if art.get("unreadable"):
            flag = "UNREADABLE (computed again when next needed)"
        if art.get("old_format"):
            flag = "old unsafe format, not read (computed again when needed)"
        print(f"artefact   {art['kind']}/{art['key']}: {flag}")
    labels = status.get("labels") or {}
    if "unreadable" in labels:
        print(f"labels     labels.sqlite: UNREADABLE: {labels['unreadable']}")
    elif labels:
        counts = labels["classes"]
        each = ", ".join(f"{name} {n:,}" for name, n in counts.items())
        print(f"labels     {sum(counts.values()):,} labelled" + (f" ({each})" if each else ""))
    else:
        print("labels     none yet")
    return 0


def add_info(sub: Any) -> None:
    p = add_command(
        sub,
        "info",
        _cmd_info,
        "show what a workspace holds and which results are stale",
        """
  insarexplore info demo-workspace
  insarexplore info demo-workspace --json | jq .embeddings
""",
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
