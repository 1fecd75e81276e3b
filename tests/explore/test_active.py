"""Active learning: strategies rank correctly, exclude labelled samples, scale to 1M x 128."""

from __future__ import annotations

import numpy as np
import pytest

from insarexplore.explore.active import REGISTRY, STRATEGIES, suggest
from insarexplore.explore.selection import k_center_greedy, uncertainty


def test_uncertainty_orders():
    p = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0]], dtype=np.float32)
    assert np.argmax(uncertainty(p, "entropy")) == 1
    assert np.argmax(uncertainty(p, "margin")) == 2
    assert np.argmax(uncertainty(p, "least_confidence")) == 1
    with pytest.raises(ValueError, match="strategy"):
        uncertainty(p, "oracle")


@pytest.mark.parametrize("strategy", ["entropy", "margin", "least_confidence"])
def test_uncertainty_suggestions_exclude_labelled(strategy):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=500)
    scores = uncertainty(p, strategy)
    best = np.argsort(-scores)[:5]
    out = suggest(
        5,
        strategy,
        proba=p,
        labelled=best[:2],
        ids=[f"s{i}" for i in range(500)],
        classes=["mogi", "sill", "dyke", "none"],
    )
    assert [s.index for s in out] == list(best[2:]) + list(np.argsort(-scores)[5:7])
    assert all(s.sample == f"s{s.index}" for s in out)
    assert all(np.isfinite(s.score) and s.reason and "\n" not in s.reason for s in out)
    assert any(name in out[0].reason for name in ("mogi", "sill", "dyke", "none"))
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)


def test_k_center_greedy_covers_far_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], np.float32)
    X = np.concatenate([c + rng.normal(size=(200, 2)).astype(np.float32) for c in centres])
    labelled = np.arange(10)  # all in the first cluster
    rows, dist = k_center_greedy(X, 3, labelled=labelled)
    assert sorted(np.round(X[rows] / 100).astype(int).tolist()) == [[0, 1], [1, 0], [1, 1]]
    assert np.all(np.diff(dist) <= 1e-4)  # greedy distances never grow
    assert not set(rows) & set(labelled)
    out = suggest(4, "diversity", embeddings=X, labelled=labelled)
    assert len({s.index for s in out}) == 4 and "farthest" in out[0].reason
    first = suggest(1, "diversity", embeddings=X)[0]  # no labels yet: a typical sample
    assert "no labels" in first.reason


def test_geo_diversity_avoids_overlapping_footprints():
    n = 200
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(3), size=n)
    x = rng.uniform(0, 5, n)
    y = rng.uniform(0, 5, n)
    boxes = np.c_[x, y, x + 1.0, y + 1.0]
    out = suggest(8, "geo_diversity", proba=p, footprints=boxes, labelled=[0, 1])
    chosen = boxes[[s.index for s in out]]
    for i in range(len(chosen)):
        for j in range(i + 1, len(chosen)):
            a, b = chosen[i], chosen[j]
            overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            assert not overlap
    assert out[0].index == int(
        np.argmax(np.where(np.isin(np.arange(n), [0, 1]), -1, uncertainty(p)))
    )
    assert "footprint" in out[0].reason
    # without predictions it falls back to distance from the labelled set
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    assert len(suggest(3, "geo_diversity", embeddings=emb, footprints=boxes, labelled=[0])) == 3
    with pytest.raises(ValueError, match="footprints"):
        suggest(3, "geo_diversity", proba=p)


def test_one_registry_for_every_strategy():
    from insarexplore import names
    from insarexplore.app.model import STRATEGIES as DASHBOARD

    assert STRATEGIES == names.STRATEGIES and set(REGISTRY) == set(STRATEGIES)
    assert list(DASHBOARD.values()) == list(STRATEGIES)
    rng = np.random.default_rng(4)
    n = 60
    x, y = rng.uniform(0, 10, n), rng.uniform(0, 10, n)
    inputs = {
        "proba": rng.dirichlet(np.ones(3), size=n),
        "embeddings": rng.normal(size=(n, 4)).astype(np.float32),
        "footprints": np.c_[x, y, x + 0.1, y + 0.1],
        "anomaly": rng.random(n),
    }
    for name, strategy in REGISTRY.items():  # each runs on the inputs it declares
        out = suggest(5, name, labelled=[0, 1], **{k: inputs[k] for k in strategy.uses})
        assert len(out) == 5 and not {0, 1} & {s.index for s in out}, name
        assert all(s.reason for s in out), name


def test_anomaly_takes_the_highest_scores_of_unlabelled():
    scores = np.array([0.9, np.nan, 0.5, 0.7, 0.1])
    out = suggest(3, "anomaly", anomaly=scores, labelled=[0], ids=list("abcde"))
    assert [s.sample for s in out] == ["d", "c", "e"]
    assert out[0].reason == "anomaly score 0.7 (rank 1 of unlabelled)"
    with pytest.raises(ValueError, match="no anomaly scores"):
        suggest(3, "anomaly", anomaly=np.array([np.nan, 1.0]), labelled=[1])
    with pytest.raises(ValueError, match="needs anomaly"):
        suggest(3, "anomaly", embeddings=np.zeros((4, 2)))


