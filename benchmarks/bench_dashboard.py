"""Dashboard speed, measured in a real browser (Debian chromium via Playwright).

* A served workspace of 200,000 samples (16 px phase, embeddings, PCA map): server start (load
  table, clusters, anomaly scores), first full render of the page (scatter canvas, map, panels),
  and box selections made with the mouse reaching the gallery (first card of the new selection)
  and the map (its footprints drawn), timed from the release of the mouse button: the first
  selection of the page, and the median of three different boxes.
* A table-only explorer of 1,000,000 points (datashaded): first render, zoom with the mouse
  wheel (a new raster drawn), and a box selection reaching the selection count.

The machine's load average is recorded before and after (the figures depend on it: 2 cores,
often shared). ``run(quick=True)`` uses 20,000 and 100,000 samples. Run: ``python benchmarks/bench_dashboard.py
[--quick]``. Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from insarexplore.app._browser import CHROMIUM, drag, free_port, launch, plot_box, wait_port

AREA = "dashboard"
CARD = re.compile(r"^b\d{7}$")  # gallery card buttons are named by sample id
FOOTPRINT = ".leaflet-overlay-pane path.leaflet-interactive"


def _row(metric: str, value: float, unit: str, note: str) -> dict:
    return {"area": AREA, "metric": metric, "value": float(value), "unit": unit, "note": note}


def build_workspace(path: Path, n: int, size: int = 16, chunk: int = 50_000, seed: int = 0):
    """A workspace of ``n`` cheap fringe samples with 16-d embeddings and a PCA map."""
    from insarexplore.data.schema import new_dataset
    from insarexplore.explore.projection import project
    from insarexplore.workspace import Workspace

    rng = np.random.default_rng(seed)
    ws = Workspace.create(path)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j].astype(np.float32)
    centers = rng.normal(0, 3, (4, 16)).astype(np.float32)
    vectors = np.empty((n, 16), dtype=np.float32)
    ids_all = []
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        cls = rng.integers(0, 4, m)
        k = rng.uniform(2, 9, (m, 1, 1)).astype(np.float32)
        r2 = xx**2 + yy**2
        phase = np.where(
            (cls == 0)[:, None, None],
            k / (r2 + 0.3),
            np.where((cls == 1)[:, None, None], k * xx, k * np.sin(3 * yy)),
        )
        phase = phase + rng.normal(0, 0.3, phase.shape).astype(np.float32)
        phase = ((phase + np.pi) % (2 * np.pi) - np.pi).astype(np.float32)
        lon = rng.uniform(12, 16, m)
        lat = rng.uniform(37, 42, m)
        ids = [f"b{i:07d}" for i in range(start, start + m)]
        ids_all += ids
        ds = new_dataset(
            phase=phase,
            sample=ids,
            lon_min=lon,
            lat_min=lat,
            lon_max=lon + 0.05,
            lat_max=lat + 0.05,
            primary_date="2021-01-01",
            secondary_date="2021-01-13",
            frame=np.where(cls % 2 == 0, "079D", "044A"),
            extra={"depth_m": rng.uniform(1e3, 5e3, m)},
        )
        ws.add_data(ds)
        vectors[start : start + m] = centers[cls] + rng.normal(0, 1, (m, 16))
    version, _ = ws.new_model_dir("bench")
    ws.save_embeddings(version, np.array(ids_all, dtype=object), vectors)
    ws.set_current_model(version)
    project(ws, method="pca", model_version=version)
    return ws


def table_data(n: int, seed: int = 0):
    """Table-only ExplorerData of ``n`` points in a few blobs (no images, no label store)."""
    import pandas as pd

    from insarexplore.app.data import ExplorerData

    rng = np.random.default_rng(seed)
    cls = rng.integers(0, 5, n)
    centers = rng.normal(0, 6, (5, 2))
    xy = centers[cls] + rng.normal(0, 1, (n, 2))
    table = pd.DataFrame(
        {"x": xy[:, 0], "y": xy[:, 1], "cluster": cls, "depth_m": rng.uniform(1e3, 5e3, n)},
        index=pd.Index([f"p{i:07d}" for i in range(n)], name="sample"),
    )
    return ExplorerData(table)


def _load(page, url: str) -> float:
    t0 = time.perf_counter()
    page.goto(url)
    page.locator("canvas").first.wait_for(state="visible", timeout=300_000)
    page.locator(".leaflet-container").first.wait_for(state="visible", timeout=300_000)
    page.get_by_text("Train few-shot").first.wait_for(timeout=300_000)
    return time.perf_counter() - t0


def _selected_text(page) -> str:
    return page.get_by_text(re.compile(r"samples \((points|datashaded)\)")).first.inner_text()


def _none(page) -> bool:
    return _selected_text(page).endswith("· 0 selected")


def _first_card(page) -> str | None:
    cards = page.get_by_role("button", name=CARD)
    return cards.first.get_attribute("title") if cards.count() else None


def _first_path(page) -> str | None:
    paths = page.locator(FOOTPRINT)
    return paths.first.get_attribute("d") if paths.count() else None


def _until(done, timeout: float = 120.0, every_ms: int = 20) -> None:
    """Poll ``done()`` (Playwright calls, a few ms each) until it holds."""
    end = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > end:
            raise TimeoutError("the page did not update")
        time.sleep(every_ms / 1000)


def bench_workspace(browser, n: int) -> list[dict]:
    from insarexplore.app import serve
    from insarexplore.app.data import ExplorerData

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_workspace(Path(tmp) / "ws", n)
        rows.append(
            _row(
                f"build workspace n={n:,}",
                time.perf_counter() - t0,
                "s",
                "16 px phase, 16-d embeddings, PCA",
            )
        )
        t0 = time.perf_counter()
        data = ExplorerData.from_workspace(Path(tmp) / "ws", projection="pca")
        rows.append(
            _row(
                f"server data load n={n:,} (first start)",
                time.perf_counter() - t0,
                "s",
                "table, HDBSCAN clusters, anomaly scores (then cached)",
            )
        )
        port = free_port()
        server = serve(None, data=data, port=port, threaded=True)
        wait_port(port, timeout=600)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            _load(page, f"http://127.0.0.1:{port}/")  # warm-up (browser caches, first session)
            page.close()
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            rows.append(
                _row(
                    f"first full render n={n:,}",
                    _load(page, f"http://127.0.0.1:{port}/"),
                    "s",
                    "navigation to scatter canvas + map + panels visible",
                )
            )
            page.wait_for_timeout(1500)
            # a small box, then a quarter and a half of the plot (tens of thousands selected)
            boxes = [(0.3, 0.3, 0.5, 0.5), (0.0, 0.0, 0.5, 0.5), (0.5, 0.0, 1.0, 1.0)]
            t_gallery, t_map, counts = [], [], []
            for box in boxes:
                old_card, old_path, old_text = (
                    _first_card(page),
                    _first_path(page),
                    _selected_text(page),
                )
                t0 = drag(page, *box)
                _until(
                    lambda old=old_card, text=old_text: (
                        _first_card(page) not in (None, old)
                        or (_selected_text(page) != text and _none(page))
                    )
                )
                if _first_card(page) in (None, old_card):
                    raise RuntimeError(f"box {box} selected nothing: choose another")
                t_gallery.append(time.perf_counter() - t0)
                _until(lambda old=old_path: _first_path(page) not in (None, old))
                t_map.append(time.perf_counter() - t0)
                counts.append(_selected_text(page).rsplit("·", 1)[-1].strip())
                page.wait_for_timeout(1000)
            rows.append(
                _row(
                    f"box selection to gallery n={n:,}",
                    t_gallery[0],
                    "s",
                    f"mouse release -> first card of the new selection visible ({counts[0]})",
                )
            )
            rows.append(
                _row(
                    f"box selection to map n={n:,}",
                    t_map[0],
                    "s",
                    "mouse release -> footprints of the new selection drawn",
                )
            )
            rows.append(
                _row(
                    f"box selection to gallery n={n:,}, median of {len(boxes)}",
                    statistics.median(t_gallery),
                    "s",
                    "each: "
                    + ", ".join(f"{t:.2f} s" for t in t_gallery)
                    + "; "
                    + ", ".join(counts),
                )
            )
            rows.append(
                _row(
                    f"box selection to map n={n:,}, median of {len(boxes)}",
                    statistics.median(t_map),
                    "s",
                    "each: "
                    + ", ".join(f"{t:.2f} s" for t in t_map)
                    + "; 500 footprints one by one at most, up to 2,000 merged by colour above",
                )
            )
            page.close()
        finally:
            server.stop()
    return rows


def bench_points(browser, n: int) -> list[dict]:
    from insarexplore.app import serve

    rows = []
    data = table_data(n)
    port = free_port()
    t0 = time.perf_counter()
    server = serve(None, data=data, port=port, threaded=True)
    wait_port(port, timeout=600)
    rows.append(
        _row(
            f"server start n={n:,} table-only",
            time.perf_counter() - t0,
            "s",
            "includes datashader warm-up (numba)",
        )
    )
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        rows.append(
            _row(
                f"first full render n={n:,} (datashaded)",
                _load(page, f"http://127.0.0.1:{port}/"),
                "s",
                "cold session",
            )
        )
        page.wait_for_timeout(1500)
        bb = plot_box(page)
        page.mouse.move(bb["x"] + bb["width"] / 2, bb["y"] + bb["height"] / 2)
        before = page.screenshot(clip=bb)
        t0 = time.perf_counter()
        page.mouse.wheel(0, -400)
        changed = False
        while time.perf_counter() - t0 < 60:
            page.wait_for_timeout(100)
            if page.screenshot(clip=bb) != before:
                changed = True
                break
        rows.append(
            _row(
                f"wheel zoom redraw n={n:,}",
                time.perf_counter() - t0 if changed else float("nan"),
                "s",
                "until the plot pixels change (client zoom + server re-rasterisation)",
            )
        )
        page.wait_for_timeout(2500)
        start_text = _selected_text(page)
        t0 = drag(page, 0.2, 0.2, 0.8, 0.8)
        _until(lambda: _selected_text(page) != start_text)
        rows.append(
            _row(
                f"box selection n={n:,} (datashaded)",
                time.perf_counter() - t0,
                "s",
                f"mouse release -> count shown ({_selected_text(page)})",
            )
        )
        page.close()
    finally:
        server.stop()
    return rows


def run(quick: bool = False) -> list[dict]:
    """Playwright timings of the served dashboard (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError("needs Debian's chromium: apt-get install -y chromium")
    n_ws, n_pts = (20_000, 100_000) if quick else (200_000, 1_000_000)
    rows = [_load_row("before")]
    with sync_playwright() as p:
        browser = launch(p)
        try:
            rows += bench_workspace(browser, n_ws) + bench_points(browser, n_pts)
        finally:
            browser.close()
    return rows + [_load_row("after")]


def _load_row(when: str) -> dict:
    one, five, _ = os.getloadavg()
    return _row(
        f"load average {when} the run",
        one,
        "",
        f"1-minute load average (5-minute: {five:.2f}) on {os.cpu_count()} cores",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20k / 100k samples")
    args = parser.parse_args()
    rows = run(quick=args.quick)
    width = max(len(r["metric"]) for r in rows)
    for r in rows:
        print(f"{r['metric']:<{width}}  {r['value']:>9.3f} {r['unit']:<3} {r['note']}")


if __name__ == "__main__":
    main()
