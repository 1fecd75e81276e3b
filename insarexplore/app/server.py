"""``serve(workspace)``: the explorer as a Panel/Bokeh server app (``insarexplore serve``).

A thin wrapper over ``pn.serve`` that adds two read-only routes:

* ``<prefix>/thumb/<sample id>.png``: thumbnails rendered from the workspace's data model. The id
  is looked up in the sample table (unknown ids get 404); nothing from the URL reaches a path.
* ``<prefix>/widgets/<package>@<version>/dist/<file>``: the ipywidgets JavaScript bundles
  (jupyter-leaflet) shipped inside the installed Python packages, so the map works with no
  network (ipywidgets_bokeh would otherwise fetch them from unpkg.com at run time).

The workspace is loaded once and shared by every browser tab; each tab has its own selection and
undo history, and all of them write to the same label store (author = OS user or ``user``).

Access control (:func:`access_policy`): on a loopback address (127.0.0.1, ::1, localhost) the
dashboard is open to local users only and needs no login. On any other address it requires an
access token made at each start (the printed URL carries it as ``?token=...``; the browser keeps
it in a cookie) or, with ``basic_auth``, Panel's login page; ``auth="none"`` (``--no-auth``) turns
that off with a warning. Every request's Host header must name an allowed host (403 otherwise: no
DNS rebinding), websocket origins are checked by Bokeh, and Bokeh session ids are signed with a
per-start secret, so a client cannot make up its own session token.
"""

from __future__ import annotations

import argparse
import fnmatch
import hmac
import ipaddress
import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AccessPolicy",
    "TOKEN_ENV",
    "TOKEN_HEADER",
    "access_policy",
    "serve",
    "serve_until_stopped",
    "widget_bundle_dirs",
    "build_parser",
    "serve_options",
    "main",
]

#: Environment variable that sets the access token (the Jupyter proxy uses it); default: random.
TOKEN_ENV = "INSAREXPLORE_TOKEN"
#: Request header that may carry the token (the Jupyter proxy adds it to every proxied request).
TOKEN_HEADER = "X-Insarexplore-Token"
AUTH_MODES = ("auto", "token", "basic", "none")
_WILDCARD = ("", "0.0.0.0", "::")


