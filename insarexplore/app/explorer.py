"""``Explorer``: the whole dashboard over one workspace, inline in JupyterLab or served.

Layout: scatter and map on top (linked by the selection), then the gallery with the detail view
of the focused sample, and the labelling and model panels. The same object displays inline in a
notebook (``Explorer(ws)`` as the last expression) and is served by :func:`serve`
(``.servable()`` for ``panel serve`` scripts).
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from insarexplore.app.data import ExplorerData
from insarexplore.app.gallery import DetailView, GalleryView
from insarexplore.app.labelling import LabellingView
from insarexplore.app.livetext import LiveText
from insarexplore.app.map import MapView
from insarexplore.app.model import ModelView
from insarexplore.app.scatter import ScatterView
from insarexplore.app.state import ExplorerState

__all__ = ["Explorer"]

_HEADER_CSS = """
:host { background: #0b3d5c; color: white; border-radius: 6px; padding: 0 14px; }
"""
_CARD_STYLE = {"background": "#ffffff"}


def _card(title: str, *objects: Any, **kw: Any) -> pn.Card:
    return pn.Card(
        *objects,
        title=title,
        collapsible=False,
        sizing_mode="stretch_width",
        styles=_CARD_STYLE,
        header_background="#eef3f7",
        margin=(5, 5),
        **kw,
    )


class Explorer(pn.viewable.Viewer):
    """The explorer dashboard of a workspace.

    ``workspace`` is a folder path or ``Workspace`` (or pass ``data=`` an :class:`ExplorerData`
    shared between sessions). ``author`` is recorded with every label (default: the OS user).
    ``threshold``: above this many samples (default 10,000) the scatter is rasterised with datashader.
    """

    title = param.String(default="insarexplore")

    def __init__(
        self,
        workspace: Any = None,
        *,
        data: ExplorerData | None = None,
        projection: str = "auto",
        author: str | None = None,
        threshold: int = 10_000,
        thumb_url: str | None = None,
        widget_cdn: str | None = None,
        **params: Any,
    ) -> None:
        if data is None:
            if workspace is None:
                raise ValueError("give a workspace (folder or Workspace) or data=ExplorerData")
            data = ExplorerData.from_workspace(workspace, projection=projection)
        if data.workspace is not None and "title" not in params:
            params["title"] = f"insarexplore · {data.workspace.path.name}"
        super().__init__(**params)
        self.data = data
        kw = {"author": author} if author else {}
        self.state = ExplorerState(data, **kw)
        # the status line first: its watcher runs before the heavier views' watchers
        self._status = LiveText(self._status_text(), margin=(12, 10), styles={"color": "white"})
        self.state.param.watch(
            lambda e: setattr(self._status, "object", self._status_text()),
            ["message", "selection", "focused"],
        )
        self.scatter = ScatterView(self.state, threshold=threshold, thumb_url=thumb_url)
        self.map = MapView(self.state, widget_cdn=widget_cdn)
        self.gallery = GalleryView(self.state)
        self.detail = DetailView(self.state)
        self.labelling = LabellingView(self.state)
        self.model = ModelView(self.state)
        self._layout = self._build()

    def _status_text(self) -> str:
        s = self.state
        focus = f" · focused <b>{html.escape(s.focused)}</b>" if s.focused else ""
        return (
            f"{html.escape(s.message)} · {len(s.selection):,} selected{focus}"
            f" · labels by <b>{html.escape(s.author)}</b>"
        )

    def _build(self) -> pn.viewable.Viewable:
        header = pn.Row(
            pn.pane.HTML(
                f"<div style='font-size:20px;font-weight:600;color:white;padding:8px 0'>"
                f"{html.escape(self.title)}</div>",
                margin=(0, 10),
            ),
            pn.HSpacer(),
            self._status,
            sizing_mode="stretch_width",
            stylesheets=[_HEADER_CSS],
            margin=(5, 5),
        )
        top = pn.Row(
            _card("Embedding map", self.scatter, min_width=420),
            _card("Footprints", self.map, min_width=380),
            sizing_mode="stretch_width",
        )
        bottom = pn.Row(
            pn.Column(
                _card("Gallery", self.gallery),
                _card("Detail", self.detail),
                sizing_mode="stretch_width",
                min_width=520,
            ),
            pn.Column(
                _card("Labels", self.labelling), _card("Few-shot model", self.model), width=470
            ),
            sizing_mode="stretch_width",
        )
        return pn.Column(
            header, top, bottom, sizing_mode="stretch_width", styles={"background": "#f4f6f8"}
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
