"""Import and export of labels: CSV, GeoJSON footprints (for QGIS) and Hephaestus-style JSON.

Exports write the store's current labels; imports go through the store as one operation with
origin ``import`` (so they can be undone) and are all-or-nothing: a file naming sample ids the
workspace does not hold is refused with the list of those ids, before anything is written.

GeoJSON follows RFC 7946: a FeatureCollection of Polygons in EPSG:4326 with [lon, lat] order,
closed counter-clockwise rings, no ``crs`` member; samples with unknown footprints get a null
geometry. The file opens in QGIS as a polygon layer with ``sample`` and ``label`` attributes.

Exports never replace an existing file (or a folder's annotation files) unless
``overwrite=True``. In CSV exports, text cells that a spreadsheet would run as a formula
(starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) are prefixed with
``'``, as are cells that start with ``'`` followed by one of those; :func:`import_csv`
removes that one ``'`` again, so an export imports back exactly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from insarexplore import _atomic
from insarexplore.data.accessor import table_footprints
from insarexplore.data.schema import FOOTPRINT_COORDS as _FOOTPRINT
from insarexplore.errors import InSARDataError
from insarexplore.explore.labels import LabelStore, UnknownSampleError, check_label

__all__ = [
    "neutralise_cell",
    "write_rows_csv",
    "restore_cell",
    "sample_table",
    "labels_csv",
    "export_csv",
    "import_csv",
    "labels_geojson",
    "export_geojson",
    "import_geojson",
    "export_hephaestus",
    "import_hephaestus",
]


def sample_table(data: Any):  # -> pandas.DataFrame
    """Per-sample metadata indexed by sample id, from a Dataset, a Workspace or a DataFrame."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "open_data"):  # a Workspace
        data = data.open_data()
    cols = {
        name: np.asarray(var.values)
        for name, var in {**data.coords, **data.data_vars}.items()
        if name != "sample" and var.dims == ("sample",)
    }
    index = pd.Index(np.asarray(data["sample"].values).astype(str), name="sample")
    return pd.DataFrame(cols, index=index)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(text: str) -> str:
    """``text`` made safe for a spreadsheet: a leading ``'`` stops it being run as a formula."""
    if text.startswith(_FORMULA_START) or (text[:1] == "'" and text[1:2] in (*_FORMULA_START, "'")):
        return "'" + text
    return text


def restore_cell(text: str) -> str:
    """The inverse of :func:`neutralise_cell`."""
    if text[:1] == "'" and text[1:2] in (*_FORMULA_START, "'") and len(text) > 1:
        return text[1:]
    return text


def _check_target(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise InSARDataError(f"{path}: is a folder; name a file to export to")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass --force / overwrite=True to replace)")


def _write_atomic(path: Path, text: str) -> None:
    for up in (path.parent, *path.parent.parents):  # the nearest existing one must be a folder
        if up.exists():
            if not up.is_dir():
                raise InSARDataError(f"{path}: {up} is a file, not a folder")
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic.recover(path)  # a temporary a crashed export left beside it goes
    tmp = _atomic.beside(path, checked=False)
    try:
        with _atomic.claimed(path.parent):
            tmp.write_bytes(text.encode("utf-8"))  # the exact text, as the dashboard's downloads
            os.replace(tmp, path)
    except OSError as exc:  # name the file the user gave, leave no temporary behind
        tmp.unlink(missing_ok=True)
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    except BaseException:  # an interrupt: no temporary behind either
        tmp.unlink(missing_ok=True)
        raise


def write_rows_csv(path: str | Path, rows: list[dict[str, Any]], columns: list[str]) -> int:
    """Write ``rows`` (dicts keyed by ``columns``) as CSV, atomically (a crash leaves the old
    file or the new one, never half of one); text cells cannot run as spreadsheet formulas."""
    import csv
    import io

    path = Path(path)
    if path.is_symlink():  # write the file it points to; keep the link
        path = path.resolve()
    _check_target(path, overwrite=True)  # a folder is refused
    if path.exists() and not path.is_file():
        raise InSARDataError(f"{path}: not a regular file; name a file to write")
    if not path.parent.is_dir():
        what = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise FileNotFoundError(f"{path}: {path.parent} {what}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: neutralise_cell(v) if isinstance(v, str) else v for k, v in row.items()}
        )
    _write_atomic(path, buf.getvalue())
    return len(rows)


