"""Replacing a result folder by a new one so that a crash at any point loses neither.

A folder cannot be renamed over another one, so a replacement takes three renames:

1. the complete new result (written to ``.NAME.tmp-PID``) is renamed ``.NAME.new-PID``: that
   name means "complete", nothing incomplete ever carries it;
2. the current result is renamed ``.NAME.old-PID``;
3. ``.NAME.new-PID`` is renamed ``NAME``, then ``.NAME.old-PID`` is removed.

:func:`recover` repairs what a crash between these steps leaves: when ``NAME`` is missing it
rolls forward to the complete new result, or back to the old one when there is no new one;
when ``NAME`` exists the leftovers are removed. Leftovers of processes that are still running
are never touched. ``PID`` is :func:`owner`: the process id and a tag of the machine and PID
namespace it runs in. A process id means nothing in another container or on another host
sharing the workspace, so a writer holds a locked liveness file beside its leftovers, and
:func:`abandoned` asks that lock whether it still runs. Readers call :func:`recover` before
they look at a result, writers before they replace one. :func:`crash_point` is called between the steps; tests make it raise to
simulate a crash at each of them.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "abandoned",
    "beside",
    "claimed",
    "crash_point",
    "mine",
    "owner",
    "recover",
    "recover_all",
    "replace",
    "running",
    "sweep_alive",
]

log = logging.getLogger(__name__)
# Held by replace and recover: a replacement of this process is never mid-way to its readers
_IN_PROCESS = threading.RLock()
#: ``PID`` alone (older names), or ``PID.TAG`` (:func:`owner`)
OWNER = r"(?P<pid>\d+)(?:\.(?P<tag>[0-9a-f]{8}))?"
_LEFTOVER = re.compile(rf"^\.(?P<name>.+)\.(?P<kind>new|old|tmp)-{OWNER}$")
_ALIVE_NAME = re.compile(rf"^\.alive-{OWNER}(?:\.new)?$")


def _namespace_tag() -> str:
    """This machine and PID namespace, in 8 hex digits (process ids are unique only there)."""
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return hashlib.sha1(f"{socket.gethostname()}/{ns}".encode()).hexdigest()[:8]


_TAG = _namespace_tag()


# (pid, folder) -> [descriptor of our liveness file there, claims open, held for good]
_ALIVE: dict[tuple[int, str], list] = {}
_ALIVE_LOCK = threading.Lock()


def _alive_name(who: str) -> str:
    return f".alive-{who}"


def owner(folder: str | os.PathLike | None = None) -> str:
    """``PID.TAG``: this process, as the names of its leftovers and its markers record it.

    With ``folder`` (where the named thing is made), this process first holds its liveness
    file there, ``.alive-PID.TAG``, under an ``flock`` for as long as it runs: a process of
    another container or host sharing the folder, where the process id means nothing, tells
    from that lock whether the owner still runs (:func:`abandoned`); the kernel drops the
    lock however the owner ends. The file goes when the process exits normally, or when a
    later :func:`recover_all` of the folder finds it unlocked."""
    me = f"{os.getpid()}.{_TAG}"
    if folder is not None:
        _hold_alive(Path(folder), me, claim=0)
    return me


@contextlib.contextmanager
def claimed(folder: str | os.PathLike) -> Iterator[str]:
    """:func:`owner` for the time of one write into ``folder``, yielding ``PID.TAG``: the
    liveness file goes when the last claim there ends (unless :func:`owner` holds it for
    good), so a folder of the user's keeps none once a save is done."""
    folder = Path(folder)
    me = f"{os.getpid()}.{_TAG}"
    key = _hold_alive(folder, me, claim=1)
    try:
        yield me
    finally:
        with _ALIVE_LOCK:
            entry = _ALIVE.get(key) if key else None
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0 and not entry[2]:
                    _close_alive(folder / _alive_name(me), entry[0])
                    del _ALIVE[key]


def _close_alive(path: Path, fd: int) -> None:
    try:
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            path.unlink()
    except OSError:
        pass
    os.close(fd)