def test_bad_arguments():
    p = np.full((10, 2), 0.5)
    with pytest.raises(ValueError, match="strategy"):
        suggest(3, "oracle", proba=p)
    with pytest.raises(ValueError, match="needs proba"):
        suggest(3, "entropy", embeddings=np.zeros((10, 2)))
    with pytest.raises(ValueError, match="needs embeddings"):
        suggest(3, "diversity", proba=p)
    assert len(suggest(30, "entropy", proba=p, labelled=np.arange(8))) == 2
    assert set(STRATEGIES) >= {
        "entropy",
        "margin",
        "least_confidence",
        "diversity",
        "geo_diversity",
    }


@pytest.mark.slow
def test_diversity_scales_to_a_million():
    """Correct at full scale; its speed (< 2 s) is measured by benchmarks/bench_engine.py."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1_000_000, 128), dtype=np.float32)
    labelled = rng.choice(len(X), 1000, replace=False)
    out = suggest(50, "diversity", embeddings=X, labelled=labelled)
    assert len(out) == 50 and not set(s.index for s in out) & set(labelled)
    assert len({s.index for s in out}) == 50
    dist = [s.score for s in out]
    assert all(a >= b - 1e-4 for a, b in zip(dist, dist[1:]))  # k-center distances never grow


def test_suggest_on_a_workspace(workspace):
    from insarexplore.explore.labels import LabelStore
    from insarexplore.explore.workspace_suggest import suggest_workspace

    ws, X, y = workspace
    ids = ws.load_embeddings()[0].astype(str)
    with LabelStore(ws.labels_path) as store:
        first = suggest_workspace(ws, 5, "diversity", store=store)  # works with no labels
        assert len(first) == 5 and all(s.sample in set(ids) for s in first)
        with pytest.raises(ValueError, match="at least 2 classes"):
            suggest_workspace(ws, 5, "entropy", store=store)
        store.assign(ids[y == 0][:2], "a")
        store.assign(ids[y == 1][:2], "b")
        labelled = set(store.current())
        for strategy in ("entropy", "margin", "least_confidence", "geo_diversity"):
            out = suggest_workspace(ws, 6, strategy, store=store)
            assert len(out) == 6 and not {s.sample for s in out} & labelled
            assert all(np.isfinite(s.score) for s in out)
        # class c was never labelled: the model is unsure there, so suggestions go there
        out = suggest_workspace(ws, 10, "entropy", store=store)
        assert np.mean([y[list(ids).index(s.sample)] == 2 for s in out]) >= 0.5
        # anomaly: the highest cached anomaly scores among the unlabelled samples
        from insarexplore.explore.anomaly import anomaly_scores

        scores = anomaly_scores(ws)["anomaly"]
        out = suggest_workspace(ws, 4, "anomaly", store=store)
        want = scores.drop(list(labelled)).sort_values(ascending=False, kind="stable")
        assert [s.sample for s in out] == list(want.index[:4])
        assert "anomaly score" in out[0].reason
        with pytest.raises(ValueError, match="strategy"):
            suggest_workspace(ws, 4, "oracle", store=store)


def test_typical_picks_centres_of_unlabelled_clusters():
    rng = np.random.default_rng(0)
    # 3 picks with 1 label: max(2 * 3, 3 + 1) = 6 clusters, one per blob
    centres = np.array([[0, 0], [50, 0], [0, 50], [50, 50], [100, 0], [0, 100]], np.float32)
    sizes = [300, 250, 200, 150, 100, 50]
    X = np.concatenate(
        [c + rng.normal(size=(s, 2)).astype(np.float32) for c, s in zip(centres, sizes)]
    )
    out = suggest(3, "typical", embeddings=X, labelled=[0])  # blob 0 already labelled
    got = np.round(X[[s.index for s in out]] / 50).astype(int).tolist()
    assert got == [[1, 0], [0, 1], [1, 1]]  # largest unlabelled clusters first
    assert [s.score for s in out] == sizes[1:4]
    for s in out:  # near the centre of its cluster
        assert (
            np.linalg.norm(X[s.index] - centres[np.argmin(((centres - X[s.index]) ** 2).sum(1))])
            < 1.0
        )
    assert "typical" in out[0].reason
    cold = suggest(3, "typical", embeddings=X)  # no labels: the three largest blobs
    assert np.round(X[[s.index for s in cold]] / 50).astype(int).tolist() == [
        [0, 0],
        [1, 0],
        [0, 1],
    ]
    with_outlier = np.concatenate([X, np.array([[500.0, 500.0]], np.float32)])
    out = suggest(2, "typical", embeddings=with_outlier)
    assert len(X) not in {s.index for s in out}  # an outlier is not typical


def test_typical_chooses_the_number_of_clusters_without_labels(monkeypatch):
    """Cold start: twice as many clusters as picks, so n = number of classes is no oracle."""
    import sklearn.cluster

    from insarexplore.explore.selection import CLUSTERS_PER_PICK

    made = []

    class Spy(sklearn.cluster.MiniBatchKMeans):
        def fit(self, X, *a, **kw):
            made.append(self.n_clusters)
            return super().fit(X, *a, **kw)

    monkeypatch.setattr(sklearn.cluster, "MiniBatchKMeans", Spy)
    X = np.random.default_rng(1).normal(size=(600, 4)).astype(np.float32)
    suggest(6, "typical", embeddings=X)
    suggest(6, "typical", embeddings=X, labelled=np.arange(3))
    suggest(6, "typical", embeddings=X, labelled=np.arange(20))
    assert CLUSTERS_PER_PICK == 2 and made == [12, 12, 26]  # max(2n, n + labelled)


def test_margin_diverse_spreads_a_batch_over_uncertain_groups():
    rng = np.random.default_rng(3)
    # three groups in embedding space; group 0 holds the 12 most uncertain samples (near
    # duplicates), groups 1 and 2 are nearly as uncertain; 300 confident samples elsewhere
    centres = np.array([[0, 0], [20, 0], [0, 20], [50, 50]], np.float32)
    sizes = [12, 30, 30, 300]
    X = np.concatenate([c + rng.normal(0, 0.5, (k, 2)) for c, k in zip(centres, sizes)])
    group = np.repeat(np.arange(4), sizes)
    top = np.select([group == 0, group == 3], [0.50, 0.98], 0.55)  # top-class probability
    proba = np.stack([top, 1 - top], axis=1) + rng.uniform(0, 0.005, (len(X), 1)) * [[-1, 1]]
    plain = suggest(3, "margin", proba=proba)
    assert {group[s.index] for s in plain} == {0}  # pure margin: three near-duplicates
    out = suggest(3, "margin_diverse", proba=proba, embeddings=X, labelled=[0, 1],
                  classes=["dyke", "none"])  # fmt: skip
    assert sorted(group[s.index] for s in out) == [0, 1, 2]
    assert not {0, 1} & {s.index for s in out}
    assert all("margin" in s.reason and "dyke" in s.reason for s in out)
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)
    assert len(suggest(500, "margin_diverse", proba=proba, embeddings=X)) == len(X)
    with pytest.raises(ValueError, match="margin_diverse.*needs proba"):
        suggest(3, "margin_diverse", embeddings=X)


def test_margin_balanced_takes_the_least_sure_of_each_predicted_class():
    rng = np.random.default_rng(5)
    n = 300
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=n)
    proba[:, 2] *= 0.2  # class 2 is predicted for few samples...
    proba /= proba.sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    srt = np.sort(proba, axis=1)
    margin = srt[:, -1] - srt[:, -2]
    labelled = np.flatnonzero(pred == 0)[:5]
    out = suggest(6, "margin_balanced", proba=proba, labelled=labelled, seed=1,
                  classes=["dyke", "mogi", "none"])  # fmt: skip
    rows = [s.index for s in out]
    assert len(set(rows)) == 6 and not set(rows) & set(labelled)
    assert sorted(np.bincount(pred[rows], minlength=3)) == [2, 2, 2]  # two per class
    for c in range(3):  # ... and within a class, the smallest margins among the unlabelled
        free = np.setdiff1d(np.flatnonzero(pred == c), labelled)
        want = free[np.argsort(margin[free])[:2]]
        assert sorted(r for r in rows if pred[r] == c) == sorted(want)
    names = np.array(["dyke", "mogi", "none"])
    assert all(s.reason.endswith(f"least sure among those predicted {names[pred[s.index]]}")
               for s in out)  # fmt: skip
    # a class no sample is predicted as still gets a pick: the sample most likely to be it
    flat = np.tile([[0.6, 0.3, 0.1]], (10, 1)) + rng.uniform(0, 0.01, (10, 3))
    picks = [s.index for s in suggest(3, "margin_balanced", proba=flat)]
    assert int(np.argmax(flat[:, 2])) in picks or int(np.argmax(flat[:, 1])) in picks
    assert len(suggest(50, "margin_balanced", proba=flat)) == 10  # no more than there are
    with pytest.raises(ValueError, match="margin_balanced.*needs proba"):
        suggest(3, "margin_balanced", embeddings=rng.normal(size=(10, 2)))


def test_typical_prefers_the_dense_core_to_the_centroid():
    rng = np.random.default_rng(5)
    dense = rng.normal([1.0, 0.0], 0.05, (40, 2))
    sparse = rng.uniform([-3.0, -1.0], [-1.0, 1.0], (40, 2))
    lone = np.array([[-0.5, 0.0]])  # right at the centroid of the whole set, but alone
    X = np.concatenate([dense, sparse, lone]).astype(np.float32)
    assert np.argmin(((X - X.mean(axis=0)) ** 2).sum(axis=1)) == 80
    (pick,) = suggest(1, "typical", embeddings=X)
    assert pick.index < 40  # a sample of the dense blob


def test_typical_with_many_labels_stays_cheap():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3000, 8)).astype(np.float32)
    labelled = rng.choice(3000, 2500, replace=False)
    out = suggest(5, "typical", embeddings=X, labelled=labelled)
    assert len(out) == 5 and not {s.index for s in out} & set(labelled.tolist())
