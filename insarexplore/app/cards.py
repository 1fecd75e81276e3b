"""A grid of thumbnail cards drawn by the browser from one list: one message per page.

The gallery used to be a Panel column per card (image pane, button, metadata pane); a new page
then changed about fifty Bokeh models, each a websocket message that made the browser lay the
page out again (about 3 s for the first page of a selection, measured). ``CardGrid`` holds the
page as one ``cards`` list and builds the cards' DOM itself, so a page is one update.
"""

from __future__ import annotations

from typing import Any

import panel as pn
import param

__all__ = ["CardGrid"]

_CSS = """
.grid { display: flex; flex-wrap: wrap; gap: 6px; align-content: flex-start; }
.hint { color: #555; font-size: 13px; font-style: italic; padding: 8px 4px; }
.card { border: 1px solid #d0d7de; border-radius: 6px; background: #fff; padding: 2px;
        display: flex; flex-direction: column; align-items: center; }
.card.focused { border: 2px solid #e6194b; padding: 1px; }
.card img { image-rendering: pixelated; border-radius: 4px; cursor: pointer; display: block; }
.card .none { background: #eee; border-radius: 4px; color: #888; font-size: 11px;
              display: flex; align-items: center; justify-content: center; }
.card button { margin: 2px 0; height: 28px; border: 1px solid #ccc; border-radius: 4px;
               background: #f8f9fa; cursor: pointer; font-size: 12px; white-space: nowrap;
               overflow: hidden; }
.card button:hover { background: #e9ecef; }
.card .meta { font-size: 11px; line-height: 1.3; overflow: hidden; align-self: flex-start;
              padding: 0 4px; }
"""


class CardGrid(pn.custom.ReactiveHTML):
    """Cards of one gallery page; a click on a card's image or button reports its sample.

    ``cards`` holds one dict per card: ``id`` (sample id), ``label`` (button text), ``src`` (PNG
    data URL, or empty for no image) and ``meta`` (HTML escaped by the server). Clicks set
    ``clicked`` and bump ``clicks`` (so clicking the same card twice is seen twice).
    """

    # the cards travel inside a dict: Panel 1.9 takes an empty *list* parameter for a list of
    # Parameterized children and fails on the next update ("unhashable type: 'dict'")
    page = param.Dict(default={"cards": []}, doc="``{'cards': [card dict, ...]}``.")
    focused = param.String(default="", doc="Sample id drawn with the focus frame.")
    empty = param.String(default="", doc="Hint shown when there are no cards (plain text).")
    thumb = param.Integer(default=96, doc="Thumbnail size (px).")
    clicked = param.String(default="", doc="Sample id of the last clicked card.")
    clicks = param.Integer(default=0)

    _template = "<div id='grid' class='grid'></div>"
    _stylesheets = [_CSS]
    _scripts = {
        "render": """
          grid.addEventListener('click', (e) => {
            const path = e.composedPath ? e.composedPath() : [e.target];
            for (const el of path) {
              if (el === grid) { break; }
              if (el.dataset && el.dataset.sample !== undefined &&
                  (el.tagName === 'BUTTON' || el.tagName === 'IMG')) {
                data.clicked = el.dataset.sample;
                data.clicks = data.clicks + 1;
                break;
              }
            }
          });
          self.draw();
        """,
        "draw": """
          const size = data.thumb;
          const frag = document.createDocumentFragment();
          if (!data.page.cards.length) {
            const hint = document.createElement('div');
            hint.className = 'hint';
            hint.textContent = data.empty;
            frag.append(hint);
          }
          for (const c of data.page.cards) {
            const card = document.createElement('div');
            card.className = 'card' + (c.id === data.focused ? ' focused' : '');
            card.dataset.card = c.id;
            card.style.width = (size + 12) + 'px';
            let pic;
            if (c.src) {
              pic = document.createElement('img');
              pic.src = c.src;
              pic.width = size;
              pic.height = size;
              pic.alt = c.id;
              pic.dataset.sample = c.id;
            } else {
              pic = document.createElement('div');
              pic.className = 'none';
              pic.style.width = size + 'px';
              pic.style.height = size + 'px';
              pic.textContent = 'no image';
            }
            const button = document.createElement('button');
            button.textContent = c.label;
            button.title = c.id;
            button.dataset.sample = c.id;
            button.style.width = (size + 8) + 'px';
            const meta = document.createElement('div');
            meta.className = 'meta';
            meta.style.maxWidth = (size + 12) + 'px';
            meta.innerHTML = c.meta;
            card.append(pic, button, meta);
            frag.append(card);
          }
          grid.replaceChildren(frag);
        """,
        "focused": """
          for (const card of grid.children) {
            card.classList.toggle('focused', card.dataset.card === data.focused);
          }
        """,
        "page": "self.draw();",
        "empty": "self.draw();",
        "thumb": "self.draw();",
    }

    @property
    def cards(self) -> list[dict[str, str]]:
        """The cards shown (one dict per card, see the class docstring)."""
        return self.page["cards"]

    @cards.setter
    def cards(self, cards: list[dict[str, str]]) -> None:
        self.page = {"cards": list(cards)}

    def click(self, sample: str) -> None:
        """What a click on the card of ``sample`` does in the browser (tests, notebooks)."""
        self.clicked = sample
        self.clicks += 1

    def __init__(self, **params: Any) -> None:
        params.setdefault("sizing_mode", "stretch_width")
        super().__init__(**params)
