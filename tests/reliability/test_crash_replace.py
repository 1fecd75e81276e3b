"""A crash between the renames of a replacement loses neither the old result nor the new one.

Results (the data store, embeddings, artefacts) are replaced by renaming folders. A crash is
injected through ``insarexplore._atomic.crash_point`` at each step; the next read finds a
complete result (the old one before it was moved aside, the new one after) and no leftovers.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from insarexplore.data.schema import new_dataset
from insarexplore.workspace import Workspace

from .conftest import dead_pid

STEPS = ["staged", "moved-aside", "moved-in"]
# the result a reader finds after a crash at each step: the old until it was moved aside
EXPECT = {"staged": "old", "moved-aside": "new", "moved-in": "new"}


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing may catch and carry on)."""


@pytest.fixture
def crash_at(monkeypatch):
    import insarexplore._atomic as atomic

    def arm(step: str) -> None:
        def crash(name, final):
            if name == step:
                raise Crash(name)

        monkeypatch.setattr(atomic, "crash_point", crash)

    yield arm


def _hidden_leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".old-" in p.name or ".new-" in p.name)


@pytest.mark.parametrize("step", STEPS)
def test_embeddings_survive_a_crash_mid_replacement(ws, crash_at, step):
    version = ws.current_model
    ids = ws.sample_ids()
    before = np.asarray(ws.load_embeddings()[1]).copy()
    crash_at(step)
    with pytest.raises(Crash):
        ws.save_embeddings(version, ids[:3], np.full((3, 8), 7.0, np.float32))
    again = Workspace.open(ws.path)  # a new process opening the workspace
    got_ids, vectors, _ = again.load_embeddings()
    assert sorted(got_ids) == sorted(ids) and vectors.shape == before.shape
    if EXPECT[step] == "old":
        np.testing.assert_array_equal(vectors, before)
    else:
        pos = {s: i for i, s in enumerate(got_ids)}
        assert (np.asarray(vectors)[[pos[s] for s in ids[:3]]] == 7.0).all()
    assert _hidden_leftovers(ws.embeddings_dir) == []


@pytest.mark.parametrize("step", STEPS)
def test_artefacts_survive_a_crash_mid_replacement(ws, crash_at, step):
    ws.save_artifact("clusters", "k", {"v": np.zeros(3)}, {"which": "old"})
    crash_at(step)
    with pytest.raises(Crash):
        ws.save_artifact("clusters", "k", {"v": np.ones(3)}, {"which": "new"})
    # reads repair on their own, without opening the workspace again
    assert ws.has_artifact("clusters", "k")
    arrays, meta = ws.load_artifact("clusters", "k")
    assert meta["which"] == EXPECT[step]
    assert arrays["v"].tolist() == ([0.0] * 3 if EXPECT[step] == "old" else [1.0] * 3)
    assert ("clusters", "k") in ws.list_artifacts()
    assert _hidden_leftovers(ws.artifacts_dir / "clusters") == []


@pytest.mark.parametrize("step", STEPS)
def test_data_store_survives_a_crash_mid_replacement(tmp_path, crash_at, step):
    from insarexplore.data.io.store import _recover, open_dataset, save_dataset

    path = tmp_path / "ws" / "data.zarr"
    old = new_dataset(phase=np.zeros((3, 4, 4), np.float32), sample=["a", "b", "c"])
    new = new_dataset(phase=np.zeros((2, 4, 4), np.float32), sample=["x", "y"])
    save_dataset(old, path)
    crash_at(step)
    with pytest.raises(Crash):
        save_dataset(new, path)
    _recover(path)
    got = list(open_dataset(path)["sample"].values)
    assert got == (["a", "b", "c"] if EXPECT[step] == "old" else ["x", "y"])
    assert _hidden_leftovers(path.parent) == []


@pytest.mark.parametrize("step", STEPS)
def test_workspace_data_survives_a_crash_mid_replacement(tmp_path, crash_at, step):
    from insarexplore.data.io.store import save_dataset

    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(new_dataset(phase=np.zeros((3, 4, 4), np.float32), sample=["a", "b", "c"]))
    crash_at(step)
    with pytest.raises(Crash):
        save_dataset(new_dataset(phase=np.zeros((1, 4, 4), np.float32), sample=["z"]), ws.data_path)
    again = Workspace.open(ws.path)
    assert again.has_data()
    assert len(again.sample_ids()) == (3 if EXPECT[step] == "old" else 1)
    assert "data" in again.status() and again.status()["data"]["samples"] in (1, 3)


