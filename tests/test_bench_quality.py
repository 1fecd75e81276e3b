"""The quality and label-efficiency benchmarks follow the evaluation protocol: nothing they
choose depends on test labels (or on labels of samples not yet chosen), the test set is scored
once per configuration, and validation never shares a frame with the pool."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bq(tmp_path_factory):
    sys.path.insert(0, str(BENCH))
    import bench_quality

    old = bench_quality.OUT
    bench_quality.OUT = tmp_path_factory.mktemp("quality")
    yield bench_quality
    bench_quality.OUT = old
    sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def data(bq):
    return bq.protocol_data(240, 90)


def test_validation_shares_no_frame_with_the_pool_and_test_is_another_seed(bq, data):
    pool, val, test = data
    frames = [set(np.asarray(d["frame"].values).astype(str)) for d in (pool, val)]
    assert frames[0] and frames[1] and not frames[0] & frames[1]
    ids = [set(np.asarray(d["sample"].values).astype(str)) for d in data]
    assert not ids[2] & (ids[0] | ids[1])
    assert {str(s) for s in np.unique(test["source"].values)} == {f"synthetic:seed={bq.TEST_SEED}"}


def test_choices_do_not_depend_on_test_labels_and_test_is_scored_once(bq, data):
    pool, val, test = data
    run = bq.ssl_run(pool, "phase", steps=4, options={"image_size": 24, "batch_size": 32},
                     log=lambda *a: None)  # fmt: skip
    kw = dict(seeds=3, per_class=3, sup_presets=("resnet-micro", "resnet-tiny"), sup_steps=3,
              log=lambda *a: None)  # fmt: skip
    honest = bq.evaluate_kind(pool, val, test, "phase", run, score_test=True, **kw)
    assert honest["ledger"] == [f"phase/{m}" for m in (*bq.PROBED, "supervised")]
    assert set(honest["test"]) == {*bq.PROBED, "supervised"}

    shutil.rmtree(bq.OUT / "supervised")  # the baseline is trained again, not read back
    scrambled = test.copy()
    labels = np.asarray(test["label"].values)
    scrambled["label"] = ("sample", np.random.default_rng(0).permutation(labels))
    again = bq.evaluate_kind(pool, val, scrambled, "phase", run, score_test=True, **kw)
    # validation scores and the supervised preset chosen on them are the same whatever the
    # test labels say; only the test scores move
    assert again["val"] == honest["val"] and again["chosen"] == honest["chosen"]
    assert again["draws_hash"] == honest["draws_hash"]
    assert again["test"] != honest["test"]


def test_active_selection_reads_only_the_labels_it_chose(bq):
    import bench_efficiency as be

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 4
    y = np.repeat(np.array(list("abcd")), 30)
    X = (centres[np.searchsorted(list("abcd"), y)] + rng.normal(size=(120, 8))).astype(np.float32)
    pool_rows = np.arange(100)  # rows 100-119 stand for validation and test
    first = be.selections(X, y, pool_rows, seed=0, totals=[6, 12, 30])
    chosen = np.unique(np.concatenate([v for sel in first.values() for v in sel.values()]))
    other = y.copy()
    unseen = np.setdiff1d(np.arange(120), chosen)
    other[unseen] = rng.permutation(other[unseen])
    second = be.selections(X, other, pool_rows, seed=0, totals=[6, 12, 30])
    for name, sets in first.items():
        for budget, rows in sets.items():
            assert np.array_equal(rows, second[name][budget]), (name, budget)
            assert np.isin(rows, pool_rows).all()


def test_options_map_to_pretrain_config_and_unknown_fields_fail(bq):
    cfg = bq.pretrain_config({"method": "vicreg", "image_size": 32}, steps=5)
    assert (cfg.method, cfg.image_size, cfg.steps, cfg.physics) == ("vicreg", 32, 5, 0.0)
    with pytest.raises(ValueError, match="unknown PretrainConfig fields"):
        bq.pretrain_config({"nope": 1}, steps=5)
    assert bq.config_name({"method": "moco"}, 600, None) == "default+method=moco@600steps"
