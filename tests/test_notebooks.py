"""Every notebook runs end to end at small sizes, parameters injected after its `parameters` cell.

The injection works like papermill's: a cell assigning the test values is inserted right after
the cell tagged ``parameters``. Notebooks are committed with outputs stripped (checked here too).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ALL = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def execute(name: str, params: dict, cwd: Path, timeout: int = 600) -> nbformat.NotebookNode:
    """Run a notebook with ``params`` injected; returns the executed notebook."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: exactly one cell must be tagged 'parameters'"
    source = "# injected by tests/test_notebooks.py\n" + "\n".join(
        f"{k} = {v!r}" for k, v in params.items()
    )
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(tagged[0] + 1, cell)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
    )
    try:
        client.execute()
    finally:
        out_dir = os.environ.get("INSAREXPLORE_NOTEBOOK_OUT")  # keep executed copies to look at
        if out_dir:
            nbformat.write(nb, Path(out_dir) / name)
    return nb


def _text(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out.append(str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def test_notebooks_are_committed_clean():
    assert ALL == [
        "01_quickstart.ipynb",
        "02_active_labelling.ipynb",
        "03_bring_your_own_data.ipynb",
        "04_scale.ipynb",
    ]
    for name in ALL:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name}: outputs"


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
    monkeypatch.setenv("TQDM_DISABLE", "1")


@pytest.mark.slow
def test_01_quickstart(tmp_path):
    params = {
        "WORKSPACE": str(tmp_path / "ws"),
        "N_SAMPLES": 96,
        "SIZE": 32,
        "STEPS": 5,
        "BATCH_SIZE": 32,
        "PROJECTION": "pca",
        "DEVICE": "cpu",
    }
    nb = execute("01_quickstart.ipynb", params, NOTEBOOKS)
    text = _text(nb)
    assert "96 samples of 32x32 px" in text
    assert "96 embeddings of dimension" in text
    assert (tmp_path / "ws" / "labels.sqlite").exists()  # the explorer opened the store


@pytest.fixture(scope="module")
def demo_workspace(tmp_path_factory):
    """A quick demo workspace (data, model, embeddings, PCA map), built once for the module."""
    from insarexplore.demo import prepare_demo

    path = tmp_path_factory.mktemp("nb") / "demo-ws"
    prepare_demo(path, quick=True, device="cpu", quiet=True)
    return path


@pytest.mark.slow
def test_02_active_labelling(demo_workspace):
    params = {
        "WORKSPACE": str(demo_workspace),
        "N_ROUNDS": 2,
        "PER_ROUND": 6,
        "CLUSTER_CORE": 10,
        "CURVE": [1, 2],
        "SEEDS": 1,
        "FINETUNE_EPOCHS": 1,
        "PROJECTION": "pca",
        "DEVICE": "cpu",
    }
    nb = execute("02_active_labelling.ipynb", params, NOTEBOOKS)
    text = _text(nb)
    assert "after the clusters:" in text and "labelled footprints written" in text
    assert "fine-tuned model ft-" in text
    assert (demo_workspace / "labels-notebook-02.geojson").exists()


@pytest.mark.slow
def test_03_bring_your_own_data(tmp_path, demo_workspace):
    heph = ROOT.parent / "shared" / "data" / "hephaestus" / "annotations.tar.gz"
    params = {
        "WORK": str(tmp_path / "byod"),
        "N_PAIRS": 2,
        "FRAME_SIZE": 96,
        "PATCH": 32,
        "N_PNG": 48,
        "PNG_SIZE": 32,
        "MINUTES": 0.05,
        "HEPHAESTUS": str(heph) if heph.exists() else None,
        "DEMO_WORKSPACE": str(demo_workspace),
        "DEVICE": "cpu",
    }
    nb = execute("03_bring_your_own_data.ipynb", params, tmp_path)
    text = _text(nb)
    assert "2 frames -> " in text and "patches of 32 px" in text
    assert "added 48 images (now 48)" in text and "added 24 images (now 72)" in text
    assert "fitting images to the store's size 35x35" in text
    assert text.count("median circular error") == 3
    assert "embedded " in text and "patches with" in text
    if heph.exists():
        assert "19,919 annotations, 38 frames" in text


@pytest.mark.slow
def test_04_scale(tmp_path):
    params = {
        "WORKSPACE": str(tmp_path / "scale"),
        "N_SAMPLES": 128,
        "SIZE": 32,
        "GPU_SIZE": 64,
        "MINUTES": 0.05,
        "DASK_WORKERS": 1,
        "DASK_PROCESSES": False,
        "PROJECTION": "pca",
        "MAX_FIT": 100,
    }
    nb = execute("04_scale.ipynb", params, tmp_path)
    text = _text(nb)
    assert "128 interferograms of" in text
    assert "128 embeddings of dimension" in text and "max difference" in text
    assert "pca map of 128 samples" in text
