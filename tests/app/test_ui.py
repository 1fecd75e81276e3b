"""The served dashboard in Debian's chromium (Playwright): load, select, label, train, map.

Each test starts the app on a private copy of the tiny workspace in a server thread of this
process. Bokeh renders inside shadow DOM, so elements are found with Playwright locators.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pytest

from insarexplore.app._browser import drag, free_port, wait_port, watch_errors

pytestmark = pytest.mark.ui

CARD = re.compile(r"^s\d{4}$")  # gallery card buttons are named by sample id


@pytest.fixture
def served(workspace_copy):
    """``(url, workspace path)`` of the app served in a thread for one test."""
    from insarexplore.app import serve

    port = free_port()
    server = serve(workspace_copy, port=port, threaded=True, projection="pca", user="ui-tester")
    wait_port(port)
    yield f"http://127.0.0.1:{port}/", workspace_copy
    server.stop()


def _open(browser, url: str):
    """A new page on ``url`` with JS errors collected; waits for the scatter canvas."""
    page = browser.new_page(viewport={"width": 1500, "height": 1150})
    page.set_default_timeout(60_000)
    errors = watch_errors(page)
    page.goto(url)
    page.locator("canvas").first.wait_for(state="visible", timeout=90_000)
    page.locator(".leaflet-container").first.wait_for(state="visible", timeout=90_000)
    page.wait_for_timeout(1500)
    return page, errors


def _rows(ws: Path) -> list[tuple]:
    with sqlite3.connect(ws / "labels.sqlite") as con:
        return con.execute("SELECT sample, label, action, author FROM events").fetchall()


def _label(page, name: str) -> None:
    box = page.get_by_placeholder("e.g. deformation")
    box.fill(name)
    page.get_by_role("button", name="Add class").click()
    page.wait_for_timeout(700)
    page.get_by_role("button", name="Label selection").click()


def test_page_loads_and_renders_without_js_errors(browser, served):
    url, _ = served
    page, errors = _open(browser, url)
    assert page.locator("canvas").count() >= 1
    assert page.locator(".leaflet-container").count() == 1
    assert page.get_by_text("Train few-shot").count() >= 1
    assert page.get_by_text("Embedding map").count() >= 1
    assert not errors, errors
    page.close()


def test_select_label_train_and_map_click(browser, served, tmp_path):
    url, ws = served
    page, errors = _open(browser, url)
    # a box drawn with the mouse selects points: the gallery fills with their cards
    drag(page, 0.0, 0.0, 0.45, 1.0)
    cards = page.get_by_role("button", name=CARD)
    cards.first.wait_for(timeout=30_000)
    assert cards.count() >= 1
    # labelling writes rows to the SQLite store at once, with the author
    _label(page, "left")
    deadline = time.monotonic() + 30
    while not _rows(ws) and time.monotonic() < deadline:
        time.sleep(0.3)
    rows = _rows(ws)
    assert rows and {r[1] for r in rows} == {"left"} and {r[3] for r in rows} == {"ui-tester"}
    # a second class on the other side of the map
    drag(page, 0.55, 0.0, 1.0, 1.0)
    page.wait_for_timeout(1500)
    _label(page, "right")
    deadline = time.monotonic() + 30
    while {r[1] for r in _rows(ws)} != {"left", "right"} and time.monotonic() < deadline:
        time.sleep(0.3)
    assert {r[1] for r in _rows(ws)} == {"left", "right"}
    # few-shot training runs in the background and reports predictions
    page.get_by_role("button", name="Train few-shot").click()
    page.get_by_text(re.compile(r"Predicted: ")).first.wait_for(timeout=90_000)
    assert (ws / "artifacts" / "predictions").exists()
    # a click on a footprint of the selection (drawn last, on top of every sample's footprint,
    # dot, the extent box and the graticule) focuses that sample everywhere
    paths = page.locator(".leaflet-overlay-pane path.leaflet-interactive")
    paths.first.wait_for(timeout=30_000)
    paths.last.click(force=True)
    page.get_by_text(re.compile(r"focused s\d{4}")).first.wait_for(timeout=30_000)
    page.get_by_text("wrapped phase").first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    # the whole page renders (the README's picture is made by scripts/readme_pictures.py)
    shot = tmp_path / "screenshot.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 50_000
    assert not errors, errors
    page.close()


def test_two_tabs_see_each_others_labels_after_refresh(browser, served):
    url, ws = served
    a, errors_a = _open(browser, url)
    b, errors_b = _open(browser, url)
    drag(a, 0.0, 0.0, 0.5, 1.0)
    a.get_by_role("button", name=CARD).first.wait_for(timeout=30_000)
    _label(a, "from-tab-a")
    deadline = time.monotonic() + 30
    while not _rows(ws) and time.monotonic() < deadline:
        time.sleep(0.3)
    n = len({r[0] for r in _rows(ws)})
    assert n > 0
    assert b.get_by_text("from-tab-a").count() == 0
    b.reload()
    b.locator("canvas").first.wait_for(state="visible", timeout=90_000)
    b.get_by_text("from-tab-a").first.wait_for(timeout=30_000)
    # the counts table of tab B shows tab A's labels
    row = b.locator("tr", has_text="from-tab-a").first
    assert str(n) in row.inner_text()
    assert not errors_a and not errors_b, errors_a + errors_b
    a.close()
    b.close()