def _hold_alive(folder: Path, me: str, *, claim: int) -> tuple[int, str] | None:
    """Make sure this process holds its liveness file in ``folder``: for good (``claim`` 0)
    or for one more claim. Returns its key, or None where the folder cannot be written."""
    import fcntl

    key = (os.getpid(), os.path.abspath(folder))
    path = folder / _alive_name(me)
    with _ALIVE_LOCK:
        entry, kept = _ALIVE.get(key), None
        if entry is not None:
            try:
                fresh = os.stat(path).st_ino == os.fstat(entry[0]).st_ino
            except OSError:
                fresh = False  # removed by hand (or its folder renamed): made again
            if not fresh:
                os.close(entry[0])
                del _ALIVE[key]
                kept, entry = entry, None  # its claims and hold carry over to the new file
        if entry is None:
            staged = folder / f"{_alive_name(me)}.new"
            fd = -1
            try:  # locked before it has its name: whoever sees the name sees it locked
                fd = os.open(staged, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(fd, fcntl.LOCK_EX)
                os.replace(staged, path)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    staged.unlink()
                with contextlib.suppress(OSError):
                    os.close(fd)
                if isinstance(exc, OSError):
                    return None  # a folder we cannot write: nothing of ours will be made there
                raise
            entry = _ALIVE[key] = [fd, 0, False] if kept is None else [fd, kept[1], kept[2]]
            sweep_alive(folder)  # where this process starts writing, a user's folder included
        if claim:
            entry[1] += claim
        else:
            entry[2] = True
        return key


@atexit.register
def _drop_alive() -> None:
    """On a normal exit, this process's liveness files go (a crash leaves them unlocked)."""
    me = f"{os.getpid()}.{_TAG}"
    with _ALIVE_LOCK:
        for (pid, folder), entry in list(_ALIVE.items()):
            if pid == os.getpid():
                _close_alive(Path(folder) / _alive_name(me), entry[0])
                del _ALIVE[(pid, folder)]


def mine(pid: int | str, tag: str | None) -> bool:
    """Whether ``PID.TAG`` (or an untagged ``PID``) names this process."""
    return int(pid) == os.getpid() and tag in (None, _TAG)


def abandoned(pid: int | str, tag: str | None, folder: str | os.PathLike) -> bool:
    """Whether the process named ``PID.TAG`` that left something in ``folder`` has ended.

    This process counts as ended (see :func:`running`). Untagged names (older versions) are
    checked by process id. Tagged ones by their owner's liveness file in ``folder``: locked,
    the owner runs; unlocked, it ended (and the file goes); absent, it ended too (the owner
    makes it before naming anything there and removes it only when it exits), unless the tag
    is ours and the process id runs here (a liveness file removed by hand)."""
    import fcntl

    if mine(pid, tag):
        return True
    pid = int(pid)
    if tag is None:
        return not running(pid)
    path = Path(folder) / _alive_name(f"{pid}.{tag}")
    fd = -1
    for flags in (os.O_RDWR, os.O_RDONLY):  # read-only: another user's file (mode 0644)
        try:
            fd = os.open(path, flags)
            break
        except FileNotFoundError:
            return tag != _TAG or not running(pid)
        except PermissionError:
            continue
        except OSError:
            return False  # cannot tell: leave it
    if fd < 0:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held (BlockingIOError), or no locks here: cannot tell
            return False
        try:  # the name may have been given to a new file of the owner since it was opened
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return True
        except OSError:
            return False
        if not same:
            return False
        with contextlib.suppress(OSError):
            path.unlink()
        return True
    finally:
        os.close(fd)


def sweep_alive(folder: Path) -> None:
    """Remove the liveness files in ``folder`` of processes that have ended (and the ones a
    crash left half-made, ``.alive-PID.TAG.new``)."""
    try:
        names = [p.name for p in Path(folder).iterdir() if p.name.startswith(".alive-")]
    except OSError:
        return
    for name in names:
        m = _ALIVE_NAME.match(name)
        if not (m and m["tag"]) or mine(m["pid"], m["tag"]):
            continue
        if not name.endswith(".new"):
            abandoned(m["pid"], m["tag"], folder)  # removes it when unlocked
        elif _mtime(Path(folder) / name) < time.time() - 60 and abandoned(
            m["pid"], m["tag"], folder
        ):  # half-made a while ago, and its owner holds no file: a crash between two steps
            with contextlib.suppress(OSError):
                (Path(folder) / name).unlink()


def crash_point(step: str, final: Path) -> None:
    """Called between the steps of :func:`replace` (``staged``, ``moved-aside``,
    ``moved-in``); does nothing. Tests replace it by one that raises at a chosen step."""


def beside(path: str | os.PathLike, kind: str = "tmp", *, checked: bool = True) -> Path:
    """``.NAME.KIND-PID.TAG`` beside ``path``: this process's temporary name for it.

    ``checked`` (the default) where other processes look for leftovers (:func:`recover`):
    this process then holds its liveness file in that folder (:func:`owner`). Inside a
    folder of its own, which nobody else inspects, ``checked=False`` leaves none there."""
    path = Path(path)
    return path.with_name(f".{path.name}.{kind}-{owner(path.parent if checked else None)}")


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def running(pid: int) -> bool:
    """Whether another process with this id runs (this process counts as not running)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def replace(tmp: Path, final: Path) -> None:
    """Move the complete result ``tmp`` to ``final``, replacing what is there."""
    tmp, final = Path(tmp), Path(final)
    # _IN_PROCESS: this process's ``new``/``old`` look abandoned to its other threads
    with _IN_PROCESS, claimed(final.parent):
        recover(final)
        if not final.is_dir():
            os.replace(tmp, final)  # a file, or nothing yet: one atomic rename
            return
        new, old = beside(final, "new", checked=False), beside(final, "old", checked=False)
        _remove(new)
        _remove(old)
        os.replace(tmp, new)
        crash_point("staged", final)
        os.replace(final, old)
        crash_point("moved-aside", final)
        os.replace(new, final)
        crash_point("moved-in", final)
        _remove(old)


def _leftovers(final: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {"new": [], "old": [], "tmp": []}
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return found
    for p in entries:
        m = _LEFTOVER.match(p.name)
        if not m or m["name"] != final.name:
            continue
        if m["kind"] == "tmp" and mine(m["pid"], m["tag"]):
            continue  # may be this process's write in progress
        if abandoned(m["pid"], m["tag"], final.parent):
            found[m["kind"]].append(p)
    return found


def recover(final: Path) -> bool:
    """Finish or undo an interrupted :func:`replace` of ``final``; True when it changed
    something. Errors (a read-only workspace) are logged and leave things as they are."""
    with _IN_PROCESS:  # never while a thread of this process is between the renames
        return _recover(Path(final))


def _recover(final: Path) -> bool:
    found = _leftovers(final)
    if not any(found.values()):
        return False
    try:
        if not final.exists():
            by_age = sorted(found["new"], key=_mtime) or sorted(found["old"], key=_mtime)
            if by_age:
                pick = by_age[-1]
                os.replace(pick, final)
                what = "the new result" if pick in found["new"] else "the previous result"
                log.warning("%s: restored %s after an interrupted replacement", final, what)
                for kind in found.values():
                    if pick in kind:
                        kind.remove(pick)
        for paths in found.values():
            for p in paths:
                _remove(p)
    except OSError as exc:
        log.warning("%s: could not repair an interrupted replacement (%s)", final, exc)
        return False
    return True


def recover_all(folder: Path) -> None:
    """:func:`recover` every result in ``folder`` that a crash left mid-replacement."""
    try:
        names = {m["name"] for p in Path(folder).iterdir() if (m := _LEFTOVER.match(p.name))}
    except OSError:
        return
    for name in sorted(names):
        recover(Path(folder) / name)
    sweep_alive(Path(folder))


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0
