"""The model job of one session: a few-shot classifier trained on the labelled embeddings in a
background thread, its progress and predictions pushed back onto the session's document, and
the active-learning suggestion queue drawn from them."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import param

from insarexplore.app import engine
from insarexplore.app.session import SessionBase

__all__ = ["ModelJob"]


class ModelJob(SessionBase):
    """Training, predictions (``predicted``, ``confidence`` columns) and suggestions.

    Reads the ``label`` column of the table; new predictions recolour the scatter by
    ``predicted`` and a new queue focuses its first sample (``color_by`` and ``focused`` of
    the composed :class:`~insarexplore.app.state.ExplorerState`).
    """

    suggestions = param.List(default=[], doc="Active-learning queue (sample ids).")
    reasons = param.Dict(default={}, doc="Sample id -> one-line reason for its suggestion.")
    gallery_mode = param.Selector(default="selection", objects=["selection", "suggestions"])
    busy = param.Boolean(default=False, doc="A background job (training) is running.")
    progress = param.Integer(default=0, bounds=(0, 100))

    _thread: threading.Thread | None = None
    #: class probabilities of the last predictions and their classes (suggestions need them)
    _proba: np.ndarray | None = None
    _proba_classes: list[str] | None = None

    def train(self, method: str = "linear", *, background: bool = True) -> None:
        """Fit a few-shot classifier on the labelled embeddings and predict every sample."""
        if self.busy:
            raise RuntimeError("a training job is already running")
        labels = self.table["label"]
        labels = labels[labels != ""]
        engine.check_trainable(labels, self.data)
        self.busy, self.progress, self.message = (
            True,
            0,
            f"training {method} on {len(labels)} labels",
        )

        def report(fraction: float, text: str) -> None:
            self._push(lambda: self.param.update(progress=int(100 * fraction), message=text))

        def job() -> None:
            try:
                result = engine.train_predict(
                    self.data, labels, method=method, store=self.store, progress=report
                )
            except Exception as exc:  # shown to the user; the UI stays usable
                msg = f"training failed: {exc}"
                self._push(lambda: self.param.update(busy=False, progress=0, message=msg))
                return
            self._push(lambda: self._set_predictions(result))

        if background:
            self._thread = threading.Thread(target=job, name="insarexplore-train", daemon=True)
            self._thread.start()
        else:
            job()

    def wait(self, timeout: float | None = None) -> None:
        """Block until a background training job ends (tests, notebooks)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _set_predictions(self, result: dict[str, Any], *, recolor: bool = True) -> None:
        index = self.table.index
        self.table["predicted"] = pd.Series(
            np.asarray(result["predicted"], dtype=object), index=index
        )
        self.table["confidence"] = pd.Series(
            np.asarray(result["confidence"], np.float64), index=index
        )
        self._proba, self._proba_classes = result["proba"], list(result["classes"])
        self.version += 1
        changes: dict[str, Any] = {"busy": False, "progress": 100 if recolor else 0}
        if recolor:
            changes.update(color_by="predicted", message=f"predictions for {self.n:,} samples")
        self.param.update(**changes)

    @property
    def has_predictions(self) -> bool:
        return bool((self.table["predicted"] != "").any())

    def suggest_next(self, n: int = 12, strategy: str = "margin_balanced") -> list[str]:
        """Load the active-learning queue into the gallery and focus its first sample."""
        ids, reasons = engine.suggest(
            self.data,
            self.table,
            n=n,
            strategy=strategy,
            proba=self._proba,
            classes=self._proba_classes,
        )
        self.reasons = reasons
        self.suggestions = ids
        self.gallery_mode = "suggestions"
        self.focused = ids[0] if ids else None
        self.message = f"{len(ids)} suggestions ({strategy})"
        return ids
