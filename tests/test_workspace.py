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


def test_replacing_embeddings_writes_blocks_to_disk_and_swaps_them_in_whole(
    tmp_path, tiny_phase_ds
):
    """A whole new set, block by block: the stored set stays until the last row is in, and
    a block that fails, a missing row or a block of another width leaves it as it was."""
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)
    version, _ = ws.new_model_dir("ssl")
    ids = ws.sample_ids()
    old = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    ws.save_embeddings(version, ids, old, stretch=(1, 1))

    def staged():
        return [p.name for p in ws.embeddings_dir.iterdir() if ".tmp-" in p.name]

    def unchanged(staging=False):
        got_ids, got, meta = ws.load_embeddings(version)
        assert list(got_ids) == list(ids) and np.array_equal(got, old)
        assert meta["stretch"] == [1.0, 1.0]
        assert bool(staged()) == staging

    new = -old
    with pytest.raises(KeyboardInterrupt):
        with ws.replacing_embeddings(version, ids, stretch=(10, 3)) as put:
            put(0, new[:4])
            unchanged(staging=True)  # staged on disk, not yet in place
            raise KeyboardInterrupt
    unchanged()
    with pytest.raises(InSARDataError, match="2 of 6 rows were not written"):
        with ws.replacing_embeddings(version, ids, stretch=(10, 3)) as put:
            put(2, new[2:])
    unchanged()
    with pytest.raises(InSARDataError, match="vectors at row"):
        with ws.replacing_embeddings(version, ids, stretch=(10, 3)) as put:
            put(0, new[:3])
            put(3, np.zeros((3, 5)))
    unchanged()
    with pytest.raises(InSARDataError, match="duplicate"):
        with ws.replacing_embeddings(version, [ids[0], ids[0]]):
            pass
    unchanged()
    with ws.replacing_embeddings(version, ids[::-1], stretch=(10, 3)) as put:
        put(3, new[::-1][3:])  # any order
        put(0, new[::-1][:3])
    got_ids, got, meta = ws.load_embeddings(version, aligned=True)
    assert np.array_equal(got, new) and meta["stretch"] == [10.0, 3.0] and meta["n"] == 6
    ws.append_embeddings(version, ids[:1], old[:1], stretch=(10, 3))  # appends still work
    assert np.array_equal(ws.load_embeddings(version, aligned=True)[1][0], old[0])


def test_embedding_writers_wait_for_each_other(tmp_path, tiny_phase_ds):
    """save_embeddings reads, merges and replaces: it holds the model's embeddings lock, as
    appends do, so a writer in another process cannot lose its rows in between."""
    import fcntl
    import os
    import threading

    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)
    version, folder = ws.new_model_dir("ssl")
    ids = ws.sample_ids()
    ws.save_embeddings(version, ids[:3], np.zeros((3, 4)))
    fd = os.open(ws.embeddings_dir / f".{folder.name}.lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another writer holds it (a new open file: flock conflicts)
    finished = threading.Event()
    writer = threading.Thread(
        target=lambda: (ws.save_embeddings(version, ids[3:], np.ones((3, 4))), finished.set())
    )
    writer.start()
    assert not finished.wait(0.5)  # waits for the lock
    assert ws.load_embeddings(version)[1].shape[0] == 3
    os.close(fd)
    writer.join(10)
    assert finished.is_set() and ws.load_embeddings(version, aligned=True)[1].shape == (6, 4)


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
    ws.save_embeddings(v2, list(tiny_phase_ds["sample"].values[:4]) + ["gone"], np.ones((5, 3)))
    status = ws.status()
    assert status["data"]["samples"] == 7
    assert status["embeddings"][v2] == {"n": 5, "dim": 3, "missing": 3}  # 7 samples, 4 embedded
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


def test_a_dead_writers_staged_embeddings_are_removed_on_open(tmp_path, tiny_phase_ds):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)
    version, folder = ws.new_model_dir("ssl")
    ws.save_embeddings(version, ws.sample_ids(), np.zeros((6, 4)))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    leftover = ws.embeddings_dir / f".{folder.name}.staged-1.tmp-{dead}"
    leftover.mkdir()
    (leftover / "vectors.npy").write_bytes(b"partial")
    Workspace.open(ws.path)
    assert not leftover.exists() and ws.load_embeddings(version)[1].shape == (6, 4)


