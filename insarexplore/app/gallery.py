"""The gallery of the current selection (or suggestion queue) and the detail view of one sample.

Thumbnails are rendered on the server from the data model (cyclic palette) and cached by
:class:`ExplorerData`; clicking a card focuses the sample, which the detail view shows with its
phase, coherence, displacement, place and label history.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from insarexplore.app import engine
from insarexplore.app.state import ExplorerState

__all__ = ["GalleryView", "DetailView"]

_CARD_CSS = """
:host { border: 1px solid #d0d7de; border-radius: 6px; background: #fff; }
:host(.focused) { border: 2px solid #e6194b; }
"""


def _placeholder(size: int) -> pn.pane.HTML:
    return pn.pane.HTML(
        f"<div style='width:{size}px;height:{size}px;background:#eee;border-radius:4px;"
        "display:flex;align-items:center;justify-content:center;color:#888;"
        "font-size:11px'>no image</div>",
        margin=2,
    )


def _short(sample: str, n: int = 16) -> str:
    return sample if len(sample) <= n else sample[: n - 6] + "..." + sample[-5:]


class GalleryView(pn.viewable.Viewer):
    """Paged thumbnails of ``state.selection`` (or ``state.suggestions``), click to focus."""

    state = param.ClassSelector(class_=ExplorerState)
    page = param.Integer(default=0, bounds=(0, None))
    page_size = param.Integer(default=12, bounds=(1, 200))
    thumb = param.Integer(default=96, doc="Thumbnail display size (px).")

    def __init__(self, state: ExplorerState, **params: Any) -> None:
        super().__init__(state=state, **params)
        self._grid = pn.FlexBox(sizing_mode="stretch_width", gap="6px", min_height=130)
        self._prev = pn.widgets.Button(label="< Prev", width=70, margin=(5, 4))
        self._next = pn.widgets.Button(label="Next >", width=70, margin=(5, 4))
        self._pageinfo = pn.pane.Markdown("", margin=(5, 8))
        self._mode = pn.widgets.RadioButtonGroup.from_param(
            state.param.gallery_mode,
            options={"Selection": "selection", "Suggestions": "suggestions"},
            margin=(5, 8),
            color="light",
        )
        self._prev.on_click(lambda e: self._turn(-1))
        self._next.on_click(lambda e: self._turn(+1))
        self.cards: dict[str, pn.Column] = {}
        # a fixed set of card slots, refilled on every page: no Bokeh models rebuilt per page
        self._slots = [self._make_slot(i) for i in range(self.page_size)]
        self._slot_ids: list[str | None] = [None] * self.page_size
        self._empty = pn.pane.Markdown("")
        state.param.watch(self._reset, ["selection", "suggestions", "gallery_mode"])
        state.param.watch(self._refresh_meta, ["version"])
        state.param.watch(self._highlight, ["focused"])
        self.param.watch(self._render, ["page", "page_size"])
        self._render()

    @property
    def items(self) -> list[str]:
        s = self.state
        return list(s.suggestions if s.gallery_mode == "suggestions" else s.selection)

    @property
    def n_pages(self) -> int:
        return max(1, -(-len(self.items) // self.page_size))

    def visible(self) -> list[str]:
        start = self.page * self.page_size
        return self.items[start : start + self.page_size]

    def _reset(self, *_: Any) -> None:
        if self.page:
            self.page = 0  # triggers _render
        else:
            self._render()

    def _turn(self, step: int) -> None:
        self.page = int(np.clip(self.page + step, 0, self.n_pages - 1))

    def _make_slot(self, i: int) -> pn.Column:
        image: Any = (
            pn.pane.PNG(None, width=self.thumb, height=self.thumb, margin=2, fixed_aspect=True)
            if self.state.data.layers
            else _placeholder(self.thumb)
        )
        button = pn.widgets.Button(
            label="", width=self.thumb + 8, height=28, margin=(2, 2), color="light"
        )
        button.on_click(lambda e, i=i: self._slot_ids[i] and self.state.focus(self._slot_ids[i]))
        meta = pn.pane.HTML("", margin=(0, 4))
        return pn.Column(
            image,
            button,
            meta,
            width=self.thumb + 16,
            stylesheets=[_CARD_CSS],
            margin=2,
            visible=False,
        )

    def _render(self, *_: Any) -> None:
        s = self.state
        items = self.visible()
        if len(self._slots) < self.page_size:
            self._slots += [self._make_slot(i) for i in range(len(self._slots), self.page_size)]
            self._slot_ids += [None] * (self.page_size - len(self._slot_ids))
        if items and s.data.layers:
            s.data.prefetch(items, "phase", size=s.data.thumb_size)
        pos = s.data.index_of(items) if items else []
        self.cards = {}
        for i, card in enumerate(self._slots):
            if i < len(items):
                sid = items[i]
                self._fill(card, sid, s.table.iloc[int(pos[i])])
                self.cards[sid] = card
                self._slot_ids[i] = sid
            else:
                self._slot_ids[i] = None
            card.visible = i < len(items)
        self._empty.object = (
            ""
            if items
            else "*Select points in the scatter (box or lasso) or draw on the map.*"
            if s.gallery_mode == "selection"
            else "*Press **Suggest next** in the model panel.*"
        )
        self._empty.visible = not items
        if list(self._grid.objects) != [self._empty, *self._slots]:
            self._grid.objects = [self._empty, *self._slots]
        total = len(self.items)
        self._pageinfo.object = (
            f"{total:,} samples · page {self.page + 1}/{self.n_pages}" if total else ""
        )
        self._prev.disabled = self.page == 0
        self._next.disabled = self.page >= self.n_pages - 1

    def _fill(self, card: pn.Column, sid: str, row: pd.Series) -> None:
        s = self.state
        image, button, meta = card.objects
        if s.data.layers:
            image.object = s.data.thumbnail(sid)
        button.param.update(label=_short(sid, 14), description=sid)
        meta.object = self._meta_html(sid, row)
        card.css_classes = ["focused"] if sid == s.focused else []

    def _meta_html(self, sid: str, row: pd.Series) -> str:
        s = self.state
        label = row.get("label", "")
        pred = row.get("predicted", "")
        bits = [f"<b>{html.escape(str(label))}</b>" if label else "<i>unlabelled</i>"]
        if pred:
            bits.append(f"pred {html.escape(str(pred))} {row.get('confidence', np.nan):.2f}")
        if s.gallery_mode == "suggestions" and sid in s.reasons:
            bits.append(html.escape(s.reasons[sid]))
        date = row.get("primary_date")
        if date is not None and not pd.isna(date):
            bits.append(f"{pd.Timestamp(date).date()}")
        return (
            "<div style='font-size:11px;line-height:1.3;max-width:110px;"
            f"overflow:hidden'>{'<br>'.join(bits)}</div>"
        )

    def _refresh_meta(self, *_: Any) -> None:
        """Labels or predictions changed: update the cards' text, keep their images."""
        table = self.state.table
        for sid, card in self.cards.items():
            card.objects[2].object = self._meta_html(sid, table.loc[sid])

    def _highlight(self, event: Any) -> None:
        """Move the focus frame between cards without rebuilding them."""
        for sid in (event.old, event.new):
            if sid in self.cards:
                self.cards[sid].css_classes = ["focused"] if sid == event.new else []

    def __panel__(self) -> pn.viewable.Viewable:
        header = pn.Row(
            self._mode, self._prev, self._next, self._pageinfo, sizing_mode="stretch_width"
        )
        return pn.Column(header, self._grid, sizing_mode="stretch_width")


class DetailView(pn.viewable.Viewer):
    """Phase, coherence, displacement, metadata and label history of ``state.focused``."""

    state = param.ClassSelector(class_=ExplorerState)
    size = param.Integer(default=180)

    def __init__(self, state: ExplorerState, **params: Any) -> None:
        super().__init__(state=state, **params)
        # one persistent image pane per layer: focusing only swaps the PNG bytes
        self.images = {
            layer: pn.pane.PNG(None, width=self.size, height=self.size, margin=2)
            for layer in state.data.layers
        }
        self._images = pn.Row(
            *(
                pn.Column(pn.pane.Markdown(f"**{_TITLES.get(k, k)}**", margin=(0, 5)), pane)
                for k, pane in self.images.items()
            )
        )
        self._hint = pn.pane.Markdown("*Click a point, card or footprint.*")
        self._meta = pn.pane.HTML(sizing_mode="stretch_width")
        self._history = pn.pane.HTML(sizing_mode="stretch_width")
        state.param.watch(self._render, ["focused", "version"])
        self._render()

    def _render(self, *_: Any) -> None:
        s = self.state
        sid = s.focused
        self._hint.visible = sid is None
        self._images.visible = sid is not None and bool(self.images)
        if sid is None:
            self._meta.object = self._history.object = ""
            return
        for layer, pane in self.images.items():
            pane.object = s.data.png(sid, layer, size=self.size)
        self._meta.object = _meta_html(sid, s.table.loc[sid])
        events = engine.history(s.store, sid) if s.store is not None else []
        self._history.object = _history_html(events)

    def __panel__(self) -> pn.viewable.Viewable:
        side = pn.Column(
            self._meta,
            pn.pane.Markdown("**Label history**", margin=(0, 5)),
            self._history,
            sizing_mode="stretch_width",
        )
        return pn.Column(
            self._hint,
            pn.Row(self._images, side, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )


_TITLES = {"image": "rendering", "phase": "wrapped phase", "displacement": "LOS displacement"}


def _fmt(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return "-" if not np.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return "-" if pd.isna(value) else str(pd.Timestamp(value).date())
    return html.escape(str(value)) if str(value) != "" else "-"


def _meta_html(sid: str, row: pd.Series) -> str:
    rows = [("sample", html.escape(sid))]
    if {"lon_min", "lon_max", "lat_min", "lat_max"} <= set(row.index):
        lon = (row["lon_min"] + row["lon_max"]) / 2
        lat = (row["lat_min"] + row["lat_max"]) / 2
        if np.isfinite(lon) and np.isfinite(lat):
            rows.append(("position", f"{lat:.4f} N, {lon:.4f} E"))
    skip = {"x", "y", "lon_min", "lon_max", "lat_min", "lat_max"}
    rows += [(name, _fmt(row[name])) for name in row.index if name not in skip]
    cells = "".join(
        f"<tr><td style='color:#555;padding-right:10px'>{html.escape(str(k))}</td><td>{v}</td></tr>"
        for k, v in rows
    )
    return f"<table style='font-size:12px'>{cells}</table>"


def _history_html(events: list[dict[str, Any]]) -> str:
    if not events:
        return "<div style='font-size:12px;color:#777'>never labelled</div>"
    cells = "".join(
        f"<tr><td>{dt.datetime.fromtimestamp(e['time']).strftime('%Y-%m-%d %H:%M:%S')}</td>"
        f"<td>{html.escape(str(e['action']))}</td><td>{html.escape(str(e['label']))}</td>"
        f"<td>{html.escape(str(e['author']))}</td><td>{html.escape(str(e.get('op_kind', '')))}</td></tr>"
        for e in events[-10:]
    )
    return (
        "<table style='font-size:12px'><tr><th>time</th><th>action</th><th>label</th>"
        f"<th>author</th><th>op</th></tr>{cells}</table>"
    )
