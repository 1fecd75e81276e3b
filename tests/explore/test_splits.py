"""Group-aware splits: crops of one interferogram (and optionally frames, dates) never leak."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insarexplore.explore.splits import group_kfold, group_train_test_split, leakage_components


def _table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 80, n).astype(str)
    frame = np.array([f"F{int(g) % 7}" for g in group])
    # crops of one interferogram share its dates (as in real data)
    per_group = np.datetime64("2019-01-01") + rng.integers(0, 700, 80).astype("timedelta64[D]")
    start = per_group[group.astype(int)]
    return pd.DataFrame(
        {
            "group": group,
            "frame": frame,
            "primary_date": start,
            "secondary_date": start + np.timedelta64(12, "D"),
        }
    )


@pytest.mark.parametrize("by", [("group",), ("frame",), ("date",), ("group", "date")])
def test_no_leakage(by):
    t = _table()
    train, test = group_train_test_split(t, test_size=0.3, by=by, date_freq="Q", seed=3)
    assert len(train) + len(test) == len(t) and not set(train) & set(test)
    for key in by:
        if key == "date":
            per = pd.to_datetime(t["primary_date"]).dt.to_period("Q").astype(str)
            assert not set(per.iloc[train]) & set(per.iloc[test])
        else:
            assert not set(t[key].iloc[train]) & set(t[key].iloc[test])


def test_size_and_seed():
    t = _table()
    train, test = group_train_test_split(t, test_size=0.25, seed=0)
    assert 0.15 < len(test) / len(t) < 0.35
    again = group_train_test_split(t, test_size=0.25, seed=0)
    assert np.array_equal(test, again[1])
    other = group_train_test_split(t, test_size=0.25, seed=1)
    assert not np.array_equal(test, other[1])


def test_components_and_missing_values():
    t = pd.DataFrame({"group": ["a", "a", "b", "c", ""], "frame": ["F1", "F2", "F2", "F3", None]})
    comp = leakage_components(t, ("group", "frame"))
    assert comp[0] == comp[1] == comp[2] and len(set(comp)) == 3  # empty values join nothing
    assert len(set(leakage_components(t.drop(columns="group")))) == 5  # default: own group
    with pytest.raises(ValueError, match="no column"):
        leakage_components(t, ("orbit",))
    with pytest.raises(ValueError, match="connected"):
        group_train_test_split(pd.DataFrame({"frame": ["F"] * 5}), by="frame")


def test_dataset_input_and_kfold():
    from insarexplore.data.schema import new_dataset

    n = 30
    ds = new_dataset(
        phase=np.zeros((n, 2, 2), np.float32),
        sample=[f"s{i}" for i in range(n)],
        group=[f"g{i // 3}" for i in range(n)],
    )
    train, test = group_train_test_split(ds, test_size=0.3)
    groups = np.asarray(ds["group"].values).astype(str)
    assert not set(groups[train]) & set(groups[test])
    folds = group_kfold(ds, 5)
    assert len(folds) == 5
    assert sorted(np.concatenate([te for _, te in folds]).tolist()) == list(range(n))
    for tr, te in folds:
        assert not set(groups[tr]) & set(groups[te])
