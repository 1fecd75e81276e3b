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
    """metrics.csv (appended across resumes) and TensorBoard scalars when installed."""

    FIELDS = ("step", "epoch", "loss", "lr", "img_per_s", "elapsed_s", "knn_acc", "probe_acc")

    def __init__(self, run: Path, *, enabled: bool, tensorboard: bool) -> None:
        self.enabled, self.path, self.last = enabled, run / "metrics.csv", {}
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

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
