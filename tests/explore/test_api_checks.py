"""Python callers: a wrong type or range is one ValueError naming the argument, raised before
numpy, UMAP or scikit-learn meet the value (they raised TypeErrors from deep inside)."""

from __future__ import annotations

import numpy as np
import pytest

from insarexplore.explore import project, suggest, suggest_workspace
from insarexplore.explore.projection import Projector


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"min_dist": "a"}, "min_dist"),
        ({"min_dist": float("nan")}, "min_dist"),
        ({"min_dist": 1.5}, "min_dist"),
        ({"n_neighbors": 0}, "n_neighbors"),
        ({"n_neighbors": 7.5}, "n_neighbors"),
        ({"n_components": "2"}, "n_components"),
        ({"max_fit": 3}, "max_fit"),
        ({"random_state": -1}, "random_state"),
        ({"random_state": True}, "random_state"),
        ({"metric": 3}, "metric"),
    ],
)
def test_project_names_a_bad_parameter(workspace, kw, name):
    workspace = workspace[0]
    with pytest.raises(ValueError, match=f"^{name}: must be"):
        project(workspace, "pca", **kw)
    with pytest.raises(ValueError, match=f"^{name}: must be"):
        Projector("pca", **kw).fit_transform(np.zeros((20, 4), np.float32))
    assert not workspace.list_artifacts("projection")  # nothing fitted, nothing kept


def test_good_parameters_of_numpy_types_still_work(workspace):
    workspace = workspace[0]
    ids, xy = project(
        workspace,
        "pca",
        n_components=np.int64(2),
        min_dist=np.float32(0.2),
        random_state=np.int64(3),
    )
    assert xy.shape == (len(ids), 2)


@pytest.mark.parametrize(
    ("kw", "name"), [({"n": "5"}, "n"), ({"n": 0}, "n"), ({"seed": -2}, "seed")]
)
def test_suggest_names_a_bad_count_or_seed(workspace, kw, name):
    workspace = workspace[0]
    args = {"n": 5, **kw}
    with pytest.raises(ValueError, match=f"^{name}: must be a whole number"):
        suggest_workspace(workspace, strategy="diversity", **args)
    with pytest.raises(ValueError, match=f"^{name}: must be a whole number"):
        suggest(strategy="diversity", embeddings=np.zeros((10, 3)), **args)


def test_load_embeddings_names_a_bad_model_version(workspace):
    workspace = workspace[0]
    with pytest.raises(ValueError, match="^model_version: must be a name or None, got 123"):
        workspace.load_embeddings(123)
