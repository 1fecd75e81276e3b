"""The evaluation protocol: group splits, sealed test labels, fixed seeds, paired tests."""

from __future__ import annotations

import numpy as np
import pytest

from insarexplore.explore.protocol import (
    SealedLabelsError,
    SealedTest,
    draw_per_class,
    group_split,
    paired,
    summarise,
)


def test_group_split_keeps_groups_whole():
    groups = np.repeat(np.arange(20), 3).astype(str)
    rest, held = group_split(groups, 0.25, seed=1)
    assert len(set(groups[rest]) & set(groups[held])) == 0
    assert len(set(groups[held])) == 5 and len(rest) + len(held) == 60


def test_test_labels_are_sealed_and_scored_once_per_configuration():
    y = np.array(["a", "b", "a", "b"])
    test = SealedTest(np.arange(4), y)
    for peek in (lambda t: t.labels, lambda t: t._labels, lambda t: t.y):
        with pytest.raises(SealedLabelsError):
            peek(test)
    acc = test.score("ssl", lambda idx: y[idx], lambda t, p: float(np.mean(t == p)))
    assert acc == 1.0 and test.ledger == ["ssl"]
    with pytest.raises(SealedLabelsError, match="already scored"):
        test.score("ssl", lambda idx: y[idx], lambda t, p: 0.0)
    assert test.evaluate("hist", lambda labels: list(labels)) == list(y)
    with pytest.raises(SealedLabelsError, match="already scored"):
        test.evaluate("hist", len)


def test_a_selection_step_that_reads_test_labels_fails():
    """A benchmark's selection (choosing C, a schedule, a configuration) gets the sealed test
    set at most; any use of its labels raises instead of silently tuning on the test set."""
    y_val = np.array([0, 1, 0, 1])
    test = SealedTest(np.arange(4), np.array([1, 0, 1, 0]))

    def honest(val_labels, _test):
        return int(np.bincount(val_labels).argmax())

    def peeking(val_labels, t):
        return int(np.bincount(np.asarray(t.labels)).argmax())

    assert honest(y_val, test) == 0
    with pytest.raises(SealedLabelsError):
        peeking(y_val, test)


def test_draws_summaries_and_paired_test():
    labels = np.array(["a"] * 10 + ["b"] * 3)
    idx = draw_per_class(labels, np.arange(13), 5, np.random.default_rng(0))
    assert sorted(labels[idx].tolist()) == ["a"] * 5 + ["b"] * 3
    s = summarise([0.5, 0.7, 0.6])
    assert s.n == 3 and abs(s.mean - 0.6) < 1e-12 and abs(s.se - 0.1 / np.sqrt(3)) < 1e-12
    r = paired([0.6, 0.7, 0.8, 0.75], [0.5, 0.55, 0.7, 0.6])
    assert r["diff"] > 0 and r["p"] < 0.05 and r["n"] == 4
    with pytest.raises(ValueError, match="same draws"):
        paired([1, 2], [1])
