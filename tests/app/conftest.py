"""Fixtures for dashboard tests: one tiny workspace per session, fresh label stores per test."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def app_workspace_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built workspace (90 samples, 32 px, embeddings, PCA map); never written by tests."""
    from factory import build_workspace

    path = tmp_path_factory.mktemp("appws") / "ws"
    build_workspace(path, n=90)
    return path


@pytest.fixture(scope="session")
def app_data(app_workspace_dir: Path):
    """Shared read-only ExplorerData of the session workspace."""
    from insarexplore.app.data import ExplorerData

    return ExplorerData.from_workspace(app_workspace_dir, projection="pca")


@pytest.fixture
def workspace_copy(app_workspace_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the workspace for tests that write labels or predictions."""
    dest = tmp_path / "ws"
    shutil.copytree(app_workspace_dir, dest)
    return dest


@pytest.fixture
def state(app_data, tmp_path: Path):
    """A session state over the shared data with its own label store."""
    from insarexplore.app.state import ExplorerState
    from insarexplore.explore.labels import LabelStore

    store = LabelStore(tmp_path / "labels.sqlite", author="alice", session="s1")
    st = ExplorerState(app_data, label_store=store, author="alice", session="s1")
    yield st
    store.close()


@pytest.fixture
def classes():
    """Ground-truth class of each sample of the factory workspace (aligned with ids)."""
    import numpy as np
    from factory import CLASSES

    return np.array(CLASSES)[np.arange(90) % len(CLASSES)]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright, one per test module (skipped when missing)."""
    from insarexplore.app._browser import CHROMIUM, launch

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()
