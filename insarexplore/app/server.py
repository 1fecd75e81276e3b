"""``serve(workspace)``: the explorer as a Panel/Bokeh server app (``insarexplore serve``).

A thin wrapper over ``pn.serve`` that adds two read-only routes:

* ``<prefix>/thumb/<sample id>.png``: thumbnails rendered from the workspace's data model. The id
  is looked up in the sample table (unknown ids get 404); nothing from the URL reaches a path.
* ``<prefix>/widgets/<package>@<version>/dist/<file>``: the ipywidgets JavaScript bundles
  (jupyter-leaflet) shipped inside the installed Python packages, so the map works with no
  network (ipywidgets_bokeh would otherwise fetch them from unpkg.com at run time).

The workspace is loaded once and shared by every browser tab; each tab has its own selection and
undo history, and all of them write to the same label store (author = OS user or ``user``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["serve", "widget_bundle_dirs", "build_parser", "main"]


def widget_bundle_dirs() -> dict[str, Path]:
    """Installed classic-notebook widget bundles (AMD modules), by npm package name."""
    roots = [Path(sys.prefix) / "share" / "jupyter" / "nbextensions"]
    try:
        from jupyter_core.paths import jupyter_path

        roots += [Path(p) for p in jupyter_path("nbextensions")]
    except ImportError:
        pass
    found: dict[str, Path] = {}
    for root in roots:
        for name in ("jupyter-leaflet",):
            if (root / name / "index.js").exists() and name not in found:
                found[name] = (root / name).resolve()
    return found


def _handlers(data: Any) -> list[tuple]:
    """Tornado routes for thumbnails and widget bundles (prefixed by Bokeh)."""
    from urllib.parse import unquote

    from tornado.web import HTTPError, RequestHandler

    bundles = widget_bundle_dirs()

    class ThumbHandler(RequestHandler):
        def get(self, sample: str) -> None:
            sample = unquote(sample)
            if not data.has(sample):
                raise HTTPError(404)
            self.set_header("Content-Type", "image/png")
            self.set_header("Cache-Control", "max-age=3600")
            self.write(data.thumbnail(sample))

    class WidgetHandler(RequestHandler):
        def get(self, package: str, version: str, file: str) -> None:
            root = bundles.get(package)
            if root is None:
                raise HTTPError(404)
            name = file if file.endswith((".js", ".png", ".css", ".map")) else f"{file}.js"
            path = (root / name).resolve()
            if path.parent != root or not path.is_file():
                raise HTTPError(404)
            kind = {
                ".js": "application/javascript",
                ".png": "image/png",
                ".css": "text/css",
                ".map": "application/json",
            }[path.suffix]
            self.set_header("Content-Type", kind)
            self.set_header("Cache-Control", "max-age=86400")
            self.write(path.read_bytes())

    return [
        (r"/thumb/([^/]+)\.png", ThumbHandler),
        (r"/widgets/([A-Za-z0-9_.\-]+)@([^/]+)/dist/([A-Za-z0-9_.\-]+)", WidgetHandler),
    ]


def _normalize_prefix(prefix: str | None) -> str:
    prefix = (prefix or "").strip("/")
    return f"/{prefix}" if prefix else ""


def serve(
    workspace: Any,
    *,
    address: str = "127.0.0.1",
    port: int = 5006,
    allow_websocket_origin: list[str] | str | None = None,
    prefix: str | None = None,
    user: str | None = None,
    show: bool = False,
    projection: str = "auto",
    threshold: int = 10_000,
    data: Any = None,
    start: bool = True,
    threaded: bool = False,
    title: str = "insarexplore",
) -> Any:
    """Serve the explorer of ``workspace`` at ``http://address:port/prefix``.

    Binds to 127.0.0.1 by default (local only). ``allow_websocket_origin`` lists the host[:port]
    values browsers may connect from (default: this address and localhost on ``port``);
    ``prefix`` mounts the app under a URL path (behind JupyterHub/Binder proxies). ``user`` is
    recorded as the author of every label (default: the OS user). With ``start=True`` and
    ``threaded=False`` this blocks; otherwise the Bokeh server (or its thread) is returned.
    """
    import panel as pn

    from insarexplore.app.data import ExplorerData
    from insarexplore.app.explorer import Explorer

    if not (0 <= int(port) < 65536):
        raise ValueError(f"port must be in 0..65535; got {port}")
    if data is None:
        data = ExplorerData.from_workspace(workspace, projection=projection)
    if data.n > threshold:
        _warm_up_datashader(data)
    root = _normalize_prefix(prefix)
    origins = allow_websocket_origin
    if origins is None:
        origins = [f"{host}:{port}" for host in dict.fromkeys([address, "127.0.0.1", "localhost"])]
    elif isinstance(origins, str):
        origins = [origins]

    def app() -> Any:
        pn.extension("ipywidgets", notifications=False)
        return Explorer(
            data=data,
            author=user,
            threshold=threshold,
            widget_cdn=f"{root}/widgets",
            thumb_url=f"{root}/thumb",
        )

    return pn.serve(
        app,
        port=int(port),
        address=address,
        websocket_origin=list(origins),
        show=show,
        start=start,
        threaded=threaded,
        title=title,
        prefix=root,
        extra_patterns=_handlers(data),
        verbose=start and not threaded,
    )


def _warm_up_datashader(data: Any) -> None:
    """Compile datashader's numba kernels before the first visitor waits for them.

    With the whole table and the colouring a new session starts with (every sample unlabelled),
    clusters and a numeric field: warming up on a 1,000-row head left about 0.4 s of compilation
    to the first session's first raster at 200,000 samples (measured).
    """
    import pandas as pd

    from insarexplore.app.colors import coloring
    from insarexplore.app.data import field_kinds
    from insarexplore.app.scatter import raster_image

    table = data.table.copy(deep=False)
    table["label"] = pd.Series("", index=table.index, dtype=object)
    kinds = field_kinds(table)
    fields = [("label", "categorical")]
    if "cluster" in kinds:
        fields.append(("cluster", kinds["cluster"]))
    fields += [(f, k) for f, k in kinds.items() if k == "numeric"][:1]
    lo, hi = data.xy.min(axis=0), data.xy.max(axis=0)
    for field, kind in fields:
        c = coloring(table, field, kind, classes=[])
        raster_image(data.xy, c, (lo[0], hi[0]), (lo[1], hi[1]), 64, 64)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``insarexplore serve`` (the CLI reuses this)."""
    p = parser or argparse.ArgumentParser(
        prog="insarexplore serve", description="Serve the explorer dashboard of a workspace."
    )
    p.add_argument("workspace", help="workspace folder")
    p.add_argument("--address", default="127.0.0.1", help="bind address (default: local only)")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=None,
        metavar="HOST[:PORT]",
        help="host a browser may connect from (repeatable), e.g. example.org:443",
    )
    p.add_argument("--prefix", default=None, help="URL prefix, e.g. /user/me/proxy/5006")
    p.add_argument(
        "--user", default=None, help="author name recorded with labels (default: OS user)"
    )
    p.add_argument("--projection", default="auto", choices=["auto", "umap", "pca"])
    p.add_argument("--show", action="store_true", help="open a browser tab")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    serve(
        args.workspace,
        address=args.address,
        port=args.port,
        allow_websocket_origin=args.allow_websocket_origin,
        prefix=args.prefix,
        user=args.user,
        show=args.show,
        projection=args.projection,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
