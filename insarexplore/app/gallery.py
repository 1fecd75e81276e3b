"""The gallery of the current selection (or suggestion queue) and the detail view of one sample.

Thumbnails are rendered on the server from the data model (cyclic palette) and cached by
:class:`ExplorerData`; clicking a card focuses the sample, which the detail view shows with its
phase, coherence, displacement, place and label history.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from insarexplore.app.cards import CardGrid
from insarexplore.app.livetext import LiveText
from insarexplore.app.render import png_data_url
from insarexplore.app.state import ExplorerState

__all__ = ["GalleryView", "DetailView"]


def _short(sample: str, n: int = 16) -> str:
    return sample if len(sample) <= n else sample[: n - 6] + "..." + sample[-5:]


class GalleryView(pn.viewable.Viewer):
    """Paged thumbnails of ``state.selection`` (or ``state.suggestions``), click to focus.

    Only the current page is rendered: its thumbnails are read in one batch and cached by
    :class:`ExplorerData`, and the page goes to the browser as one :class:`CardGrid` update.
    """

    state = param.ClassSelector(class_=ExplorerState)
    page = param.Integer(default=0, bounds=(0, None))
    page_size = param.Integer(default=12, bounds=(1, 200))
    thumb = param.Integer(default=96, doc="Thumbnail display size (px).")

    def __init__(self, state: ExplorerState, **params: Any) -> None:
        super().__init__(state=state, **params)
        # two rows of cards tall from the start: a first selection then changes no sizes, so
        # the browser does not lay the whole page out again
        self.grid = CardGrid(
            thumb=self.thumb, focused=state.focused or "", min_height=2 * (self.thumb + 86)
        )
        self._prev = pn.widgets.Button(label="< Prev", width=70, margin=(5, 4))
        self._next = pn.widgets.Button(label="Next >", width=70, margin=(5, 4))
        self._pageinfo = LiveText("", margin=(12, 8, 5, 8))
        self._mode = pn.widgets.RadioButtonGroup.from_param(
            state.param.gallery_mode,
            options={"Selection": "selection", "Suggestions": "suggestions"},
            margin=(5, 8),
            color="light",
        )
        self._prev.on_click(lambda e: self._turn(-1))
        self._next.on_click(lambda e: self._turn(+1))
        self.grid.param.watch(self._on_click, ["clicks"])
        #: sample id -> the card dict shown for it (``src`` PNG data URL, ``meta`` HTML)
        self.cards: dict[str, dict[str, str]] = {}
        state.param.watch(self._reset, ["selection", "suggestions", "gallery_mode"])
        state.param.watch(self._refresh_meta, ["version"])
        state.param.watch(self._highlight, ["focused"])
        self.param.watch(self._render, ["page", "page_size"])
        self._render()

    @property
    def items(self) -> Sequence[str]:
        s = self.state
        return s.suggestions if s.gallery_mode == "suggestions" else s.selection

    @property
    def n_pages(self) -> int:
        return max(1, -(-len(self.items) // self.page_size))

    def visible(self) -> list[str]:
        start = self.page * self.page_size
        return list(self.items[start : start + self.page_size])

    def _reset(self, *_: Any) -> None:
        if self.page:
            self.page = 0  # triggers _render
        else:
            self._render()

    def _turn(self, step: int) -> None:
        with self.state.batch():
            self.page = int(np.clip(self.page + step, 0, self.n_pages - 1))

    def _on_click(self, *_: Any) -> None:
        sid = self.grid.clicked
        if sid in self.cards:
            with self.state.batch():
                self.state.focus(sid)

    def _render(self, *_: Any) -> None:
        s = self.state
        items = self.visible()
        if items and s.data.layers:
            s.data.prefetch(items, "phase", size=s.data.thumb_size)
        pos = s.data.index_of(items) if items else []
        rows = s.table.iloc[np.asarray(pos, dtype=int)] if items else s.table.iloc[:0]
        self.cards = {}
        for sid, (_, row) in zip(items, rows.iterrows()):
            src = png_data_url(s.data.thumbnail(sid)) if s.data.layers else ""
            self.cards[sid] = {
                "id": sid,
                "label": _short(sid, 14),
                "src": src,
                "meta": self._meta_html(sid, row),
            }
        hint = (
            "Select points in the scatter (box or lasso) or draw on the map."
            if s.gallery_mode == "selection"
            else "Press Suggest next in the model panel."
        )
        self.grid.param.update(
            page={"cards": list(self.cards.values())}, focused=s.focused or "", empty=hint
        )
        total = len(self.items)
        self._pageinfo.object = (
            f"{total:,} samples · page {self.page + 1}/{self.n_pages}" if total else ""
        )
        self._prev.disabled = self.page == 0
        self._next.disabled = self.page >= self.n_pages - 1

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
        return "<br>".join(bits)

    def _refresh_meta(self, *_: Any) -> None:
        """Labels or predictions changed: update the cards' text, keep their images."""
        if not self.cards:
            return
        rows = self.state.table.loc[list(self.cards)]
        for sid, row in rows.iterrows():
            self.cards[sid] = {**self.cards[sid], "meta": self._meta_html(sid, row)}
        self.grid.cards = list(self.cards.values())

    def _highlight(self, event: Any) -> None:
        """Move the focus frame between cards without rebuilding them."""
        self.grid.focused = event.new or ""

    def __panel__(self) -> pn.viewable.Viewable:
        header = pn.Row(
            self._mode, self._prev, self._next, self._pageinfo, sizing_mode="stretch_width"
        )
        return pn.Column(header, self.grid, sizing_mode="stretch_width")


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
        events = s.store.history(sid) if s.store is not None else []
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