def test_replacing_embeddings_keeps_rows_stored_meanwhile_with_the_same_stretch(
    tmp_path, tiny_phase_ds
):
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)
    version, _ = ws.new_model_dir("ssl")
    ids = ws.sample_ids()
    with ws.replacing_embeddings(version, ids[:4], stretch=(10, 3)) as put:
        put(0, np.ones((4, 4)))
        ws.save_embeddings(version, ids[4:], np.full((2, 4), 2.0), stretch=(10, 3))  # meanwhile
    got = ws.load_embeddings(version, aligned=True)[1]
    assert np.array_equal(got, np.array([[1.0] * 4] * 4 + [[2.0] * 4] * 2))
    with ws.replacing_embeddings(version, ids[:4], stretch=(1, 1)) as put:  # another stretch:
        put(0, np.zeros((4, 4)))  # the stored rows are stale, none kept
    got_ids, got, meta = ws.load_embeddings(version)
    assert list(got_ids) == list(ids[:4]) and not got.any() and meta["n"] == 4


def test_a_full_disk_while_staging_embeddings_is_an_error_and_keeps_the_stored_ones(
    tmp_path, tiny_phase_ds
):
    """The staging file's space is reserved when it is made, so a full disk (here a file-size
    limit) is an OSError there, not a fault of the process when a row lands on a hole."""
    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)
    version, _ = ws.new_model_dir("ssl")
    ws.save_embeddings(version, ws.sample_ids(), np.ones((6, 4)))
    script = f"""
import resource, numpy as np
from insarexplore.workspace import Workspace
ws = Workspace.open({str(ws.path)!r})
ids = [f"s{{i}}" for i in range(200_000)]
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
try:
    with ws.replacing_embeddings({version!r}, ids) as put:
        put(0, np.zeros((10, 64)))
except OSError as exc:
    print("OSError", exc.errno)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("OSError"), out.stdout + out.stderr
    got_ids, got, _ = ws.load_embeddings(version, aligned=True)
    assert np.array_equal(got, np.ones((6, 4)))
    assert not [p.name for p in ws.embeddings_dir.iterdir() if ".tmp-" in p.name]


def test_a_file_where_the_workspace_folder_should_be_is_named(tmp_path):
    (tmp_path / "afile").write_text("x")
    for where in (tmp_path / "afile", tmp_path / "afile" / "ws"):
        with pytest.raises(WorkspaceError, match="afile is a file, not a folder"):
            Workspace.create(where)
    assert (tmp_path / "afile").read_text() == "x"


def test_a_save_of_embeddings_that_fails_part_way_leaves_no_staging(
    tmp_path, tiny_phase_ds, monkeypatch
):
    import errno

    import insarexplore.workspace as workspace

    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)
    version, _ = ws.new_model_dir("ssl")
    ws.save_embeddings(version, ws.sample_ids(), np.ones((6, 4)))
    save = workspace._save_npy

    def full_at_ids(target, array):
        if str(target).endswith("ids.npy"):
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        save(target, array)

    monkeypatch.setattr(workspace, "_save_npy", full_at_ids)
    with pytest.raises(OSError, match="No space"):
        ws.save_embeddings(version, ws.sample_ids(), np.zeros((6, 4)))
    assert not [p.name for p in ws.embeddings_dir.iterdir() if ".tmp-" in p.name]
    assert np.array_equal(ws.load_embeddings(version, aligned=True)[1], np.ones((6, 4)))


def test_caches_are_used_without_being_kept_on_a_workspace_that_cannot_be_written(
    tmp_path, tiny_phase_ds, monkeypatch
):
    import errno

    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(tiny_phase_ds)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(ws.artifacts_dir))

    monkeypatch.setattr(Workspace, "save_artifact", read_only)
    assert ws.keep_artifact("anomaly", "k", {"score": np.zeros(3)}) is False
    with pytest.raises(OSError):
        ws.save_artifact("anomaly", "k", {"score": np.zeros(3)})  # results that must be kept

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(Workspace, "save_artifact", broken)
    with pytest.raises(OSError, match="I/O"):  # only a read-only workspace goes without
        ws.keep_artifact("anomaly", "k", {"score": np.zeros(3)})
