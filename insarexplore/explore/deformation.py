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

__all__ = [
    "deformation_scores",
    "model_physics_head",
    "ranked_deformation",
    "restretched_embeddings",
]


def _stored(ws: Any, model_version: str | None):
    """``(ids, vectors, head, where)``: the stored embeddings and the model's physics head with
    the stretch those vectors record (none recorded: the head's own); head None without one."""
    from insarexplore.ssl.checkpoint import embedded_stretch

    ids, vectors, meta = ws.load_embeddings(model_version)
    version = model_version or meta.get("model_version") or ws.current_model
    folder = ws.model_dir(version)
    where = f"{folder} (the stored embeddings of {version})"
    head = model_physics_head(folder)
    record = embedded_stretch(meta, folder)
    if head is not None and record != head.gains:
        from insarexplore.models.physics_head import checked_head

        pair = isinstance(record, list) and len(record) == 2
        if not pair:
            record = [f"{record!r} (not [gain, class_gain])"] * 2
        path = ws.embeddings_dir / folder.name / "meta.json"
        head = checked_head(head.classes, head.weight, head.bias, where=f"{path}: 'stretch'",
                            gain=record[0], class_gain=record[1])  # fmt: skip
    return ids, vectors, head, where


def deformation_scores(ws: Any, model_version: str | None = None):  # -> pandas.DataFrame | None
    """Per sample (index: sample id): ``deformation`` and ``P(<class>)`` of every bank class,
    or None when the model has no physics head."""
    import pandas as pd

    ids, vectors, head, where = _stored(ws, model_version)
    if head is None:
        return None
    p = head.probabilities(vectors, where=where)
    table = pd.DataFrame(
        {f"P({c})": p[:, i].astype(np.float32) for i, c in enumerate(head.classes)},
        index=pd.Index(np.asarray(ids).astype(str), name="sample"),
    )
    table.insert(0, "deformation", head.deformation_of(p))
    return table


def restretched_embeddings(ws: Any, gains: Any, model_version: str | None = None):
    """``(ids, vectors)``: the stored embeddings as the model would embed them with other
    ``(gain, class_gain)``; ``(1, 1)`` gives the encoder's plain features. For comparing
    stretches without embedding again (benchmarks); other gains than (1, 1) need a head."""
    import dataclasses

    from insarexplore.models.physics_head import checked_gain

    ids, vectors, head, where = _stored(ws, model_version)
    gain, class_gain = (checked_gain(g, n) for g, n in zip(gains, ("gain", "class_gain")))
    if head is None:
        if (gain, class_gain) != (1.0, 1.0):
            raise ValueError(f"{where}: the model has no physics head to stretch along")
        return ids, np.asarray(vectors, dtype=np.float32)
    other = dataclasses.replace(head, gain=gain, class_gain=class_gain)
    return ids, other.stretch(head.unstretch(vectors))


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
        if not ws.model_dir(version).is_dir():
            raise WorkspaceError(
                f"{ws.model_dir(version)}: model {version} is missing (its folder was removed "
                "or renamed), so no deformation scores; see `insarexplore info`"
            )
        raise WorkspaceError(
            f"{ws.model_dir(version)}: model {version} has no physics head (pretrained with "
            "--physics 0, or fine-tuned), so no deformation scores; pretrain with the default"
        )
    sources = [c for c in table.columns if c.startswith("P(") and c != "P(none)"]
    table.insert(1, "source", table[sources].idxmax(axis=1).str[2:-1])
    mine = _user_labels(ws)
    table.insert(2, "label", [mine.get(s, "") for s in table.index])
    given = ws.source_labels() or None
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


def model_physics_head(model_dir: Any):  # -> PhysicsHead | None
    """The model's physics head, read as ``embed.Embedder`` reads it to stretch embeddings
    (``ssl.checkpoint.model_physics_head``; imported here only when called: it needs torch)."""
    from insarexplore.ssl.checkpoint import model_physics_head as read

    return read(model_dir)