def test_leftover_of_the_old_scheme_is_restored(ws):
    """The previous code moved the result to ``.NAME.old-PID`` first: a crash right then left
    no result at all. Such a leftover of a dead process is rolled back into place."""
    version = ws.current_model
    final = ws.embeddings_dir / version
    before = np.asarray(ws.load_embeddings()[1]).copy()
    os.replace(final, final.with_name(f".{version}.old-{dead_pid()}"))
    assert not final.exists()
    again = Workspace.open(ws.path)
    np.testing.assert_array_equal(np.asarray(again.load_embeddings()[1]), before)
    assert _hidden_leftovers(ws.embeddings_dir) == []


def test_an_incomplete_staging_folder_is_never_promoted(ws):
    """``.NAME.tmp-PID`` may be half-written: it is removed, never moved into place."""
    version = ws.current_model
    final = ws.embeddings_dir / version
    pid = dead_pid()
    os.replace(final, final.with_name(f".{version}.old-{pid}"))
    tmp = final.with_name(f".{version}.tmp-{pid}")
    tmp.mkdir()
    (tmp / "vectors.npy").write_bytes(b"half")
    again = Workspace.open(ws.path)
    assert again.has_embeddings() and again.load_embeddings()[1].shape[0] == 40
    assert not tmp.exists()


def test_leftovers_of_a_running_process_are_left_alone(ws):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        version = ws.current_model
        tmp = (ws.embeddings_dir / version).with_name(f".{version}.tmp-{proc.pid}")
        tmp.mkdir()
        Workspace.open(ws.path)
        ws.load_embeddings()
        assert tmp.exists()  # another process may still be writing it
    finally:
        proc.kill()
        proc.wait()


OTHER_TAG = "0badc0de"


