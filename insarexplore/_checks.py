"""Argument checks for Python callers: a wrong type or range is one error naming the argument,
raised before numpy, UMAP or scikit-learn meet the value with an error of their own. (The
command line checks its options in ``cli._common``.)"""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_name", "check_unit", "check_whole"]


def check_whole(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int when it is a whole number in ``[low, high]``; else ValueError."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)  # numpy's too
    if not ok or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name}: must be a whole number {span}, got {value!r}")
    return int(value)


def check_unit(name: str, value: Any) -> float:
    """``value`` as a float when it is a number in ``[0, 1]``; else ValueError."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not 0 <= value <= 1:  # NaN fails both comparisons
        raise ValueError(f"{name}: must be a number from 0 to 1, got {value!r}")
    return float(value)


def check_name(name: str, value: Any, *, optional: bool = False) -> str | None:
    """``value`` when it is text (or None, when ``optional``); else ValueError."""
    if (value is None and optional) or isinstance(value, str):
        return value
    raise ValueError(f"{name}: must be {'a name or None' if optional else 'a name'}, got {value!r}")
