"""The first five minutes on the demo workspace, in Debian's chromium (Playwright).

open -> colour by cluster -> box select -> label -> train -> suggest, asserting what the user
sees at each step: footprints on the map before anything is selected, coloured clusters with
their sizes in the legend, cards after a selection, predictions after training and suggestion
cards after *Suggest next*. The workspace is the ``--quick`` demo (240 samples, PCA map), built
once for the module. ``INSAREXPLORE_SCREENSHOT_DIR`` keeps the screenshots of each step.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from insarexplore.app._browser import (
    drag,
    free_port,
    label_selection,
    open_dashboard,
    wait_port,
    wait_until,
)

pytestmark = [pytest.mark.ui, pytest.mark.slow]

CARD = re.compile(r"^syn-\d+-\d{7}$")  # gallery card buttons are named by sample id
PATHS = ".leaflet-overlay-pane path"
CATEGORY_RGB = "rgb(31, 119, 180)"  # CATEGORY_COLORS[0], the largest cluster's colour


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    from insarexplore.demo import prepare_demo

    path = tmp_path_factory.mktemp("walk") / "demo-ws"
    prepare_demo(path, quick=True, device="cpu", quiet=True)
    return path


@pytest.fixture
def served(demo_dir, tmp_path):
    from insarexplore.app import serve

    ws = tmp_path / "ws"
    shutil.copytree(demo_dir, ws)
    port = free_port()
    server = serve(ws, port=port, threaded=True, projection="pca", user="walker")
    wait_port(port)
    yield f"http://127.0.0.1:{port}/", ws
    server.stop()


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    out = os.environ.get("INSAREXPLORE_SCREENSHOT_DIR")
    if out:
        shutil.copyfile(path, Path(out) / f"walkthrough-{name}.png")


def _labels(ws: Path) -> dict[str, str]:
    with sqlite3.connect(ws / "labels.sqlite") as con:
        rows = con.execute("SELECT sample, label, action FROM events ORDER BY rowid").fetchall()
    current: dict[str, str] = {}
    for sample, label, action in rows:
        if action == "remove":
            current.pop(sample, None)
        else:
            current[sample] = label
    return current


def test_first_five_minutes_on_the_demo(browser, served, tmp_path):
    url, ws = served
    page, errors = open_dashboard(browser, url)

    # open: the map shows every footprint (and its centre dot) before anything is selected
    page.get_by_text("all 240 footprints", exact=False).first.wait_for(timeout=30_000)
    assert wait_until(lambda: page.locator(PATHS).count() >= 240), page.locator(PATHS).count()
    assert page.get_by_text("0 selected", exact=False).count() >= 1
    _shot(page, tmp_path, "1-open")

    # colour by cluster: the legend lists the clusters with their sizes, in colour
    select = page.locator("select", has=page.locator("option[value='cluster']")).first
    select.select_option("cluster")
    first = page.get_by_text(re.compile(r"^cluster 0 \(\d+\)$")).first
    first.wait_for(timeout=30_000)
    entries = page.get_by_text(re.compile(r"^cluster \d+ \(\d+\)$"))
    assert entries.count() >= 2
    swatch = first.evaluate("el => getComputedStyle(el.querySelector('span')).backgroundColor")
    assert swatch == CATEGORY_RGB
    sizes = [int(re.search(r"\((\d+)\)", t).group(1)) for t in entries.all_inner_texts()]
    assert sizes == sorted(sizes, reverse=True) and sum(sizes) <= 240
    assert page.get_by_text(re.compile(r"cluster proposals on the PCA map|k-means regions")).count()
    _shot(page, tmp_path, "2-clusters")

    # box select: cards of the selection fill the gallery; the map marks the selected places
    before = page.locator(PATHS).count()
    drag(page, 0.0, 0.0, 0.45, 1.0)
    cards = page.get_by_role("button", name=CARD)
    cards.first.wait_for(timeout=30_000)
    assert cards.count() >= 1
    assert wait_until(lambda: page.locator(PATHS).count() > before)
    _shot(page, tmp_path, "3-selected")

    # label: two classes, one on each side of the map, written to the label store at once
    label_selection(page, "left-side")
    assert wait_until(lambda: set(_labels(ws).values()) == {"left-side"})
    drag(page, 0.55, 0.0, 1.0, 1.0)
    page.wait_for_timeout(1500)
    label_selection(page, "right-side")
    assert wait_until(lambda: set(_labels(ws).values()) == {"left-side", "right-side"})

    # train: predictions for every sample, shown in the detail view and the cards
    page.get_by_role("button", name="Train few-shot").click()
    page.get_by_text(re.compile(r"predictions for 240 samples")).first.wait_for(timeout=120_000)
    assert (ws / "artifacts" / "predictions").exists()
    _shot(page, tmp_path, "4-trained")

    # suggest: the gallery switches to the queue, each card with its prediction and reason
    page.get_by_role("button", name="Suggest next").click()
    page.get_by_text(re.compile(r"\d+ suggestions \(")).first.wait_for(timeout=60_000)
    page.get_by_text("unlabelled").first.wait_for(timeout=30_000)
    shown = page.get_by_text(re.compile(r"pred (left|right)-side \d\.\d\d"))
    assert wait_until(lambda: shown.count() >= 1)
    assert 1 <= page.get_by_role("button", name=CARD).count() <= 12
    _shot(page, tmp_path, "5-suggested")
    assert not errors, errors
    page.close()
