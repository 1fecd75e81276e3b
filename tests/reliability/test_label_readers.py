"""Readers of the label store need no write lock, no write permission, and errors are one line.

A concurrent writer is simulated by a second SQLite connection holding an open write
transaction (what a long import does). Nothing here measures time: the only timeouts are
generous upper bounds, or the lock timeout of the command under test.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading

import pytest

from insarexplore import cli
from insarexplore.explore import labels as labels_mod
from insarexplore.explore.labels import LabelStore


@contextlib.contextmanager
def write_lock_held(path):
    """Another process's long import: a write transaction kept open on the store."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO meta(key, value) VALUES ('held', 'by a writer')")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def _in_thread(fn, timeout=120):
    """Run ``fn`` in a thread, give up after a generous ``timeout`` (a hang fails the test)."""
    result = {}

    def run():
        try:
            result["value"] = fn()
        except BaseException as exc:  # reported to the test
            result["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "the reader waited for the writer's lock"
    if "error" in result:
        raise result["error"]
    return result["value"]


@pytest.fixture
def short_lock(monkeypatch):
    """Commands wait at most 3 s for a lock (before the fix they waited 60 s, then failed)."""
    import insarexplore.cli.explore as cli_explore

    monkeypatch.setattr(cli_explore, "LABEL_LOCK_TIMEOUT", 3.0, raising=False)


def test_readers_do_not_wait_for_a_writer(ws, tmp_path, capsys, short_lock):
    with write_lock_held(ws.labels_path):
        store = _in_thread(lambda: LabelStore(ws.labels_path, timeout=3, readonly=True))
        assert _in_thread(store.counts) == {"mogi": 2, "none": 1}
        store.close()
        writer = _in_thread(lambda: LabelStore(ws.labels_path, timeout=3))  # opening: no lock
        assert _in_thread(writer.current)["s002"] == "none"
        writer.close()
        assert _in_thread(lambda: cli.main(["labels", "counts", str(ws.path)])) == 0
        out = tmp_path / "out.csv"
        assert _in_thread(lambda: cli.main(["labels", "export", str(ws.path), str(out)])) == 0
    assert "2  mogi" in capsys.readouterr().out
    assert out.read_text().count("\n") == 4


def test_lock_timeout_is_one_line_naming_the_file(ws, tmp_path, capsys, monkeypatch):
    import insarexplore.cli.explore as cli_explore

    monkeypatch.setattr(cli_explore, "LABEL_LOCK_TIMEOUT", 0.3, raising=False)
    src = tmp_path / "in.csv"
    src.write_text("sample,label\ns005,mogi\n")
    with write_lock_held(ws.labels_path):
        rc = _in_thread(lambda: cli.main(["labels", "import", str(ws.path), str(src)]))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "labels.sqlite" in err[0] and "locked" in err[0]
    with LabelStore(ws.labels_path, readonly=True) as store:
        assert "s005" not in store.current()


def test_library_lock_timeout_is_an_insarexplore_error(ws):
    from insarexplore.errors import InSARError

    with write_lock_held(ws.labels_path):
        store = LabelStore(ws.labels_path, timeout=0.2)
        with pytest.raises(InSARError, match="labels.sqlite.*locked") as err:
            store.assign(["s009"], "mogi")
        assert isinstance(err.value, TimeoutError)
        store.close()


def test_readonly_store_writes_nothing(ws):
    before = ws.labels_path.read_bytes()
    with LabelStore(ws.labels_path, readonly=True) as store:
        with pytest.raises(ValueError, match="read-only"):
            store.assign(["s009"], "mogi")
        assert store.current() == {"s000": "mogi", "s001": "mogi", "s002": "none"}
    assert ws.labels_path.read_bytes() == before


def test_readonly_store_of_a_missing_file_is_a_clear_error(tmp_path):
    from insarexplore.errors import InSARDataError

    with pytest.raises(InSARDataError, match="no label store"):
        LabelStore(tmp_path / "labels.sqlite", readonly=True)
    assert not (tmp_path / "labels.sqlite").exists()


def test_opening_an_existing_store_writes_no_schema(ws):
    """The schema is written under the write lock only when a store is created."""
    statements = []
    conn_connect = sqlite3.connect

    def traced(*args, **kw):
        conn = conn_connect(*args, **kw)
        conn.set_trace_callback(statements.append)
        return conn

    import unittest.mock

    with unittest.mock.patch.object(labels_mod.sqlite3, "connect", traced):
        LabelStore(ws.labels_path).close()
    assert not [s for s in statements if "BEGIN" in s or "CREATE" in s], statements


def test_long_imports_commit_in_batches_as_one_operation(ws, monkeypatch):
    monkeypatch.setattr(labels_mod, "IMPORT_BATCH", 4, raising=False)
    store = LabelStore(ws.labels_path, author="bo")
    begins = []
    store._conn.set_trace_callback(lambda s: begins.append(s) if s.startswith("BEGIN") else None)
    pairs = [(f"s{i:03d}", "mogi" if i % 2 else "none") for i in range(10, 20)]
    op = store.assign_many(pairs, origin="import")
    store._conn.set_trace_callback(None)
    assert len(begins) == 3  # 10 pairs in batches of 4
    events = [e for e in store.events() if e["sample"] in dict(pairs)]
    assert len(events) == 10 and {e["op"] for e in events} == {op}
    store.undo()  # one operation: undone as a whole
    cur = store.current()
    assert not any(s in cur for s, _ in pairs)
    store.close()


@contextlib.contextmanager
def _unprivileged():
    """Run the body without the power to ignore file permissions (as nobody when root)."""
    if os.geteuid() != 0:
        yield
        return
    try:
        os.setegid(65534)
        os.seteuid(65534)
    except OSError as exc:
        pytest.skip(f"cannot drop root privileges to test permissions ({exc})")
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def _chmod_tree(root, *, writable: bool) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644 if writable else 0o444)
        os.chmod(folder, 0o755 if writable else 0o555)


