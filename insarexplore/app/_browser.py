"""Driving the served dashboard in Debian's chromium with Playwright (browser tests, benchmark).

Shared by ``tests/app/test_ui.py``, ``benchmarks/bench_dashboard.py`` and
``scripts/readme_pictures.py`` so they launch the browser the same way (flags known to work
without a GPU or network, see ENVIRONMENT.md), count the same JavaScript errors and drag
selections the same way. Needs ``playwright`` (the Python
package only: never ``playwright install``) and ``/usr/bin/chromium`` (``apt-get install -y
chromium``).
"""

from __future__ import annotations

import socket
import time
from typing import Any

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "launch",
    "watch_errors",
    "free_port",
    "wait_port",
    "plot_box",
    "drag",
    "open_dashboard",
    "wait_until",
    "label_selection",
    "plot_frame",
    "lasso",
]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Any, executable: str = CHROMIUM) -> Any:
    """A headless Debian chromium from a started ``sync_playwright()`` object."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)


def watch_errors(page: Any) -> list[str]:
    """Collect the page's JavaScript errors into the returned (growing) list.

    Failed network loads are not counted: map tiles and CDN fonts cannot load offline, and
    that is not an error of the app.
    """
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

    def on_console(msg: Any) -> None:
        if msg.type == "error" and "Failed to load resource" not in msg.text:
            errors.append(f"console: {msg.text}")

    page.on("console", on_console)
    return errors


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 120.0) -> None:
    """Block until something listens on ``127.0.0.1:port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"no server on port {port} after {timeout:.0f} s")


def plot_box(page: Any) -> dict:
    """Bounding box of the largest canvas on the page (the scatter plot)."""
    boxes = [c.bounding_box() for c in page.locator("canvas").all()]
    return max((b for b in boxes if b), key=lambda b: b["width"] * b["height"])


def drag(page: Any, fx0: float, fy0: float, fx1: float, fy1: float, steps: int = 6) -> float:
    """Drag with the active (box-select) tool between fractions of the plot area.

    Returns ``time.perf_counter()`` at the release of the mouse button: when the selection is
    made, so timings of what follows start there and not at the start of the drag.
    """
    bb = plot_box(page)
    top, h = bb["y"] + 40, bb["height"] - 50  # below the toolbar

    def at(fx: float, fy: float) -> tuple[float, float]:
        return bb["x"] + 15 + fx * (bb["width"] - 30), top + fy * h

    page.mouse.move(*at(fx0, fy0))
    page.mouse.down()
    page.mouse.move(*at((fx0 + fx1) / 2, (fy0 + fy1) / 2), steps=steps)
    page.mouse.move(*at(fx1, fy1), steps=steps)
    released = time.perf_counter()
    page.mouse.up()
    return released


def open_dashboard(browser: Any, url: str, width: int = 1500, height: int = 1150) -> tuple:
    """``(page, errors)``: a new page on the dashboard at ``url``, its scatter and map drawn."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(60_000)
    errors = watch_errors(page)
    page.goto(url)
    page.locator("canvas").first.wait_for(state="visible", timeout=90_000)
    page.locator(".leaflet-container").first.wait_for(state="visible", timeout=90_000)
    return page, errors


def wait_until(check: Any, timeout: float = 30.0) -> bool:
    """Poll ``check()`` until it is true or ``timeout`` seconds have passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return bool(check())


def label_selection(page: Any, name: str) -> None:
    """Type ``name`` under *New class*, press *Add class*, then *Label selection*."""
    page.get_by_placeholder("e.g. deformation").fill(name)
    page.get_by_role("button", name="Add class").click()
    page.wait_for_timeout(700)
    page.get_by_role("button", name="Label selection").click()


_FRAME_JS = """() => {
  const plots = [];
  const seen = new Set();
  const walk = (view) => {
    if (!view || seen.has(view)) return;
    seen.add(view);
    if (view.frame && view.frame.x_range && view.canvas_view) plots.push(view);
    for (const child of view.children ? view.children() : []) walk(child);
  };
  for (const root of Bokeh.index.roots) walk(root);
  const area = (v) => v.frame.bbox.width * v.frame.bbox.height;
  const plot = plots.sort((a, b) => area(b) - area(a))[0];
  if (!plot) return null;
  const canvas = plot.canvas_view.el.getBoundingClientRect();
  const f = plot.frame, bbox = f.bbox;
  return {
    x0: f.x_range.start, x1: f.x_range.end, y0: f.y_range.start, y1: f.y_range.end,
    left: canvas.left + window.scrollX + bbox.left, top: canvas.top + window.scrollY + bbox.top,
    width: bbox.width, height: bbox.height,
  };
}"""


def plot_frame(page: Any) -> dict:
    """Data ranges and page position of the largest Bokeh plot (the scatter), from BokehJS.

    Returns ``x0, x1, y0, y1`` (the data at the frame's edges) and ``left, top, width, height``
    (the frame in page pixels), so data coordinates can be turned into mouse positions.
    """
    frame = page.evaluate(_FRAME_JS)
    if not frame:
        raise RuntimeError("no Bokeh plot on the page")
    return frame


def lasso(page: Any, points: list[tuple[float, float]], steps: int = 3) -> float:
    """Pick the lasso tool and draw through ``points`` (page pixels), closing the loop.

    Returns ``time.perf_counter()`` at the release of the mouse button. The box-select tool is
    active again afterwards, as the dashboard starts.
    """
    page.locator("[title='Lasso Select']").first.click()
    page.mouse.move(*points[0])
    page.mouse.down()
    for pt in [*points[1:], points[0]]:
        page.mouse.move(*pt, steps=steps)
    released = time.perf_counter()
    page.mouse.up()
    page.locator("[title='Box Select']").first.click()
    return released
