"""Exceptions raised by insarexplore.

Every data error names the file, variable or parameter at fault and says what is wrong with it,
so a user with a folder of ten thousand files can find the one that broke.
"""

from __future__ import annotations

__all__ = ["InSARError", "InSARDataError", "SchemaError", "StaleArtifactError", "WorkspaceError"]


class InSARError(Exception):
    """Base class of every insarexplore error."""


class InSARDataError(InSARError, ValueError):
    """Input data is missing, corrupt, or does not follow the data model."""


class SchemaError(InSARDataError):
    """A Dataset violates the data-model contract; the message lists every violation."""

    def __init__(self, problems: list[str], where: str = "dataset") -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{where} does not follow the insarexplore data model:\n{lines}")


class StaleArtifactError(InSARError):
    """A stored result was made from other data or another model than the current ones."""


class WorkspaceError(InSARError):
    """A workspace folder is missing, incomplete, or was written by an incompatible version."""
