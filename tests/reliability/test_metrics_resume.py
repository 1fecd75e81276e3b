"""``metrics.csv`` holds each step once, also after a run resumed from its last checkpoint."""

from __future__ import annotations

import csv

from insarexplore.ssl.metrics import MetricsLog


def _steps(path):
    with path.open(newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def test_resumed_run_does_not_repeat_steps(tmp_path):
    log = MetricsLog(tmp_path, enabled=True, tensorboard=False)
    for step in (10, 20, 30):  # the run logged step 30, then died; its checkpoint was at 20
        log.write({"step": step, "epoch": 0, "loss": 1.0 / step})
    log.close()
    resumed = MetricsLog(tmp_path, enabled=True, tensorboard=False)
    for step in (20, 30, 40):
        resumed.write({"step": step, "epoch": 1, "loss": 2.0 / step})
    resumed.close()
    assert _steps(tmp_path / "metrics.csv") == [10, 20, 30, 40]
    with (tmp_path / "metrics.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[1]["epoch"] == "1"  # the resumed run's rows are the ones kept


def test_a_resume_after_the_last_row_keeps_everything(tmp_path):
    log = MetricsLog(tmp_path, enabled=True, tensorboard=False)
    log.write({"step": 5, "loss": 1.0})
    MetricsLog(tmp_path, enabled=True, tensorboard=False).write({"step": 6, "loss": 0.5})
    assert _steps(tmp_path / "metrics.csv") == [5, 6]
