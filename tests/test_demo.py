"""The README's main command, end to end: `insarexplore demo DIR` serves a dashboard a browser loads.

Runs the real command line as a subprocess (quick sizes), waits for the printed URL, loads the
page in Debian's chromium through Playwright, checks the dashboard rendered without JavaScript
errors, saves a screenshot, then stops the server with Ctrl-C (SIGINT) and checks a clean exit.
A second run on the same folder must reuse every step.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from insarexplore.app._browser import CHROMIUM, launch

ENV = {**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1", "OMP_NUM_THREADS": "1"}


def _wait_for_url(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline and proc.poll() is None:
        if sel.select(timeout=1.0):
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("insarexplore dashboard: "):
                return line.split(": ", 1)[1].strip(), "".join(seen)
    raise AssertionError(f"no dashboard URL (rc={proc.poll()}): {''.join(seen)[-3000:]}")


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.mark.ui
@pytest.mark.slow
def test_demo_command_serves_a_dashboard_the_browser_loads(tmp_path):
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    workspace = tmp_path / "demo-ws"
    cmd = [sys.executable, "-m", "insarexplore.cli", "demo", str(workspace), "--quick",
           "--port", "0"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        url, _ = _wait_for_url(proc, timeout=600)
        assert url.startswith("http://127.0.0.1:")
        errors: list[str] = []
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1500, "height": 950})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url, timeout=120_000)
            page.wait_for_selector(".bk-Canvas, canvas", state="attached", timeout=120_000)
            # the dashboard's own text is inside Bokeh's shadow DOM: locators reach it
            page.get_by_text("insarexplore", exact=False).first.wait_for(timeout=120_000)
            page.wait_for_timeout(2000)
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot))
            browser.close()
        assert shot.stat().st_size > 10_000
        out_dir = os.environ.get("INSAREXPLORE_SCREENSHOT_DIR")
        if out_dir:
            shutil.copy(shot, Path(out_dir) / "demo_dashboard.png")
        assert not errors, f"JavaScript errors: {errors}"
    finally:
        if proc.poll() is None:
            rc, err = _stop(proc)
        else:
            rc, err = proc.returncode, proc.stderr.read()
    assert rc == 0, err[-3000:]
    assert "dashboard stopped" in err

    # the same command again reuses every step
    res = subprocess.run([*cmd[:-2], "--no-serve"], capture_output=True, text=True, env=ENV,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    for what in ("data: reusing 240 samples", "model: reusing", "embeddings: up to date"):
        assert what in res.stderr


@pytest.mark.slow
def test_demo_bad_arguments(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("not a workspace")
    res = subprocess.run(
        [sys.executable, "-m", "insarexplore.cli", "demo", str(tmp_path / "taken"), "--quick",
         "--no-serve"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2
    assert "is not empty and is not a workspace" in res.stderr
    assert "Traceback" not in res.stderr


def test_plan_is_sized_for_the_machine():
    from insarexplore.demo import DEMO_DIFFICULTY, plan_demo

    cpu = plan_demo(device="cpu")
    assert (cpu.n, cpu.size, cpu.arch, cpu.projection) == (3000, 64, "resnet-micro", "umap")
    # a step budget (the same map on a busy machine), about 2-3 min on 2 idle cores, and a guard
    assert cpu.steps == 1200 and cpu.batch_size == 128
    assert 5 <= cpu.minutes <= 10
    assert cpu.difficulty == DEMO_DIFFICULTY == "easy" and len(cpu.classes) == 4
    quick = plan_demo(device="cpu", quick=True)
    assert quick.n < 500 and quick.projection == "pca" and not quick.monitor
    assert quick.steps < cpu.steps
    mine = plan_demo(device="cpu", n=100, size=48, steps=40, minutes=1, projection="pca")
    assert (mine.n, mine.size, mine.steps, mine.minutes, mine.projection) == (
        100,
        48,
        40,
        1.0,
        "pca",
    )
    with pytest.raises(ValueError, match="n must be at least 16"):
        plan_demo(device="cpu", n=3)
    with pytest.raises(ValueError, match="projection"):
        plan_demo(device="cpu", projection="tsne")
    with pytest.raises(ValueError, match="steps"):
        plan_demo(device="cpu", steps=0)


def test_wall_clock_guard_keeps_the_encoder_and_says_so(tmp_path, capsys):
    from insarexplore.data.synthetic import generate_to_zarr
    from insarexplore.demo import pretrain_guarded
    from insarexplore.models.serialization import load_encoder
    from insarexplore.ssl.train import PretrainConfig
    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    generate_to_zarr(ws.data_path, 64, size=16, seed=0, progress=False)
    config = PretrainConfig(
        arch="resnet-tiny",
        steps=10_000,
        batch_size=16,
        device="cpu",
        monitor_every=0,
        progress=False,
        tensorboard=False,
    )
    done = pretrain_guarded(ws, config, minutes=1e-4)  # trips after the first step
    assert done["cut_short"] and 1 <= done["steps"] < done["planned"] == 10_000
    assert ws.current_model == done["version"]
    meta = json.loads((ws.model_dir(done["version"]) / "meta.json").read_text())
    assert meta["status"] == "done" and meta["cut_short"] is True
    assert meta["steps"] == done["steps"] and meta["planned_steps"] == 10_000
    model, cfg = load_encoder(ws.model_dir(done["version"]))
    assert cfg["arch"] == "resnet-tiny"
    err = capsys.readouterr().err
    assert "cut short by the wall-clock guard" in err and "of 10,000 steps" in err
    # no head file: its embeddings are stretched as the run's config says, and the deformation
    # scores of the stored embeddings take that stretch out again
    import dataclasses

    import numpy as np

    from insarexplore.embed import Embedder, embed_workspace
    from insarexplore.explore.deformation import deformation_scores, model_physics_head

    head = model_physics_head(ws.model_dir(done["version"]))
    assert (head.gain, head.class_gain) == (10.0, 3.0)
    embed_workspace(ws, device="cpu", progress=False)
    scores = deformation_scores(ws)["deformation"].to_numpy()
    ds = ws.open_data()
    plain = Embedder(ws.model_dir(done["version"]), progress=False, gains=(1, 1)).fit()
    features = plain.transform(ds)
    unstretched = dataclasses.replace(head, gain=1.0, class_gain=1.0).deformation(features)
    assert list(deformation_scores(ws).index) == list(ds["sample"].values.astype(str))
    np.testing.assert_allclose(scores, unstretched, rtol=1e-4, atol=1e-5)


def test_demo_serves_with_the_printed_token_url(tmp_path, monkeypatch):
    """Off loopback the dashboard needs a token: the demo prints the URL that carries it."""
    import insarexplore.app.server as server_mod
    import insarexplore.demo as demo

    sys.path.insert(0, str(Path(__file__).parent / "app"))
    from factory import build_workspace

    ws, _ = build_workspace(tmp_path / "ws", n=30)
    monkeypatch.setattr(demo, "prepare_demo", lambda *a, **k: ws)
    seen = {}

    def fake_serve_until_stopped(server):
        seen["url"], seen["mode"] = server.dashboard_url, server.access.mode
        server.stop()
        return server.dashboard_url

    monkeypatch.setattr(server_mod, "serve_until_stopped", fake_serve_until_stopped)
    demo.run_demo(tmp_path / "ws", quick=True, port=0, address="0.0.0.0", projection="pca")
    assert seen["mode"] == "token"
    assert re.search(r"/\?token=[A-Za-z0-9_\-.]{16,}$", seen["url"]), seen["url"]
