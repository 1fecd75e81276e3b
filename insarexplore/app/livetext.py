"""A line of text the browser updates in place, without laying the page out again.

Every change of a Panel ``Markdown``/``HTML`` pane makes Bokeh recompute the layout of the whole
page (measured: about 50 ms each at 200,000 samples, four of them per selection: the status
line, the scatter's count, the map's note and the gallery's page). ``LiveText`` only swaps the
text of its element, which keeps its place, so a selection costs no layout pass.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

__all__ = ["LiveText"]


class LiveText(pn.custom.ReactiveHTML):
    """``object`` is a short HTML fragment (``<b>`` for emphasis); callers escape user text.

    Panel sanitises the fragment before it reaches the browser (scripts are removed).
    """

    object = param.String(default="", doc="HTML fragment shown.")

    _template = "<div id='text' class='live'></div>"
    _stylesheets = [".live { font-size: 13px; line-height: 1.5; white-space: nowrap; }"]
    _scripts = {
        "render": "text.innerHTML = data.object;",
        "object": "text.innerHTML = data.object;",
    }

    def __init__(self, object: str = "", **params: Any) -> None:  # noqa: A002 (like panes)
        super().__init__(object=object, **params)
