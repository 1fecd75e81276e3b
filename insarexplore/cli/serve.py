"""Commands that serve the dashboard: ``serve`` and the one-command ``demo``."""

from __future__ import annotations

import argparse
from typing import Any

from insarexplore.cli._common import (
    DEFAULT_DEMO_DIR,
    PROG,
    add_command,
    add_device,
    open_workspace,
    positive_float,
    positive_int,
    say,
    seed_int,
)


def _cmd_serve(args: argparse.Namespace) -> int:
    import errno
    import os

    # before anything imports ipykernel's debugger (pydevd warns when a browser connects)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    from insarexplore.app.server import (
        access_policy,
        auth_options,
        serve,
        serve_options,
        serve_until_stopped,
    )

    if not (0 <= args.port < 65536):
        raise ValueError(f"--port must be in 0..65535; got {args.port}")
    # bad access settings fail before the workspace is loaded
    access_policy(
        args.address,
        args.port or 5006,
        allow_websocket_origin=args.allow_websocket_origin,
        **auth_options(args),
    )
    ws = open_workspace(args.workspace)
    say(f"loading {ws.path} ...")
    try:
        server = serve(ws, start=False, announce=False, **serve_options(args))
    except OSError as exc:
        if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise ValueError(
                f"cannot listen on {args.address}:{args.port}: {exc.strerror}"
            ) from None
        raise
    for line in server.access.warnings:
        say(f"{PROG} serve: warning: {line}")
    serve_until_stopped(server)
    return 0


def add_serve(sub: Any) -> None:
    from insarexplore.app.server import build_parser as add_serve_arguments

    p = add_command(
        sub,
        "serve",
        _cmd_serve,
        "serve the explorer dashboard of a workspace in the browser",
        """
  insarexplore serve demo-workspace                      # http://127.0.0.1:5006/
  insarexplore serve ws/ --port 8080 --user alice --show
  insarexplore serve ws/ --address 0.0.0.0 --allow-websocket-origin myhost:5006
        # prints http://HOST:5006/?token=...: open that URL (the token is new at each start)
  insarexplore serve ws/ --address 0.0.0.0 --allow-websocket-origin myhost:5006 \\
        --basic-auth users.json                        # Panel login page instead of a token
  insarexplore serve ws/ --prefix /user/me/proxy/5006     # behind JupyterHub's proxy
  ssh -L 5006:127.0.0.1:5006 server                       # or: serve on 127.0.0.1, tunnel in
""",
        description=(
            "Serve the dashboard (scatter, map, gallery, labelling, few-shot model) of a\n"
            "workspace. Binds to 127.0.0.1 unless --address says otherwise; on any other\n"
            "address it requires an access token (printed in the URL) or --basic-auth.\n"
            "Every tab writes to the workspace's label store; labels are recorded with --user\n"
            "as author."
        ),
    )
    add_serve_arguments(p)


def _cmd_demo(args: argparse.Namespace) -> int:
    import os

    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    from insarexplore.demo import run_demo

    run_demo(
        args.directory,
        n=args.n,
        size=args.size,
        steps=args.steps,
        minutes=args.minutes,
        device=args.device,
        projection=args.projection,
        quick=args.quick,
        seed=args.seed,
        serve=not args.no_serve,
        port=args.port,
        address=args.address,
        show=args.show,
    )
    if args.no_serve:
        say(f"demo workspace ready; serve it with: insarexplore serve {args.directory}")
    return 0


def add_demo(sub: Any) -> None:
    p = add_command(
        sub,
        "demo",
        _cmd_demo,
        "synthesise, pretrain, embed, project, then serve the dashboard (the whole path)",
        f"""
  insarexplore demo                        # ./{DEFAULT_DEMO_DIR}, about 5 minutes on 2 idle CPU cores
  insarexplore demo ~/insar-demo --show    # and open a browser tab
  insarexplore demo --device cuda          # more samples, larger encoder, longer budget
  insarexplore demo --quick --port 0       # tiny smoke test on a free port
  insarexplore demo --no-serve             # build only (Binder's postBuild does this)
""",
        description=(
            "One command from nothing to a served dashboard: synthesise 3,000 labelled\n"
            "interferograms (64 px; four classes: Mogi, dyke, subsidence, none, at the easy\n"
            "difficulty), pretrain an encoder for a fixed number of steps (1,200 on CPU: about\n"
            "4 minutes on 2 idle cores; more data, a larger model and more steps on a GPU), embed,\n"
            "fit the UMAP map and its cluster proposals, then serve the dashboard and print its\n"
            "URL. The step budget makes the result the same on a busy machine; a wall-clock\n"
            "guard (--minutes) cuts pretraining short, and says so, when the machine is too\n"
            "busy. Each step is skipped when its result exists: re-running reuses what is done,\n"
            "and an interrupted run resumes."
        ),
    )
    p.add_argument(
        "directory", nargs="?", default=DEFAULT_DEMO_DIR, help=f"workspace (./{DEFAULT_DEMO_DIR})"
    )
    p.add_argument("-n", type=positive_int, default=None, help="samples (3000; 20000 on GPU)")
    p.add_argument("--size", type=positive_int, default=None, help="pixels per side (64)")
    p.add_argument(
        "--steps", type=positive_int, default=None, help="pretraining steps (1200; 4000 on GPU)"
    )
    p.add_argument(
        "--minutes",
        type=positive_float,
        default=None,
        help="wall-clock guard on pretraining: stop (and say so) after this long (8; 10 on GPU)",
    )
    p.add_argument("--projection", choices=["umap", "pca"], default=None, help="map (umap)")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--no-serve", action="store_true", help="build the workspace, do not serve")
    p.add_argument("--port", type=int, default=5006, help="dashboard port (0: any free port)")
    p.add_argument("--address", default="127.0.0.1", help="bind address (default: local only)")
    p.add_argument("--show", action="store_true", help="open a browser tab")
    add_device(p)