def _holder(*paths):
    """A process that holds ``flock``s on ``paths`` (another machine's liveness files) until
    it is killed; returns it once the locks are held."""
    import subprocess
    import sys

    code = (
        "import fcntl, os, sys, time\n"
        "fds = [os.open(p, os.O_RDWR | os.O_CREAT) for p in sys.argv[1:]]\n"
        "[fcntl.flock(fd, fcntl.LOCK_EX) for fd in fds]\n"
        "print('held', flush=True); time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, paths)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"held"
    return proc


def _other_machine_leftovers(ws, pid):
    """What a process of another container left mid-way: a replacement of the embeddings
    between its renames (NAME missing), a staging store and an append marker."""
    import json

    import zarr

    version = ws.current_model
    final = ws.embeddings_dir / version
    who = f"{pid}.{OTHER_TAG}"
    os.replace(final, final.with_name(f".{version}.old-{who}"))
    staging = ws.path / f".staging-ingest-{who}.zarr"
    staging.mkdir()
    n = len(ws.open_data(lazy=True)["sample"])
    marker = ws.data_path.with_name(f".{ws.data_path.name}.append-pending.json")
    attrs = dict(zarr.open_group(str(ws.data_path), mode="r").attrs)
    marker.write_text(json.dumps({"n": n - 1, "pid": pid, "tag": OTHER_TAG, "attrs": attrs}))
    return final, staging, marker, n


@pytest.mark.parametrize("pid", ["dead", "ours"])
def test_leftovers_of_another_machine_that_runs_are_left_alone(ws, pid):
    """A process id means nothing in another container or host sharing the workspace (there it
    may even be ours): its leftovers are live while it holds its liveness file's lock."""
    pid = dead_pid() if pid == "dead" else os.getpid()
    proc = _holder(
        ws.path / f".alive-{pid}.{OTHER_TAG}", ws.embeddings_dir / f".alive-{pid}.{OTHER_TAG}"
    )
    try:
        final, staging, marker, n = _other_machine_leftovers(ws, pid)
        again = Workspace.open(ws.path)
        again.staging_path("ingest")
        assert len(again.open_data(lazy=True)["sample"]) == n and marker.exists()
        assert staging.exists() and not final.exists()  # mid-way: not ours to finish
    finally:
        proc.kill()
        proc.wait()
    # its owner has ended (the lock is gone): everything is repaired, its files swept
    again = Workspace.open(ws.path)
    again.staging_path("ingest")
    assert final.exists() and again.load_embeddings()[1].shape[0] == 40
    assert len(again.open_data(lazy=True)["sample"]) == n - 1 and not marker.exists()
    assert not staging.exists()
    assert not list(ws.path.glob(".alive-*0badc0de")) and not list(
        ws.embeddings_dir.glob(".alive-*0badc0de")
    )


def test_leftovers_of_another_machine_without_a_liveness_file_are_repaired(ws):
    """A container that exited (or was restarted: a new namespace) left no liveness file, or
    an unlocked one: its crash is repaired as a crash of ours would be."""
    pid = dead_pid()
    final, staging, marker, n = _other_machine_leftovers(ws, pid)
    again = Workspace.open(ws.path)
    again.staging_path("ingest")
    assert len(again.open_data(lazy=True)["sample"]) == n - 1
    assert final.exists() and not staging.exists() and not marker.exists()


def test_this_process_holds_its_liveness_file_where_it_writes(ws):
    from insarexplore import _atomic

    me = _atomic.owner(ws.path)
    alive = ws.path / f".alive-{me}"
    assert alive.exists()
    import subprocess
    import sys

    code = (
        "import sys; from insarexplore import _atomic; "
        "pid, tag = sys.argv[1].split('.'); print(_atomic.abandoned(pid, tag, sys.argv[2]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, me, str(ws.path)], capture_output=True, text=True
    )
    assert out.stdout.strip() == "False", out.stderr
    assert alive.exists()


@pytest.mark.parametrize("step", ["staged", "moved-aside"])
def test_a_reader_thread_never_undoes_a_replacement_in_progress(ws, monkeypatch, step):
    """Leftovers of this process look abandoned to ``recover`` (its pid is not "another
    running process"): a reader thread must wait for the writer thread, not roll it back."""
    import threading

    import insarexplore._atomic as atomic

    version, ids = ws.current_model, ws.sample_ids()
    paused, go = threading.Event(), threading.Event()

    def pause(name, final):
        if name == step and threading.current_thread() is not threading.main_thread():
            paused.set()
            go.wait(10)

    monkeypatch.setattr(atomic, "crash_point", pause)
    new = np.full((len(ids), 8), 7.0, np.float32)
    writer = threading.Thread(target=ws.save_embeddings, args=(version, ids, new))
    writer.start()
    assert paused.wait(10)
    read = threading.Thread(target=ws.has_embeddings, args=(version,))  # recovers first
    read.start()
    read.join(0.5)
    assert read.is_alive()  # waits for the replacement instead of undoing it
    go.set()
    writer.join(10)
    read.join(10)
    np.testing.assert_array_equal(ws.load_embeddings(aligned=True)[1], new)
    assert not _hidden_leftovers(ws.embeddings_dir)


def test_a_reader_never_undoes_an_append_that_finished_while_it_looked(ws, monkeypatch):
    """The reader read the marker, the writer finished (marker gone, liveness file gone), the
    reader then found the writer ended and cut the store back: the append's samples were lost."""
    import json

    import zarr

    from insarexplore.data.io import store as store_mod

    n = len(ws.open_data(lazy=True)["sample"])
    marker = ws.data_path.with_name(f".{ws.data_path.name}.append-pending.json")
    attrs = dict(zarr.open_group(str(ws.data_path), mode="r").attrs)
    marker.write_text(json.dumps({"n": n - 2, "pid": dead_pid(), "tag": OTHER_TAG, "attrs": attrs}))
    real = store_mod.abandoned

    def writer_finishes_meanwhile(pid, tag, folder):
        marker.unlink()  # what the writer does last, before its liveness file goes
        return real(pid, tag, folder)

    monkeypatch.setattr(store_mod, "abandoned", writer_finishes_meanwhile)
    assert len(Workspace.open(ws.path).open_data(lazy=True)["sample"]) == n
