"""Access control of the served dashboard: token or login off loopback, Host check, origins.

The policy (:func:`access_policy`) is tested directly for every kind of address; real servers
run in a thread of this process on 127.0.0.1, one with the token forced on (as the Jupyter
proxy does) and one open, and are probed with plain HTTP and websocket requests.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from insarexplore.app._browser import free_port, wait_port
from insarexplore.app.server import TOKEN_ENV, TOKEN_HEADER, access_policy

ROOT = Path(__file__).resolve().parents[2]


# -- the policy ----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_env_token(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_login_and_warns_nothing(address):
    policy = access_policy(address, 5006)
    assert policy.mode == "none" and policy.token is None and policy.warnings == ()


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3", "myhost.example.org"])
def test_any_other_address_requires_a_fresh_random_token(address):
    a, b = access_policy(address, 5006), access_policy(address, 5006)
    assert a.mode == b.mode == "token"
    assert len(a.token) >= 32 and a.token != b.token
    assert a.url().endswith(f":5006/?token={a.token}")


def test_wildcard_bind_warns_in_one_line():
    policy = access_policy("0.0.0.0", 5006)
    assert len(policy.warnings) == 1 and "\n" not in policy.warnings[0]
    assert "every network interface" in policy.warnings[0]
    assert access_policy("10.1.2.3", 5006).warnings == ()


def test_no_auth_must_be_asked_for_and_warns_off_loopback():
    policy = access_policy("0.0.0.0", 5006, auth="none")
    assert policy.mode == "none" and policy.token is None
    assert any("authentication is off" in w for w in policy.warnings)
    assert access_policy("127.0.0.1", 5006, auth="none").warnings == ()


def test_token_can_be_forced_on_loopback_and_set_by_the_environment(monkeypatch):
    assert access_policy("127.0.0.1", 5006, auth="token").mode == "token"
    monkeypatch.setenv(TOKEN_ENV, "a" * 32)
    policy = access_policy("127.0.0.1", 5006)
    assert policy.mode == "token" and policy.token == "a" * 32
    monkeypatch.setenv(TOKEN_ENV, "short")
    with pytest.raises(ValueError, match="at least 16"):
        access_policy("127.0.0.1", 5006)


def test_basic_auth_password_or_users_file(tmp_path):
    policy = access_policy("0.0.0.0", 5006, basic_auth="s3cret-pass")
    assert policy.mode == "basic" and policy.token is None
    assert policy.password_matches("anyone", "s3cret-pass")
    assert not policy.password_matches("anyone", "wrong")
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"alice": "pw-alice"}))
    policy = access_policy("0.0.0.0", 5006, basic_auth=str(users))
    assert policy.password_matches("alice", "pw-alice")
    assert not policy.password_matches("bob", "pw-alice")
    assert not policy.password_matches("alice", "pw-bob")
    users.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        access_policy("0.0.0.0", 5006, basic_auth=str(users))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"auth": "basic"}, "needs basic_auth"),
        ({"auth": "none", "basic_auth": "pw"}, "contradicts"),
        ({"auth": "token", "basic_auth": "pw"}, "contradicts"),
        ({"auth": "nope"}, "auth must be one of"),
        ({"basic_auth": ""}, "needs a password"),
        ({"allow_websocket_origin": ["http://x.org/"]}, "HOST"),
    ],
)
def test_contradictory_settings_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        access_policy("0.0.0.0", 5006, **kwargs)
    assert "\n" not in str(err.value)


def test_host_header_must_name_an_allowed_host():
    policy = access_policy("127.0.0.1", 5006)
    for host in ("127.0.0.1:5006", "localhost:5006", "LOCALHOST", "127.0.0.1"):
        assert policy.host_allowed(host), host
    for host in ("evil.example:5006", "evil.example", "127.0.0.1.evil.example:5006", ""):
        assert not policy.host_allowed(host), host
    policy = access_policy("0.0.0.0", 5006, allow_websocket_origin=["dash.example.org:443"])
    assert "dash.example.org:443" in policy.origins and "127.0.0.1:5006" in policy.origins
    assert policy.host_allowed("dash.example.org") and policy.host_allowed("127.0.0.1:5006")
    assert not policy.host_allowed("evil.example")
    assert access_policy("::1", 5006).host_allowed("[::1]:5006")


def test_wildcard_origin_turns_the_host_check_off_with_a_warning():
    policy = access_policy("127.0.0.1", 5006, allow_websocket_origin="*")
    assert policy.hosts == () and policy.host_allowed("anything.example")
    assert any("'*'" in w for w in policy.warnings)


def test_jupyter_proxy_trusts_only_itself():
    """Under jupyter-server-proxy: origins restricted to the proxy's (no '*'), a token shared
    through the environment and a header, Host and Origin as the proxy connects."""
    from insarexplore.app.proxy import setup_proxy
    from insarexplore.cli import build_parser

    cfg = setup_proxy()
    cmd = cfg["command"]
    assert "*" not in cmd
    assert cmd[cmd.index("--allow-websocket-origin") + 1] == "127.0.0.1:{port}"
    assert "--require-token" in cmd
    token = cfg["environment"][TOKEN_ENV]
    assert len(token) >= 32 and token not in " ".join(cmd)  # not visible in `ps`
    headers = cfg["request_headers_override"]
    assert headers[TOKEN_HEADER] == token
    assert headers["Host"] == "127.0.0.1:{port}" and headers["Origin"] == "http://127.0.0.1:{port}"
    assert setup_proxy()["environment"][TOKEN_ENV] != token
    filled = [c.replace("{port}", "5999").replace("{base_url}", "/u/x/") for c in cmd[4:]]
    args = build_parser().parse_args(["serve", *filled])
    policy = access_policy(
        args.address,
        args.port,
        auth="token",
        token=token,
        allow_websocket_origin=args.allow_websocket_origin,
    )
    assert policy.origins[0] == "127.0.0.1:5999" and "*" not in policy.origins
    assert policy.host_allowed(headers["Host"].format(port=5999))
    assert not policy.host_allowed("hub.example.org")


# -- real servers -----------------------------------------------------------------------------
def _get(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture(scope="module")
def token_server(app_workspace_dir):
    """A server on 127.0.0.1 with the token forced on; yields ``(base url, token)``."""
    from insarexplore.app.server import serve

    port = free_port()
    server = serve(
        app_workspace_dir, port=port, threaded=True, projection="pca", auth="token", announce=False
    )
    wait_port(port)
    assert server.access.mode == "token"
    yield f"http://127.0.0.1:{port}", server.access.token
    server.stop()


@pytest.fixture(scope="module")
def open_server(app_workspace_dir):
    """A server on 127.0.0.1 with the default policy (no login on loopback)."""
    from insarexplore.app.server import serve

    port = free_port()
    server = serve(app_workspace_dir, port=port, threaded=True, projection="pca", announce=False)
    wait_port(port)
    assert server.access.mode == "none"
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_without_the_token_nothing_is_served(token_server):
    base, token = token_server
    for path in ("/", "/?token=wrong-token-wrong-token", "/thumb/s0000.png"):
        status, _, body = _get(base + path)
        assert status == 401, path
        assert b"access token" in body and b"bokeh" not in body.lower()
    status, _, _ = _get(base + "/", {"Cookie": "insarexplore-token-1=" + token})  # other port
    assert status == 401


def test_the_token_url_serves_the_page_and_sets_a_cookie(token_server):
    base, token = token_server
    status, headers, body = _get(f"{base}/?token={token}")
    assert status == 200 and b"bokeh" in body.lower()
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    name_value = cookie.split(";", 1)[0]
    assert name_value.endswith("=" + token)
    # the cookie alone is enough afterwards, for the page and the thumbnails
    status, _, body = _get(base + "/", {"Cookie": name_value})
    assert status == 200 and b"bokeh" in body.lower()
    status, headers, body = _get(base + "/thumb/s0000.png", {"Cookie": name_value})
    assert status == 200 and headers["Content-Type"] == "image/png" and body[:4] == b"\x89PNG"
    # as is the header the Jupyter proxy adds
    assert _get(base + "/", {TOKEN_HEADER: token})[0] == 200


def test_a_bad_host_header_is_refused(token_server, open_server):
    base, token = token_server
    status, _, body = _get(f"{base}/?token={token}", {"Host": "evil.example"})
    assert status == 403 and b"not allowed" in body
    assert _get(open_server + "/", {"Host": "rebind.evil.example:80"})[0] == 403
    assert _get(open_server + "/thumb/s0000.png", {"Host": "rebind.evil.example"})[0] == 403
    assert _get(open_server + "/")[0] == 200
    assert _get(open_server + "/", {"Host": "localhost"})[0] == 200


def _session_token(html: bytes) -> str:
    match = re.search(rb'"token":"([^"]+)"', html)
    assert match, "no Bokeh session token in the page"
    return match.group(1).decode()


def _websocket(base: str, session_token: str, headers: dict) -> str | None:
    """Open the app's websocket; the first message's type, or None when the server hung up."""
    from tornado.httpclient import HTTPClientError, HTTPRequest
    from tornado.websocket import websocket_connect

    async def run() -> str | None:
        request = HTTPRequest(base.replace("http", "ws") + "/ws", headers=headers)
        try:
            conn = await websocket_connect(request, subprotocols=["bokeh", session_token])
        except HTTPClientError as err:
            return f"HTTP {err.code}"
        try:
            message = await asyncio.wait_for(conn.read_message(), 60)
        finally:
            conn.close()
        return None if message is None else json.loads(message)["msgtype"]

    return asyncio.run(run())


def test_websocket_needs_the_token_and_a_signed_session(token_server):
    base, token = token_server
    status, _, html = _get(f"{base}/?token={token}")
    assert status == 200
    session = _session_token(html)
    origin = {"Origin": base}
    cookie = {"Cookie": f"insarexplore-token-{base.rsplit(':', 1)[1]}={token}"}
    assert _websocket(base, session, {**origin, **cookie}) == "ACK"
    assert _websocket(base, session, origin) == "HTTP 401"
    assert _websocket(base, session, {**cookie, "Origin": "http://evil.example"}) == "HTTP 403"
    # a session token the client made up itself (unsigned) is refused
    from bokeh.util.token import generate_jwt_token, generate_session_id

    forged = generate_jwt_token(generate_session_id(signed=False), signed=False)
    assert _websocket(base, forged, {**origin, **cookie}) is None


@pytest.mark.slow
def test_cli_prints_the_token_url_and_warns_on_no_auth(app_workspace_dir):
    """``insarexplore serve --require-token``: the printed URL works, the bare one does not."""
    import signal

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "insarexplore",
            "serve",
            str(app_workspace_dir),
            "--port",
            "0",
            "--projection",
            "pca",
            "--require-token",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("insarexplore dashboard: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        assert "/?token=" in url
        assert _get(url)[0] == 200
        assert _get(url.split("?", 1)[0])[0] == 401
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        err = proc.stderr.read()
        assert "PYDEVD_DISABLE_FILE_VALIDATION" not in err and "frozen modules" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_basic_auth_login_page_guards_pages_and_thumbnails(app_workspace_dir):
    """Panel's login page (here under a URL prefix): nothing without logging in, a wrong
    password is refused, the right one gives the page and thumbnails; Host is still checked."""
    import http.cookiejar
    import urllib.parse

    from insarexplore.app.server import serve

    port = free_port()
    server = serve(
        app_workspace_dir,
        port=port,
        threaded=True,
        projection="pca",
        basic_auth="pw-123456",
        prefix="/u/me/dash",
        announce=False,
    )
    try:
        wait_port(port)
        base = f"http://127.0.0.1:{port}/u/me/dash"

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(jar))

        def get(path, form=None, headers=None):
            data = None if form is None else urllib.parse.urlencode(form).encode()
            req = urllib.request.Request(base + path, data=data, headers=headers or {})
            try:
                with opener.open(req, timeout=120) as resp:
                    return resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as err:
                return err.code, err.headers, err.read()

        for path in ("/", "/thumb/s0000.png"):
            status, headers, _ = get(path)
            assert status == 302 and "login" in headers["Location"], path
        status, _, body = get("/login")
        assert status == 200 and b"password" in body
        assert get("/login", headers={"Host": "evil.example"})[0] == 403
        status, headers, _ = get("/login", {"username": "u", "password": "wrong"})
        assert status == 302 and "error=" in headers["Location"]
        assert "user" not in {c.name for c in jar}
        status, _, _ = get("/login", {"username": "u", "password": "pw-123456"})
        assert status == 302 and "user" in {c.name for c in jar}
        status, _, body = get("/")
        assert status == 200 and b"bokeh" in body.lower()
        assert get("/thumb/s0000.png")[0] == 200
        assert get("/", headers={"Host": "evil.example"})[0] == 403
    finally:
        server.stop()


# -- python -m insarexplore and quiet output ---------------------------------------------------
def test_python_m_insarexplore_runs_the_cli():
    res = subprocess.run(
        [sys.executable, "-m", "insarexplore", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 0 and "serve" in res.stdout
    res = subprocess.run(
        [sys.executable, "-m", "insarexplore", "serve", "/nonexistent/ws", "--port", "70000"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "error" in res.stderr


def test_serving_silences_the_debugger_warning(tmp_path):
    """The serve path sets PYDEVD_DISABLE_FILE_VALIDATION before ipykernel imports pydevd (which
    it does when a browser's widget manager asks for kernel info)."""
    code = (
        "import os, sys\n"
        "os.environ.pop('PYDEVD_DISABLE_FILE_VALIDATION', None)\n"
        "from insarexplore.app.server import access_policy, serve\n"
        "try:\n"
        "    serve('/nonexistent', port=1, auth='nope')\n"
        "except ValueError:\n"
        "    pass\n"
        "import ipykernel.debugger\n"
    )
    pytest.importorskip("debugpy")
    env = {
        k: v for k, v in __import__("os").environ.items() if k != "PYDEVD_DISABLE_FILE_VALIDATION"
    }
    bare = subprocess.run(
        [sys.executable, "-c", "import ipykernel.debugger"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    if "PYDEVD_DISABLE_FILE_VALIDATION" not in bare.stderr:
        pytest.skip("this Python's pydevd prints no frozen-modules warning")
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert res.returncode == 0, res.stderr
    assert "PYDEVD_DISABLE_FILE_VALIDATION" not in res.stderr + res.stdout
