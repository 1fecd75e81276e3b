"""The model panel: few-shot training in the background, suggestions, keyboard labelling.

"Train few-shot" starts :meth:`ExplorerState.train` in a thread; progress and predictions come
back through the state (pushed onto the session's document), so the page stays responsive.
"Suggest next" fills the gallery with the active-learning queue; then number keys label the
focused suggestion with class 1-9 and move to the next one (``n`` skips, ``u`` undoes).
"""

from __future__ import annotations

import html
from typing import Any

import panel as pn
import param

from insarexplore.app.state import ExplorerState
from insarexplore.names import STRATEGY_LABELS

__all__ = ["ModelView", "KeyListener", "METHODS", "STRATEGIES"]

METHODS = {"Linear probe": "linear", "Prototypes": "prototype", "kNN": "knn"}
STRATEGIES = {label: name for name, label in STRATEGY_LABELS.items()}


class KeyListener(pn.custom.ReactiveHTML):
    """Reports key presses on the page (outside text inputs) in ``log``: ``"COUNT:TAIL"``, the
    presses since the page was drawn and the last of their keys. One value carries both, so
    presses faster than the page syncs (which merges updates of a value) are all counted;
    :meth:`new_keys` says which keys came since the last call."""

    log = param.String(default="0:")
    keys = param.String(default="123456789nu", doc="Keys that are reported.")
    _TAIL = 64  # keys kept: more than can pile up between two syncs

    _template = "<div id='keys' style='width:0;height:0;overflow:hidden'></div>"
    _scripts = {
        "render": """
          if (window.__insarKeys) { document.removeEventListener('keydown', window.__insarKeys); }
          let count = 0, tail = '';
          const handler = (e) => {
            const t = e.composedPath ? e.composedPath()[0] : e.target;
            if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT'
                      || t.isContentEditable)) { return; }
            if (e.ctrlKey || e.metaKey || e.altKey || !data.keys.includes(e.key)) { return; }
            count += 1;
            tail = (tail + e.key).slice(-64);
            data.log = count + ':' + tail;
          };
          window.__insarKeys = handler;
          document.addEventListener('keydown', handler);
        """,
        "remove": "document.removeEventListener('keydown', window.__insarKeys);",
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._handled = 0

    def new_keys(self) -> str:
        """The keys pressed since the last call, oldest first (a count below the handled
        one is a page drawn again: its presses count from zero)."""
        count_text, _, tail = self.log.partition(":")
        try:
            count = int(count_text)
        except ValueError:
            return ""
        if count < self._handled:
            self._handled = 0
        fresh = min(count - self._handled, len(tail))
        self._handled = count
        return "".join(k for k in tail[len(tail) - fresh :] if k in self.keys) if fresh else ""

    def press(self, keys: str) -> None:
        """What the page sends when ``keys`` are pressed (for notebooks and tests)."""
        count_text, _, tail = self.log.partition(":")
        count = int(count_text or 0) + len(keys)
        self.log = f"{count}:{(tail + keys)[-self._TAIL :]}"


class ModelView(pn.viewable.Viewer):
    """Train few-shot, progress, suggestions and the keyboard labelling loop."""

    state = param.ClassSelector(class_=ExplorerState)

    def __init__(self, state: ExplorerState, **params: Any) -> None:
        super().__init__(state=state, **params)
        self.method = pn.widgets.Select(
            label="Classifier", options=METHODS, value="linear", width=150
        )
        self.train = pn.widgets.Button(
            label="Train few-shot", color="primary", width=140, margin=(23, 5, 5, 5)
        )
        self.progress = pn.indicators.Progress(
            value=0,
            max=100,
            sizing_mode="stretch_width",
            bar_color="primary",
            height=14,
            margin=(5, 10),
        )
        self.strategy = pn.widgets.Select(
            label="Strategy", options=STRATEGIES, value="margin_balanced", width=150
        )
        self.n = pn.widgets.IntInput(label="How many", value=12, start=1, end=200, width=80)
        self.suggest = pn.widgets.Button(label="Suggest next", width=120, margin=(23, 5, 5, 5))
        self.keys = KeyListener(width=0, height=0, margin=0)
        # plain text in HTML panes, escaped: messages and class names are user text (a class
        # named like markup must show as its name, never run as the page's own code)
        self.status = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width", margin=(0, 10))
        self.train.on_click(self._on_train)
        self.suggest.on_click(self._on_suggest)
        self.keys.param.watch(self._on_key, "log")
        state.param.watch(self._sync, ["busy", "progress", "message", "version"])
        self._sync()

    def _on_train(self, *_: Any) -> None:
        try:
            self.state.train(self.method.value)
        except (ValueError, RuntimeError) as exc:
            self.state.message = f"⚠ {exc}"

    def _on_suggest(self, *_: Any) -> None:
        try:
            with self.state.batch():
                self.state.suggest_next(int(self.n.value), self.strategy.value)
        except (ValueError, RuntimeError) as exc:
            self.state.message = f"⚠ {_as_shown(str(exc))}"

    def _on_key(self, *_: Any) -> None:
        keys = self.keys.new_keys()
        if not keys:
            return
        try:
            with self.state.batch():  # the keys of one sync, one update of the page
                for key in keys:  # each press labels one sample (or undoes one step)
                    if key == "u":
                        self.state.undo()
                    else:
                        self.state.key_label(key)
        except (ValueError, KeyError) as exc:
            self.state.message = f"⚠ {exc}"

    def _sync(self, *_: Any) -> None:
        s = self.state
        self.progress.value = s.progress if s.busy or s.progress else 0
        self.progress.active = False
        self.train.disabled = s.busy
        self.train.label = "Training..." if s.busy else "Train few-shot"
        self.status.object = _text(s.message)
        if s.has_predictions:
            vc = s.table["predicted"].value_counts()
            parts = ", ".join(f"{k}: {v:,}" for k, v in vc.items() if k != "")
            mean = s.table["confidence"].mean()
            self.summary.object = _text(f"Predicted: {parts} · mean confidence {mean:.2f}")
        else:
            self.summary.object = _text("No predictions yet: label 2+ classes, then train.")

    def __panel__(self) -> pn.viewable.Viewable:
        help_text = pn.pane.Markdown(
            "Keys on suggestions: **1-9** label with class, **n** skip, **u** undo.",
            margin=(0, 10),
            styles={"font-size": "12px", "color": "#555"},
        )
        return pn.Column(
            pn.Row(self.method, self.train),
            self.progress,
            self.summary,
            pn.Row(self.strategy, self.n, self.suggest),
            help_text,
            self.status,
            self.keys,
            sizing_mode="stretch_width",
        )


def _text(text: str) -> str:
    """``text`` as one HTML paragraph, every character shown as itself."""
    return f"<p style='margin:4px 0'>{html.escape(str(text))}</p>" if text else ""


def _as_shown(message: str) -> str:
    """``message`` with strategy names as the dropdown shows them ('typical' -> 'Typical
    (first labels)'), so the advice names what the user can pick."""
    for name, label in STRATEGY_LABELS.items():
        message = message.replace(f"'{name}'", f"'{label}'")
    return message
