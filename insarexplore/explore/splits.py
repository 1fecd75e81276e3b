"""Evaluation splits without leakage: related samples always land on the same side.

Crops of one interferogram share its ``group``; interferograms of one frame share its
atmosphere, topography and processing; interferograms of one period share its weather and
season (a date-range split keeps periods apart). Any of these on both sides of a split inflates test scores. Rows are joined into
connected components over the chosen keys (a union-find over a sparse bipartite graph), and whole
components are assigned to train or test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["leakage_components", "group_train_test_split", "group_kfold"]

KEYS = ("group", "frame", "date")


def _table(data: Any):  # -> pandas.DataFrame
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    if hasattr(data, "coords") and "sample" in getattr(data, "dims", {}):
        cols = {}
        for name in list(data.coords) + list(data.data_vars):
            var = data[name]
            if var.dims == ("sample",):
                cols[name] = np.asarray(var.values)
        return pd.DataFrame(cols)
    raise TypeError(f"data: expected a pandas DataFrame or an xarray Dataset, got {type(data)}")


def _keys(table: Any, key: str, date_freq: str) -> list[np.ndarray]:
    import pandas as pd

    if key == "date":
        if "primary_date" not in table:
            raise ValueError("by: 'date' needs a 'primary_date' column")
        dates = pd.to_datetime(pd.Series(table["primary_date"]).reset_index(drop=True))
        bins = dates.dt.to_period(date_freq).astype(str).to_numpy(object)
        bins[dates.isna().to_numpy()] = None
        return [bins]
    if key not in table:
        if key == "group":  # the data model's default: each sample is its own group
            return []
        raise ValueError(f"by: no column {key!r} (columns: {sorted(map(str, table.columns))})")
    values = pd.Series(table[key]).reset_index(drop=True).to_numpy(object)
    values[pd.isna(values) | (values == "")] = None
    return [values]


def leakage_components(
    data: Any, by: tuple[str, ...] | str = ("group",), *, date_freq: str = "M"
) -> np.ndarray:
    """Component id per row: rows sharing any value of any key in ``by`` are connected.

    ``by`` holds column names; ``"date"`` connects rows whose primary dates fall in the same
    period of ``date_freq`` (a pandas period alias: "M", "Q", "Y", "W", ...), i.e. a date-range
    split. (Joining on both dates would chain every consecutive pair into one component.)
    Missing values connect nothing.
    """
    import pandas as pd
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    table = _table(data)
    by = (by,) if isinstance(by, str) else tuple(by)
    n = len(table)
    rows, cols, offset = [], [], n
    for key in by:
        shared: list[np.ndarray] = _keys(table, key, date_freq)
        if not shared:
            continue
        codes, uniques = pd.factorize(np.concatenate(shared), use_na_sentinel=True)
        codes = codes.reshape(len(shared), n)
        for c in codes:
            ok = c >= 0
            rows.append(np.flatnonzero(ok))
            cols.append(offset + c[ok])
        offset += len(uniques)
    if not rows:
        return np.arange(n)
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(r), dtype=np.int8), (r, c)), shape=(offset, offset))
    _, labels = connected_components(graph, directed=False)
    return pd.factorize(labels[:n])[0]


def group_train_test_split(
    data: Any,
    *,
    test_size: float = 0.25,
    by: tuple[str, ...] | str = ("group",),
    date_freq: str = "M",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)``; no component of :func:`leakage_components` is split.

    Components are shuffled (seeded) and taken into the test set until it holds about
    ``test_size`` of the rows; one giant component can make that impossible, and then the split
    says so rather than leaking.
    """
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size: must be in (0, 1), got {test_size}")
    comp = leakage_components(data, by, date_freq=date_freq)
    n = len(comp)
    sizes = np.bincount(comp)
    if len(sizes) < 2:
        raise ValueError(
            f"cannot split: all {n} samples are connected through {by} (try fewer keys)"
        )
    order = np.random.default_rng(seed).permutation(len(sizes))
    target = test_size * n
    cum = np.cumsum(sizes[order])
    k = int(np.searchsorted(cum, target))  # smallest prefix reaching the target
    k = min(max(k, 0), len(order) - 2)
    if k > 0 and abs(cum[k - 1] - target) < abs(cum[k] - target):
        k -= 1
    test_comp = np.zeros(len(sizes), dtype=bool)
    test_comp[order[: k + 1]] = True
    test = np.flatnonzero(test_comp[comp])
    train = np.flatnonzero(~test_comp[comp])
    return train, test


def group_kfold(
    data: Any, n_splits: int = 5, *, by: tuple[str, ...] | str = ("group",), date_freq: str = "M"
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` (train, test) folds over whole leakage components (sklearn GroupKFold)."""
    from sklearn.model_selection import GroupKFold

    comp = leakage_components(data, by, date_freq=date_freq)
    if comp.max() + 1 < n_splits:
        raise ValueError(f"n_splits: {n_splits} folds but only {comp.max() + 1} independent groups")
    return list(GroupKFold(n_splits=n_splits).split(np.zeros((len(comp), 1)), groups=comp))
