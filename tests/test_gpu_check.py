"""benchmarks/gpu_check.sh in its CPU form: runs, prints the table, says the CUDA rows are
skipped (on a GPU machine it checks the real thing; see the script)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_gpu_check_cpu_form():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: run benchmarks/gpu_check.sh itself (up to 8 minutes)")
    env = {**os.environ, "PYTHON": sys.executable, "GPU_CHECK_QUICK": "1", "OMP_NUM_THREADS": "2"}
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    out = res.stdout
    assert res.returncode == 0, out[-3000:] + res.stderr[-2000:]
    assert "CUDA not available: CUDA rows skipped" in out
    for row in ("loop/ceiling cuda resnet18 128px", "loop/ceiling cuda resnet18 224px",
                "embed img/s cuda", "generate cuda"):  # fmt: skip
        line = next(ln for ln in out.splitlines() if ln.startswith(row))
        assert "skipped: CUDA not available" in line
    smoke = next(ln for ln in out.splitlines() if ln.startswith("loop/ceiling cpu"))
    assert "loop " in smoke and "ceiling " in smoke
    assert "gpu_check: ok (cuda=0)" in out
