"""Few-shot classification on embeddings, with calibrated probabilities.

Three classic heads over frozen embeddings: a linear probe (logistic regression on standardised
features), prototypes (cosine similarity to class means, after centring and L2-normalising as in
SimpleShot) and a similarity-weighted kNN vote (as in DINO's kNN evaluation). Their raw scores are
turned into probabilities with temperature scaling fitted on held-out logits (cross-validation
for the linear probe, leave-one-out for prototypes and kNN): the confidence the dashboard shows
then means what it says. With a single label in some class there is nothing to hold out, and the
temperature stays 1 (``calibrated_`` is False).

The linear probe's regularisation ``C`` defaults to ``"auto"``: chosen from ``C_GRID`` by the
held-out log-loss of the same cross-validation after temperature scaling (so from the labels
alone, never from the data being predicted). Without the temperature, log-loss on a few held-out
labels favours over-regularised models, whose near-uniform probabilities are never badly wrong,
and picks a C 3-10 times too small at 5 labels per class. Without two labels in every class
there is nothing to hold out and ``C_FALLBACK`` is used (``benchmarks/bench_efficiency.py``
checks it on validation); the temperature then stays 1, so those probabilities are the raw
logistic ones (``calibrated_`` is False).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from insarexplore.names import FEWSHOT_METHODS

__all__ = [
    "FewShotClassifier",
    "fit_temperature",
    "softmax",
    "Predictions",
    "train_fewshot",
    "load_predictions",
]

METHODS = FEWSHOT_METHODS
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
# chosen on bench_efficiency's validation split (the label sets with a one-label class):
# macro-F1 0.228 at 0.1, 0.233 at 0.3, 0.235 at 1, 0.237 at 3 and at 10; the tie goes to the
# stronger regularisation. The rerun with 3 (its label sets drawn with it) is flat from 1 on:
# 0.274 at 1, 0.275 at 3, 0.276 at 10 (benchmarks/RESULTS.md)
C_FALLBACK = 3.0
_C_SELECT_MAX = 3000  # labelled rows used to choose C (a stratified subsample beyond that)
_NEED = "few-shot fitting needs labelled samples of at least 2 classes (at least 2 labels, one per class)"


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the NLL of ``softmax(logits / T)`` (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64)
    res = minimize_scalar(
        lambda t: _nll(logits, y, float(np.exp(t))), bounds=(-4.0, 4.0), method="bounded"
    )
    return float(np.exp(res.x))


class FewShotClassifier(ClassifierMixin, BaseEstimator):
    """Linear probe, prototype or kNN classifier on embeddings (scikit-learn contract).

    ``C``: inverse regularisation of the linear probe, or ``"auto"`` (chosen by cross-validated
    log-loss on the labels, ``C_`` after fitting). ``cv``: folds for that choice and for the
    temperature (at most the size of the smallest class).
    """

    def __init__(
        self,
        method: str = "linear",
        *,
        C: float | str = "auto",
        n_neighbors: int = 10,
        knn_temperature: float = 0.07,
        calibrate: bool = True,
        cv: int = 5,
        random_state: int | None = None,
    ) -> None:
        self.method = method
        self.C = C
        self.n_neighbors = n_neighbors
        self.knn_temperature = knn_temperature
        self.calibrate = calibrate
        self.cv = cv
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> FewShotClassifier:
        if self.method not in METHODS:
            raise ValueError(f"method: must be one of {METHODS}, got {self.method!r}")
        if y is not None and hasattr(y, "__len__") and len(y) == 0:
            raise ValueError(f"no labels: {_NEED}")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        classes, y_idx, counts = np.unique(y, return_inverse=True, return_counts=True)
        if len(classes) < 2:
            raise ValueError(
                f"got 1 class ({classes[0]!r}, {len(y)} label(s)): {_NEED}; "
                "label at least one sample of another class"
            )
        self.classes_ = classes
        self.center_ = X.mean(axis=0)
        std = X.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        Z = self._prep(X)
        self.temperature_ = 1.0
        self.calibrated_ = False
        held = None
        if self.method == "linear":
            self.C_, held = self._choose_C(Z, y_idx, counts)
        if self.calibrate and held is None:
            held = self._heldout_logits(Z, y_idx, counts)
        if self.calibrate and held is not None:
            self.temperature_ = fit_temperature(held, y_idx)
            self.calibrated_ = True
        self._fit_head(Z, y_idx)
        return self

    def _prep(self, X: np.ndarray) -> np.ndarray:
        if self.method == "linear":
            return (X - self.center_) / self.scale_
        Z = X - self.center_
        return Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)

    def _fit_head(self, Z: np.ndarray, y: np.ndarray) -> None:
        if self.method == "linear":
            self.head_ = self._linear(Z, y)
        elif self.method == "prototype":
            self.head_ = self._prototypes(Z, y)
        else:
            self.head_ = (Z.copy(), y.copy())

    def _linear(self, Z: np.ndarray, y: np.ndarray, C: float | None = None) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C_ if C is None else C, max_iter=2000).fit(Z, y)

    def _folds(self, y: np.ndarray, counts: np.ndarray):
        from sklearn.model_selection import StratifiedKFold

        return StratifiedKFold(
            n_splits=int(min(self.cv, counts.min())),
            shuffle=self.random_state is not None,
            random_state=self.random_state,
        ).split(np.zeros(len(y)), y)

    def _choose_C(
        self, Z: np.ndarray, y: np.ndarray, counts: np.ndarray
    ) -> tuple[float, np.ndarray | None]:
        """The probe's C and, when it was chosen by cross-validation on every label, that C's
        held-out logits (reused for the temperature)."""
        if self.C != "auto":
            if isinstance(self.C, str) or not float(self.C) > 0:
                raise ValueError(f"C: must be a positive number or 'auto', got {self.C!r}")
            return float(self.C), None
        if counts.min() < 2 or self.cv < 2:
            return C_FALLBACK, None
        rows = np.arange(len(y))
        if len(y) > _C_SELECT_MAX:  # choose on a stratified subsample: cost stays bounded
            from sklearn.model_selection import train_test_split

            rows, _ = train_test_split(rows, train_size=_C_SELECT_MAX, stratify=y, random_state=0)
            if np.bincount(y[rows], minlength=len(counts)).min() < 2:
                rows = np.arange(len(y))
        Zs, ys = Z[rows], y[rows]
        folds = list(self._folds(ys, np.bincount(ys, minlength=len(counts))))
        best: tuple[float, float, np.ndarray] | None = None
        for C in C_GRID:
            out = np.zeros((len(ys), len(counts)))
            for train, test in folds:
                out[test] = _linear_logits(self._linear(Zs[train], ys[train], C), Zs[test])
            loss = _nll(out, ys, fit_temperature(out, ys))  # after calibration: see above
            if best is None or loss < best[0] - 1e-9:
                best = (loss, C, out)
        assert best is not None
        return best[1], (best[2] if len(rows) == len(y) else None)

    def _prototypes(self, Z: np.ndarray, y: np.ndarray) -> np.ndarray:
        P = np.stack([Z[y == k].mean(axis=0) for k in range(len(self.classes_))])
        return P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)

    def _heldout_logits(
        self, Z: np.ndarray, y: np.ndarray, counts: np.ndarray
    ) -> np.ndarray | None:
        """Logits of each labelled sample from a head that did not see it (None: impossible)."""
        if counts.min() < 2:
            return None
        k = len(self.classes_)
        if self.method == "linear":
            out = np.zeros((len(y), k))
            for train, test in self._folds(y, counts):
                out[test] = _linear_logits(self._linear(Z[train], y[train]), Z[test])
            return out
        if self.method == "prototype":
            # cosine to each class mean (the normalised sum); own class without the sample
            sums = np.stack([Z[y == c].sum(axis=0) for c in range(k)])
            logits = (Z @ sums.T) / np.maximum(np.linalg.norm(sums, axis=1), 1e-12)
            own = sums[y] - Z
            logits[np.arange(len(y)), y] = np.einsum("nd,nd->n", Z, own) / np.maximum(
                np.linalg.norm(own, axis=1), 1e-12
            )
            return logits * 10.0
        return self._knn_logits(Z, Z, y, exclude_self=True)

    # -- predicting -----------------------------------------------------------------------------
    def _knn_logits(
        self, Q: np.ndarray, Z: np.ndarray, y: np.ndarray, *, exclude_self: bool = False
    ) -> np.ndarray:
        k_cls = len(self.classes_)
        k = max(1, min(self.n_neighbors, len(Z) - int(exclude_self)))
        out = np.empty((len(Q), k_cls))
        for start in range(0, len(Q), 4096):
            S = Q[start : start + 4096] @ Z.T
            if exclude_self:
                S[np.arange(len(S)), np.arange(start, start + len(S))] = -np.inf
            nn = np.argpartition(-S, k - 1, axis=1)[:, :k]
            sims = np.take_along_axis(S, nn, axis=1)
            w = np.exp((sims - 1.0) / self.knn_temperature)
            scores = np.zeros((len(S), k_cls))
            np.add.at(scores, (np.repeat(np.arange(len(S)), k), y[nn].ravel()), w.ravel())
            out[start : start + len(S)] = np.log(scores / scores.sum(axis=1, keepdims=True) + 1e-4)
        return out

    def _logits(self, X: np.ndarray) -> np.ndarray:
        Z = self._prep(X)
        if self.method == "linear":
            return _linear_logits(self.head_, Z)
        if self.method == "prototype":
            return (Z @ self.head_.T) * 10.0
        return self._knn_logits(Z, *self.head_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self, "head_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return softmax(self._logits(X) / self.temperature_)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "head_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _linear_logits(model: Any, Z: np.ndarray) -> np.ndarray:
    d = model.decision_function(Z)
    return np.column_stack([np.zeros_like(d), d]) if d.ndim == 1 else d


@dataclass
class Predictions:
    """Predicted class, confidence and probabilities per sample, with provenance."""

    ids: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    proba: np.ndarray
    classes: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def frame(self):  # -> pandas.DataFrame
        import pandas as pd

        return pd.DataFrame(
            {"predicted": self.predicted, "confidence": self.confidence},
            index=pd.Index(self.ids.astype(str), name="sample"),
        )


def train_fewshot(
    ws: Any,
    method: str = "linear",
    model_version: str | None = None,
    *,
    store: Any = None,
    progress: bool | Callable[[float, str], None] = True,
    **params: Any,
) -> tuple[FewShotClassifier, Predictions]:
    """Fit on the workspace's current labels, predict every sample, store the predictions.

    Predictions go to ``artifacts/predictions/<method>-<model version>`` with the label-store
    revision they were trained on, so a dashboard can tell when they are out of date.
    ``progress``: a tqdm bar (True), nothing (False), or ``progress(fraction, text)`` called
    as the stages advance (a dashboard's progress bar).
    """
    from tqdm.auto import tqdm

    report = progress if callable(progress) else (lambda fraction, text: None)
    report(0.02, "loading embeddings and labels")

    from insarexplore.explore.labels import LabelStore

    ids, vectors, emb_meta = ws.load_embeddings(model_version)
    ids = np.asarray(ids).astype(str)
    version = model_version or emb_meta.get("model_version") or ws.current_model
    own_store = store is None
    store = store or LabelStore(ws.labels_path)
    try:
        labels = store.current()
        revision, store_id = store.revision(), store.store_id()
    finally:
        if own_store:
            store.close()
    rows = np.array([i for i, s in enumerate(ids) if s in labels], dtype=np.int64)
    if rows.size == 0:
        raise ValueError(
            f"no labelled samples with embeddings of model {version!r}: {_NEED}"
            + (f" ({len(labels)} label(s) are on samples without embeddings)" if labels else "")
        )
    y = np.array([labels[s] for s in ids[rows]], dtype=object)
    report(0.1, f"fitting {method} on {rows.size:,} labels")
    clf = FewShotClassifier(method, **params).fit(np.asarray(vectors[rows]), y)
    n, k = len(ids), len(clf.classes_)
    proba = np.empty((n, k), dtype=np.float32)
    step = 65_536
    bar = progress is True and n > step
    for start in tqdm(range(0, n, step), desc="predicting", disable=not bar):
        proba[start : start + step] = clf.predict_proba(np.asarray(vectors[start : start + step]))
        done = min(n, start + step)
        report(0.3 + 0.6 * done / n, f"predicting: {done:,} of {n:,}")
    best = proba.argmax(axis=1)
    preds = Predictions(
        ids=ids,
        predicted=clf.classes_[best].astype(str),
        confidence=proba[np.arange(n), best],
        proba=proba,
        classes=clf.classes_.astype(str),
        meta={
            "model_version": version,
            "method": method,
            "params": params,
            "classes": [str(c) for c in clf.classes_],
            "n_labels": int(rows.size),
            "labels_revision": revision,
            "labels_store": store_id,
            "temperature": clf.temperature_,
            "calibrated": clf.calibrated_,
            **({"C": clf.C_} if method == "linear" else {}),
        },
    )
    arrays = {
        "ids": ids.astype(object),
        "predicted": preds.predicted.astype(object),
        "confidence": preds.confidence,
        "proba": proba,
        "classes": preds.classes.astype(object),
    }
    report(0.95, "storing predictions")
    ws.keep_artifact("predictions", f"{method}-{version}", arrays, preds.meta)
    return clf, preds


def load_predictions(
    ws: Any, method: str = "linear", model_version: str | None = None
) -> Predictions:
    """Predictions stored by :func:`train_fewshot` for a method and model version."""
    version = model_version or ws.current_model
    arrays, meta = ws.load_artifact("predictions", f"{method}-{version}")
    return Predictions(
        ids=arrays["ids"].astype(str),
        predicted=arrays["predicted"].astype(str),
        confidence=arrays["confidence"],
        proba=arrays["proba"],
        classes=arrays["classes"].astype(str),
        meta=meta,
    )
