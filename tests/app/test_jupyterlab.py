"""Notebook 01 in a real JupyterLab, in Debian's chromium, with no network: the Explorer renders.

nbclient executes cells without rendering them, so it cannot see an output cell that stays empty
because Bokeh/Panel could not load their JavaScript from a CDN. This test starts JupyterLab on a
free local port (no token), opens a copy of notebook 01 with small parameters, runs all cells
from the *Run* menu and asserts, in the Explorer's output: the scatter canvas, the map with the
footprints drawn before any selection, and a gallery card after a box selection on the scatter.
Every request the page makes to anything but the local server is refused and recorded.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from insarexplore.app._browser import CHROMIUM, drag, free_port, launch, wait_port

pytestmark = [pytest.mark.ui, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CARD = re.compile(r"^syn-\d+-\d{7}$")
PARAMS = {
    "N_SAMPLES": 96,
    "SIZE": 32,
    "STEPS": 5,
    "BATCH_SIZE": 32,
    "PROJECTION": "pca",
    "DEVICE": "cpu",
}


def _notebook_copy(dest: Path) -> Path:
    """Notebook 01 with the test's parameters in a cell after the ``parameters`` cell."""
    nb = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4)
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    params = {"WORKSPACE": str(dest / "ws"), **PARAMS}
    cell = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items()))
    nb.cells.insert(tagged[0] + 1, cell)
    path = dest / "01_quickstart.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def jupyterlab(tmp_path):
    """``(base url, folder)`` of a JupyterLab serving ``tmp_path/root`` with no token."""
    pytest.importorskip("jupyterlab")
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    root = tmp_path / "root"
    root.mkdir()
    _notebook_copy(root)
    port = free_port()
    private = {
        name: str(tmp_path / name.lower())
        for name in (
            "JUPYTER_CONFIG_DIR",
            "JUPYTER_RUNTIME_DIR",
            "JUPYTERLAB_SETTINGS_DIR",
            "JUPYTERLAB_WORKSPACES_DIR",
            "IPYTHONDIR",
        )
    }
    env = {
        **os.environ,
        **private,
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
        "TQDM_DISABLE": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--IdentityProvider.token=",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no queries to PyPI
        "--allow-root",  # CI runs as root
    ]
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        wait_port(port, timeout=120)
        yield f"http://127.0.0.1:{port}", root
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_notebook_01_explorer_renders_in_jupyterlab_offline(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, root = jupyterlab
    refused: list[str] = []
    console: list[str] = []

    def only_local(route):
        url = route.request.url
        if url.startswith(base) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(url)
            route.abort()

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1600, "height": 1400})
        page.set_default_timeout(60_000)
        page.route("**/*", only_local)
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        page.goto(f"{base}/lab/tree/01_quickstart.ipynb", timeout=120_000)
        page.locator(".jp-Notebook").first.wait_for(state="visible", timeout=120_000)
        page.get_by_text(re.compile(r"Python 3 \(ipykernel\) \| Idle")).first.wait_for(
            timeout=120_000
        )
        page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^Run All Cells")).first.click()

        # the last cell's output is the Explorer: scatter canvas, map with every footprint
        out = page.locator(".jp-Cell").last.locator(".jp-OutputArea-output")
        try:
            out.locator("canvas").first.wait_for(state="visible", timeout=240_000)
            out.locator(".leaflet-container").first.wait_for(state="visible", timeout=60_000)
        except Exception:
            page.screenshot(path=str(tmp_path / "jupyterlab-failed.png"), full_page=True)
            raise AssertionError(
                f"no Explorer output; console: {console[-20:]}; refused: {refused[:10]}"
            ) from None
        out.locator(".leaflet-container").first.scroll_into_view_if_needed()
        paths = out.locator(".leaflet-overlay-pane path")
        paths.first.wait_for(state="attached", timeout=60_000)
        assert paths.count() >= 96  # a dot per footprint centre, before any selection
        assert out.get_by_text("all 96 footprints", exact=False).count() >= 1

        # a box selection on the scatter fills the gallery with cards
        out.locator("canvas").first.scroll_into_view_if_needed()
        page.wait_for_timeout(1000)
        drag(page, 0.0, 0.0, 0.6, 1.0)
        cards = out.get_by_role("button", name=CARD)
        cards.first.wait_for(timeout=60_000)
        assert cards.count() >= 1
        page.screenshot(path=str(tmp_path / "jupyterlab.png"), full_page=True)
        shots = os.environ.get("INSAREXPLORE_SCREENSHOT_DIR")
        if shots:
            page.screenshot(path=str(Path(shots) / "jupyterlab-explorer.png"), full_page=True)
        browser.close()

    missing = [m for m in console if "Bokeh or Panel library is missing" in m]
    assert not missing, missing
    # jupyter-leaflet 0.20's own bundle asks for leaflet =1.4.0 beside the 1.9.4 it shares and
    # warns about itself (upstream; the map runs on 1.9.4): any other clash is ours
    upstream = "from jupyter-leaflet of shared singleton module leaflet (required =1.4.0)"
    clash = [m for m in console if "Unsatisfied version" in m and upstream not in m]
    assert not clash, clash
    # nothing the Explorer needs came from outside: the page rendered with those refused
    assert not [u for u in refused if "cdn" in u or "unpkg" in u], refused
