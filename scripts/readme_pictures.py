#!/usr/bin/env python
"""Make the README's pictures: the demo dashboard with a cluster lassoed and labelled.

Builds the demo workspace (``insarexplore demo`` without serving; each step is skipped when its
result is there, so a second run reuses it), serves the dashboard of a fresh copy of it on a
free local port and drives Debian's headless chromium with Playwright through the first five
minutes of the README: colour by cluster, lasso one cluster, add a class and label the
selection, focus one of its samples. That view becomes ``docs/screenshot.png``. Then it labels a
second cluster, trains the few-shot model and asks for suggestions, and saves one small picture
of each step (``docs/step-*.png``). The demo workspace itself is never labelled: labels go to
the copy (``--session``).

Examples:

    python scripts/readme_pictures.py                       # build/readme-demo, docs/*.png
    python scripts/readme_pictures.py --workspace demo-workspace
    python scripts/readme_pictures.py --quick --out /tmp/shot.png --step-dir /tmp

Needs ``playwright`` (the Python package, never ``playwright install``) and /usr/bin/chromium
(``make browser``). Bad input prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKSPACE = ROOT / "build" / "readme-demo"
VIEWPORT = (1500, 1150)
STEP_WIDTH = 760  # step pictures are scaled down to at most this width
MARKER = ".readme-pictures-copy"  # marks the session copies this script may replace
MAX_BYTES = 180_000  # pictures larger than this in full colour are palette-coded
#: class names for a cluster whose samples are mostly of one synthetic class
CLASS_NAMES = {"mogi": "uplift", "dyke": "dyke", "subsidence": "subsidence"}
#: (file name, what it shows) of each step picture, in the README's order
STEPS = (
    ("step-1-open.png", "the dashboard as it opens"),
    ("step-2-cluster.png", "coloured by cluster"),
    ("step-3-lasso.png", "one cluster lassoed"),
    ("step-4-label.png", "the selection labelled"),
    ("step-5-train.png", "few-shot predictions"),
    ("step-6-suggest.png", "suggestions"),
)


class UsageError(Exception):
    """Bad input: printed as one line, exit status 2."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="readme_pictures.py",
        description=__doc__,
        epilog="The picture is regenerated, never drawn by hand: rerun this after UI changes.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--workspace",
        type=Path,
        default=DEFAULT_WORKSPACE,
        metavar="DIR",
        help="demo workspace to reuse, built there when missing or unfinished "
        "(default: build/readme-demo)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "docs" / "screenshot.png",
        metavar="PNG",
        help="the README's picture (default: docs/screenshot.png)",
    )
    p.add_argument(
        "--step-dir",
        type=Path,
        default=ROOT / "docs",
        metavar="DIR",
        help="folder of the step pictures step-1-open.png ... step-6-suggest.png (default: docs)",
    )
    p.add_argument(
        "--no-step-pictures",
        action="store_true",
        help="only the screenshot: no second class, training or suggestions",
    )
    p.add_argument(
        "--session",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the labelled copy the dashboard serves in DIR/demo-workspace "
        "(default: a temporary folder, removed at the end)",
    )
    p.add_argument(
        "--cluster",
        type=int,
        default=None,
        metavar="K",
        help="cluster to lasso (default: a large one that a loop can hold alone)",
    )
    p.add_argument(
        "--label",
        default=None,
        metavar="NAME",
        help="class name for it (default: from the cluster's synthetic class, e.g. uplift)",
    )
    build = p.add_argument_group("building the demo workspace (as `insarexplore demo`)")
    build.add_argument("--quick", action="store_true", help="the demo's one-minute smoke size")
    build.add_argument("-n", type=int, default=None, help="number of samples")
    build.add_argument("--steps", type=int, default=None, help="pretraining steps")
    build.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="pretraining wall-clock guard (default: 30, so that a busy machine still trains "
        "the demo's full number of steps; the demo's own guard with --quick)",
    )
    build.add_argument("--quiet", action="store_true", help="no progress lines")
    args = p.parse_args(argv)
    if args.minutes is None and not args.quick:
        args.minutes = 30.0
    return args


