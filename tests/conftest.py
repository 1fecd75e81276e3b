"""Shared test configuration: markers, the shared data folder, tiny seeded datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared").resolve()

os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
os.environ.setdefault("BOKEH_LOG_LEVEL", "error")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`gpu` tests run only where CUDA exists; everything else runs on the CPU."""
    gpu_items = [it for it in items if "gpu" in it.keywords]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for it in gpu_items:
        it.add_marker(skip)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture
def tiny_phase_ds():
    """A small valid phase dataset (6 samples of 16 x 16) with footprints and labels."""
    from insarexplore.data.schema import new_dataset

    rng = np.random.default_rng(0)
    n = 6
    lon0 = np.linspace(10, 15, n)
    return new_dataset(
        phase=rng.uniform(-np.pi, np.pi, (n, 16, 16)),
        coherence=rng.uniform(0, 1, (n, 16, 16)),
        sample=[f"id{i}" for i in range(n)],
        lon_min=lon0,
        lat_min=40.0,
        lon_max=lon0 + 0.16,
        lat_max=40.16,
        primary_date="2020-01-01",
        secondary_date="2020-01-13",
        frame="079D_07694_131313",
        label=["a", "b", "a", "", "b", "a"],
        extra={"depth_m": np.arange(n, dtype=float) * 1000},
        pixel_spacing_m=1000.0,
    )