def test_a_readonly_workspace_can_count_and_export_labels(tmp_path, capsys):
    import tempfile

    from .conftest import make_workspace

    base = tempfile.mkdtemp(prefix="insar-ro-")  # outside pytest's private (0700) folders
    try:
        os.chmod(base, 0o755)
        ws = make_workspace(os.path.join(base, "ws"))
        out_dir = os.path.join(base, "out")
        os.mkdir(out_dir)
        os.chmod(out_dir, 0o777)
        # warm up every import while the interpreter's own files are still readable
        assert cli.main(["labels", "export", str(ws.path), os.path.join(base, "warm.csv")]) == 0
        assert cli.main(["labels", "counts", str(ws.path)]) == 0
        assert cli.main(["info", str(ws.path)]) == 0
        assert cli.main(["suggest", str(ws.path), "-n", "3"]) == 0
        import shutil

        shutil.rmtree(ws.artifacts_dir / "predictions")  # made again, and not kept, below
        shutil.rmtree(ws.artifacts_dir / "anomaly", ignore_errors=True)
        capsys.readouterr()
        _chmod_tree(ws.path, writable=False)
        with _unprivileged():
            with pytest.raises(PermissionError):  # the permissions are enforced
                open(ws.labels_path, "ab").close()
            rc_counts = cli.main(["labels", "counts", str(ws.path)])
            out_csv = os.path.join(out_dir, "labels.csv")
            rc_export = cli.main(["labels", "export", str(ws.path), out_csv])
            rc_info = cli.main(["info", str(ws.path)])
            rc_suggest = cli.main(["suggest", str(ws.path), "-n", "3"])
            rc_diverse = cli.main(["suggest", str(ws.path), "-n", "3", "--strategy", "diversity"])
            rc_anomaly = cli.main(["suggest", str(ws.path), "-n", "3", "--strategy", "anomaly"])
        captured = capsys.readouterr()
        assert (rc_counts, rc_export, rc_info) == (0, 0, 0), captured.err
        assert (rc_suggest, rc_diverse, rc_anomaly) == (0, 0, 0), captured.err
        assert "2  mogi" in captured.out
        with open(out_csv) as fh:
            assert fh.read().count("\n") == 4
    finally:
        _chmod_tree(base, writable=True)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_writing_labels_to_a_readonly_workspace_is_one_line(tmp_path, capsys):
    import tempfile

    from .conftest import make_workspace

    base = tempfile.mkdtemp(prefix="insar-ro-")
    try:
        os.chmod(base, 0o755)
        ws = make_workspace(os.path.join(base, "ws"))
        src = os.path.join(base, "in.csv")
        with open(src, "w") as fh:
            fh.write("sample,label\ns007,mogi\n")
        os.chmod(src, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        assert cli.main(["labels", "counts", str(ws.path)]) == 0  # warm up imports
        capsys.readouterr()
        _chmod_tree(ws.path, writable=False)
        with _unprivileged():
            rc = cli.main(["labels", "import", str(ws.path), src])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert "labels.sqlite" in err[0] or "read-only" in err[0] or "ermission" in err[0]
    finally:
        _chmod_tree(base, writable=True)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def test_predictions_of_a_label_store_made_anew_are_not_reused(tmp_path):
    """A label store deleted and made again counts its revisions from 1 again: predictions
    trained on the old one (same revision number) must not be taken as current."""
    from insarexplore.explore.fewshot import load_predictions
    from insarexplore.explore.labels import LabelStore
    from insarexplore.explore.workspace_suggest import suggest_workspace

    from .conftest import make_workspace

    ws = make_workspace(tmp_path / "ws")  # labels: mogi (2 samples), none (1), in 2 operations
    suggest_workspace(ws, 3, "margin")
    assert set(load_predictions(ws).classes) == {"mogi", "none"}
    for name in os.listdir(ws.path):
        if name.startswith("labels.sqlite"):
            os.remove(ws.path / name)
    with LabelStore(ws.labels_path, author="bo") as store:
        store.assign(["s005", "s006"], "uplift")
        store.assign(["s007"], "noise")
        assert store.revision() == 2
    suggest_workspace(ws, 3, "margin")
    assert set(load_predictions(ws).classes) == {"uplift", "noise"}
