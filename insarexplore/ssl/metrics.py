"""Training logs: ``metrics.csv`` (appended across resumes), TensorBoard when installed, and
the run's ``meta.json`` (written atomically)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "write_meta"]


def write_meta(run: Path, meta: dict[str, Any]) -> None:
    tmp = run / ".meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    tmp.replace(run / "meta.json")


class MetricsLog:
    """metrics.csv (appended across resumes) and TensorBoard scalars when installed.

    ``loss`` is the loss the optimiser sees: the self-supervised loss plus, with the physics
    bank, ``PretrainConfig.physics`` times ``physics_loss`` (the bank's cross-entropy alone);
    ``physics_acc`` is the bank batch's accuracy. ``knn_acc`` / ``probe_acc`` are the monitor's.
    Other values of a row (``physics_supcon_loss``, ``physics_regress_loss``) go to TensorBoard
    only: the csv keeps its columns, so that a run resumed across versions appends to the
    header it has.
    """

    FIELDS = ("step", "epoch", "loss", "lr", "img_per_s", "elapsed_s", "knn_acc", "probe_acc",
              "physics_loss", "physics_acc")  # fmt: skip

    def __init__(self, run: Path, *, enabled: bool, tensorboard: bool) -> None:
        self.enabled, self.path, self.last = enabled, run / "metrics.csv", {}
        self._resumed = False  # rows of a run resumed from a checkpoint not yet dropped
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run / "tensorboard"))
            except ImportError:
                self.tb = None

    def write(self, row: dict[str, Any]) -> None:
        self.last = dict(row)
        if not self.enabled:
            return
        if not self._resumed:
            self._resumed = True
            self._drop_from(row.get("step"))
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, int | float) and math.isfinite(v):
                    self.tb.add_scalar(k, v, row["step"])

    def _drop_from(self, step: Any) -> None:
        """Remove rows at or after ``step``: a run resumed from its last checkpoint logs those
        steps again, and each step should appear once."""
        if step is None or not self.path.exists():
            return
        with self.path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        try:
            keep = [r for r in rows if float(r.get("step") or "nan") < float(step)]
        except ValueError:
            return
        if len(keep) == len(rows):
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(keep)
        tmp.replace(self.path)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
