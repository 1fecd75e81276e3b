"""Label store: event log semantics, undo/redo, class edits, durability under concurrency."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from insarexplore.explore.labels import LabelStore, UnknownSampleError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.sqlite", author="ana", session="s1") as s:
        yield s


def test_assign_remove_and_history(store):
    store.assign(["a", "b", "c"], "mogi")
    store.assign("b", "sill", origin="model")
    store.remove(["c", "zzz"])
    assert store.current() == {"a": "mogi", "b": "sill"}
    assert store.counts() == {"mogi": 1, "sill": 1}
    hist = store.history("b")
    assert [(h["label"], h["action"], h["origin"]) for h in hist] == [
        ("mogi", "assign", "person"),
        ("sill", "assign", "model"),
    ]
    assert hist[1]["prev"] == "mogi" and hist[1]["author"] == "ana" and hist[1]["session"] == "s1"
    assert store.history("c")[-1]["action"] == "remove"
    assert store.assign("a", "mogi") is None  # no change, no event
    assert store.labels_for(["a", "c", "b"]) == ["mogi", "", "sill"]
    assert store.rebuild() == store.current()


def test_log_is_append_only(store):
    store.assign(["a"], "x")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._conn.execute("UPDATE events SET label = 'y'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        store._conn.execute("DELETE FROM events")


def test_undo_redo_per_session(tmp_path):
    path = tmp_path / "l.sqlite"
    a = LabelStore(path, session="A")
    b = LabelStore(path, session="B")
    a.assign(["1", "2"], "dyke")
    b.assign(["3"], "sill")
    a.assign(["1"], "sill")
    assert a.undo() is not None  # A's last op, not B's
    assert a.current() == {"1": "dyke", "2": "dyke", "3": "sill"}
    assert a.undo() is not None
    assert a.current() == {"3": "sill"}
    assert a.undo() is None and not a.can_undo()
    a.redo()
    assert a.current() == {"1": "dyke", "2": "dyke", "3": "sill"}
    a.redo()
    assert a.current()["1"] == "sill" and not a.can_redo()
    a.undo()
    a.assign(["9"], "mogi")  # a new action clears the redo stack
    assert not a.can_redo()
    # undo never clobbers a label someone else changed since
    b.assign(["9"], "dyke")
    a.undo()
    assert a.current()["9"] == "dyke"
    assert a.rebuild() == a.current()
    a.close()
    b.close()


def test_class_rename_merge_delete_keep_history(store):
    store.add_class("empty")
    store.assign(["a", "b"], "Mogi")
    store.assign(["c"], "mogi source")
    store.rename_class("Mogi", "mogi")
    assert set(store.classes()) == {"empty", "mogi", "mogi source"}
    store.merge_classes(["mogi source"], "mogi")
    assert store.current() == {"a": "mogi", "b": "mogi", "c": "mogi"}
    assert store.classes() == ["empty", "mogi"]
    store.delete_class("empty")
    store.delete_class("mogi")
    assert store.current() == {} and store.classes() == []
    assert [h["label"] for h in store.history("c")] == ["mogi source", "mogi", "mogi"]
    store.undo()  # undo the delete: labels and class come back
    assert store.current() == {"a": "mogi", "b": "mogi", "c": "mogi"}
    assert "mogi" in store.classes()
    with pytest.raises(ValueError, match="no class"):
        store.rename_class("nope", "x")


def test_bad_input(store, tmp_path):
    with pytest.raises(ValueError, match="label"):
        store.assign(["a"], "  ")
    with pytest.raises(ValueError, match="origin"):
        store.assign(["a"], "x", origin="robot")
    known = LabelStore(tmp_path / "k.sqlite", known_ids=["a", "b"])
    with pytest.raises(UnknownSampleError) as err:
        known.assign(["a", "q", "r"], "x")
    assert err.value.ids == ["q", "r"] and "q, r" in str(err.value)
    assert known.current() == {}
    with pytest.raises(ValueError, match="folder"):
        LabelStore(tmp_path)


WRITER = textwrap.dedent(
    """
    import sys
    from insarexplore.explore.labels import LabelStore
    path, name, n_ops, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = LabelStore(path, author=name, session=name, timeout=120)
    for i in range(n_ops):
        ids = [f"{name}-{i}-{j}" for j in range(batch)]
        op = store.assign(ids, f"class{i % 3}")
        store.assign(["shared"], name)  # every writer fights over one sample as well
        print(op, flush=True)
    """
)


def _spawn(path, name, n_ops, batch):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-c", WRITER, str(path), name, str(n_ops), str(batch)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "labels.sqlite"
    LabelStore(path).close()
    names = [f"w{i}" for i in range(4)]
    procs = [_spawn(path, name, 25, 20) for name in names]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    with LabelStore(path) as s:
        cur = s.current()
        for name in names:
            for i in range(25):
                for j in range(20):
                    assert cur[f"{name}-{i}-{j}"] == f"class{i % 3}"
        assert len(cur) == 4 * 25 * 20 + 1
        assert cur["shared"] in names
        assert len([e for e in s.events() if e["sample"] != "shared"]) == 4 * 25 * 20
        assert s.rebuild() == cur
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_writer_killed_mid_transaction_leaves_store_intact(tmp_path):
    path = tmp_path / "labels.sqlite"
    LabelStore(path).close()
    # big batches: most of the writer's time is spent inside a transaction
    proc = _spawn(path, "victim", 10_000, 5_000)
    committed = []
    deadline = time.monotonic() + 120
    while len(committed) < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            committed.append(int(line))
    time.sleep(0.15)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(committed) >= 3
    with LabelStore(path) as s:
        assert s._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ops = {}
        for e in s.events():
            if e["sample"] != "shared":
                ops[e["op"]] = ops.get(e["op"], 0) + 1
        assert all(ops.get(op) == 5_000 for op in committed)  # durable once the call returned
        assert all(count == 5_000 for count in ops.values())  # no half-written operation
        assert s.rebuild() == s.current()
        s.assign(["after"], "crash")  # and it still takes writes
        assert s.current()["after"] == "crash"


def test_classes_keep_the_order_they_came_in_across_sessions(tmp_path):
    """Keys 1-9 and colours follow the class order: a reload must not swap them (the order
    was alphabetical in a new session and creation order in a live one)."""
    with LabelStore(tmp_path / "l.sqlite", author="a") as store:
        store.add_class("zebra")
        store.assign(["s1"], "zebra")
        store.assign(["s2", "s3"], "apple")  # used before it was declared: order of first use
        store.add_class("mango")
        store.assign_many([("s4", "b"), ("s5", "a")])  # one operation: by name
    with LabelStore(tmp_path / "l.sqlite", readonly=True) as again:
        assert again.classes() == ["zebra", "apple", "mango", "a", "b"]


def test_class_names_are_names_not_notes(tmp_path):
    """A 3,000-character class name once widened the dashboard to 22,000 px."""
    with LabelStore(tmp_path / "l.sqlite", author="a") as store:
        store.add_class("x" * 100)
        with pytest.raises(ValueError, match="at most 100 characters, got 3000"):
            store.add_class("y" * 3000)
        with pytest.raises(ValueError, match="at most 100 characters"):
            store.assign_many([("s1", "ok"), ("s2", "z" * 101)])
        assert store.current() == {}  # every pair is checked before anything is written


def test_undo_does_not_bring_back_a_label_its_author_undid(tmp_path):
    """Tab A labels, tab B relabels, A undoes (nothing to revert: B's label is later), B
    undoes: the samples go back to no label, not to A's label that A took back."""
    path = tmp_path / "l.sqlite"
    with (
        LabelStore(path, author="a", session="A") as a,
        LabelStore(path, author="b", session="B") as b,
    ):
        a.assign(["s1", "s2"], "tabA")
        b.assign(["s1"], "tabB")
        a.undo()
        assert a.current() == {"s1": "tabB"}  # s2 reverted; s1 left to B's later label
        b.undo()
        assert b.current() == {}
        b.redo()
        assert b.current() == {"s1": "tabB"}
        a.redo()  # A takes its label back again: s2 returns, s1 stays B's later label
        assert a.current() == {"s1": "tabB", "s2": "tabA"}
        b.undo()  # s1 as it was before B's redo: A's redo had left it alone
        assert b.current() == {"s2": "tabA"}