def _quiet_debugger() -> None:
    """Silence pydevd's "frozen modules" warning, printed when a browser's widget manager asks
    the ipywidgets kernel for its info (ipykernel then imports debugpy's pydevd)."""
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def is_loopback(address: str) -> bool:
    """Whether ``address`` only accepts connections from this machine."""
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _host_name(netloc: str) -> str:
    """The host part of ``host[:port]`` (IPv6 in brackets), lower case, without brackets."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")] if "]" in netloc else netloc[1:]
    if netloc.count(":") == 1:
        return netloc.split(":", 1)[0]
    return netloc


def _machine_names() -> list[str]:
    """Names and addresses this machine is reached by (for a bind on every interface)."""
    names = [socket.gethostname(), socket.getfqdn()]
    try:
        names += socket.gethostbyname_ex(socket.gethostname())[2]
    except OSError:
        pass
    try:  # the address of the default route (connect on UDP sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            names.append(s.getsockname()[0])
    except OSError:
        pass
    return [n for n in dict.fromkeys(names) if n]


@dataclass(frozen=True)
class AccessPolicy:
    """Who may use a served dashboard; made by :func:`access_policy`.

    ``mode``: ``"none"``, ``"token"`` or ``"basic"``. ``origins``: host[:port] values a browser
    page may open the websocket from. ``hosts``: patterns the Host header's name must match
    (empty: any host). ``warnings``: one line each, printed when the server starts.
    """

    mode: str
    address: str
    port: int
    origins: tuple[str, ...]
    hosts: tuple[str, ...]
    token: str | None = None
    basic_auth: Any = None
    warnings: tuple[str, ...] = ()

    @property
    def cookie_name(self) -> str:
        # cookies are shared by every port of a host: one name per port
        return f"insarexplore-token-{self.port}"

    def host_allowed(self, host_header: str) -> bool:
        """Whether a request with this Host header may be served (DNS rebinding guard)."""
        if not self.hosts:
            return True
        name = _host_name(host_header or "")
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.hosts)

    def token_matches(self, value: str | None) -> bool:
        if not value or not self.token:
            return False
        return hmac.compare_digest(value.encode(), self.token.encode())

    def password_matches(self, username: str, password: str) -> bool:
        auth = self.basic_auth
        if isinstance(auth, dict):
            expected = auth.get(username)
            return expected is not None and hmac.compare_digest(
                str(expected).encode(), password.encode()
            )
        return bool(auth) and hmac.compare_digest(str(auth).encode(), password.encode())

    def url(self, prefix: str = "", port: int | None = None) -> str:
        """The URL to open: with ``?token=`` in token mode."""
        host = self.address
        if host in _WILDCARD:
            host = socket.gethostname() or "127.0.0.1"
        url = f"http://{_netloc(host, port or self.port)}{prefix}/"
        return f"{url}?token={self.token}" if self.mode == "token" else url


def _load_basic_auth(value: str) -> Any:
    """A password, or a JSON file of ``{"user": "password"}`` (Panel's ``basic_auth`` forms)."""
    if not value:
        raise ValueError("--basic-auth needs a password or a JSON file of users and passwords")
    path = Path(value).expanduser()
    if path.is_file():
        try:
            users = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON file of users and passwords ({exc})") from None
        if not (
            isinstance(users, dict)
            and users
            and all(isinstance(k, str) and isinstance(v, str) and v for k, v in users.items())
        ):
            raise ValueError(f'{path}: expected a JSON object {{"user": "password", ...}}')
        return users
    return value


def access_policy(
    address: str = "127.0.0.1",
    port: int = 5006,
    *,
    auth: str = "auto",
    basic_auth: str | None = None,
    token: str | None = None,
    allow_websocket_origin: list[str] | str | None = None,
) -> AccessPolicy:
    """Decide authentication, allowed hosts and websocket origins for a dashboard server.

    ``auth``: ``"auto"`` (token off a loopback address, none on it; ``basic_auth`` selects
    Panel's login page), ``"token"`` (even on loopback), ``"basic"`` or ``"none"``. ``token``
    defaults to ``$INSAREXPLORE_TOKEN`` or a random one. Raises ValueError on bad settings.
    """
    if auth not in AUTH_MODES:
        raise ValueError(f"auth must be one of {', '.join(AUTH_MODES)}; got {auth!r}")
    if not (0 <= int(port) < 65536):
        raise ValueError(f"port must be in 0..65535; got {port}")
    port = int(port)
    local = is_loopback(address)
    wildcard = address in _WILDCARD
    warnings: list[str] = []
    token = token or os.environ.get(TOKEN_ENV) or None
    if basic_auth is not None and auth in ("token", "none"):
        raise ValueError(f"basic_auth (--basic-auth) contradicts auth={auth!r}")
    if auth == "basic" and basic_auth is None:
        raise ValueError("auth='basic' needs basic_auth (--basic-auth PASSWORD|FILE)")
    if basic_auth is not None:
        mode = "basic"
    elif auth == "auto":
        mode = "token" if (token or not local) else "none"
    else:
        mode = auth
    if mode == "token":
        if token is None:
            token = secrets.token_urlsafe(24)
        elif len(token) < 16 or not all(c.isalnum() or c in "-_." for c in token):
            raise ValueError(
                "the access token must have at least 16 characters from A-Z a-z 0-9 - _ ."
            )
    else:
        token = None

    if allow_websocket_origin is None:
        given: list[str] = []
    elif isinstance(allow_websocket_origin, str):
        given = [allow_websocket_origin]
    else:
        given = list(allow_websocket_origin)
    for origin in given:
        if not origin or "/" in origin or " " in origin:
            raise ValueError(f"--allow-websocket-origin takes HOST[:PORT], got {origin!r}")
    names = ["127.0.0.1", "localhost"]
    if not wildcard:
        names.insert(0, address)
    if wildcard and not given:
        names += _machine_names()
    origins = list(dict.fromkeys([*given, *(_netloc(n, port) for n in dict.fromkeys(names))]))
    hosts = [_host_name(o) for o in origins]
    if any(h == "*" for h in hosts):
        hosts = []
        warnings.append(
            "websocket origin '*': any web page may open this dashboard's websocket and the "
            "Host header is not checked; list the host names instead"
        )
    if wildcard:
        warnings.append(
            f"listening on every network interface ({address or '0.0.0.0'}): the dashboard is "
            "reachable from other machines; use --address 127.0.0.1 for local use"
        )
    if mode == "none" and not local:
        warnings.append(
            f"authentication is off (--no-auth) on {address or '0.0.0.0'}: anyone who can reach "
            f"port {port} can read this workspace and change its labels"
        )
    return AccessPolicy(
        mode=mode,
        address=address,
        port=port,
        origins=tuple(origins),
        hosts=tuple(dict.fromkeys(hosts)),
        token=token,
        basic_auth=_load_basic_auth(basic_auth) if mode == "basic" else None,
        warnings=tuple(warnings),
    )


def _refuse(handler: Any, status: int, message: str) -> None:
    """End the request with ``status`` and a one-line explanation (before any websocket upgrade)."""
    from tornado.web import Finish

    handler.clear()
    handler.set_status(status)
    handler.set_header("Content-Type", "text/plain; charset=utf-8")
    handler.set_header("Cache-Control", "no-store")
    handler.finish(f"{status}: {message}\n")
    raise Finish()


def _check_host(policy: AccessPolicy, handler: Any) -> None:
    if not policy.host_allowed(handler.request.host):
        _refuse(
            handler,
            403,
            f"host {handler.request.host!r} is not allowed; serve with "
            "--allow-websocket-origin HOST:PORT to add it",
        )


def _auth_provider(policy: AccessPolicy, prefix: str) -> Any:
    """A Bokeh auth provider enforcing ``policy`` on every page, websocket and thumbnail."""
    from bokeh.server.auth_provider import AuthProvider
    from tornado.websocket import WebSocketHandler

    if policy.mode == "basic":
        return _basic_provider(policy)

    class TokenAuth(AuthProvider):
        """Host check, then (mode "token") the token from header, query or cookie."""

        @property
        def get_user_async(self) -> Any:
            async def get_user(handler: Any) -> str:
                _check_host(policy, handler)
                if policy.mode == "none":
                    return "local"
                if policy.token_matches(handler.request.headers.get(TOKEN_HEADER)):
                    return "token"
                if policy.token_matches(handler.get_query_argument("token", None)):
                    if not isinstance(handler, WebSocketHandler):
                        handler.set_cookie(
                            policy.cookie_name,
                            policy.token or "",
                            path=prefix or "/",
                            httponly=True,
                            samesite="Lax",
                        )
                    return "token"
                if policy.token_matches(handler.get_cookie(policy.cookie_name)):
                    return "token"
                _refuse(
                    handler,
                    401,
                    "this dashboard needs its access token: open the URL that "
                    "`insarexplore serve` printed (it ends in ?token=...)",
                )
                return ""  # not reached

            return get_user

        @property
        def get_login_url(self) -> Any:
            # never used: get_user refuses instead of returning no user
            return lambda handler: f"{prefix}/"

    return TokenAuth()


def _basic_provider(policy: AccessPolicy) -> Any:
    """Panel's basic-auth login page, with the Host check and the passwords of ``policy``."""
    from panel.auth import BasicAuthProvider
    from tornado.websocket import WebSocketHandler

    class BasicAuth(BasicAuthProvider):
        @property
        def get_user(self) -> Any:
            return None

        @property
        def get_user_async(self) -> Any:
            cookie_user = BasicAuthProvider.get_user.fget(self)  # type: ignore[attr-defined]

            async def get_user(handler: Any) -> str | None:
                _check_host(policy, handler)
                user = cookie_user(handler)
                if not user and isinstance(handler, WebSocketHandler):
                    _refuse(handler, 401, "log in first")
                return user

            return get_user

        @property
        def login_handler(self) -> Any:
            base = super().login_handler

            class Login(base):  # type: ignore[misc, valid-type]
                def prepare(self) -> None:
                    _check_host(policy, self)

                def _validate(self, username: str, password: str) -> bool:
                    return policy.password_matches(username, password)

            return Login

    return BasicAuth()


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
    """Tornado routes for thumbnails and widget bundles (prefixed by Bokeh).

    Thumbnails show the workspace's data: they go through the server's auth provider like the
    app's pages. Widget bundles are public JavaScript from installed packages.
    """
    from urllib.parse import unquote

    from bokeh.server.views.auth_request_handler import AuthRequestHandler
    from tornado.web import HTTPError, RequestHandler, authenticated

    bundles = widget_bundle_dirs()

    class ThumbHandler(AuthRequestHandler):
        @authenticated
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


def _free_port(address: str) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((address if address not in _WILDCARD else "", 0))
        return int(s.getsockname()[1])


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
    auth: str = "auto",
    basic_auth: str | None = None,
    token: str | None = None,
    announce: bool = True,
) -> Any:
    """Serve the explorer of ``workspace`` at ``http://address:port/prefix``.

    Binds to 127.0.0.1 by default (local only). ``allow_websocket_origin`` lists the host[:port]
    values browsers may connect from (always also 127.0.0.1 and localhost on ``port``);
    ``prefix`` mounts the app under a URL path (behind JupyterHub/Binder proxies). ``user`` is
    recorded as the author of every label (default: the OS user). ``auth``, ``basic_auth`` and
    ``token``: see :func:`access_policy` (off a loopback address a token is required by default).
    The returned server (or thread) has ``access`` (the policy) and ``dashboard_url`` (with the
    token); ``announce`` prints the warnings and, in token mode, that URL to stderr. With
    ``start=True`` and ``threaded=False`` this blocks.
    """
    _quiet_debugger()
    port = int(port) if int(port) != 0 else _free_port(address)
    policy = access_policy(
        address,
        port,
        auth=auth,
        basic_auth=basic_auth,
        token=token,
        allow_websocket_origin=allow_websocket_origin,
    )
    import panel as pn

    from insarexplore.app.data import ExplorerData
    from insarexplore.app.explorer import Explorer

    if data is None:
        data = ExplorerData.from_workspace(workspace, projection=projection)
    if data.n > threshold:
        _warm_up_datashader(data)
    root = _normalize_prefix(prefix)
    url = policy.url(root)

    def app() -> Any:
        pn.extension("ipywidgets", notifications=False)
        return Explorer(
            data=data,
            author=user,
            threshold=threshold,
            widget_cdn=f"{root}/widgets",
            thumb_url=f"{root}/thumb",
        )

    if announce:
        for line in policy.warnings:
            print(f"insarexplore serve: warning: {line}", file=sys.stderr, flush=True)
        if policy.mode == "token" and not (start and not threaded):
            print(f"insarexplore dashboard (with access token): {url}", file=sys.stderr, flush=True)
    server = pn.serve(
        app,
        port=port,
        address=address,
        websocket_origin=list(policy.origins),
        show=show and policy.mode != "token",  # Panel would open the URL without the token
        start=threaded,  # a thread runs its own loop; otherwise serve_until_stopped starts it
        threaded=threaded,
        title=title,
        prefix=root,
        extra_patterns=_handlers(data),
        verbose=False,
        auth_provider=_auth_provider(policy, root),
        cookie_secret=secrets.token_urlsafe(32),
        sign_sessions=True,  # a client cannot make up a session id of its own
        secret_key=secrets.token_urlsafe(32).encode(),
    )
    server.access = policy
    server.dashboard_url = url
    if show and policy.mode == "token" and not threaded:
        import webbrowser

        server.io_loop.add_callback(webbrowser.open, url)
    if start and not threaded:
        serve_until_stopped(server)
    return server