def log(args: argparse.Namespace, t0: float, text: str) -> None:
    if not args.quiet:
        print(f"[{time.perf_counter() - t0:5.0f} s] {text}", file=sys.stderr, flush=True)


def check_args(args: argparse.Namespace) -> None:
    from insarexplore.app._browser import CHROMIUM

    ws = args.workspace
    if ws.exists() and not ws.is_dir():
        raise UsageError(f"--workspace {ws} is a file, not a workspace folder")
    if ws.is_dir() and any(ws.iterdir()) and not (ws / "workspace.json").exists():
        raise UsageError(f"--workspace {ws} is a non-empty folder but not a workspace")
    if args.out.suffix.lower() != ".png":
        raise UsageError(f"--out must name a .png file; got {args.out}")
    for folder in (args.out.parent, args.step_dir):
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder} is a file, not a folder")
    if args.session is not None:
        copy = args.session / "demo-workspace"
        if copy.exists() and not (copy / MARKER).exists():
            raise UsageError(f"{copy} exists and is not a copy made by this script: not replaced")
    if args.cluster is not None and args.cluster < 0:
        raise UsageError(f"--cluster must be a cluster number (0 or more); got {args.cluster}")
    if args.label is not None and not args.label.strip():
        raise UsageError("--label must not be empty")
    from insarexplore.demo import plan_demo

    try:
        plan_demo(n=args.n, steps=args.steps, minutes=args.minutes, quick=args.quick, device="cpu")
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not Path(CHROMIUM).exists():
        raise UsageError(f"{CHROMIUM} not found: install Debian's chromium (make browser)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"playwright is not installed ({exc}): pip install playwright") from exc


def session_copy(workspace: Path, parent: Path) -> Path:
    """A copy of the demo workspace without its labels (checkpoints and logs left out).

    An earlier copy (it carries :data:`MARKER`) is replaced; any other folder of that name is
    refused, never deleted.
    """
    dest = parent / "demo-workspace"  # the dashboard's title shows this folder's name
    if dest.exists():
        if not (dest / MARKER).exists():
            raise UsageError(f"{dest} exists and is not a copy made by this script: not replaced")
        shutil.rmtree(dest)
    skip = shutil.ignore_patterns("labels.sqlite*", "checkpoint.pt", "tensorboard", "*.lock")
    shutil.copytree(workspace, dest, ignore=skip)
    (dest / MARKER).write_text("a copy made by scripts/readme_pictures.py; safe to delete\n")
    return dest


def hull(points: np.ndarray, pad: float) -> np.ndarray:
    """Convex hull of ``points`` pushed out by ``pad`` from its centre (closed loop order)."""
    from scipy.spatial import ConvexHull

    ring = points[ConvexHull(points).vertices]
    centre = ring.mean(axis=0)
    away = ring - centre
    dist = np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-12)
    return ring + away / dist * pad


def choose_clusters(table: Any, scale: np.ndarray, pad_px: float) -> list[tuple[int, str, float]]:
    """Clusters worth lassoing, best first: ``(cluster, majority class, hull purity)``.

    A cluster qualifies when the loop drawn around it (its convex hull, ``pad_px`` screen
    pixels out; ``scale`` is data units per pixel in x and y) holds few samples of other
    clusters. Larger, purer clusters of one deformation class come first.
    """
    from matplotlib.path import Path as MplPath

    xy = table[["x", "y"]].to_numpy(dtype=np.float64) / scale
    cluster = table["cluster"].to_numpy()
    truth = table["source_label"].astype(str).to_numpy() if "source_label" in table else None
    ranked = []
    for c in np.unique(cluster[cluster >= 0]):
        member = cluster == c
        if member.sum() < 5:
            continue
        inside = MplPath(hull(xy[member], pad_px)).contains_points(xy)
        purity = float(member[inside].mean()) if inside.any() else 0.0
        major, share = "", 0.0
        if truth is not None:
            names, counts = np.unique(truth[member], return_counts=True)
            major, share = str(names[counts.argmax()]), float(counts.max() / member.sum())
        deform = 1.0 if major in CLASS_NAMES else 0.5
        score = member.sum() * purity**4 * max(share, 0.25) * deform
        ranked.append((score, int(c), major, purity))
    ranked.sort(reverse=True)
    return [(c, major, purity) for _, c, major, purity in ranked]


