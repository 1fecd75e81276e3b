"""The explorer dashboard: UMAP scatter linked to a map, images and labelling (Panel).

``Explorer(workspace)`` displays inline in JupyterLab; ``serve(workspace)`` serves it. Both are
imported lazily so that ``import insarexplore.app`` does not load Panel.
"""

from __future__ import annotations

from insarexplore._lazy import lazy_exports

_LAZY = {
    "Explorer": "insarexplore.app.explorer",
    "serve": "insarexplore.app.server",
    "ExplorerState": "insarexplore.app.state",
    "ExplorerData": "insarexplore.app.data",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
