"""The dashboard's only door to the engine (``insarexplore.explore``) and the workspace.

The views never call the engine directly; the state calls these small functions, so the engine's
API is adapted in one place and the state stays about what the user sees. The label store
opened here is used as it is (``state.store``), with no wrappers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from insarexplore.explore.active import UNCERTAINTY_STRATEGIES

__all__ = [
    "open_workspace",
    "embeddings",
    "projection_method",
    "projection",
    "extras",
    "open_label_store",
    "export",
    "check_trainable",
    "train_predict",
    "stored_predictions",
    "suggest",
]

Progress = Callable[[float, str], None]


# -- workspace -----------------------------------------------------------------------------
def open_workspace(workspace: Any) -> Any:
    """A ``Workspace`` from a path or a ``Workspace``."""
    from insarexplore.workspace import Workspace

    return workspace if isinstance(workspace, Workspace) else Workspace.open(workspace)


def embeddings(ws: Any, model_version: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """``(ids, vectors, model_version)`` of the current (or given) model's embeddings."""
    ids, vectors, meta = ws.load_embeddings(model_version)
    version = model_version or meta.get("model_version") or ws.current_model
    return np.asarray(ids).astype(str).astype(object), np.asarray(vectors, np.float32), version


def projection_method(ws: Any, n: int, projection: str, model_version: str | None) -> str:
    """``umap`` or ``pca`` for ``projection`` (``auto``: a cached UMAP, else by size)."""
    method = projection
    if projection == "auto":
        cached = any(
            key.startswith(f"umap-{model_version}-") for _, key in ws.list_artifacts("projection")
        )
        method = "umap" if cached or n <= 100_000 else "pca"
    if method not in ("umap", "pca"):
        raise ValueError(f"projection must be 'auto', 'umap' or 'pca'; got {projection!r}")
    return method


def projection(
    ws: Any, ids: np.ndarray, *, projection: str, model_version: str | None
) -> np.ndarray:
    """2-D coordinates aligned with ``ids`` (fitted once, then cached by the engine)."""
    from insarexplore.explore.projection import project

    method = projection_method(ws, len(ids), projection, model_version)
    result = project(ws, method=method, model_version=model_version)
    return _aligned_xy(result, ids)


def _aligned_xy(result: Any, ids: np.ndarray) -> np.ndarray:
    if isinstance(result, pd.DataFrame):
        return result.reindex(pd.Index(ids))[["x", "y"]].to_numpy(np.float64)
    if isinstance(result, tuple) and len(result) >= 2:
        pids, xy = result[0], np.asarray(result[1])
        frame = pd.DataFrame(xy[:, :2], index=pd.Index(np.asarray(pids).astype(str)))
        return frame.reindex(pd.Index(ids)).to_numpy(np.float64)
    xy = np.asarray(result, dtype=np.float64)
    if xy.shape != (len(ids), 2):
        raise ValueError(f"projection has shape {xy.shape}; expected {(len(ids), 2)}")
    return xy


