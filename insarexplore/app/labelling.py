"""The labelling panel: pick or create a class, label the selection or a cluster, undo/redo,
counts per class, and CSV/GeoJSON downloads. Every action goes to the label store at once."""

from __future__ import annotations

import html
import io
from typing import Any

import panel as pn
import param

from insarexplore.app.colors import category_color
from insarexplore.app.state import ExplorerState

__all__ = ["LabellingView"]


class LabellingView(pn.viewable.Viewer):
    """Buttons over the state's label actions; errors become the status message."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params: Any) -> None:
        super().__init__(state=state, **params)
        self.class_select = pn.widgets.Select(
            label="Class", options=list(state.classes), value=state.active_class or None, width=150
        )
        self.new_class = pn.widgets.TextInput(
            label="New class", placeholder="e.g. deformation", width=150
        )
        self.create = pn.widgets.Button(label="Add class", width=90, margin=(23, 5, 5, 5))
        self.apply_selection = pn.widgets.Button(
            label="Label selection", color="primary", width=130
        )
        self.apply_cluster = pn.widgets.Button(
            label="Label cluster",
            width=120,
            description="Label every sample in the focused sample's cluster",
        )
        self.remove = pn.widgets.Button(label="Remove label", width=115)
        self.undo = pn.widgets.Button(label="Undo", width=70)
        self.redo = pn.widgets.Button(label="Redo", width=70)
        self.reload = pn.widgets.Button(
            label="Reload", width=75, description="Re-read labels (e.g. made in another tab)"
        )
        self.adopt = pn.widgets.Button(
            label="Use the data's labels",
            width=170,
            description="Record the labels the data came with (class folders, annotations) "
            "as labels; samples you labelled or unlabelled stay as they are",
        )
        self.counts = pn.pane.HTML(sizing_mode="stretch_width")
        self.csv = pn.widgets.FileDownload(
            callback=lambda: self._export("csv"),
            filename="labels.csv",
            label="CSV",
            width=90,
            color="light",
        )
        self.geojson = pn.widgets.FileDownload(
            callback=lambda: self._export("geojson"),
            filename="labels.geojson",
            label="GeoJSON",
            width=100,
            color="light",
        )
        self.create.on_click(self._on_create)
        self.new_class.param.watch(self._on_create, "enter_pressed")
        self.apply_selection.on_click(lambda e: self._act(state.label_selection))
        self.apply_cluster.on_click(lambda e: self._act(state.label_cluster))
        self.remove.on_click(lambda e: self._act(lambda: state.remove(state.selection)))
        self.undo.on_click(lambda e: self._act(state.undo))
        self.redo.on_click(lambda e: self._act(state.redo))
        self.reload.on_click(lambda e: self._act(state.refresh_labels))
        self.adopt.on_click(lambda e: self._act(state.adopt_source_labels))
        self.class_select.param.watch(self._on_pick, "value")
        state.param.watch(self._sync_classes, ["classes", "active_class"])
        state.param.watch(self._render_counts, ["counts", "classes"])
        self._render_counts()

    def _act(self, fn: Any) -> None:
        try:
            with self.state.batch():  # labels, counts, gallery text, map and scatter at once
                fn()
        except (ValueError, KeyError, RuntimeError) as exc:
            self.state.message = f"⚠ {exc}"

    def _on_create(self, *_: Any) -> None:
        name = self.new_class.value_input or self.new_class.value
        self._act(lambda: self.state.create_class(name or ""))
        self.new_class.value = self.new_class.value_input = ""

    def _on_pick(self, event: Any) -> None:
        if event.new:
            self.state.active_class = event.new

    def _sync_classes(self, *_: Any) -> None:
        self.class_select.options = list(self.state.classes)
        if self.state.active_class in self.state.classes:
            self.class_select.value = self.state.active_class

    def _render_counts(self, *_: Any) -> None:
        s = self.state
        waiting = s.waiting_source_labels()
        self.adopt.visible = waiting > 0
        self.adopt.label = f"Use the data's labels ({waiting:,})"
        rows = []
        for i, name in enumerate(s.classes):
            color = category_color(i)
            key = f"{i + 1}" if i < 9 else ""
            rows.append(
                f"<tr><td><span style='display:inline-block;width:10px;height:10px;"
                f"border-radius:50%;background:{color}'></span></td>"
                f"<td style='color:#777;padding:0 6px'>{key}</td>"
                f"<td>{html.escape(name)}</td>"
                f"<td style='text-align:right;padding-left:12px'>{s.counts.get(name, 0):,}</td></tr>"
            )
        total = sum(s.counts.values())
        body = "".join(rows) or "<tr><td colspan=4><i>no classes yet: add one</i></td></tr>"
        self.counts.object = (
            "<table style='font-size:13px'><tr><th></th><th title='keyboard shortcut'>key</th>"
            f"<th style='text-align:left'>class</th><th>labels</th></tr>{body}"
            f"<tr><td></td><td></td><td><b>total</b></td><td style='text-align:right'><b>{total:,}"
            "</b></td></tr></table>"
        )

    def _export(self, fmt: str) -> io.BytesIO:
        return io.BytesIO(self.state.export(fmt))

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self.class_select, self.new_class, self.create),
            pn.Row(self.apply_selection, self.apply_cluster, self.remove),
            pn.Row(self.undo, self.redo, self.reload),
            self.adopt,
            self.counts,
            pn.Row(pn.pane.Markdown("Export:", margin=(12, 5)), self.csv, self.geojson),
            sizing_mode="stretch_width",
        )
