"""Zero-shot deformation scores of a workspace's samples, from the model's physics head.

A model pretrained with the physics bank keeps its classifier of physics-made interferograms
(``insarexplore.models.physics_head``). Applied to the stored embeddings it gives each sample
the probability of each deformation source and ``deformation``, the probability of deformation
against none with the two equally likely beforehand (``PhysicsHead.deformation_of``): no labels
needed, no second pass over the images. On the transfer proxy (benchmarks/RESULTS.md) this one
score separates deformation from none on colour renderings of held-out sites better than a
probe on the full embedding does. Models pretrained without the bank have no scores (None).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from insarexplore.ssl.checkpoint import model_physics_head  # one reading, shared with Embedder

__all__ = ["deformation_scores", "model_physics_head", "ranked_deformation"]


def deformation_scores(ws: Any, model_version: str | None = None):  # -> pandas.DataFrame | None
    """Per sample (index: sample id): ``deformation`` and ``P(<class>)`` of every bank class,
    or None when the model has no physics head."""
    import pandas as pd

    ids, vectors, meta = ws.load_embeddings(model_version)
    version = model_version or meta.get("model_version") or ws.current_model
    folder = ws.model_dir(version)
    head = model_physics_head(folder)
    if head is None:
        return None
    p = head.probabilities(vectors, where=f"{folder} (the stored embeddings of {version})")
    table = pd.DataFrame(
        {f"P({c})": p[:, i].astype(np.float32) for i, c in enumerate(head.classes)},
        index=pd.Index(np.asarray(ids).astype(str), name="sample"),
    )
    table.insert(0, "deformation", head.deformation_of(p))
    return table


def ranked_deformation(ws: Any, model_version: str | None = None, *, unlabelled: bool = False):
    """The samples by decreasing deformation score (what ``insarexplore scores`` prints):
    ``deformation``, ``source`` (the most likely deformation class), ``label`` (the user's
    label, "" for none), ``source_label`` (the label the data came with, when it came with
    some) and ``P(<class>)``. ``unlabelled`` keeps only samples with neither. A model without
    a physics head is an error naming it."""
    from insarexplore.errors import WorkspaceError

    table = deformation_scores(ws, model_version)
    if table is None:
        version = ws.resolve_model(model_version)
        raise WorkspaceError(
            f"{ws.model_dir(version)}: model {version} has no physics head (pretrained with "
            "--physics 0, or fine-tuned), so no deformation scores; pretrain with the default"
        )
    sources = [c for c in table.columns if c.startswith("P(") and c != "P(none)"]
    table.insert(1, "source", table[sources].idxmax(axis=1).str[2:-1])
    mine = _user_labels(ws)
    table.insert(2, "label", [mine.get(s, "") for s in table.index])
    given = _source_labels(ws)
    if given is not None:
        table.insert(3, "source_label", [given.get(s, "") for s in table.index])
    if unlabelled:
        keep = table["label"] == ""
        if given is not None:
            keep &= table["source_label"] == ""
        table = table[keep]
    return table.sort_values("deformation", ascending=False, kind="stable")


def _user_labels(ws: Any) -> dict[str, str]:
    if not ws.labels_path.exists():
        return {}
    from insarexplore.explore.labels import LabelStore

    with LabelStore(ws.labels_path, readonly=True) as store:
        return store.current()


def _source_labels(ws: Any) -> dict[str, str] | None:
    """The store's ``label`` variable (the labels the data came with), or None without any."""
    if not ws.has_data():
        return None
    ds = ws.open_data(lazy=True)
    try:
        if "label" not in ds.variables:
            return None
        given = dict(zip(ds["sample"].values.astype(str), ds["label"].values.astype(str)))
    finally:
        ds.close()
    return given if any(v for v in given.values()) else None