def extras(
    ws: Any, ids: np.ndarray, *, model_version: str | None, space: str = "embedding"
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per-sample engine results for colouring, ``cluster`` and ``anomaly`` (both cached),
    ``deformation`` (when the model has a physics head), and
    the summary of the cluster proposals (method, settings, count, noise, a description).

    ``space``: where clusters are proposed; the dashboard passes its map's method, so clusters
    are groups on the map the user lassos.
    """
    from insarexplore.explore.clusters import cluster

    out: dict[str, np.ndarray] = {}
    clusters = cluster(ws, model_version=model_version, space=space)
    out["cluster"] = _aligned(clusters, ids, "cluster", -1).astype(np.int64)
    info = dict(getattr(clusters, "attrs", {}) or {})
    from insarexplore.errors import InSARError
    from insarexplore.explore.deformation import deformation_scores

    try:
        physics = deformation_scores(ws, model_version=model_version)
    except InSARError as err:  # an optional field: a bad head file leaves it out, said once
        warnings.warn(f"no deformation scores: {err}", stacklevel=2)
        physics = None
    if physics is not None:  # the model's zero-shot score, from its physics head
        out["deformation"] = _aligned(physics, ids, "deformation", np.nan).astype(np.float64)
    try:
        from insarexplore.explore.anomaly import anomaly_scores
    except ImportError:  # engine without anomaly scores: the field is simply not offered
        return out, info
    scores = anomaly_scores(ws, model_version=model_version)
    out["anomaly"] = _aligned(scores, ids, "anomaly", np.nan).astype(np.float64)
    return out, info


def _aligned(result: Any, ids: np.ndarray, column: str, fill: Any) -> np.ndarray:
    if isinstance(result, pd.DataFrame):
        col = column if column in result.columns else result.columns[0]
        return result[col].reindex(pd.Index(ids)).fillna(fill).to_numpy()
    if isinstance(result, pd.Series):
        return result.reindex(pd.Index(ids)).fillna(fill).to_numpy()
    if isinstance(result, tuple) and len(result) >= 2:
        series = pd.Series(np.asarray(result[1]), index=np.asarray(result[0]).astype(str))
        return series.reindex(pd.Index(ids)).fillna(fill).to_numpy()
    return np.asarray(result)


# -- labels --------------------------------------------------------------------------------
def open_label_store(path: str | Path, author: str, session: str, known_ids: Any = None) -> Any:
    from insarexplore.explore.labels import LabelStore

    return LabelStore(path, author=author, session=session, known_ids=known_ids)


def export(store: Any, fmt: str, data: Any) -> bytes:
    """Current labels as CSV (sample, label, footprint, dates) or GeoJSON footprints: the bytes
    ``insarexplore labels export`` writes (:mod:`insarexplore.explore.labelio`)."""
    from insarexplore.explore import labelio

    # the data's own sample table (all of the workspace's samples), as the CLI reads it;
    # a table-only explorer has just its table
    table = data.dataset if data.dataset is not None else data.table
    if fmt == "csv":
        return labelio.labels_csv(store, table).encode("utf-8")
    if fmt == "geojson":
        return labelio.labels_geojson(store, table).encode("utf-8")
    raise ValueError(f"fmt must be 'csv' or 'geojson'; got {fmt!r}")


# -- model ---------------------------------------------------------------------------------
def check_trainable(labels: pd.Series, data: Any) -> None:
    """Clear errors before a job starts: embeddings present, two classes, a label each."""
    if data.embeddings is None:
        raise ValueError("this workspace has no embeddings: run `insarexplore embed` first")
    counts = labels.value_counts()
    if len(counts) < 2:
        raise ValueError(
            f"few-shot training needs labels of at least 2 classes; have {dict(counts)} "
            "(label a few samples of another class)"
        )


def train_predict(
    data: Any,
    labels: pd.Series,
    *,
    method: str = "linear",
    store: Any = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fit a few-shot classifier on the labelled embeddings and predict every sample.

    With a workspace the engine's :func:`train_fewshot` does it and stores the predictions per
    model version; a table-only explorer fits :class:`FewShotClassifier` directly. Returns
    ``predicted``, ``confidence`` (aligned with ``data.table``), ``proba`` and ``classes``.
    """
    from insarexplore.explore.fewshot import FewShotClassifier, train_fewshot

    report = progress or (lambda f, t: None)
    report(0.02, f"fitting {method} on {len(labels)} labels")
    if data.workspace is not None:
        _, preds = train_fewshot(
            data.workspace,
            method,
            data.model_version,
            store=store,
            progress=lambda f, text: report(0.02 + 0.9 * f, text),
        )
        report(0.95, "aligning predictions")
        pos = pd.Index(preds.ids).get_indexer(data.table.index)
        if (pos < 0).any():
            raise ValueError(
                f"{int((pos < 0).sum())} samples have no prediction (embed them first)"
            )
        predicted, confidence, proba = preds.predicted[pos], preds.confidence[pos], preds.proba[pos]
        classes = preds.classes
    else:
        report(0.1, f"fitting {method} on {len(labels)} labels")
        X = np.asarray(data.embeddings)
        clf = FewShotClassifier(method).fit(
            X[data.index_of(labels.index)], labels.to_numpy().astype(str)
        )
        proba = np.empty((len(X), len(clf.classes_)), dtype=np.float32)
        step = 65_536
        for start in range(0, len(X), step):
            proba[start : start + step] = clf.predict_proba(X[start : start + step])
            report(0.2 + 0.7 * min(1.0, (start + step) / len(X)), "predicting")
        classes = clf.classes_.astype(str)
        best = proba.argmax(axis=1)
        predicted, confidence = classes[best], proba[np.arange(len(X)), best]
    report(1.0, "done")
    return {
        "predicted": np.asarray(predicted, dtype=object),
        "confidence": np.asarray(confidence),
        "proba": np.asarray(proba, dtype=np.float32),
        "classes": [str(c) for c in classes],
    }


def stored_predictions(data: Any, method: str = "linear") -> dict[str, Any] | None:
    """Predictions stored earlier for the current model, when still aligned with the data."""
    ws = data.workspace
    if ws is None or not ws.has_artifact("predictions", f"{method}-{data.model_version}"):
        return None
    from insarexplore.explore.fewshot import load_predictions

    preds = load_predictions(ws, method, data.model_version)
    pos = pd.Index(preds.ids).get_indexer(data.table.index)
    if (pos < 0).any():
        return None
    return {
        "predicted": preds.predicted[pos].astype(object),
        "confidence": preds.confidence[pos],
        "proba": preds.proba[pos],
        "classes": list(preds.classes),
        "labels_revision": preds.meta.get("labels_revision"),
    }


def suggest(
    data: Any,
    table: pd.DataFrame,
    *,
    n: int = 12,
    strategy: str = "entropy",
    proba: np.ndarray | None = None,
    classes: list[str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Next samples to label (never labelled ones) and a one-line reason for each."""
    from insarexplore.explore.active import suggest as engine_suggest

    if strategy in UNCERTAINTY_STRATEGIES and proba is None:
        raise ValueError(
            f"strategy {strategy!r} needs predictions: train a few-shot model first "
            "(or use 'typical' or 'diversity', which need no labels)"
        )
    labelled = (table["label"] != "").to_numpy()
    if strategy == "anomaly":
        scores = table["anomaly"].to_numpy(np.float64)
        scores = np.where(labelled | ~np.isfinite(scores), -np.inf, scores)
        top = np.argsort(-scores, kind="stable")[:n]
        top = top[np.isfinite(scores[top])]
        if not top.size:
            raise ValueError("no anomaly scores for unlabelled samples in this workspace")
        ids = [str(table.index[i]) for i in top]
        return ids, {
            sid: f"anomaly score {scores[i]:.3g} (rank {k + 1} of unlabelled)"
            for k, (sid, i) in enumerate(zip(ids, top))
        }
    cols = ["lon_min", "lat_min", "lon_max", "lat_max"]
    footprints = table[cols].to_numpy(np.float64) if set(cols) <= set(table.columns) else None
    emb = None if data.embeddings is None else np.asarray(data.embeddings)
    picks = engine_suggest(
        n,
        strategy,
        proba=proba,
        embeddings=emb,
        labelled=labelled,
        footprints=footprints,
        ids=table.index.to_numpy(),
        classes=classes,
    )
    ids = [str(p.sample) for p in picks]
    return ids, {str(p.sample): p.reason for p in picks}