def class_name(major: str, taken: set[str]) -> str:
    name = CLASS_NAMES.get(major, major or "deformation")
    return name if name not in taken else f"{name} 2"


def save_png(page: Any, path: Path, clip: dict | None = None, width: int | None = None) -> int:
    """Screenshot (the viewport, or ``clip`` of the page) to ``path``, scaled to ``width``.

    Kept in full colour when that is under :data:`MAX_BYTES`, else palette-coded (256 colours
    by median cut: the look of the page, at about half the size). Returns the file's size.
    """
    from PIL import Image

    raw = page.screenshot(full_page=clip is not None, clip=clip)
    img = Image.open(io.BytesIO(raw)).convert("RGB")
    if width is not None and img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    if buf.tell() > MAX_BYTES:
        buf = io.BytesIO()
        img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buf, format="PNG", optimize=True
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return path.stat().st_size


def card_box(page: Any, title: str, below: str | None = None, right_of: str | None = None) -> dict:
    """Page rectangle of the dashboard card titled ``title``, from its header text's position.

    The card ends where the card titled ``below`` starts (or at the page's bottom) and, when
    ``right_of`` is given, the rectangle spans from ``title``'s card to the page's right edge.
    """
    sx, sy, page_w, page_h = page.evaluate(
        "[window.scrollX, window.scrollY, document.documentElement.scrollWidth,"
        " document.documentElement.scrollHeight]"
    )

    def at(text: str) -> dict:  # bounding boxes are in the viewport; clips are in the page
        bb = page.get_by_text(text, exact=True).first.bounding_box()
        return {"x": bb["x"] + sx, "y": bb["y"] + sy}

    head = at(title)
    left, top = max(head["x"] - 14, 0), max(head["y"] - 10, 0)
    bottom = at(below)["y"] - 12 if below is not None else page_h
    right = at(right_of)["x"] - 14 if right_of is not None else page_w
    return {"x": left, "y": top, "width": right - left, "height": bottom - top}


def labels_in(ws: Path) -> dict[str, str]:
    """Current labels in the workspace's label store (``sample -> class``), read only."""
    from insarexplore.explore.labels import LabelStore

    if not (ws / "labels.sqlite").exists():
        return {}
    with LabelStore(ws / "labels.sqlite", readonly=True) as store:
        return store.current()


def lasso_cluster(page: Any, data: Any, cluster: int, pad_px: float) -> np.ndarray:
    """Lasso ``cluster`` along its padded hull on screen; the mask of the samples it selects."""
    from matplotlib.path import Path as MplPath

    from insarexplore.app._browser import lasso, plot_frame

    f = plot_frame(page)
    sx, sy = (f["x1"] - f["x0"]) / f["width"], (f["y1"] - f["y0"]) / f["height"]
    xy = data.table[["x", "y"]].to_numpy(dtype=np.float64)
    member = data.table["cluster"].to_numpy() == cluster
    ring = hull(xy[member] / [sx, sy], pad_px)  # in pixels, y up
    pts = [(f["left"] + x - f["x0"] / sx, f["top"] + f["y1"] / sy - y) for x, y in ring]
    lasso(page, pts)
    loop = np.array(
        [(f["x0"] + (x - f["left"]) * sx, f["y1"] - (y - f["top"]) * sy) for x, y in pts]
    )
    return MplPath(loop).contains_points(xy)


def cards_of(page: Any, ids: Any) -> Any:
    """Locator of the gallery cards of any of ``ids`` (card buttons are named by sample id)."""
    import re

    return page.get_by_role("button", name=re.compile("^(" + "|".join(map(re.escape, ids)) + ")$"))