def _check_ids(ids: Iterable[str], known: Any, where: str) -> None:
    if known is None:
        return
    known = set(map(str, known))
    unknown = [s for s in ids if s not in known]
    if unknown:
        raise UnknownSampleError(unknown, where=where)


def _import(store: LabelStore, pairs: list[tuple[str, str]], known: Any, where: str) -> int:
    seen: dict[str, str] = {}
    for s, lab in pairs:
        if seen.setdefault(s, lab) != lab:
            raise InSARDataError(
                f"{where}: sample {s!r} is given two labels ({seen[s]!r}, {lab!r})"
            )
    _check_ids(seen, known, where)
    store.assign_many(seen.items(), origin="import", description=f"import {len(seen)} from {where}")
    return len(seen)


def _iso(value: Any) -> str | None:
    import pandas as pd

    if value is None or (isinstance(value, float) and np.isnan(value)) or pd.isna(value):
        return None
    if isinstance(value, (np.datetime64, pd.Timestamp)):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    return str(value)


# -- CSV -------------------------------------------------------------------------------------
def labels_csv(store: LabelStore, table: Any = None) -> str:
    """The CSV text of :func:`export_csv` (the dashboard's download is this text, too)."""
    return _csv_frame(store, table).to_csv(lineterminator="\n")


def _csv_frame(store: LabelStore, table: Any):  # -> pandas.DataFrame
    import pandas as pd

    labels = pd.Series(store.current(), name="label", dtype=object).sort_index()
    frame = labels.to_frame()
    frame.index.name = "sample"
    if table is not None:
        meta = sample_table(table)
        cols = [c for c in (*_FOOTPRINT, "primary_date", "secondary_date", "frame") if c in meta]
        frame = frame.join(meta[cols], how="left")
    frame.index = pd.Index([neutralise_cell(str(s)) for s in frame.index], name="sample")
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = [neutralise_cell(v) if isinstance(v, str) else v for v in frame[col]]
    return frame


def export_csv(
    store: LabelStore, path: str | Path, table: Any = None, *, overwrite: bool = False
) -> int:
    """Write ``sample,label`` rows (plus footprint, dates and frame when ``table`` is given).

    Text cells that would run as spreadsheet formulas are neutralised (see the module notes).
    """
    path = Path(path)
    _check_target(path, overwrite)
    frame = _csv_frame(store, table)
    _write_atomic(path, frame.to_csv(lineterminator="\n"))
    return len(frame)


def import_csv(store: LabelStore, path: str | Path, *, known_ids: Any = None) -> int:
    """Read a CSV with ``sample`` and ``label`` columns; rows with an empty label are skipped."""
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise InSARDataError(f"{path}: cannot read as CSV ({exc})") from exc
    missing = [c for c in ("sample", "label") if c not in frame.columns]
    if missing:
        raise InSARDataError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    pairs = [
        (restore_cell(s).strip(), restore_cell(lab).strip())
        for s, lab in zip(frame["sample"], frame["label"])
        if lab.strip()
    ]
    return _import(store, pairs, known_ids, str(path))


# -- GeoJSON ---------------------------------------------------------------------------------
def labels_geojson(store: LabelStore, table: Any, *, include_unlabelled: bool = False) -> str:
    """The GeoJSON text of :func:`export_geojson` (the dashboard's download is this text, too)."""
    return json.dumps(_geojson_doc(store, table, include_unlabelled), allow_nan=False)


def _geojson_doc(store: LabelStore | None, table: Any, include_unlabelled: bool) -> dict[str, Any]:
    meta = sample_table(table)
    labels = store.current() if store is not None else {}  # None: no label store yet
    ids = meta.index.astype(str)
    chosen = ids if include_unlabelled else [s for s in ids if s in labels]
    sub = meta.loc[chosen].copy()
    sub.index = sub.index.astype(str)
    sub["label"] = [labels.get(s, "") for s in sub.index]
    return table_footprints(
        sub, ("label", "frame", "primary_date", "secondary_date"), unknown="null"
    )


def export_geojson(
    store: LabelStore | None,
    path: str | Path,
    table: Any,
    *,
    include_unlabelled: bool = False,
    overwrite: bool = False,
) -> int:
    """Footprint polygons with their labels as an RFC 7946 FeatureCollection; returns features."""
    path = Path(path)
    _check_target(path, overwrite)
    doc = _geojson_doc(store, table, include_unlabelled)
    _write_atomic(path, json.dumps(doc, allow_nan=False))
    return len(doc["features"])


