"""The label store: an append-only SQLite event log from which current labels are derived.

Labels are the one thing a user cannot regenerate, so every change is an event (assign or remove)
that is never updated or deleted (triggers forbid it), written in one ``BEGIN IMMEDIATE``
transaction per user operation, in WAL mode with ``synchronous=FULL``: when a call returns its
events are on disk, and a writer killed mid-transaction leaves nothing half-written. The current
label of each sample (one label per sample) is kept in a table maintained by triggers inside the
same transaction, so a million events need no replay to be queried; :meth:`LabelStore.rebuild`
derives it again from the log and proves the two agree. Undo and redo are per session and are
themselves events, so history is never lost.

Readers never need the write lock: the schema is written only when a store is created (or
lacks it), and ``LabelStore(path, readonly=True)`` opens the file read-only (also on a
read-only file system), so counting or exporting labels neither waits for a long import nor
needs write permission. Large imports commit in batches of ``IMPORT_BATCH`` samples (one
operation, which undo reverts as a whole), so other writers wait for a batch, not the whole
import. A lock held past ``timeout`` raises :class:`LabelStoreLockedError`, one line naming
the file.
"""

from __future__ import annotations

import getpass
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from insarexplore.errors import InSARDataError, InSARError

__all__ = ["LabelStore", "UnknownSampleError", "LabelStoreLockedError", "ORIGINS"]

