"""The explorer dashboard: UMAP scatter linked to a map, images and labelling (Panel).

``Explorer(workspace)`` displays inline in JupyterLab; ``serve(workspace)`` serves it. Both are
imported lazily so that ``import insarexplore.app`` does not load Panel.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Explorer": "insarexplore.app.explorer",
    "serve": "insarexplore.app.server",
    "ExplorerState": "insarexplore.app.state",
    "ExplorerData": "insarexplore.app.data",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'insarexplore.app' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
