"""Serve the explorer behind Jupyter's server proxy (JupyterHub, Binder).

``setup_proxy()`` is the ``jupyter_serverproxy_servers`` entry point declared in pyproject.toml:
jupyter-server-proxy calls it when the Jupyter server starts, shows an "InSAR explorer" tile in
the JupyterLab launcher, and on first visit launches ``insarexplore serve`` for the demo
workspace on a free local port, reachable at ``<jupyter base url>/insarexplore/``.

The workspace is ``$INSAREXPLORE_WORKSPACE`` or ``~/demo-workspace`` (where binder/postBuild
builds it). ``python -m insarexplore.app.proxy --check`` validates the configuration.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

__all__ = ["PROXY_NAME", "default_workspace", "setup_proxy", "main"]

#: URL path segment under the Jupyter base URL, and the entry point's name.
PROXY_NAME = "insarexplore"


def default_workspace() -> Path:
    """The workspace the proxied dashboard serves: ``$INSAREXPLORE_WORKSPACE`` or ~/demo-workspace."""
    return Path(os.environ.get("INSAREXPLORE_WORKSPACE", "~/demo-workspace")).expanduser()


def setup_proxy() -> dict[str, Any]:
    """jupyter-server-proxy configuration that launches ``insarexplore serve`` for the workspace.

    ``{port}`` and ``{base_url}`` are filled in by jupyter-server-proxy. The app is told its
    full public prefix (``absolute_url=True`` keeps that prefix on proxied requests), so
    Bokeh's resources and websocket resolve behind the proxy.

    Only the proxy may use the dashboard: the Jupyter server authenticates the browser and checks
    its Origin; the dashboard binds to 127.0.0.1, accepts websocket origins and Host headers of
    ``127.0.0.1:{port}`` only (the proxy sends those instead of the public ones) and requires an
    access token, made anew at each Jupyter start, that the proxy adds to every request as a
    header (so other users of a shared machine cannot connect to the port). The token travels in
    the environment, not the command line (visible to everyone in ``ps``).
    """
    from insarexplore.app.server import TOKEN_ENV, TOKEN_HEADER

    token = secrets.token_urlsafe(32)
    command = [
        sys.executable,
        "-m",
        "insarexplore.cli",
        "serve",
        str(default_workspace()),
        "--port",
        "{port}",
        "--address",
        "127.0.0.1",
        "--prefix",
        "{base_url}" + PROXY_NAME,
        "--allow-websocket-origin",
        "127.0.0.1:{port}",
        "--require-token",
    ]
    return {
        "command": command,
        "absolute_url": True,
        "timeout": 120,  # first start imports panel/holoviews and loads the workspace
        "environment": {"PYDEVD_DISABLE_FILE_VALIDATION": "1", TOKEN_ENV: token},
        "request_headers_override": {
            "Host": "127.0.0.1:{port}",
            "Origin": "http://127.0.0.1:{port}",
            TOKEN_HEADER: token,
        },
        "new_browser_tab": True,
        "launcher_entry": {"title": "InSAR explorer", "category": "Notebook"},
    }


def _check() -> int:
    """Validate the entry point, its configuration and the workspace; print what was found."""
    from importlib.metadata import entry_points

    found = [
        ep for ep in entry_points(group="jupyter_serverproxy_servers") if ep.name == PROXY_NAME
    ]
    if not found:
        print(
            f"error: no '{PROXY_NAME}' entry point in group jupyter_serverproxy_servers; "
            "is insarexplore installed (pip install -e .)?",
            file=sys.stderr,
        )
        return 1
    config = found[0].load()()
    try:
        from jupyter_server_proxy.config import ServerProcess
    except ImportError:
        print("note: jupyter-server-proxy is not installed (pip install 'insarexplore[binder]')")
    else:
        ServerProcess(name=PROXY_NAME, **config)  # raises on an invalid configuration
    print(f"entry point {found[0].value} ok; command: {' '.join(config['command'])}")
    workspace = default_workspace()
    state = "exists" if (workspace / "workspace.json").exists() else "not built yet"
    print(f"workspace {workspace}: {state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m insarexplore.app.proxy",
        description="Show or check the jupyter-server-proxy configuration of the explorer.",
    )
    parser.add_argument("--check", action="store_true", help="validate the entry point")
    args = parser.parse_args(argv)
    if args.check:
        return _check()
    print(" ".join(setup_proxy()["command"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
