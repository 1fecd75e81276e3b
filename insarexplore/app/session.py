"""What every part of the dashboard state shares: the session's table over the shared data,
the status line, the version counter, sample-id checks and the Bokeh document plumbing.

:class:`SessionBase` is the base of the state's parts (:mod:`~insarexplore.app.selection`,
:mod:`~insarexplore.app.labels`, :mod:`~insarexplore.app.modeljob`);
:class:`~insarexplore.app.state.ExplorerState` composes them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import param

from insarexplore.app.data import ExplorerData

__all__ = ["SessionBase", "current_document"]


class SessionBase(param.Parameterized):
    """The table, status line and document of one browser session."""

    data = param.ClassSelector(class_=ExplorerData, constant=True, doc="Shared table and images.")
    table = param.DataFrame(doc="Per-sample table of this session (indexed by sample id).")
    message = param.String(default="", doc="Status line shown to the user.")
    version = param.Integer(default=0, doc="Bumped whenever per-sample columns change.")

    #: the session's :class:`~insarexplore.explore.labels.LabelStore` (None: labels in memory)
    store: Any = None
    #: the Bokeh document when served (None in tests), and the thread that owns it
    _doc: Any = None
    _owner: threading.Thread | None = None

    @property
    def n(self) -> int:
        return len(self.table)

    def _known(self, ids: Sequence[str]) -> list[str]:
        ids = [str(i) for i in ids]
        pos = self.data.index_of(ids) if ids else np.empty(0, dtype=int)
        unknown = [i for i, p in zip(ids, pos) if p < 0]
        if unknown:
            raise KeyError(
                f"unknown sample ids: {unknown[:10]}{' ...' if len(unknown) > 10 else ''}"
            )
        return ids

    def _push(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the session's document (from a background thread), or now."""
        doc = self._doc
        if doc is None or threading.current_thread() is self._owner:
            fn()
            return
        from panel.io.state import set_curdoc

        def run() -> None:
            with set_curdoc(doc):
                fn()

        doc.add_next_tick_callback(run)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Send every change made inside to the browser together, as one message.

        Without it each changed Bokeh model is its own websocket message, and the browser lays
        the page out again after each (measured: seconds for one selection). No-op unless
        served.
        """
        doc = self._doc
        if doc is None or threading.current_thread() is not self._owner:
            yield
            return
        from panel.io.document import hold

        with hold(doc, freeze=True):
            yield


def current_document() -> Any:
    """The Bokeh document of the session being built, when served (None in tests)."""
    try:
        import panel as pn

        doc = pn.state.curdoc
        return doc if doc is not None and doc.session_context is not None else None
    except Exception:
        return None