ORIGINS = ("person", "model", "import")
IMPORT_BATCH = 100_000  # samples per transaction of assign_many
_SCHEMA_VERSION = "1"
_SEP = "\x1f"  # ASCII unit separator: never allowed inside a sample id
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ops(
  op INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, author TEXT NOT NULL,
  kind TEXT NOT NULL CHECK(kind IN ('do', 'undo', 'redo')), ref INTEGER,
  description TEXT NOT NULL, time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY AUTOINCREMENT, op INTEGER NOT NULL REFERENCES ops(op),
  sample TEXT NOT NULL, label TEXT NOT NULL,
  action TEXT NOT NULL CHECK(action IN ('assign', 'remove')), prev TEXT,
  author TEXT NOT NULL, origin TEXT NOT NULL CHECK(origin IN ('person', 'model', 'import')),
  time REAL NOT NULL, session TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_sample ON events(sample, id);
CREATE INDEX IF NOT EXISTS events_op ON events(op);
CREATE TABLE IF NOT EXISTS class_events(
  id INTEGER PRIMARY KEY AUTOINCREMENT, op INTEGER NOT NULL REFERENCES ops(op),
  name TEXT NOT NULL, action TEXT NOT NULL CHECK(action IN ('create', 'delete')),
  author TEXT NOT NULL, time REAL NOT NULL, session TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS class_events_name ON class_events(name, id);
CREATE TABLE IF NOT EXISTS current(
  sample TEXT PRIMARY KEY, label TEXT NOT NULL, event INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS current_label ON current(label);
CREATE TRIGGER IF NOT EXISTS events_assign AFTER INSERT ON events WHEN NEW.action = 'assign'
BEGIN INSERT OR REPLACE INTO current(sample, label, event) VALUES (NEW.sample, NEW.label, NEW.id);
END;
CREATE TRIGGER IF NOT EXISTS events_remove AFTER INSERT ON events WHEN NEW.action = 'remove'
BEGIN DELETE FROM current WHERE sample = NEW.sample AND label = NEW.label; END;
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS class_events_no_change BEFORE UPDATE ON class_events
BEGIN SELECT RAISE(ABORT, 'class events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS class_events_no_delete BEFORE DELETE ON class_events
BEGIN SELECT RAISE(ABORT, 'class events are append-only'); END;
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '1');
"""
MAX_LABEL = 100  # characters in a class name: a name, not a note (it is shown in legends)

_CLASSES_SQL = """
SELECT name FROM class_events AS ce
WHERE id = (SELECT MAX(id) FROM class_events WHERE name = ce.name) AND action = 'create'
UNION SELECT DISTINCT label FROM current
"""
# the classes in the order they came into the store: the first operation that created a
# class or gave a label now held with it (ties, one operation's classes, by name)
_CLASS_ORDER_SQL = f"""
WITH live(name) AS ({_CLASSES_SQL}),
firsts(name, first) AS (
  SELECT name, MIN(op) FROM class_events WHERE action = 'create' GROUP BY name
  UNION ALL
  SELECT f.label, e.op FROM (SELECT label, MIN(event) AS ev FROM current GROUP BY label) AS f
  JOIN events AS e ON e.id = f.ev)
SELECT live.name FROM live JOIN firsts USING(name)
GROUP BY live.name ORDER BY MIN(firsts.first), live.name
"""


class UnknownSampleError(InSARDataError):
    """Labels were given for sample ids that the workspace does not hold; ``ids`` lists them."""

    def __init__(self, ids: Iterable[str], where: str = "labels") -> None:
        self.ids = sorted(set(map(str, ids)))
        shown = ", ".join(self.ids[:20]) + (" ..." if len(self.ids) > 20 else "")
        super().__init__(
            f"{where}: {len(self.ids)} sample id(s) are not in the workspace, nothing was "
            f"imported: {shown}"
        )


class LabelStoreLockedError(InSARError, TimeoutError):
    """Another process held the label store's write lock for longer than the timeout."""


class LabelStore:
    """Append-only label event log in SQLite, safe for several processes at once.

    ``author`` defaults to the OS user, ``session`` to a fresh id (undo/redo act within one
    session). ``known_ids``, when given, makes assigning labels to other ids an error.
    ``readonly`` opens an existing store for reading only: it takes no lock, writes nothing
    and works on read-only files; writing through it is an error.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        author: str | None = None,
        session: str | None = None,
        known_ids: Iterable[str] | None = None,
        timeout: float = 60.0,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"path: {self.path} is a folder, expected a SQLite file")
        self.author = author or _os_user()
        self.session = session or uuid.uuid4().hex
        self.known_ids = None if known_ids is None else frozenset(map(str, known_ids))
        self.timeout = float(timeout)
        self.readonly = bool(readonly)
        self._lock = threading.RLock()
        if self.readonly:
            self._conn = self._connect_readonly()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(self.path), timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            self._conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: big batches in memory
            if self.readonly:
                if self._schema_version() is None:
                    raise InSARDataError(f"{self.path}: not an insarexplore label store")
                return
            mode = self._retry(lambda: self._conn.execute("PRAGMA journal_mode").fetchone()[0])
            if str(mode).lower() != "wal":
                self._retry(lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
            self._conn.execute("PRAGMA synchronous = FULL")
            if self._schema_version() != _SCHEMA_VERSION:
                self._retry(self._create_schema)
            if not self.store_id():  # an older store: given its identity once (one write)
                self._retry(
                    lambda: self._conn.execute(
                        "INSERT OR IGNORE INTO meta(key, value) VALUES ('store_id', ?)",
                        (uuid.uuid4().hex,),
                    )
                )
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise InSARDataError(f"{self.path}: cannot open the label store ({exc})") from exc
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing -------------------------------------------------------------------------------
    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise InSARDataError(f"{self.path}: no label store (no labels yet)")
        uri = self.path.resolve().as_uri()
        for options in ("mode=ro", "mode=ro&immutable=1"):
            # immutable: a store in a folder this process cannot write (no -shm can be made)
            conn = sqlite3.connect(
                f"{uri}?{options}",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                error = exc
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise InSARDataError(f"{self.path}: not a label store ({exc})") from exc
        raise InSARDataError(f"{self.path}: cannot open the label store to read ({error})")

    def _schema_version(self) -> str | None:
        """The stored schema version; None when the store has no schema yet."""
        try:
            row = self._retry(
                lambda: self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()
            )
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return None if row is None else str(row[0])

    def _retry(self, fn: Callable[[], _T]) -> _T:
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if "readonly" in str(exc) or "read-only" in str(exc):
                    raise InSARDataError(
                        f"{self.path}: the label store is read-only here, labels cannot be written"
                    ) from exc
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise LabelStoreLockedError(
                        f"{self.path}: the label store stayed locked by another process for "
                        f"{self.timeout:g} s (a long import or a dashboard?); try again later"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _create_schema(self) -> None:
        # executescript commits any open transaction first, so it carries its own BEGIN/COMMIT
        try:
            self._conn.executescript(  # with this store's identity (caches are keyed by it)
                "BEGIN IMMEDIATE;" + _SCHEMA + "INSERT OR IGNORE INTO meta(key, value) VALUES "
                f"('store_id', '{uuid.uuid4().hex}');COMMIT;"
            )
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` in one immediate transaction, retrying while another writer holds the lock."""
        if self.readonly:
            raise InSARDataError(f"{self.path}: the label store was opened read-only")
        with self._lock:
            self._retry(lambda: self._conn.execute("BEGIN IMMEDIATE"))
            try:
                result = fn(self._conn)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
                    raise InSARDataError(
                        f"{self.path}: the label store is read-only here, labels cannot be written"
                    ) from exc
                raise
            return result

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._retry(lambda: self._conn.execute(sql, tuple(params)).fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r}, author={self.author!r}, session={self.session!r})"

    # -- writing --------------------------------------------------------------------------------
    def assign(
        self, samples: str | Iterable[str], label: str, *, origin: str = "person"
    ) -> int | None:
        """Give ``label`` to ``samples``; returns the operation id (None when nothing changed)."""
        label = check_label(label)
        ids = _as_ids(samples)
        self._check_known(ids)
        return self._write(lambda c: self._apply(c, "assign", ids, label, origin))

    def assign_many(
        self, pairs: Iterable[tuple[str, str]], *, origin: str = "import", description: str = ""
    ) -> int | None:
        """Assign a different label to each sample in one operation (imports, model labels).

        Every pair is checked before anything is written. More than ``IMPORT_BATCH`` pairs
        are committed in batches (so other writers are not locked out for the whole import)
        that all belong to one operation: undo reverts the whole import. An import cut short
        keeps the batches committed before; running it again completes it.
        """
        pairs = [(str(s), check_label(lab)) for s, lab in pairs]
        _as_ids([s for s, _ in pairs])
        self._check_known([s for s, _ in pairs])

        def run(c: sqlite3.Connection, batch: list[tuple[str, str]], op: int | None) -> int | None:
            by_label: dict[str, list[str]] = {}
            for s, lab in batch:
                by_label.setdefault(lab, []).append(s)
            for lab, ids in by_label.items():
                op = self._apply(c, "assign", ids, lab, origin, op=op, description=description)
            return op

        op = None
        size = max(1, int(IMPORT_BATCH))
        for start in range(0, max(len(pairs), 1), size):
            batch = pairs[start : start + size]
            op = self._write(lambda c, batch=batch, op=op: run(c, batch, op))
        return op

    def remove(self, samples: str | Iterable[str], *, origin: str = "person") -> int | None:
        """Remove whatever label ``samples`` carry (unlabelled ones are ignored)."""
        ids = _as_ids(samples)
        return self._write(lambda c: self._apply(c, "remove", ids, None, origin))

    def add_class(self, name: str) -> int | None:
        """Declare a class before any sample carries it (the dashboard's "new class")."""
        name = check_label(name)

        def run(c: sqlite3.Connection) -> int | None:
            if name in self._classes(c):
                return None
            op = self._new_op(c, "do", None, f"add class {name!r}")
            self._class_event(c, op, name, "create")
            return op

        return self._write(run)

    def rename_class(self, old: str, new: str) -> int:
        """Rename a class: every sample carrying ``old`` gets ``new`` (history is kept)."""
        return self.merge_classes([old], check_label(new), description=f"rename {old!r} to {new!r}")

    def merge_classes(self, sources: Iterable[str], target: str, *, description: str = "") -> int:
        """Relabel every sample of ``sources`` as ``target`` and retire the source classes."""
        sources, target = [str(s) for s in sources], check_label(target)

        def run(c: sqlite3.Connection) -> int:
            known = self._classes(c)
            missing = [s for s in sources if s not in known]
            if missing:
                raise ValueError(f"sources: no class named {missing}; classes are {sorted(known)}")
            op = self._new_op(c, "do", None, description or f"merge {sources} into {target!r}")
            for s in [s for s in sources if s != target]:
                ids = [r[0] for r in c.execute("SELECT sample FROM current WHERE label = ?", (s,))]
                self._apply(c, "assign", ids, target, "person", op=op)
                self._class_event(c, op, s, "delete")
            if target not in self._classes(c):
                self._class_event(c, op, target, "create")
            return op

        return self._write(run)

    def delete_class(self, name: str) -> int:
        """Remove ``name`` from every sample carrying it and from the class list."""

        def run(c: sqlite3.Connection) -> int:
            if name not in self._classes(c):
                raise ValueError(f"name: no class named {name!r}")
            op = self._new_op(c, "do", None, f"delete class {name!r}")
            ids = [r[0] for r in c.execute("SELECT sample FROM current WHERE label = ?", (name,))]
            self._apply(c, "remove", ids, None, "person", op=op)
            self._class_event(c, op, name, "delete")
            return op

        return self._write(run)

    def undo(self) -> int | None:
        """Revert this session's latest operation; returns the undo's op id, None if none."""
        return self._write(lambda c: self._undo_redo(c, undo=True))

    def redo(self) -> int | None:
        """Re-apply the operation this session undid last; None if there is nothing to redo."""
        return self._write(lambda c: self._undo_redo(c, undo=False))

    # -- reading --------------------------------------------------------------------------------
    def current(self) -> dict[str, str]:
        """Current label of every labelled sample (derived from the log, indexed).

        Sample ids travel as one joined string per class rather than one row per sample: a
        million labelled samples then load in a fraction of a second.
        """
        rows = self._read(
            f"SELECT label, group_concat(sample, '{_SEP}') FROM current GROUP BY label"
        )
        out: dict[str, str] = {}
        for label, joined in rows:
            out.update(dict.fromkeys(joined.split(_SEP), label))
        return out

    def authors(self) -> dict[str, str]:
        """Who gave each labelled sample its current label (the author of that event)."""
        rows = self._read(
            "SELECT c.sample, e.author FROM current c JOIN events e ON e.id = c.event"
        )
        return dict(rows)

    def labels_for(self, samples: Iterable[str]) -> list[str]:
        """Current label of each of ``samples`` in order, "" for unlabelled ones."""
        cur = self.current()
        return [cur.get(str(s), "") for s in samples]

    def counts(self) -> dict[str, int]:
        """Number of samples per class, including declared classes with none."""
        counts = {name: 0 for name in self.classes()}
        counts.update(self._read("SELECT label, COUNT(*) FROM current GROUP BY label"))
        return counts

    def classes(self) -> list[str]:
        """Class names in use or declared, in the order they came into the store (so keys
        and colours given by position stay the same in every session)."""
        return [r[0] for r in self._read(_CLASS_ORDER_SQL)]

    def history(self, sample: str) -> list[dict[str, Any]]:
        """Every event of one sample, oldest first, with the operation that made it."""
        rows = self._read(
            "SELECT e.id, e.time, e.label, e.action, e.prev, e.author, e.origin, e.session, e.op,"
            " o.kind, o.description FROM events e JOIN ops o ON o.op = e.op"
            " WHERE e.sample = ? ORDER BY e.id",
            (str(sample),),
        )
        keys = ("id", "time", "label", "action", "prev", "author", "origin", "session", "op")
        return [dict(zip(keys + ("op_kind", "description"), r)) for r in rows]

    def events(self) -> list[dict[str, Any]]:
        """The whole event log, oldest first."""
        keys = ("id", "op", "sample", "label", "action", "prev", "author", "origin", "time")
        rows = self._read(f"SELECT {', '.join(keys)}, session FROM events ORDER BY id")
        return [dict(zip(keys + ("session",), r)) for r in rows]

    def decided_by_person(self) -> set[str]:
        """Samples with any event a person made (a label given, changed or removed): imports
        that fill in labels leave them as the person left them."""
        return {r[0] for r in self._read("SELECT DISTINCT sample FROM events WHERE origin = ?",
                                         ("person",))}  # fmt: skip

    def revision(self) -> int:
        """A number that grows with every committed operation (for caches and provenance)."""
        return int(self._read("SELECT COALESCE(MAX(op), 0) FROM ops")[0][0])

    def store_id(self) -> str:
        """This store's identity, made when it was created or first opened for writing (""
        for an older store opened read-only): with :meth:`revision`, what caches are keyed by,
        since a store made anew counts its revisions from 1 again."""
        rows = self._read("SELECT value FROM meta WHERE key = 'store_id'")
        return str(rows[0][0]) if rows else ""

    def can_undo(self) -> bool:
        with self._lock:
            return bool(self._stacks(self._conn)[0])

    def can_redo(self) -> bool:
        with self._lock:
            return bool(self._stacks(self._conn)[1])

    def rebuild(self) -> dict[str, str]:
        """Replay the whole log (ignoring the materialised table): the ground truth of labels."""
        state: dict[str, str] = {}
        for sample, label, action in self._read(
            "SELECT sample, label, action FROM events ORDER BY id"
        ):
            if action == "assign":
                state[sample] = label
            elif state.get(sample) == label:
                del state[sample]
        return state

    # -- internals ------------------------------------------------------------------------------
    def _check_known(self, ids: list[str]) -> None:
        if self.known_ids is not None:
            unknown = [s for s in ids if s not in self.known_ids]
            if unknown:
                raise UnknownSampleError(unknown, where="samples")

    def _classes(self, c: sqlite3.Connection) -> set[str]:
        return {r[0] for r in c.execute(_CLASSES_SQL)}

    def _is_class(self, c: sqlite3.Connection, name: str) -> bool:
        """Whether ``name`` is a class, by two index lookups (no scan of the labels)."""
        last = c.execute(
            "SELECT action FROM class_events WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)
        ).fetchone()
        if last is not None and last[0] == "create":
            return True
        return (
            c.execute("SELECT 1 FROM current WHERE label = ? LIMIT 1", (name,)).fetchone()
            is not None
        )

    def _new_op(self, c: sqlite3.Connection, kind: str, ref: int | None, description: str) -> int:
        cur = c.execute(
            "INSERT INTO ops(session, author, kind, ref, description, time) VALUES (?,?,?,?,?,?)",
            (self.session, self.author, kind, ref, description, time.time()),
        )
        return int(cur.lastrowid)

    def _class_event(self, c: sqlite3.Connection, op: int, name: str, action: str) -> None:
        c.execute(
            "INSERT INTO class_events(op, name, action, author, time, session) VALUES (?,?,?,?,?,?)",
            (op, name, action, self.author, time.time(), self.session),
        )

    def _states(self, c: sqlite3.Connection, ids: list[str]) -> dict[str, str | None]:
        """Current label of ``ids`` inside the open transaction (via a temporary table)."""
        c.execute("CREATE TEMP TABLE IF NOT EXISTS _batch(sample TEXT PRIMARY KEY)")
        c.execute("DELETE FROM _batch")
        c.executemany("INSERT OR IGNORE INTO _batch(sample) VALUES (?)", ((s,) for s in ids))
        rows = c.execute("SELECT b.sample, c.label FROM _batch b LEFT JOIN current c USING(sample)")
        return dict(rows.fetchall())

    def _apply(
        self,
        c: sqlite3.Connection,
        action: str,
        ids: list[str],
        label: str | None,
        origin: str,
        *,
        op: int | None = None,
        description: str = "",
    ) -> int | None:
        """Write one event per sample whose state changes; opens an op unless given one."""
        if origin not in ORIGINS:
            raise ValueError(f"origin: must be one of {ORIGINS}, got {origin!r}")
        states = self._states(c, ids)
        if action == "assign":
            changes = [(s, label, "assign", p) for s, p in states.items() if p != label]
        else:
            changes = [(s, p, "remove", p) for s, p in states.items() if p is not None]
        if not changes:
            return op
        if op is None:
            what = f"{action} {label!r}" if label is not None else action
            op = self._new_op(c, "do", None, description or f"{what} on {len(changes)} sample(s)")
        if action == "assign" and not self._is_class(c, label):
            self._class_event(c, op, label, "create")
        self._insert(c, op, [(s, lab, act, prev, origin) for s, lab, act, prev in changes])
        return op

    def _insert(self, c: sqlite3.Connection, op: int, rows: list[tuple]) -> None:
        now = time.time()
        c.executemany(
            "INSERT INTO events(op, sample, label, action, prev, author, origin, time, session)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            (
                (op, s, lab, act, prev, self.author, org, now, self.session)
                for s, lab, act, prev, org in rows
            ),
        )

    def _stacks(self, c: sqlite3.Connection) -> tuple[list[int], list[int]]:
        """This session's undo and redo stacks, replayed from its operations."""
        done: list[int] = []
        undone: list[int] = []
        for op, kind, ref in c.execute(
            "SELECT op, kind, ref FROM ops WHERE session = ? ORDER BY op", (self.session,)
        ):
            if kind == "do":
                done.append(op)
                undone.clear()
            elif kind == "undo" and done and done[-1] == ref:
                undone.append(done.pop())
            elif kind == "redo" and undone and undone[-1] == ref:
                undone.pop()
                done.append(op)
        return done, undone

    def _held_before(
        self, c: sqlite3.Connection, sample: str, event: int, prev: str | None, void: dict
    ) -> str | None:
        """The label ``sample`` held before ``event``, not counting operations undone since
        (another session's undo that left this sample alone because it had been relabelled
        meanwhile): undoing the later relabel must not bring their label back."""
        while True:
            row = c.execute(
                "SELECT id, op, label, action, prev FROM events WHERE sample = ? AND id < ? "
                "ORDER BY id DESC LIMIT 1",
                (sample, event),
            ).fetchone()
            if row is None:
                return prev
            event, op, label, action, earlier = row
            if op not in void:  # undone: its latest undo or redo is an undo
                last = c.execute(
                    "SELECT kind FROM ops WHERE ref = ? AND kind IN ('undo', 'redo') "
                    "ORDER BY op DESC LIMIT 1",
                    (op,),
                ).fetchone()
                void[op] = last is not None and last[0] == "undo"
            if not void[op]:
                return label if action == "assign" else None
            prev = earlier

    def _undo_redo(self, c: sqlite3.Connection, *, undo: bool) -> int | None:
        done, undone = self._stacks(c)
        stack = done if undo else undone
        if not stack:
            return None
        target = stack[-1]
        events = c.execute(
            "SELECT id, sample, label, action, prev, origin FROM events WHERE op = ? ORDER BY id",
            (target,),
        ).fetchall()
        before: dict[str, str | None] = {}
        after: dict[str, tuple[str | None, str]] = {}
        void: dict[int, bool] = {}
        for event, sample, label, action, prev, origin in events:
            if sample not in before:  # what the sample held before, less undone operations
                before[sample] = self._held_before(c, sample, event, prev, void)
            after[sample] = (label if action == "assign" else None, origin)
        states = self._states(c, list(after))
        rows, skipped = [], 0
        for sample, (result, origin) in after.items():
            want, have = (before[sample], result) if undo else (result, before[sample])
            now = states[sample]
            if now != have:  # changed by someone else since: do not clobber their label
                skipped += 1
            elif want is None and now is not None:
                rows.append((sample, now, "remove", now, origin))
            elif want is not None and want != now:
                rows.append((sample, want, "assign", now, origin))
        kind = "undo" if undo else "redo"
        note = f" ({skipped} sample(s) changed since, left as they are)" if skipped else ""
        op = self._new_op(c, kind, target, f"{kind} of operation {target}{note}")
        self._insert(c, op, rows)
        class_rows = c.execute(
            "SELECT name, action FROM class_events WHERE op = ? ORDER BY id", (target,)
        ).fetchall()
        flip = {"create": "delete", "delete": "create"}
        for name, action in reversed(class_rows) if undo else class_rows:
            self._class_event(c, op, name, flip[action] if undo else action)
        return op


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers): still record something
        return "unknown"


def _as_ids(samples: str | Iterable[str]) -> list[str]:
    ids = [samples] if isinstance(samples, str) else [str(s) for s in samples]
    if any(_SEP in s or not s for s in ids):
        bad = [s for s in ids if _SEP in s or not s][:5]
        raise ValueError(f"samples: ids must be non-empty and free of control characters: {bad}")
    return ids


def check_label(label: str) -> str:
    """``label`` as the store keeps it (stripped), or a ValueError saying why not."""
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"label: must be a non-empty string, got {label!r}")
    if any(ch in label for ch in "\r\n\t"):
        raise ValueError(f"label: must be one line, got {label!r}")
    if len(label.strip()) > MAX_LABEL:
        raise ValueError(
            f"label: at most {MAX_LABEL} characters, got {len(label.strip())} "
            f"({label.strip()[:20]!r}...)"
        )
    return label.strip()
