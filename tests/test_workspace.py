import json
import subprocess
import sys

import numpy as np
import pytest

from insarexplore.data.schema import new_dataset
from insarexplore.errors import InSARDataError, WorkspaceError
from insarexplore.workspace import Workspace


def test_create_open_and_refuse_non_workspaces(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    assert Workspace.open(tmp_path / "ws").path == ws.path
    with pytest.raises(WorkspaceError, match="no such folder"):
        Workspace.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "x.txt").write_text("x")
    with pytest.raises(WorkspaceError, match="not an insarexplore workspace"):
        Workspace.open(tmp_path / "plain")
    with pytest.raises(WorkspaceError, match="not empty"):
        Workspace.create(tmp_path / "plain")
    with pytest.raises(WorkspaceError, match="no data yet"):
        ws.open_data()


def test_embeddings_are_aligned_and_only_new_ones_missing(tmp_path, tiny_phase_ds):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)
    version, folder = ws.new_model_dir("ssl")
    assert folder.is_dir()
    ws.set_current_model(version)
    ids = ws.sample_ids()
    rng = np.random.default_rng(0)
    vec = rng.normal(size=(6, 8)).astype(np.float32)
    ws.save_embeddings(version, ids[::-1], vec[::-1])
    got_ids, got, meta = ws.load_embeddings(aligned=True)
    np.testing.assert_array_equal(got, vec)
    assert meta["data_fingerprint"] == ws.data_fingerprint()
    ws.add_data(new_dataset(phase=np.zeros((2, 16, 16)), sample=["x", "y"]))
    assert list(ws.missing_embedding_ids()) == ["x", "y"]
    with pytest.raises(WorkspaceError, match="2 sample"):
        ws.load_embeddings(aligned=True)
    ws.save_embeddings(version, ["x", "y"], np.ones((2, 8)))
    assert ws.load_embeddings(aligned=True)[1].shape == (8, 8)
    with pytest.raises(InSARDataError, match="dimension"):
        ws.save_embeddings(version, ["x"], np.ones((1, 4)))


def test_artifacts_record_provenance_and_staleness(tmp_path, tiny_phase_ds):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)
    v1, _ = ws.new_model_dir()
    ws.set_current_model(v1)
    ws.save_artifact("projection", "pca", {"xy": np.zeros((6, 2))}, {"model_version": v1})
    arrays, meta = ws.load_artifact("projection", "pca")
    assert arrays["xy"].shape == (6, 2) and not ws.is_stale(meta)
    ws.add_data(new_dataset(phase=np.zeros((1, 16, 16)), sample=["z"]))
    assert ws.is_stale(meta)  # data changed
    ws.save_artifact("projection", "pca", {"xy": np.zeros((7, 2))}, {"model_version": v1})
    v2, _ = ws.new_model_dir()
    ws.set_current_model(v2)
    assert ws.is_stale(ws.load_artifact("projection", "pca")[1])  # another model is current
    status = ws.status()
    assert status["data"]["samples"] == 7
    assert status["artifacts"] == [{"kind": "projection", "key": "pca", "stale": True}]
    with pytest.raises(WorkspaceError):
        ws.load_artifact("projection", "../etc")
    with pytest.raises(WorkspaceError, match="no model version"):
        ws.set_current_model("nope")
    json.loads(ws.meta_path.read_text())


def test_import_is_fast_and_light():
    code = (
        "import time, sys; t=time.perf_counter(); import insarexplore; "
        "print(time.perf_counter()-t); print('torch' in sys.modules, 'xarray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.split("\n", 1)
    assert heavy.strip() == "False False"  # heavy libraries load on first use only
    assert float(seconds) < 2.0
