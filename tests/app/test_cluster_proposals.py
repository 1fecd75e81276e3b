"""Cluster proposals are always there: settings scaled to the sample count, a labelled fallback,
and a legend that names each cluster with its size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insarexplore.app.colors import coloring
from insarexplore.explore.clusters import MAX_NOISE, find_clusters, hdbscan_ladder


def _blobs(n_per: int, centres, std: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, std, size=(n_per, 2)) for c in centres])


def test_ladder_scales_with_the_sample_count():
    assert hdbscan_ladder(3000)[:3] == [(30, 7, "eom"), (60, 15, "eom"), (120, 3, "leaf")]
    assert hdbscan_ladder(20_000)[0] == (200, 50, "eom")
    for n in (10, 90, 3000, 20_000, 1_000_000):
        ladder = hdbscan_ladder(n)
        assert len(set(ladder)) == len(ladder) and {m for _, _, m in ladder} == {"eom", "leaf"}
        assert all(2 <= s <= 500 and 1 <= ms <= s for s, ms, _ in ladder)


def test_map_clusters_found_with_little_noise_and_numbered_by_size():
    centres = [(0, 0), (4, 0), (0, 4), (4, 4), (8, 0), (8, 8)]
    X = np.concatenate([_blobs(200 + 50 * i, [c], 0.4, seed=i) for i, c in enumerate(centres)])
    res = find_clusters(X)
    assert res.method == "hdbscan" and res.n_clusters == 6
    assert res.noise_fraction <= MAX_NOISE
    sizes = [res.sizes[c] for c in range(res.n_clusters)]
    assert sizes == sorted(sizes, reverse=True)  # cluster 0 is the largest
    assert "6 HDBSCAN clusters" in res.describe()


def test_two_islands_are_split_into_their_groups():
    # a map of two islands of four groups each (UMAP maps often look like this): excess of mass
    # at 1 % stops at the two islands; the ladder goes on to the leaf selection
    centres = [(0, 0), (1.2, 0), (0, 1.2), (1.2, 1.2), (10, 0), (11.2, 0), (10, 1.2), (11.2, 1.2)]
    X = _blobs(375, centres, 0.35)
    first = find_clusters(X, min_cluster_size=30, min_samples=7)
    assert first.n_clusters == 2
    res = find_clusters(X)
    assert res.method == "hdbscan" and res.n_clusters == 8 and res.noise_fraction <= MAX_NOISE
    assert res.params["selection"] == "leaf" and "(leaf)" in res.describe()


def test_no_density_structure_falls_back_to_labelled_regions():
    X = np.random.default_rng(0).normal(size=(12, 2))  # a dozen samples: no dense groups
    res = find_clusters(X)
    assert res.method == "kmeans" and res.n_clusters >= 2 and res.noise_fraction == 0
    assert "k-means regions" in res.describe()
    # explicit settings are used as given: no ladder, no fallback
    fixed = find_clusters(X, min_cluster_size=5, min_samples=5)
    assert fixed.method == "hdbscan" and fixed.params["min_cluster_size"] == 5


def test_cluster_legend_lists_sizes_in_numeric_order():
    labels = np.array([0] * 50 + [1] * 30 + [10] * 5 + [2] * 12 + [-1] * 7)
    table = pd.DataFrame({"cluster": labels})
    c = coloring(table, "cluster", "categorical")
    assert c.categories == ["0", "1", "2", "10"]
    items = c.legend_items(counts=True)
    assert [t for _, t in items] == [
        "cluster 0 (50)",
        "cluster 1 (30)",
        "cluster 2 (12)",
        "cluster 10 (5)",
        "noise (7)",
    ]
    assert len({col for col, _ in items[:-1]}) == 4  # every cluster has its own colour


def test_scatter_legend_says_what_made_the_clusters(state):
    from insarexplore.app.scatter import ScatterView

    view = ScatterView(state)
    state.color_by = "cluster"
    html = view._legend.object
    n = int((state.table["cluster"].to_numpy() >= 0).any()) and len(
        set(state.table["cluster"][state.table["cluster"] >= 0])
    )
    assert n >= 2, "the tiny workspace has cluster proposals on its map"
    assert f"{n} HDBSCAN cluster proposals on the PCA map" in html or "k-means regions" in html
    assert "cluster 0 (" in html
    info = state.data.cluster_info
    assert info["space"] == "pca" and info["n_clusters"] == n


@pytest.mark.parametrize("method", ["kmeans"])
def test_scatter_legend_names_the_fallback(state, method):
    from insarexplore.app.scatter import _cluster_note

    c = coloring(pd.DataFrame({"cluster": [0, 0, 1, 1]}), "cluster", "categorical")
    assert "k-means regions" in _cluster_note({"method": method}, c)
    empty = coloring(pd.DataFrame({"cluster": [-1, -1]}), "cluster", "categorical")
    assert "No cluster proposals" in _cluster_note({}, empty)
