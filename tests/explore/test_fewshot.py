"""Few-shot classifiers: scikit-learn contract, calibration, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.utils.estimator_checks import parametrize_with_checks

from insarexplore.explore.fewshot import (
    C_FALLBACK,
    C_GRID,
    FewShotClassifier,
    fit_temperature,
    softmax,
)

METHODS = ("linear", "prototype", "knn")


@parametrize_with_checks([FewShotClassifier(method=m, random_state=0) for m in METHODS])
def test_sklearn_contract(estimator, check):
    check(estimator)


def _blobs(n=300, d=16, k=3, std=3.0, seed=0):
    return make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=std, random_state=seed)


@pytest.mark.parametrize("method", METHODS)
def test_learns_from_few_labels(method):
    X, y = _blobs(std=2.0)
    rng = np.random.default_rng(0)
    seed = np.concatenate([rng.choice(np.flatnonzero(y == c), 5, replace=False) for c in range(3)])
    clf = FewShotClassifier(method).fit(X[seed], y[seed])
    assert (clf.predict(X) == y).mean() > 0.9
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert clf.calibrated_


@pytest.mark.parametrize("method", METHODS)
def test_one_label_per_class_works_uncalibrated(method):
    X, y = _blobs(std=1.0)
    seed = np.array([np.flatnonzero(y == c)[0] for c in range(3)])
    clf = FewShotClassifier(method).fit(X[seed], y[seed])
    assert not clf.calibrated_ and clf.temperature_ == 1.0
    assert (clf.predict(X) == y).mean() > 0.8


@pytest.mark.parametrize("method", METHODS)
def test_errors_say_how_many_labels(method):
    X, y = _blobs()
    with pytest.raises(ValueError, match="at least 2 classes"):
        FewShotClassifier(method).fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="1 class.*at least 2 classes"):
        FewShotClassifier(method).fit(X[y == 0][:4], y[y == 0][:4])
    with pytest.raises(ValueError, match="method"):
        FewShotClassifier("svm").fit(X, y)


def _reference_auto_C(X, y, folds=5):
    """C of C_GRID with the lowest 5-fold held-out log-loss after the best temperature (found
    here by a fine grid search), written out directly."""
    from scipy.special import softmax as sp_softmax
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold

    Z = (X - X.mean(0)) / X.std(0)
    losses = []
    for C in C_GRID:
        D = np.zeros((len(y), len(np.unique(y))))
        for tr, te in StratifiedKFold(folds).split(Z, y):
            D[te] = (
                LogisticRegression(C=C, max_iter=2000).fit(Z[tr], y[tr]).decision_function(Z[te])
            )
        losses.append(
            min(log_loss(y, sp_softmax(D / t, axis=1)) for t in np.exp(np.linspace(-4, 4, 801)))
        )
    return C_GRID[int(np.argmin(losses))]


def test_auto_C_is_chosen_by_held_out_log_loss_on_the_labels():
    # few labels, many uninformative dimensions: the choice is the documented criterion's
    for seed in range(4):
        rng = np.random.default_rng(seed)
        Xb, yb = _blobs(n=60, d=4, k=3, std=8.0, seed=seed)
        X = np.hstack([Xb, rng.normal(0, 3, (60, 200))])
        clf = FewShotClassifier("linear").fit(X, yb)
        assert clf.C_ == _reference_auto_C(X, yb)
    # and with plenty of labels (where the choice moves with the data)
    chosen = set()
    for seed in range(3):
        X2, y2 = _blobs(n=600, d=8, k=3, std=5.0, seed=seed)
        chosen.add(FewShotClassifier("linear").fit(X2, y2).C_)
        assert FewShotClassifier("linear").fit(X2, y2).C_ == _reference_auto_C(X2, y2)
    assert len(chosen) > 1  # a choice, not a constant


def test_fixed_C_is_kept_and_bad_C_is_refused():
    X, y = _blobs()
    assert FewShotClassifier("linear", C=0.5).fit(X, y).C_ == 0.5
    one_each = np.array([np.flatnonzero(y == c)[0] for c in range(3)])
    assert FewShotClassifier("linear").fit(X[one_each], y[one_each]).C_ == C_FALLBACK
    for bad in (0, -1.0, "best"):
        with pytest.raises(ValueError, match="C: must be a positive number or 'auto'"):
            FewShotClassifier("linear", C=bad).fit(X, y)


def test_temperature_recovers_a_known_scale():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(size=(4000, 4)) * 2.0
    y = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    assert fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.15)


@pytest.mark.parametrize("method", METHODS)
def test_calibration_lowers_held_out_nll(method):
    # overlapping classes: raw scores are over- or under-confident, temperature fixes it
    X, y = _blobs(n=2000, d=8, k=4, std=6.0, seed=1)
    tr, te = np.arange(0, 200), np.arange(200, 2000)

    def nll(clf):
        p = clf.predict_proba(X[te])
        return -np.mean(np.log(p[np.arange(len(te)), np.searchsorted(clf.classes_, y[te])] + 1e-12))

    cal = FewShotClassifier(method).fit(X[tr], y[tr])
    raw = FewShotClassifier(method, calibrate=False).fit(X[tr], y[tr])
    assert nll(cal) <= nll(raw) + 1e-3


def test_train_fewshot_on_a_workspace(workspace):
    from insarexplore.explore.fewshot import load_predictions, train_fewshot
    from insarexplore.explore.labels import LabelStore

    ws, X, y = workspace
    ids = ws.load_embeddings()[0].astype(str)
    with LabelStore(ws.labels_path) as store:
        with pytest.raises(ValueError, match="no labelled samples"):
            train_fewshot(ws, store=store, progress=False)
        store.assign(ids[y == 0][:3], "a")
        with pytest.raises(ValueError, match="at least 2 classes"):
            train_fewshot(ws, store=store, progress=False)
        store.assign(ids[y == 1][:3], "b")
        store.assign(ids[y == 2][:3], "c")
        clf, preds = train_fewshot(ws, "prototype", store=store, progress=False)
        revision = store.revision()
    assert list(clf.classes_) == ["a", "b", "c"]
    assert preds.proba.shape == (len(ids), 3) and np.array_equal(preds.ids, ids)
    assert (preds.predicted == np.array(["a", "b", "c"])[y]).mean() > 0.95
    np.testing.assert_allclose(preds.confidence, preds.proba.max(axis=1), rtol=1e-6)
    stored = load_predictions(ws, "prototype")
    assert np.array_equal(stored.predicted, preds.predicted)
    assert stored.meta["labels_revision"] == revision and stored.meta["n_labels"] == 9
    assert "C" not in stored.meta
    with LabelStore(ws.labels_path) as store:
        train_fewshot(ws, "linear", store=store, progress=False)
    assert load_predictions(ws, "linear").meta["C"] in C_GRID  # the probe records its choice
    assert stored.meta["model_version"] == ws.current_model and not ws.is_stale(stored.meta)
    assert list(stored.frame().columns) == ["predicted", "confidence"]