def import_geojson(store: LabelStore, path: str | Path, *, known_ids: Any = None) -> int:
    """Read labels from features' ``sample`` and ``label`` properties (empty labels skipped)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InSARDataError(f"{path}: cannot read as GeoJSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InSARDataError(f"{path}: not a GeoJSON FeatureCollection")
    features = doc.get("features", [])
    if not isinstance(features, list):
        raise InSARDataError(f"{path}: 'features' must be a list, not {type(features).__name__}")
    pairs = []
    for i, feat in enumerate(features):
        if not isinstance(feat, dict):
            raise InSARDataError(f"{path}: feature {i} is a {type(feat).__name__}, not an object")
        props = feat.get("properties") or {}
        if not isinstance(props, dict):
            raise InSARDataError(f"{path}: feature {i} has properties that are not an object")
        sample, label = props.get("sample", feat.get("id")), props.get("label")
        if sample is None:
            raise InSARDataError(f"{path}: feature {i} has no 'sample' property or id")
        for name, value in (("sample", sample), ("label", label)):
            if value is not None and not isinstance(value, str | int):
                raise InSARDataError(
                    f"{path}: feature {i} has a {name} of type {type(value).__name__} "
                    "(a string is expected)"
                )
        if label not in (None, ""):
            pairs.append((str(sample), str(label)))
    return _import(store, pairs, known_ids, str(path))


# -- Hephaestus-style JSON -------------------------------------------------------------------
def _hephaestus_labels(label: str) -> list[str]:
    """A label as a Hephaestus label list: a ``"+"``-joined multi-label (as the import makes
    them: sorted, distinct parts) is split back; any other label stays whole, so that
    importing the list gives the same label back (``"=1+1"`` is not turned into ``"1+=1"``)."""
    parts = label.split("+")
    if len(parts) > 1 and all(parts) and parts == sorted(set(parts)):
        return parts
    return [label]


def _exported(path: Path) -> bool:
    """Whether ``path`` holds a record this export wrote (it names our ``sample``): files
    of another origin in the folder, such as the Hephaestus release's own, stay."""
    try:
        return "sample" in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _unique_ids(samples: list[str], meta: Any) -> list[int]:
    """Hephaestus ``uniqueID`` of each sample: its own (the ``uniqueID`` a Hephaestus ingest
    stores, else the number of a ``hephaestus/<n>`` id), else a number made from the sample
    id (48 bits): the same in every export, and never one another sample holds (files are
    named by it)."""
    stored = meta["uniqueID"] if "uniqueID" in getattr(meta, "columns", ()) else None

    def own_id(sid: str) -> int | None:
        if stored is not None and sid in stored.index:
            try:
                value = float(stored.loc[sid])
            except (TypeError, ValueError):
                value = float("nan")
            if np.isfinite(value) and value >= 0 and value == int(value):
                return int(value)
        tail = sid.removeprefix("hephaestus/")
        return int(tail) if tail != sid and tail.isdigit() else None

    own = [own_id(sid) for sid in samples]
    used, out = {u for u in own if u is not None}, []
    for sid, u in zip(samples, own):
        if u is None:  # from the sample id alone: the same in every export
            u = int(hashlib.sha1(sid.encode("utf-8", "surrogatepass")).hexdigest()[:12], 16)
            while u in used:
                u += 1
            used.add(u)
        out.append(u)
    return out


def _annotation_fields(row: Any, label: str) -> dict[str, Any]:
    """``activity_type``, ``intensity_level``, ``phase`` and ``confidence`` as the data came
    with them (a Hephaestus ingest keeps them) while the label is still the data's own label;
    for a label a person gave or changed, none are known and confidence is 1."""

    def parts(name: str) -> list[str]:
        value = row.get(name)
        return [v for v in value.split("+") if v] if isinstance(value, str) else []

    if row.get("label") != label:
        return {"activity_type": [], "confidence": 1.0}
    fields: dict[str, Any] = {
        "activity_type": parts("activity_type"),
        "intensity_level": parts("intensity_level"),
    }
    if isinstance(row.get("activity_phase"), str):
        fields["phase"] = row.get("activity_phase")
    try:
        confidence = float(row.get("confidence"))
    except (TypeError, ValueError):
        confidence = float("nan")
    fields["confidence"] = confidence if np.isfinite(confidence) else 1.0
    return fields