def wait_for_selection(page: Any, data: Any, mask: np.ndarray) -> int:
    """Wait until the gallery shows the lassoed samples; the number the server selected.

    ``mask`` (the samples inside the drawn loop, worked out here) is for finding their cards
    and a warning only: the server decides, on the loop the browser sent.
    """
    import re

    cards_of(page, data.table.index[mask]).first.wait_for(timeout=30_000)
    page.wait_for_timeout(2000)  # map rings and scatter rings drawn too
    info = page.get_by_text(re.compile(r"^[\d,]+ samples · page 1/")).first.inner_text()
    got = int(re.match(r"[\d,]+", info).group(0).replace(",", ""))
    expected = int(mask.sum())
    if abs(got - expected) > max(2, expected // 50):
        print(f"warning: the lasso selected {got} samples, {expected} expected", file=sys.stderr)
    return got


def drive(args: argparse.Namespace, t0: float, page: Any, data: Any, ws: Path) -> dict[str, Any]:
    """The README's first five minutes in the open page; writes the pictures."""
    import re

    from insarexplore.app._browser import label_selection, plot_frame, wait_until

    made: dict[str, Any] = {"pictures": {}}
    steps = not args.no_step_pictures

    def step(k: int, clip: dict) -> None:
        if steps:
            name, what = STEPS[k - 1]
            size = save_png(page, args.step_dir / name, clip=clip, width=STEP_WIDTH)
            made["pictures"][args.step_dir / name] = size
            log(args, t0, f"step {k}: {what} -> {args.step_dir / name} ({size / 1e3:.0f} kB)")

    def top_row() -> dict:
        return card_box(page, "Embedding map", below="Gallery")

    def scatter_card() -> dict:
        return card_box(page, "Embedding map", below="Gallery", right_of="Footprints")

    step(1, top_row())

    log(args, t0, "colour by cluster")
    select = page.locator("select", has=page.locator("option[value='cluster']")).first
    select.select_option("cluster")
    page.get_by_text(re.compile(r"^cluster \d+ \(\d+\)$")).first.wait_for(timeout=30_000)
    page.wait_for_timeout(1500)
    step(2, scatter_card())

    f = plot_frame(page)
    scale = np.array([(f["x1"] - f["x0"]) / f["width"], (f["y1"] - f["y0"]) / f["height"]])
    ranked = choose_clusters(data.table, scale, pad_px=6.0)
    if args.cluster is not None:
        known = {c for c, _, _ in ranked}
        if args.cluster not in known:
            raise UsageError(
                f"--cluster {args.cluster} is not a cluster of 5 or more samples here; "
                f"there are: {', '.join(map(str, sorted(known)))}"
            )
        ranked = sorted(ranked, key=lambda r: r[0] != args.cluster)
    if not ranked:
        raise UsageError("no cluster of 5 or more samples to lasso")
    cluster, major, purity = ranked[0]
    size = int((data.table["cluster"] == cluster).sum())
    name = args.label.strip() if args.label else class_name(major, set())
    log(args, t0, f"lasso cluster {cluster} ({size} samples, mostly {major or '?'}) as {name!r}")
    mask = lasso_cluster(page, data, cluster, pad_px=6.0)
    selected = wait_for_selection(page, data, mask)
    step(3, card_box(page, "Embedding map", below="Detail"))

    log(args, t0, f"add class {name!r}, label the {selected} selected samples")
    label_selection(page, name)
    if not wait_until(lambda: list(labels_in(ws).values()).count(name) == selected):
        raise RuntimeError(f"the label {name!r} did not reach {ws / 'labels.sqlite'}")
    # focus a card of the selection: the detail view shows it, the scatter stars it
    cards_of(page, data.table.index[mask]).first.click()
    # the detail card's title; an earlier, hidden copy may come first in the page: any shown one
    page.get_by_text("wrapped phase").filter(visible=True).first.wait_for(timeout=60_000)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(2500)
    made["screenshot"] = args.out
    made["pictures"][args.out] = save_png(page, args.out)
    log(args, t0, f"screenshot -> {args.out} ({made['pictures'][args.out] / 1e3:.0f} kB)")
    step(4, card_box(page, "Gallery", below="Detail"))
    made.update(cluster=cluster, label=name, labelled=selected, purity=purity)
    if not steps:
        return made

    others = [r for r in ranked[1:] if class_name(r[1], {name}) != name] or ranked[1:]
    if not others:
        raise UsageError("only one cluster here: a second class is needed to train")
    second, major2, _ = others[0]
    name2 = class_name(major2, {name})
    log(args, t0, f"second class: lasso cluster {second} as {name2!r}, then train")
    wait_for_selection(page, data, lasso_cluster(page, data, second, pad_px=6.0))
    label_selection(page, name2)
    if not wait_until(lambda: name2 in set(labels_in(ws).values())):
        raise RuntimeError(f"the label {name2!r} did not reach {ws / 'labels.sqlite'}")
    page.get_by_role("button", name="Train few-shot").click()
    page.get_by_text(re.compile(r"predictions for [\d,]+ samples")).first.wait_for(timeout=180_000)
    page.wait_for_timeout(2500)
    step(5, top_row())

    log(args, t0, "suggest next")
    page.get_by_role("button", name="Suggest next").click()
    page.get_by_text(re.compile(r"\d+ suggestions \(")).first.wait_for(timeout=60_000)
    page.wait_for_timeout(2500)
    step(6, card_box(page, "Gallery", below="Detail", right_of="Labels"))
    return made


def make_pictures(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run; returns what it made (pictures and sizes, cluster, class, session copy)."""
    from playwright.sync_api import sync_playwright

    from insarexplore.app import serve
    from insarexplore.app._browser import free_port, launch, open_dashboard, wait_port
    from insarexplore.app.data import ExplorerData
    from insarexplore.demo import plan_demo, prepare_demo

    t0 = time.perf_counter()
    projection = plan_demo(quick=args.quick, device="cpu").projection
    log(args, t0, f"demo workspace {args.workspace} (built or completed where needed)")
    prepare_demo(
        args.workspace,
        n=args.n,
        steps=args.steps,
        minutes=args.minutes,
        quick=args.quick,
        device="cpu",
        projection=projection,
        quiet=args.quiet,
    )
    tmp = None
    if args.session is None:
        tmp = tempfile.TemporaryDirectory(prefix="readme-pictures-")
        parent = Path(tmp.name)
    else:
        parent = args.session
        parent.mkdir(parents=True, exist_ok=True)
    server = None
    try:
        ws = session_copy(args.workspace, parent)
        data = ExplorerData.from_workspace(ws, projection=projection)
        if "cluster" not in data.table or not (data.table["cluster"] >= 0).any():
            raise UsageError(f"{args.workspace} has no cluster proposals to lasso")
        port = free_port()
        server = serve(
            ws, port=port, threaded=True, projection=projection, data=data, user="readme"
        )
        wait_port(port)
        url = f"http://127.0.0.1:{port}/"
        log(args, t0, f"dashboard of {data.n:,} samples at {url}; headless chromium")
        with sync_playwright() as pw:
            browser = launch(pw)
            try:
                page, errors = open_dashboard(browser, url, *VIEWPORT)
                page.get_by_text("footprints", exact=False).first.wait_for(timeout=30_000)
                page.wait_for_timeout(1500)
                made = drive(args, t0, page, data, ws)
            finally:
                browser.close()
        if errors:
            log(args, t0, f"warning: {len(errors)} JavaScript errors, the first: {errors[0]}")
        made.update(session=ws, js_errors=errors)
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()
    made["seconds"] = time.perf_counter() - t0
    log(args, t0, f"done in {made['seconds']:.0f} s")
    return made


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
        make_pictures(args)
    except UsageError as exc:
        print(f"readme_pictures.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("readme_pictures.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
