"""Hover thumbnails for sample ids that are paths ("deformation/x.png"): issue 14."""

from __future__ import annotations

import urllib.parse
import urllib.request

import numpy as np


def test_the_tooltip_encodes_ids_and_the_server_serves_them(tmp_path):
    from insarexplore.app._browser import free_port, wait_port
    from insarexplore.app.server import serve
    from insarexplore.data.schema import new_dataset
    from insarexplore.workspace import Workspace

    rng = np.random.default_rng(0)
    ws = Workspace.create(tmp_path / "ws")
    ids = [f"{c}/scene_{i}.png" for i, c in enumerate(["deformation", "none"] * 6)]
    ws.add_data(new_dataset(phase=rng.uniform(-3, 3, (12, 16, 16)).astype(np.float32), sample=ids))
    version, _ = ws.new_model_dir("test")
    ws.set_current_model(version)
    ws.save_embeddings(version, ws.sample_ids(), rng.normal(size=(12, 4)).astype(np.float32))
    port = free_port()
    server = serve(ws.path, port=port, threaded=True, projection="pca", announce=False)
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}/thumb/{urllib.parse.quote(ids[3], safe='')}.png"
        with urllib.request.urlopen(url, timeout=120) as resp:
            assert resp.status == 200 and resp.read()[:4] == b"\x89PNG"
    finally:
        server.stop()

    from insarexplore.app.explorer import Explorer

    view = Explorer(ws.path, thumb_url="/thumb").scatter
    points = view._points(view.state.color_by, 0)
    tools = points.opts.get().kwargs["tools"]
    hover = [t for t in tools if type(t).__name__ == "HoverTool"]
    assert hover and "@sample{custom}" in hover[0].tooltips
    assert "encodeURIComponent" in hover[0].formatters["@sample"].code
