"""Workspace files never run code when read: planted pickles in every file the workspace reads.

A workspace is something people share and download. Files of an older version stored ids and
artefact strings as pickled objects (``allow_pickle=True``) and the UMAP reducer with joblib;
each such file is planted here with a payload that would create a marker file when unpickled,
and every reader (``insarexplore info``, embeddings, artefacts, projection, encoder) must
leave the marker uncreated.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from insarexplore import cli
from insarexplore.errors import InSARError, WorkspaceError
from insarexplore.explore.projection import project

from .conftest import Payload, plant_npy, plant_npz, plant_pickle

PACKAGE = Path(__file__).resolve().parents[2] / "insarexplore"


def _plant_everything(ws, marker: Path) -> None:
    version = ws.current_model
    emb = ws.embeddings_dir / version
    plant_npy(emb / "ids.npy", marker)
    plant_npy(emb / "vectors.npy", marker)
    for kind, key in ws.list_artifacts():
        plant_npz(ws.artifact_path(kind, key) / "arrays.npz", marker)
    # the pickled reducer an older version kept beside every projection
    key = ws.list_artifacts("projection")[0][1]
    model = ws.artifacts_dir / "projection_model" / key
    model.mkdir(parents=True, exist_ok=True)
    (model / "meta.json").write_text(json.dumps({"kind": "projection_model", "key": key}))
    plant_npz(model / "arrays.npz", marker)
    plant_pickle(model / "reducer.joblib", marker)
    # model files (torch.load(weights_only=True) refuses them)
    plant_pickle(ws.model_dir(version) / "encoder.pt", marker)
    plant_pickle(ws.model_dir(version) / "checkpoint.pt", marker)
    plant_pickle(ws.model_dir(version) / "physics_head.pt", marker)


def test_payload_works_when_unpickled(tmp_path):
    """The planted files really run code when loaded the old way (the tests can fail)."""
    marker = tmp_path / "ran"
    plant_npy(tmp_path / "ids.npy", marker)
    np.load(tmp_path / "ids.npy", allow_pickle=True)
    assert marker.exists()
    marker.unlink()
    plant_npz(tmp_path / "a.npz", marker)
    with np.load(tmp_path / "a.npz", allow_pickle=True) as z:
        z["ids"]
    assert marker.exists()
    marker.unlink()
    import joblib

    plant_pickle(tmp_path / "r.joblib", marker)
    joblib.load(tmp_path / "r.joblib")
    assert marker.exists()


def test_info_reads_nothing_executable(ws, tmp_path, capsys):
    marker = tmp_path / "ran"
    _plant_everything(ws, marker)
    rc = cli.main(["info", str(ws.path)])
    out = capsys.readouterr()
    assert not marker.exists()
    assert rc == 0, out.err
    assert "old unsafe format" in out.out
    assert cli.main(["info", str(ws.path), "--json"]) == 0
    assert not marker.exists()


def test_load_embeddings_refuses_pickled_ids_with_one_line(ws, tmp_path):
    marker = tmp_path / "ran"
    plant_npy(ws.embeddings_dir / ws.current_model / "ids.npy", marker)
    with pytest.raises(WorkspaceError) as err:
        ws.load_embeddings()
    assert not marker.exists()
    message = str(err.value)
    assert "\n" not in message and "ids.npy" in message and "insarexplore embed" in message
    assert not ws.has_embeddings()
    assert len(ws.missing_embedding_ids()) == len(ws.sample_ids())  # treated as missing
    assert not marker.exists()


def test_load_embeddings_refuses_pickled_vectors(ws, tmp_path):
    marker = tmp_path / "ran"
    plant_npy(ws.embeddings_dir / ws.current_model / "vectors.npy", marker)
    with pytest.raises(WorkspaceError, match="vectors.npy"):
        ws.load_embeddings()
    assert not ws.has_embeddings()
    assert not marker.exists()


def test_embedding_again_replaces_an_old_format_without_reading_it(ws, tmp_path):
    marker = tmp_path / "ran"
    version = ws.current_model
    plant_npy(ws.embeddings_dir / version / "ids.npy", marker)
    ids = ws.sample_ids()
    ws.save_embeddings(version, ids[:5], np.ones((5, 8), np.float32))  # what `embed` does
    assert not marker.exists()
    got, vectors, _ = ws.load_embeddings()
    assert list(got) == list(ids[:5]) and vectors.shape == (5, 8)


def test_saved_ids_load_without_pickle(ws):
    folder = ws.embeddings_dir / ws.current_model
    ids = np.load(folder / "ids.npy", allow_pickle=False)
    assert ids.dtype.kind == "U" and list(ids) == list(ws.sample_ids())
    for kind, key in ws.list_artifacts():
        with np.load(ws.artifact_path(kind, key) / "arrays.npz", allow_pickle=False) as z:
            for name in z.files:
                assert not z[name].dtype.hasobject


def test_load_artifact_refuses_pickled_arrays(ws, tmp_path):
    marker = tmp_path / "ran"
    kind, key = ws.list_artifacts("projection")[0]
    plant_npz(ws.artifact_path(kind, key) / "arrays.npz", marker)
    assert not ws.has_artifact(kind, key)  # counts as missing: computed again when needed
    with pytest.raises(WorkspaceError) as err:
        ws.load_artifact(kind, key)
    assert "\n" not in str(err.value) and "arrays.npz" in str(err.value)
    assert ws.artifact_meta(kind, key)["kind"] == kind  # the JSON is still readable
    assert not marker.exists()


def test_artifacts_store_strings_without_objects_and_refuse_other_objects(ws):
    ids = np.array(["a", "b/c"], dtype=object)
    ws.save_artifact("clusters", "k", {"ids": ids, "n": np.arange(2)})
    arrays, _ = ws.load_artifact("clusters", "k")
    assert arrays["ids"].dtype.kind == "U" and list(arrays["ids"]) == ["a", "b/c"]
    with pytest.raises(InSARError, match="Python objects"):
        ws.save_artifact("clusters", "bad", {"x": np.array([{"a": 1}], dtype=object)})


def test_projection_never_loads_a_planted_reducer(ws, tmp_path):
    """Old workspaces hold ``reducer.joblib``: it is never read, new samples are still placed."""
    marker = tmp_path / "ran"
    version = ws.current_model
    ids, xy = project(ws, "pca")
    key = ws.list_artifacts("projection")[0][1]
    plant_pickle(ws.artifacts_dir / "projection_model" / key / "reducer.joblib", marker)
    rng = np.random.default_rng(1)
    from insarexplore.data.schema import new_dataset

    ws.add_data(new_dataset(phase=np.zeros((3, 8, 8), np.float32), sample=["n0", "n1", "n2"]))
    ws.save_embeddings(version, ["n0", "n1", "n2"], rng.normal(size=(3, 8)).astype(np.float32))
    ids2, xy2 = project(ws, "pca")  # the cached map places the new samples
    assert not marker.exists()
    assert len(ids2) == len(ids) + 3
    pos = {s: i for i, s in enumerate(ids2)}
    np.testing.assert_allclose(xy2[[pos[s] for s in ids]], xy, atol=1e-6)
    # and a planted projection itself is not trusted: the map is fitted again
    plant_npz(ws.artifact_path("projection", key) / "arrays.npz", marker)
    ids3, xy3 = project(ws, "pca")
    assert not marker.exists() and xy3.shape == (len(ids2), 2)


def test_projection_stores_only_arrays_and_json(ws):
    for kind, key in ws.list_artifacts():
        names = {p.name for p in ws.artifact_path(kind, key).iterdir()}
        assert names == {"arrays.npz", "meta.json"}, (kind, key, names)
    assert not (ws.artifacts_dir / "projection_model").exists()


def test_pca_map_places_new_samples_exactly(ws):
    from insarexplore.explore.projection import Projector

    version = ws.current_model
    ids, vectors, _ = ws.load_embeddings()
    vectors = np.asarray(vectors)
    ids_str = np.asarray(ids).astype(str)
    rng = np.random.default_rng(2)
    new = rng.normal(size=(4, vectors.shape[1])).astype(np.float32)
    from insarexplore.data.schema import new_dataset

    names = [f"p{i}" for i in range(4)]
    ws.add_data(new_dataset(phase=np.zeros((4, 8, 8), np.float32), sample=names))
    ws.save_embeddings(version, names, new)
    ids2, xy2 = project(ws, "pca")
    pos = {s: i for i, s in enumerate(ids2)}
    expected = Projector("pca").fit(vectors).transform(new)
    np.testing.assert_allclose(xy2[[pos[s] for s in names]], expected, atol=1e-4)
    assert set(ids_str) < set(ids2)


def test_neighbour_placement_lands_among_the_nearest_fitted_samples():
    from insarexplore.explore.projection import place_by_neighbours

    rng = np.random.default_rng(0)
    centres = np.array([[0.0] * 4, [10.0] * 4, [-10.0] * 4], np.float32)
    fit = np.concatenate([c + rng.normal(size=(30, 4)) for c in centres]).astype(np.float32)
    fit_xy = np.repeat(np.array([[0, 0], [5, 5], [-5, 5]], np.float32), 30, axis=0)
    fit_xy += rng.normal(scale=0.1, size=fit_xy.shape).astype(np.float32)
    new = centres + 0.1
    xy = place_by_neighbours(fit, fit_xy, new, n_neighbors=10)
    np.testing.assert_allclose(xy, [[0, 0], [5, 5], [-5, 5]], atol=0.3)
    assert xy.dtype == np.float32 and xy.shape == (3, 2)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_encoder_files_refuse_pickles(ws, tmp_path):
    from insarexplore.models.serialization import ModelMismatchError, load_encoder

    marker = tmp_path / "ran"
    plant_pickle(ws.model_dir(ws.current_model) / "encoder.pt", marker)
    with pytest.raises(ModelMismatchError):
        load_encoder(ws.model_dir(ws.current_model) / "encoder.pt")
    assert not marker.exists()


def test_physics_head_files_refuse_pickles_and_the_dashboard_goes_on(ws, tmp_path):
    from insarexplore.app import engine
    from insarexplore.explore.deformation import deformation_scores
    from insarexplore.models.serialization import ModelMismatchError

    marker = tmp_path / "ran"
    plant_pickle(ws.model_dir(ws.current_model) / "physics_head.pt", marker)
    with pytest.raises(ModelMismatchError, match="physics_head.pt"):
        deformation_scores(ws)
    ids = np.asarray(ws.load_embeddings()[0]).astype(str)
    with pytest.warns(UserWarning, match="no deformation scores.*physics_head.pt"):
        out, _ = engine.extras(ws, ids, model_version=None, space="pca")
    assert "deformation" not in out and "cluster" in out
    assert not marker.exists()


_UNSAFE = [
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"\bjoblib\.load\b|\bpickle\.loads?\b|\bcloudpickle\b"), "unpickling"),
    (re.compile(r"torch\.load\((?![^)]*weights_only=True)"), "torch.load without weights_only"),
]


def test_the_package_never_unpickles():
    """A guard against reintroducing a reader that runs code (source scan of the package)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, what in _UNSAFE:
                if pattern.search(code) and "``" not in code:
                    found.append(f"{path.relative_to(PACKAGE)}:{lineno}: {what}")
    assert not found, found


def test_payload_class_is_a_real_pickle(tmp_path):
    import pickle

    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()
