"""Helpers shared by the readers: file-name metadata and the skipped-file report.

Every reader either raises on the first bad file (``strict=True``) or skips it, records why in a
``skipped`` list (``ds.attrs["skipped"]``, a JSON string of ``{"file", "problem"}`` objects) and logs
one warning, so that a folder with a few broken files still loads.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from insarexplore.errors import InSARDataError

__all__ = [
    "DATE_PAIR_RE",
    "FRAME_RE",
    "SkipLog",
    "check_path",
    "ingested_before",
    "nothing_read",
    "find_frame",
    "parse_date",
    "parse_date_pair",
]

logger = logging.getLogger("insarexplore.data.io")

#: LiCSAR frame id, e.g. ``079D_07694_131313`` (track + A/D, then two numbers).
FRAME_RE = re.compile(r"(?<![0-9A-Za-z])(\d{3}[AD]_\d{5}_\d{6})(?![0-9])")
#: Primary and secondary acquisition dates, ``yyyymmdd_yyyymmdd``.
DATE_PAIR_RE = re.compile(r"(?<!\d)((?:19|20)\d{6})_((?:19|20)\d{6})(?!\d)")

NAT = np.datetime64("NaT", "ns")


def parse_date(text: str) -> np.datetime64:
    """``yyyymmdd`` -> datetime64[ns]; NaT when it is not a valid calendar date."""
    if not (isinstance(text, str) and len(text) == 8 and text.isdigit()):
        return NAT
    try:  # datetime() validates the calendar date and is ~10x faster than strptime
        return np.datetime64(datetime(int(text[:4]), int(text[4:6]), int(text[6:])), "ns")
    except ValueError:
        return NAT


def parse_date_pair(text: str) -> tuple[np.datetime64, np.datetime64, re.Match | None]:
    """Last ``yyyymmdd_yyyymmdd`` pair in ``text`` (primary, secondary, match); NaT when absent."""
    matches = list(DATE_PAIR_RE.finditer(text))
    if not matches:
        return NAT, NAT, None
    m = matches[-1]
    return parse_date(m.group(1)), parse_date(m.group(2)), m


def find_frame(*texts: str) -> str:
    """First LiCSAR frame id found in ``texts`` (checked in order), or ""."""
    for text in texts:
        m = FRAME_RE.search(text)
        if m:
            return m.group(1)
    return ""


def ingested_before(stored: Mapping[str, str], sample: str, path: str | Path) -> bool:
    """Whether ``sample`` read from ``path`` is already in a store whose samples came from
    ``stored`` (id -> source file): the same id from the same file. The same id from another
    file, or from a source that cannot be compared (recorded relative to another folder, or
    gone), is left to the append, which refuses the collision (naming ``--id-prefix``)."""
    source = stored.get(sample)
    if source is None or not os.path.isabs(source):
        return False
    try:
        return os.path.samefile(source, path)
    except OSError:
        return False


def check_path(path: str | Path, what: str = "path") -> Path:
    """Return ``path`` as a Path, raising InSARDataError when it does not exist."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InSARDataError(f"{what} {str(p)!r} does not exist")
    return p


@dataclass
class SkipLog:
    """Collects bad files; raises at once when ``strict``."""

    strict: bool = False
    entries: list[dict[str, str]] = field(default_factory=list)
    #: entries for a companion file (coherence, unwrapped phase) whose sample was kept without it
    n_partial: int = 0

    def fail(self, file: str | Path, problem: str) -> None:
        """Record (or, when strict, raise) that ``file`` was not loaded because of ``problem``."""
        # names that are not valid UTF-8 (surrogate escapes) are shown escaped, never dropped
        name = os.fsencode(str(file)).decode("utf-8", "backslashreplace")
        if self.strict:
            raise InSARDataError(f"{name}: {problem}")
        self.entries.append({"file": name, "problem": problem})

    def partial(self, file: str | Path, problem: str) -> None:
        """Record that a companion ``file`` was not loaded, its sample kept without it."""
        self.fail(file, problem)
        self.n_partial += 1

    def to_json(self) -> str:
        return json.dumps(self.entries)

    def warn(self, what: str, total: int) -> None:
        """Log one warning summarising the skipped files (first few named)."""
        if not self.entries:
            return
        head = "; ".join(f"{e['file']}: {e['problem']}" for e in self.entries[:3])
        more = f" (and {len(self.entries) - 3} more)" if len(self.entries) > 3 else ""
        kept = (
            f"; {self.n_partial} companion files (coherence, unwrapped phase) not loaded, "
            "their samples kept without them"
            if self.n_partial
            else ""
        )
        skipped = len(self.entries) - self.n_partial
        logger.warning(
            "%s: skipped %d of %d files%s: %s%s", what, skipped, total, kept, head, more,
            extra={"skip_summary": True},  # the command line lists them itself
        )  # fmt: skip


def nothing_read(path: str | Path, n: int, what: str, skipped: SkipLog) -> InSARDataError:
    """The error for a source where not one of ``n`` items could be read (first reason named)."""
    first = skipped.entries[0] if skipped.entries else {"file": str(path), "problem": "unknown"}
    return InSARDataError(
        f"{path}: none of the {n} {what} could be read "
        f"(first problem: {first['file']}: {first['problem']})"
    )
