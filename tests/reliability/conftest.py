"""Shared pieces of the reliability suite: a small complete workspace, planted pickles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


class Payload:
    """Unpickling this object creates ``marker`` (what a planted file would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant_npy(path: Path, marker: Path) -> None:
    """Replace a ``.npy`` file by an object array whose loading runs code."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        np.save(fh, np.array([Payload(marker), "x"], dtype=object), allow_pickle=True)


def plant_npz(path: Path, marker: Path, **plain: np.ndarray) -> None:
    """Replace an ``.npz`` file by one whose arrays (all of them) run code when loaded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = np.array([Payload(marker)], dtype=object)
    with path.open("wb") as fh:
        np.savez(fh, **{k: payload for k in plain or {"ids": None, "xy": None}})


def plant_pickle(path: Path, marker: Path) -> None:
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(Payload(marker)))


def make_workspace(path: Path, n: int = 40, d: int = 8):
    """A workspace with data, a current model with embeddings, a PCA map and labels."""
    from insarexplore.data.schema import new_dataset
    from insarexplore.explore.labels import LabelStore
    from insarexplore.explore.projection import project
    from insarexplore.workspace import Workspace

    rng = np.random.default_rng(0)
    ws = Workspace.create(path)
    lon = 10.0 + np.arange(n) * 0.1
    ws.add_data(
        new_dataset(
            phase=rng.uniform(-np.pi, np.pi, (n, 8, 8)).astype(np.float32),
            sample=[f"s{i:03d}" for i in range(n)],
            lon_min=lon,
            lat_min=40.0,
            lon_max=lon + 0.1,
            lat_max=40.1,
            label=["mogi" if i % 2 else "none" for i in range(n)],
        )
    )
    version, _ = ws.new_model_dir("test")
    ws.set_current_model(version)
    ws.save_embeddings(version, ws.sample_ids(), rng.normal(size=(n, d)).astype(np.float32))
    project(ws, "pca")
    with LabelStore(ws.labels_path, author="ana") as store:
        store.assign(["s000", "s001"], "mogi")
        store.assign(["s002"], "none")
    return ws


@pytest.fixture
def ws(tmp_path):
    return make_workspace(tmp_path / "ws")


def dead_pid() -> int:
    """The id of a process that has exited (for leftovers of a crashed process)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "insarexplore.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        **kw,
    )
