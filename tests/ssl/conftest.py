"""Tiny seeded datasets for the SSL tests (no dependency on the synthetic generator)."""

from __future__ import annotations

import numpy as np
import pytest


def toy_dataset(n: int = 48, size: int = 32, seed: int = 0, rgb: bool = False):
    """Three labelled pattern classes: concentric fringes, linear fringes, noise."""
    from insarexplore.data.palettes import render_phase
    from insarexplore.data.schema import new_dataset

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    phase = np.empty((n, size, size), dtype=np.float32)
    labels = np.array(["rings", "ramp", "none"])[np.arange(n) % 3]
    for i, lab in enumerate(labels):
        cy, cx = rng.uniform(-0.2, 0.2, 2)
        if lab == "rings":
            p = 40 * np.hypot(yy - cy, xx - cx) ** 1.2 * rng.choice([-1, 1])
        elif lab == "ramp":
            a = rng.uniform(0, np.pi)
            p = 25 * (np.cos(a) * xx + np.sin(a) * yy)
        else:
            p = np.zeros_like(xx)
        p = p + rng.normal(0, 0.3, xx.shape) + rng.uniform(-np.pi, np.pi)
        phase[i] = np.angle(np.exp(1j * p))
    coh = rng.uniform(0.3, 1.0, (n, size, size)).astype(np.float32)
    phase[:, :2, :2] = np.nan
    ids = [f"s{seed}_{i:04d}" for i in range(n)]
    if rgb:
        image = render_phase(phase, "cyclic")
        return new_dataset(image=image, sample=ids, label=labels)
    return new_dataset(phase=phase, coherence=coh, sample=ids, label=labels)


@pytest.fixture
def toy():
    return toy_dataset()


@pytest.fixture
def toy_workspace(tmp_path):
    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ws.add_data(toy_dataset())
    return ws


@pytest.fixture
def make_toy():
    """The ``toy_dataset`` factory, for tests that need several sizes or kinds."""
    return toy_dataset