def serve_until_stopped(server: Any) -> str:
    """Start a server made by :func:`serve` with ``start=False``, print its URL, block until stopped.

    The line ``insarexplore dashboard: <url>`` (with ``?token=`` when a token is required) goes
    to stdout once the socket is bound. Ctrl-C (or SIGINT) stops the server cleanly.
    """
    url = getattr(server, "dashboard_url", None) or f"http://127.0.0.1:{server.port}/"
    server.start()
    print(f"insarexplore dashboard: {url}", flush=True)
    print("press Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    print("dashboard stopped", file=sys.stderr, flush=True)
    return url


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
    access = p.add_argument_group(
        "access",
        "On 127.0.0.1/::1/localhost no login is needed. On any other address a random access\n"
        "token is required (the printed URL carries it: http://HOST:PORT/?token=...; the\n"
        f"browser keeps it in a cookie); ${TOKEN_ENV} sets it. Every request's Host must be\n"
        "this address, localhost or a --allow-websocket-origin host (403 otherwise).",
    )
    which = access.add_mutually_exclusive_group()
    which.add_argument(
        "--basic-auth",
        default=None,
        metavar="PASSWORD|FILE",
        help='log in with a password, or a JSON file {"user": "password", ...} (safer: '
        "a password on the command line is visible to other users)",
    )
    which.add_argument(
        "--require-token",
        action="store_true",
        help="require the access token on a loopback address too (shared machines)",
    )
    which.add_argument(
        "--no-auth",
        action="store_true",
        help="no authentication even off loopback (prints a warning): anyone who can reach "
        "the port can read the workspace and change its labels",
    )
    return p


def auth_options(args: argparse.Namespace) -> dict[str, Any]:
    """``serve()`` keyword arguments from the parsed access options."""
    if getattr(args, "no_auth", False):
        auth = "none"
    elif getattr(args, "require_token", False):
        auth = "token"
    else:
        auth = "auto"
    return {"auth": auth, "basic_auth": getattr(args, "basic_auth", None)}


def serve_options(args: argparse.Namespace) -> dict[str, Any]:
    """Every ``serve()`` keyword argument that :func:`build_parser`'s options set."""
    return {
        "address": args.address,
        "port": args.port,
        "allow_websocket_origin": args.allow_websocket_origin,
        "prefix": args.prefix,
        "user": args.user,
        "show": args.show,
        "projection": args.projection,
        **auth_options(args),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m insarexplore.app.server ARGS`` is ``insarexplore serve ARGS``: the same
    checks, one-line errors and Ctrl-C handling."""
    from insarexplore.cli import main as cli_main

    return cli_main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
