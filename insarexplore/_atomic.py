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
namespace it runs in, for a process id means nothing in another container or on another host
sharing the workspace; leftovers of another machine are left alone (:func:`abandoned`). Readers call :func:`recover` before they look at a result, writers before
they replace one. :func:`crash_point` is called between the steps; tests make it raise to
simulate a crash at each of them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import socket
import threading
from pathlib import Path

__all__ = ["abandoned", "crash_point", "owner", "recover", "recover_all", "replace", "running"]

log = logging.getLogger(__name__)
# Held by replace and recover: a replacement of this process is never mid-way to its readers
_IN_PROCESS = threading.RLock()
#: ``PID`` alone (older names), or ``PID.TAG`` (:func:`owner`)
OWNER = r"(?P<pid>\d+)(?:\.(?P<tag>[0-9a-f]{8}))?"
_LEFTOVER = re.compile(rf"^\.(?P<name>.+)\.(?P<kind>new|old|tmp)-{OWNER}$")


def _namespace_tag() -> str:
    """This machine and PID namespace, in 8 hex digits (process ids are unique only there)."""
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = 0
    return hashlib.sha1(f"{socket.gethostname()}/{ns}".encode()).hexdigest()[:8]


_TAG = _namespace_tag()


def owner() -> str:
    """``PID.TAG``: this process, as leftover names and markers record it."""
    return f"{os.getpid()}.{_TAG}"


def abandoned(pid: int | str, tag: str | None = None) -> bool:
    """Whether the process that left something has ended. Only a process of this machine and
    PID namespace can be checked: another's (``tag`` not ours) counts as running. ``tag``
    None (names of older versions) counts as ours. This process counts as ended (see
    :func:`running`)."""
    if tag is not None and tag != _TAG:
        return False
    return not running(int(pid))


def crash_point(step: str, final: Path) -> None:
    """Called between the steps of :func:`replace` (``staged``, ``moved-aside``,
    ``moved-in``); does nothing. Tests replace it by one that raises at a chosen step."""


def _sibling(final: Path, kind: str) -> Path:
    return final.with_name(f".{final.name}.{kind}-{owner()}")


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
    with _IN_PROCESS:  # this process's ``new``/``old`` look abandoned to its other threads
        recover(final)
        if not final.is_dir():
            os.replace(tmp, final)  # a file, or nothing yet: one atomic rename
            return
        new, old = _sibling(final, "new"), _sibling(final, "old")
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
        mine = int(m["pid"]) == os.getpid() and m["tag"] in (None, _TAG)
        if m["kind"] == "tmp" and mine:
            continue  # may be this process's write in progress
        if abandoned(m["pid"], m["tag"]):
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


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0
