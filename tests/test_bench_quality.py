"""The quality benchmark follows the evaluation protocol: nothing it chooses depends on the test
labels, and the test set is scored once per representation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bq(tmp_path_factory):
    sys.path.insert(0, str(BENCH))
    import bench_quality

    bench_quality.OUT = tmp_path_factory.mktemp("quality")
    yield bench_quality
    sys.path.remove(str(BENCH))


def _split(bq):
    from insarexplore.data.synthetic import generate

    full = generate(240, size=32, seed=1)
    test = generate(90, size=32, seed=2)
    return full.isel(sample=slice(0, 180)), full.isel(sample=slice(180, None)), test


def test_choices_do_not_depend_on_test_labels_and_test_is_scored_once(bq):
    pool, val, test = _split(bq)
    run = bq.ssl_run(pool, "phase", steps=4, options={"image_size": 24, "batch_size": 32},
                     log=lambda *a: None)  # fmt: skip
    kw = dict(seeds=3, per_class=3, sup_presets=("resnet-micro", "resnet-tiny"), sup_steps=3,
              log=lambda *a: None)  # fmt: skip
    honest = bq.evaluate_kind(pool, val, test, "phase", run, score_test=True, **kw)
    assert honest["ledger"] == [f"phase/{m}" for m in (*bq.PROBED, "supervised")]
    assert set(honest["test"]) == {*bq.PROBED, "supervised"}

    scrambled = test.copy()
    labels = np.asarray(test["label"].values)
    scrambled["label"] = ("sample", np.random.default_rng(0).permutation(labels))
    again = bq.evaluate_kind(pool, val, scrambled, "phase", run, score_test=True, **kw)
    # validation scores and the supervised preset chosen on them are the same whatever the
    # test labels say; only the test scores move
    assert again["val"] == honest["val"] and again["chosen"] == honest["chosen"]
    assert again["test"] != honest["test"]


def test_options_map_to_pretrain_config_and_unknown_fields_fail(bq):
    cfg = bq.pretrain_config({"method": "vicreg", "image_size": 32}, steps=5)
    assert (cfg.method, cfg.image_size, cfg.steps, cfg.physics) == ("vicreg", 32, 5, 0.0)
    with pytest.raises(ValueError, match="unknown PretrainConfig fields"):
        bq.pretrain_config({"nope": 1}, steps=5)
    assert bq.config_name({"method": "moco"}, 600, None) == "default+method=moco@600steps"