def export_hephaestus(
    store: LabelStore, path: str | Path, table: Any = None, *, overwrite: bool = False
) -> int:
    """Labelled samples as Hephaestus-style annotation records.

    ``path`` ending in ``.json`` gets one JSON list. A folder - one that exists, or a path
    given as a string ending in ``/`` - gets one ``<uniqueID>.json`` file per sample, as in
    the Hephaestus release; any other path is an error (a mistyped file name does not silently
    become a folder). ``uniqueID`` is the Hephaestus id of a Hephaestus sample; ``label`` is a
    list (a ``"+"``-joined multi-label is split back); ``sample`` keeps our id so the round
    trip is exact. Where the label is the data's own, the data's ``activity_type``,
    ``intensity_level``, ``phase`` and ``confidence`` go with it. With ``overwrite``, a folder
    loses the records of an earlier export that this one no longer has; other ``.json``
    files in it (the release's own annotations) stay.
    """
    import pandas as pd

    as_folder = isinstance(path, str) and path.endswith(("/", os.sep))
    path = Path(path)
    if path.suffix.lower() == ".json" and not as_folder:
        _check_target(path, overwrite)
    elif not (as_folder or path.is_dir()):
        raise InSARDataError(
            f"{path}: not a .json file nor a folder; name a .json file, or an existing "
            "folder (or end the path with /) for one JSON file per sample"
        )
    elif path.is_dir() and not overwrite and any(path.glob("*.json")):
        raise FileExistsError(
            f"{path}: the folder already holds .json files (pass --force / overwrite=True "
            "to replace them)"
        )
    labels = store.current()
    meta = sample_table(table) if table is not None else pd.DataFrame(index=pd.Index([]))
    records = []
    authors = store.authors()
    for uid, (sid, label) in zip(_unique_ids(sorted(labels), meta), sorted(labels.items())):
        row = meta.loc[sid] if sid in meta.index else {}
        date = {
            k: _iso(row.get(k)) if k in row else None for k in ("primary_date", "secondary_date")
        }
        records.append(
            {
                "uniqueID": uid,
                "sample": sid,
                "frameID": _iso(row.get("frame")) if "frame" in row else None,
                "primary_date": date["primary_date"] and date["primary_date"].replace("-", ""),
                "secondary_date": date["secondary_date"]
                and date["secondary_date"].replace("-", ""),
                "label": _hephaestus_labels(label),
                **_annotation_fields(row, label),
                "annotator": authors.get(sid, store.author),
            }
        )
    if path.suffix.lower() == ".json" and not as_folder:
        _write_atomic(path, json.dumps(records, indent=1))
    else:
        _write_folder(path, {f"{rec['uniqueID']}.json": json.dumps(rec) for rec in records})
    return len(records)


def _write_folder(path: Path, files: dict[str, str]) -> None:
    """One file per record in ``path``: all written into a staging folder beside it first (the
    slow part, where an interrupt leaves ``path`` as it was), then renamed into place, then
    the records of an earlier export that this one does not have are removed. A file of
    another origin where a record would go (the release's own annotation) is never replaced."""
    path = path.absolute()  # "." has no name to stage beside
    theirs = [n for n in files if (path / n).is_file() and not _exported(path / n)]
    if theirs:
        raise InSARDataError(
            f"{path / theirs[0]}: not written by an export (the release's own annotation?) and "
            f"would be replaced ({len(theirs)} such file(s)); export to another folder"
        )
    path.mkdir(parents=True, exist_ok=True)
    _atomic.recover(path)  # a staging folder a crashed export left beside it goes
    with _atomic.claimed(path.parent):
        staging = _atomic.beside(path, checked=False)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            for name, text in files.items():
                (staging / name).write_bytes(text.encode("utf-8"))
            for name in files:
                os.replace(staging / name, path / name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    for old in path.glob("*.json"):  # overwrite: no stale records of an earlier export
        if old.stem.isdigit() and old.name not in files and _exported(old):
            old.unlink()


def _records(path: Path) -> Iterator[tuple[str, Any]]:
    if path.is_dir():
        for f in sorted(path.rglob("*.json")):
            yield str(f), json.loads(f.read_text(encoding="utf-8"))
    elif path.name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".json"):
                    yield f"{path}:{member.name}", json.load(tar.extractfile(member))
    else:
        yield str(path), json.loads(path.read_text(encoding="utf-8"))


