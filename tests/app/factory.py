"""A tiny, seeded workspace for dashboard tests: fringe patterns with footprints, dates,
embeddings (PCA of the model input channels, saved under a model version) and a PCA map.

Built directly with ``new_dataset`` (no generator, no pretraining) so the fixture costs well
under a second; the classes are visibly different so few-shot training has something to learn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ("mogi", "dyke", "none")
SITES = [(15.00, 37.75), (14.14, 40.83), (15.21, 38.79), (14.96, 38.48)]  # lon, lat (Italy)


def fringe_dataset(n: int = 90, size: int = 32, seed: int = 0):
    """``n`` samples cycling through :data:`CLASSES`; returns ``(ds, classes)``."""
    from insarexplore.data.schema import new_dataset

    rng = np.random.default_rng(seed)
    cls = np.array(CLASSES)[np.arange(n) % len(CLASSES)]
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    cx, cy = rng.uniform(-0.3, 0.3, (2, n, 1, 1))
    k = rng.uniform(4, 9, (n, 1, 1))
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    mogi = k * 0.3 / (r2 + 0.3) ** 1.5
    dyke = k * np.arctan((xx - cx) / 0.08)
    waves = np.sin(3 * xx * rng.uniform(0.5, 1.5, (n, 1, 1)) + rng.uniform(0, 6, (n, 1, 1)))
    none = 1.5 * waves * np.cos(2 * yy)
    phase = np.where(
        (cls == "mogi")[:, None, None], mogi, np.where((cls == "dyke")[:, None, None], dyke, none)
    )
    phase = phase + rng.normal(0, 0.25, phase.shape)
    phase = (phase + np.pi) % (2 * np.pi) - np.pi
    site = rng.integers(0, len(SITES), n)
    lon = np.array([SITES[s][0] for s in site]) + rng.uniform(-0.3, 0.3, n)
    lat = np.array([SITES[s][1] for s in site]) + rng.uniform(-0.3, 0.3, n)
    width = 0.2
    primary = np.datetime64("2020-01-01") + 12 * rng.integers(0, 60, n).astype("timedelta64[D]")
    ds = new_dataset(
        phase=phase.astype(np.float32),
        coherence=rng.uniform(0.4, 1.0, phase.shape).astype(np.float32),
        displacement=(-phase * 0.05546576 / (4 * np.pi)).astype(np.float32),
        sample=[f"s{i:04d}" for i in range(n)],
        lon_min=lon,
        lat_min=lat,
        lon_max=lon + width,
        lat_max=lat + width,
        primary_date=primary,
        secondary_date=primary + np.timedelta64(12, "D"),
        frame=np.where(site % 2 == 0, "079D_07694_131313", "044A_05010_131313"),
        source="factory",
        extra={
            "depth_m": rng.uniform(1000, 5000, n),
            "pass_direction": np.where(site % 2 == 0, "descending", "ascending"),
        },
        pixel_spacing_m=300.0,
    )
    return ds, cls


def build_workspace(path: Path, n: int = 90, size: int = 32, seed: int = 0, dim: int = 16):
    """Create a workspace with data, embeddings (model ``version``) and a cached PCA map."""
    from insarexplore.explore.projection import project
    from insarexplore.workspace import Workspace

    ds, cls = fringe_dataset(n, size, seed)
    ws = Workspace.create(path)
    ws.add_data(ds)
    X = ds.insar.to_channels().reshape(n, -1).astype(np.float64)
    X -= X.mean(axis=0)
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    vectors = (u[:, :dim] * s[:dim]).astype(np.float32)
    version, _ = ws.new_model_dir("test")
    ws.save_embeddings(version, ds["sample"].values, vectors)
    ws.set_current_model(version)
    project(ws, method="pca", model_version=version)
    return ws, cls
