"""Active learning on a workspace: its embeddings, current labels, predictions and footprints.

The workspace side of :func:`insarexplore.explore.active.suggest`, as
:func:`insarexplore.explore.fewshot.train_fewshot` is the workspace side of the few-shot
classifier: it gathers what the chosen strategy reads (``REGISTRY[strategy].uses``), reusing the
stored predictions when they were trained on the current labels and training them otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from insarexplore._checks import check_whole
from insarexplore.explore.active import REGISTRY, STRATEGIES, Suggestion, suggest
from insarexplore.names import UNCERTAINTY_STRATEGIES

__all__ = ["suggest_workspace"]


def _predictions(ws: Any, method: str, model_version: str | None, store: Any, ids, revision):
    """Stored predictions of ``method`` if trained on label ``revision``, else fresh ones."""
    from insarexplore.explore.fewshot import load_predictions, train_fewshot

    version = model_version or ws.current_model
    try:
        preds = load_predictions(ws, method, version)
        same_store = preds.meta.get("labels_store", "") == store.store_id()  # one made anew
        fresh = (  # counts its revisions from 1 again
            same_store
            and preds.meta.get("labels_revision") == revision
            and np.array_equal(preds.ids, ids)
        )
    except Exception:  # none stored yet
        fresh = False
    if not fresh:
        _, preds = train_fewshot(ws, method, model_version, store=store, progress=False)
    return preds


def _footprints(ws: Any, ids: np.ndarray) -> np.ndarray:
    """(lon_min, lat_min, lon_max, lat_max) of each id (NaN where the data has no such sample)."""
    table = ws.open_data().reset_coords()
    pos = {s: i for i, s in enumerate(np.asarray(table["sample"].values).astype(str))}
    cols = [
        np.asarray(table[c].values, dtype=np.float64)
        for c in ("lon_min", "lat_min", "lon_max", "lat_max")
    ]
    rows = np.array([pos.get(s, -1) for s in ids])
    out = np.full((len(ids), 4), np.nan)
    ok = rows >= 0
    out[ok] = np.stack(cols, axis=1)[rows[ok]]
    return out


def _anomaly(ws: Any, ids: np.ndarray, model_version: str | None) -> np.ndarray:
    """Cached anomaly score of each id (NaN where there is none)."""
    from insarexplore.explore.anomaly import anomaly_scores

    table = anomaly_scores(ws, model_version=model_version)
    return table["anomaly"].reindex(ids).to_numpy(np.float64)


def suggest_workspace(
    ws: Any,
    n: int = 20,
    strategy: str = "margin_balanced",
    *,
    method: str = "linear",
    model_version: str | None = None,
    store: Any = None,
    seed: int = 0,
) -> list[Suggestion]:
    """:func:`~insarexplore.explore.active.suggest` over a workspace's embeddings, current labels,
    stored predictions, footprints and anomaly scores (each only when the strategy reads it).

    Strategies that read predictions use the stored predictions of ``method`` when they were
    trained on the current labels, and train them (:func:`train_fewshot`) otherwise; without
    labels of 2 classes, the uncertainty strategies raise and the others go without.
    """
    from insarexplore.explore.labels import LabelStore

    if strategy not in REGISTRY:
        raise ValueError(f"strategy: must be one of {STRATEGIES}, got {strategy!r}")
    check_whole("n", n, 1)
    check_whole("seed", seed, 0, 2**32 - 1)
    uses = REGISTRY[strategy].uses
    ids, vectors, _ = ws.load_embeddings(model_version)
    ids = np.asarray(ids).astype(str)
    own = store is None
    if own and ws.labels_path.is_file():  # a reader: opens no lock, writes nothing
        store = LabelStore(ws.labels_path, readonly=True)
    try:
        current, revision = (store.current(), store.revision()) if store else ({}, 0)
        labelled = np.fromiter((s in current for s in ids), dtype=bool, count=len(ids))
        proba = classes = None
        if "proba" in uses and len(set(current.values())) >= 2:
            preds = _predictions(ws, method, model_version, store, ids, revision)
            proba, classes = preds.proba, preds.classes
        elif strategy in UNCERTAINTY_STRATEGIES:
            raise ValueError(
                f"strategy {strategy!r} needs a few-shot model: label samples of at least 2 classes"
                " first, or use strategy='typical' or 'diversity'"
            )
    finally:
        if own and store is not None:
            store.close()
    return suggest(
        n,
        strategy,
        proba=proba,
        embeddings=np.asarray(vectors),
        labelled=labelled,
        footprints=_footprints(ws, ids) if "footprints" in uses else None,
        anomaly=_anomaly(ws, ids, model_version) if "anomaly" in uses else None,
        ids=ids,
        classes=classes,
        seed=seed,
    )
