"""Zero-shot deformation scores from the model's physics head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from insarexplore.data.synthetic.parameters import CLASSES
from insarexplore.explore.deformation import deformation_scores
from insarexplore.models.physics_head import (
    HEAD_FILE,
    PhysicsHead,
    load_physics_head,
    save_physics_head,
)
from insarexplore.models.serialization import ModelMismatchError


def _head(d: int, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(d, len(CLASSES))


def test_no_head_no_scores(workspace):
    ws, _, _ = workspace
    assert deformation_scores(ws) is None


def test_scores_are_the_heads_probabilities_of_the_stored_embeddings(workspace):
    ws, X, _ = workspace
    lin = _head(X.shape[1])
    save_physics_head(ws.model_dir(ws.current_model) / HEAD_FILE, lin, CLASSES)
    table = deformation_scores(ws)
    ids, vecs, _ = ws.load_embeddings()
    assert list(table.index) == list(np.asarray(ids).astype(str))
    want = torch.softmax(lin(torch.tensor(np.asarray(vecs))), 1).detach().numpy()
    none = CLASSES.index("none")
    np.testing.assert_allclose(table["P(none)"], want[:, none], rtol=1e-4, atol=1e-6)
    odds = (1 - want[:, none]) / want[:, none] / (len(CLASSES) - 1)  # the bank's 5 : 1 out
    np.testing.assert_allclose(table["deformation"], odds / (1 + odds), rtol=1e-4, atol=1e-6)
    probs = table[[f"P({c})" for c in CLASSES]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert ((table["deformation"] >= 0) & (table["deformation"] <= 1)).all()
    # the ranking is the head's own: by 1 - P(none)
    assert (np.argsort(-table["deformation"].to_numpy(), kind="stable")
            == np.argsort(want[:, none], kind="stable")).all()  # fmt: skip


def test_the_score_takes_the_banks_prior_out():
    """A head with no evidence either way (every class as likely as in the bank, which draws
    them in equal shares) scores 0.5, not 5/6; certainty stays certainty."""
    from insarexplore.models.physics_head import PhysicsHead

    k = len(CLASSES)
    head = PhysicsHead(tuple(CLASSES), np.zeros((k, 3), np.float32), np.zeros(k, np.float32))
    assert head.deformation(np.ones((2, 3))) == pytest.approx([0.5, 0.5])
    none = CLASSES.index("none")
    p = np.full((3, k), 0.0)
    p[0, none] = 1.0  # surely none
    p[1, (none + 1) % k] = 1.0  # surely a source
    p[2] = 0.5 / (k - 1)
    p[2, none] = 0.5  # the head's 1 - P(none) = 0.5: evidence for none against a 5 : 1 prior
    assert head.deformation_of(p) == pytest.approx([0.0, 1.0, 1 / k])


def test_dashboard_offers_the_score_as_a_field(workspace):
    from insarexplore.app import engine

    ws, X, _ = workspace
    ids = np.asarray(ws.load_embeddings()[0]).astype(str)
    assert "deformation" not in engine.extras(ws, ids, model_version=None, space="pca")[0]
    save_physics_head(ws.model_dir(ws.current_model) / HEAD_FILE, _head(X.shape[1]), CLASSES)
    out, _ = engine.extras(ws, ids, model_version=None, space="pca")
    assert out["deformation"].shape == (len(ids),) and np.isfinite(out["deformation"]).all()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "shape", "format"])
def test_a_bad_head_file_is_refused_in_one_line(tmp_path, damage):
    path = tmp_path / HEAD_FILE
    save_physics_head(path, _head(8), CLASSES)
    if damage == "garbage":
        path.write_bytes(b"not a torch file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        blob = torch.load(path, weights_only=True)
        if damage == "shape":
            blob["bias"] = torch.zeros(3)
        else:
            blob["format"] = "other"
        torch.save(blob, path)
    with pytest.raises(ModelMismatchError, match=HEAD_FILE) as err:
        load_physics_head(tmp_path)
    assert "\n" not in str(err.value)


def test_a_head_without_none_or_with_the_wrong_width_is_refused(tmp_path):
    with pytest.raises(ValueError, match="none"):
        save_physics_head(tmp_path / HEAD_FILE, _head(8), [f"c{i}" for i in range(len(CLASSES))])
    save_physics_head(tmp_path / HEAD_FILE, _head(8), CLASSES)
    with pytest.raises(ModelMismatchError, match="8 features"):
        load_physics_head(tmp_path).probabilities(np.zeros((2, 5), np.float32))


def test_a_head_of_another_width_than_the_embeddings_names_the_model(workspace):
    ws, X, _ = workspace
    save_physics_head(ws.model_dir(ws.current_model) / HEAD_FILE, _head(X.shape[1] + 1), CLASSES)
    with pytest.raises(ModelMismatchError, match=f"takes {X.shape[1] + 1} features"):
        deformation_scores(ws)


def test_ranked_scores_order_samples_and_show_both_kinds_of_label(workspace):
    from insarexplore.explore.deformation import ranked_deformation
    from insarexplore.explore.labels import LabelStore

    ws, X, _ = workspace
    save_physics_head(ws.model_dir(ws.current_model) / HEAD_FILE, _head(X.shape[1]), CLASSES)
    with LabelStore(ws.labels_path) as store:
        store.assign("s0003", "mogi-like")
    table = ranked_deformation(ws)
    assert len(table) == len(X) and table["deformation"].is_monotonic_decreasing
    assert table.loc["s0003", "label"] == "mogi-like" and table.loc["s0004", "label"] == ""
    assert table.loc["s0000", "source_label"].startswith("c")  # the label the data came with
    p = table[[f"P({c})" for c in CLASSES if c != "none"]].to_numpy()
    want = [CLASSES[i] for i in range(len(CLASSES)) if CLASSES[i] != "none"]
    assert list(table["source"]) == [want[i] for i in p.argmax(1)]
    # every sample here came labelled: none is left as unlabelled
    assert ranked_deformation(ws, unlabelled=True).empty


def test_scores_command_prints_ranks_writes_every_sample_and_refuses_a_model_without_head(
    workspace, tmp_path, capsys
):
    import pandas as pd

    from insarexplore import cli

    ws, X, _ = workspace
    assert cli.main(["scores", str(ws.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no physics head" in err and "\n" not in err
    save_physics_head(ws.model_dir(ws.current_model) / HEAD_FILE, _head(X.shape[1]), CLASSES)
    assert cli.main(["scores", str(ws.path), "-n", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[0].split()[:3] == ["rank", "sample", "deformation"]
    out = tmp_path / "scores.csv"
    assert cli.main(["scores", str(ws.path), "-o", str(out)]) == 0
    csv = pd.read_csv(out, index_col="sample")
    assert len(csv) == len(X) and csv["deformation"].is_monotonic_decreasing
    assert {"source", "label", "P(none)"} <= set(csv.columns)
    assert not list(tmp_path.glob(".scores.csv.tmp*"))  # written atomically, nothing left


@pytest.mark.parametrize("odd", ["parameter", "sparse", "only-none", "repeated"])
def test_odd_tensors_or_classes_in_a_head_file_are_refused_in_one_line(tmp_path, odd):
    path = tmp_path / HEAD_FILE
    save_physics_head(path, _head(8), CLASSES)
    blob = torch.load(path, weights_only=True)
    if odd == "parameter":
        blob["weight"] = torch.nn.Parameter(blob["weight"])
    elif odd == "sparse":
        blob["weight"] = blob["weight"].to_sparse()
    elif odd == "only-none":
        blob.update(classes=["none"], weight=blob["weight"][:1], bias=blob["bias"][:1])
    else:
        blob["classes"] = ["none"] * len(CLASSES)
    torch.save(blob, path)
    if odd in ("parameter", "sparse"):  # readable tensors: the head loads, as plain arrays
        head = load_physics_head(tmp_path)
        assert isinstance(head.weight, np.ndarray) and head.weight.shape == (len(CLASSES), 8)
        return
    with pytest.raises(ModelMismatchError, match=HEAD_FILE) as err:
        load_physics_head(tmp_path)
    assert "\n" not in str(err.value)


def test_the_stretch_scales_the_heads_directions_and_scores_are_unchanged():
    rng = np.random.default_rng(0)
    k = len(CLASSES)
    w, b = rng.normal(size=(k, 12)).astype(np.float32), rng.normal(size=k).astype(np.float32)
    plain = PhysicsHead(tuple(CLASSES), w, b)
    head = PhysicsHead(tuple(CLASSES), w, b, gain=10.0, class_gain=3.0)
    none = CLASSES.index("none")
    u = np.delete(w, none, 0).mean(0) - w[none]
    np.testing.assert_allclose(head.axis, u / np.linalg.norm(u), rtol=1e-6)
    x = rng.normal(size=(7, 12)).astype(np.float32)
    z = head.stretch(x)
    np.testing.assert_allclose(z @ head.axis, 10 * (x @ head.axis), rtol=1e-4)
    # the head's other class directions (its rows' span without the axis) by 3
    span = np.linalg.svd(w.T.astype(np.float64), full_matrices=False)[0]
    inside = span - np.outer(head.axis, head.axis @ span)
    np.testing.assert_allclose(z @ inside, 3 * (x @ inside), rtol=1e-3, atol=1e-4)
    outside = np.linalg.svd(span.T)[2][k:]  # orthogonal to every row of the head
    np.testing.assert_allclose(z @ outside.T, x @ outside.T, atol=1e-4)  # untouched
    np.testing.assert_allclose(head.unstretch(z), x, atol=1e-4)
    # the head scores the stretched embeddings as the plain one scores the features
    np.testing.assert_allclose(head.logits(z), plain.logits(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(head.deformation(z), plain.deformation(x), atol=1e-5)
    np.testing.assert_array_equal(plain.stretch(x), x)
    axis_only = PhysicsHead(tuple(CLASSES), w, b, gain=10.0)
    np.testing.assert_allclose(axis_only.stretch(x) @ inside, x @ inside, atol=1e-4)


def test_the_gains_are_kept_in_the_head_file_and_bad_ones_are_refused(tmp_path):
    path = tmp_path / HEAD_FILE
    save_physics_head(path, _head(8), CLASSES, embed_gain=10.0, embed_class_gain=3.0)
    head = load_physics_head(tmp_path)
    assert (head.gain, head.class_gain) == (10.0, 3.0)
    blob = torch.load(path, weights_only=True)
    old = {k: v for k, v in blob.items() if not k.startswith("embed_")}
    torch.save(old, path)  # a head saved before the stretch: its embeddings are plain
    assert (load_physics_head(tmp_path).gain, load_physics_head(tmp_path).class_gain) == (1, 1)
    for key in ("embed_gain", "embed_class_gain"):
        for bad in (0.0, -2.0, float("nan"), float("inf"), "10", True):
            torch.save({**blob, key: bad}, path)
            with pytest.raises(ModelMismatchError, match=f"{HEAD_FILE}.*{key}") as err:
                load_physics_head(tmp_path)
            assert "\n" not in str(err.value)
        with pytest.raises(ValueError, match=key):
            save_physics_head(path, _head(8), CLASSES, **{key: 0.0})
