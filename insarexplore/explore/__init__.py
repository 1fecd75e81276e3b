"""The engine under the dashboard: projection, clusters, labels, few-shot, active learning.

Names are imported lazily so that ``import insarexplore.explore`` stays cheap (UMAP, numba and
scikit-learn load only when used).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "LabelStore": "insarexplore.explore.labels",
    "UnknownSampleError": "insarexplore.explore.labels",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'insarexplore.explore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
