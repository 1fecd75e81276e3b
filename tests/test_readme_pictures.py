"""scripts/readme_pictures.py, the maker of the README's pictures, on the --quick demo."""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location(
        "readme_pictures", ROOT / "scripts" / "readme_pictures.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _labels(ws: Path) -> list[str]:
    if not (ws / "labels.sqlite").exists():
        return []
    with sqlite3.connect(ws / "labels.sqlite") as con:
        return [r[0] for r in con.execute("SELECT label FROM events WHERE action != 'remove'")]


@pytest.mark.parametrize(
    "argv",
    [
        ["--out", "picture.jpg"],
        ["--cluster", "-1"],
        ["--quick", "-n", "3"],
        ["--workspace", str(ROOT / "README.md")],
    ],
)
def test_bad_input_is_one_line_and_status_2(script, argv, capsys):
    assert script.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("readme_pictures.py: error: ") and "\n" not in err, err


def test_a_folder_it_did_not_make_is_never_replaced(script, tmp_path, capsys):
    (tmp_path / "demo-workspace").mkdir()
    (tmp_path / "demo-workspace" / "keep.txt").write_text("mine")
    assert script.main(["--session", str(tmp_path), "--quick"]) == 2
    assert "not a copy made by this script" in capsys.readouterr().err
    assert (tmp_path / "demo-workspace" / "keep.txt").read_text() == "mine"


@pytest.mark.ui
@pytest.mark.slow
def test_pictures_of_the_quick_demo(script, tmp_path):
    from PIL import Image

    from insarexplore.app._browser import CHROMIUM

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api")
    demo, out, steps = tmp_path / "demo", tmp_path / "shot.png", tmp_path / "steps"
    argv = ["--quick", "--workspace", str(demo), "--out", str(out), "--step-dir", str(steps)]
    argv += ["--session", str(tmp_path / "session"), "--label", "uplift", "--quiet"]
    assert script.main(argv) == 0

    img = np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)
    width, height = script.VIEWPORT
    assert img.shape[:2] == (height, width), img.shape
    assert img.std() > 20  # not blank
    assert img.reshape(-1, 3).std(axis=0).min() > 10  # colour in every channel
    for name, _ in script.STEPS:
        path = steps / name
        assert path.exists() and path.stat().st_size < 200_000, path
        assert Image.open(path).width <= script.STEP_WIDTH
        assert np.asarray(Image.open(path).convert("L"), dtype=np.float64).std() > 10
    # the labels went to the copy the dashboard served, never to the demo workspace
    labels = _labels(tmp_path / "session" / "demo-workspace")
    assert labels.count("uplift") >= 5 and len(set(labels)) == 2, set(labels)
    assert _labels(demo) == []