def import_hephaestus(
    store: LabelStore, path: str | Path, table: Any = None, *, known_ids: Any = None
) -> int:
    """Import Hephaestus-style annotations (one file, a folder of files, or a .tar.gz).

    Records are matched to samples by their ``sample`` field, else ``hephaestus/<uniqueID>``,
    else (``frameID``, ``primary_date``, ``secondary_date``) against ``table``. Multi-label
    records become one ``"+"``-joined label, as the Hephaestus reader does.
    """
    path = Path(path)
    if not path.exists():
        raise InSARDataError(f"{path}: no such file or folder")
    meta = sample_table(table) if table is not None else None
    known = set(map(str, known_ids)) if known_ids is not None else None
    if known is None and meta is not None:
        known = set(meta.index.astype(str))
    by_pair: dict[tuple[str, str, str], str] = {}
    if meta is not None and {"frame", "primary_date", "secondary_date"} <= set(meta.columns):
        for sid, fr, p, s in zip(
            meta.index, meta["frame"], meta["primary_date"], meta["secondary_date"]
        ):
            key = (str(fr), (_iso(p) or "").replace("-", ""), (_iso(s) or "").replace("-", ""))
            by_pair[key] = str(sid)
    pairs, unmatched, n_files = [], [], 0
    try:
        for where, doc in _records(path):
            n_files += 1
            for rec in doc if isinstance(doc, list) else [doc]:
                if not isinstance(rec, dict) or "label" not in rec:
                    raise InSARDataError(f"{where}: not a Hephaestus annotation (no 'label')")
                labels = rec["label"] if isinstance(rec["label"], list) else [rec["label"]]
                label = "+".join(sorted({str(v) for v in labels if v}))
                if not label:
                    continue
                sid = rec.get("sample")
                if (
                    sid is None
                    and known is not None
                    and f"hephaestus/{rec.get('uniqueID')}" in known
                ):
                    sid = f"hephaestus/{rec.get('uniqueID')}"
                if sid is None:
                    key = (
                        str(rec.get("frameID")),
                        str(rec.get("primary_date")),
                        str(rec.get("secondary_date")),
                    )
                    sid = by_pair.get(key)
                if sid is None:
                    unmatched.append(f"uniqueID={rec.get('uniqueID')}")
                    continue
                pairs.append((str(sid), label))
    except (OSError, ValueError, tarfile.TarError) as exc:
        if isinstance(exc, InSARDataError):
            raise
        raise InSARDataError(f"{path}: cannot read Hephaestus annotations ({exc})") from exc
    if n_files == 0:
        raise InSARDataError(f"{path}: no Hephaestus annotation (.json) files in it")
    if unmatched:
        raise UnknownSampleError(unmatched, where=f"{path} (records matching no sample)")
    return _import(store, pairs, known, str(path))


@dataclass
class Adoption:
    """What :func:`adopt_source_labels` did: labels recorded per class, samples left as they
    were (already labelled, or decided by a person), and labels the store cannot keep (label
    -> why, with how many samples carry it)."""

    added: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    refused: dict[str, tuple[str, int]] = field(default_factory=dict)


def waiting_source_labels(given: dict[str, str], store: LabelStore | None) -> dict[str, str]:
    """The labels the data came with (``Workspace.source_labels``) that the label store could
    take: on samples it does not label and no person decided, and that it can keep."""
    done = set(store.current()) | store.decided_by_person() if store is not None else set()
    ok = {lab for lab in set(given.values()) if _keepable(lab) is None}
    return {s: lab for s, lab in given.items() if s not in done and lab in ok}


def adopt_source_labels(given: dict[str, str], store: LabelStore) -> Adoption:
    """Record the labels the data came with as label events (origin ``import``), except on
    samples already labelled or decided by a person (labelled or unlabelled: their decision
    stands), and except labels the store refuses (reported, not raised)."""
    from collections import Counter

    pairs = sorted(waiting_source_labels(given, store).items())
    if pairs:
        store.assign_many(pairs, origin="import", description="labels the data came with")
    why = {lab: _keepable(lab) for lab in set(given.values())}
    refused = {lab: (w, sum(1 for g in given.values() if g == lab))
               for lab, w in why.items() if w is not None}  # fmt: skip
    n_refused = sum(n for _, n in refused.values())
    added = dict(Counter(lab for _, lab in pairs))
    return Adoption(added=added, kept=len(given) - len(pairs) - n_refused, refused=refused)


def _keepable(label: str) -> str | None:
    """None when the label store can keep ``label``, else why not."""
    try:
        check_label(label)
    except ValueError as exc:
        return str(exc).split(": ", 1)[-1].split(", got ")[0]
    return None
