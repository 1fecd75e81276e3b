"""The command line: help with examples, exit codes, clear errors, and each command's wiring."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from insarexplore import cli

COMMANDS = sorted(
    a.dest
    for a in cli.build_parser()._subparsers._group_actions[0]._choices_actions  # type: ignore[union-attr]
)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "insarexplore.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_pngs(root: Path, n_per_class: int = 3, size: int = 16) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("deformation", "none"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"20200101_20200113_{cls}_{i}.png")
    return root


# -- structure --------------------------------------------------------------------------------
def test_help_lists_commands_without_heavy_imports():
    code = (
        "import sys, insarexplore.cli as c; c.build_parser().format_help(); "
        "print(sorted(m for m in ('numpy','torch','panel','xarray') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    text = cli.build_parser().format_help()
    for name in COMMANDS:
        assert name in text


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_examples(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"insarexplore {name}" in out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "commands:" in capsys.readouterr().err


def test_bad_argument_value_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["ingest", "ws", "src", "--patch-size", "-3"])
    assert exc.value.code == 2
    assert "--patch-size" in (err := capsys.readouterr().err) and "must lie in 1..4096" in err


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "2000", "1e-4"])
@pytest.mark.parametrize("option", ["--embed-gain", "--embed-class-gain"])
def test_a_gain_that_is_not_a_finite_positive_number_exits_2(capsys, option, value):
    with pytest.raises(SystemExit) as exc:
        cli.main(["pretrain", "ws", option, value])
    assert exc.value.code == 2
    assert option in (err := capsys.readouterr().err) and "number from 0.001 to 1000" in err


def test_pretrain_passes_the_gains_to_its_config(tmp_path, monkeypatch, capsys):
    import insarexplore.pretraining as pretraining

    seen = []
    monkeypatch.setattr(pretraining, "pretrain_workspace", lambda ws, cfg: seen.append(cfg) or "v")
    ws = make_embedded_workspace(tmp_path / "ws")
    argv = [
        "pretrain",
        str(ws.path),
        "--steps",
        "1",
        "--embed-gain",
        "5",
        "--embed-class-gain",
        "2",
    ]
    assert cli.main(argv) == 0
    assert (seen[0].embed_gain, seen[0].embed_class_gain) == (5.0, 2.0)
    assert cli.main(["pretrain", str(ws.path), "--steps", "1"]) == 0  # the defaults
    assert (seen[1].embed_gain, seen[1].embed_class_gain) == (10.0, 3.0)


def test_missing_workspace_is_one_clear_line(tmp_path):
    res = run_cli("info", str(tmp_path / "nowhere"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("insarexplore info: error:")
    assert "nowhere" in lines[0] and "Traceback" not in res.stderr


def test_debug_shows_traceback(tmp_path):
    res = run_cli("info", str(tmp_path / "nowhere"), "--debug")
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_not_a_workspace(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    assert cli.main(["info", str(tmp_path / "folder")]) == 2
    assert "not an insarexplore workspace" in capsys.readouterr().err


# -- ingest and info --------------------------------------------------------------------------
def test_ingest_image_folder_then_info(tmp_path, capsys):
    src = write_pngs(tmp_path / "pngs")
    ws = tmp_path / "ws"
    assert cli.main(["ingest", str(ws), str(src)]) == 0
    assert "added 6 samples" in capsys.readouterr().err
    assert cli.main(["info", str(ws), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["data"]["samples"] == 6 and status["data"]["size"] == "16x16"
    assert cli.main(["info", str(ws)]) == 0
    assert "6 samples, 16x16 px" in capsys.readouterr().out
    # the same files again add nothing, and say why
    assert cli.main(["ingest", str(ws), str(src)]) == 0
    err = capsys.readouterr().err
    assert "6 files already in the workspace (ingested before)" in err and "added 0" in err
    from insarexplore.workspace import Workspace

    labels = Workspace.open(ws).open_data()["label"].to_numpy()
    assert sorted(set(labels)) == ["deformation", "none"]


def test_ingest_rejects_bad_input(tmp_path, capsys):
    assert cli.main(["ingest", str(tmp_path / "ws"), str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["ingest", str(tmp_path / "ws"), str(empty)]) == 2
    assert "no image files" in capsys.readouterr().err
    odd = tmp_path / "x.dat"
    odd.write_text("?")
    assert cli.main(["ingest", str(tmp_path / "ws"), str(odd)]) == 2
    assert "pass --format" in capsys.readouterr().err
    src = write_pngs(tmp_path / "pngs", n_per_class=1)
    assert cli.main(["ingest", str(tmp_path / "ws"), str(src), "--patch-size", "8"]) == 2
    assert "--patch-size/--stride apply to LiCSAR" in capsys.readouterr().err
    # --phase reads renderings of an image folder; elsewhere it was ignored without a word
    args = ["ingest", str(tmp_path / "ws"), str(src), "--format", "hephaestus", "--phase", "on"]
    assert cli.main([*args, "--images", str(src)]) == 2
    assert "--phase applies to image folders, not to hephaestus" in capsys.readouterr().err


def test_ingest_interrupted_leaves_workspace_consistent(tmp_path, monkeypatch, capsys):
    ws = tmp_path / "ws"
    assert cli.main(["ingest", str(ws), str(write_pngs(tmp_path / "a"))]) == 0
    more = tmp_path / "b"
    for cls in ("deformation", "none"):
        (more / cls).mkdir(parents=True)
        for p in (tmp_path / "a" / cls).iterdir():
            p.rename(more / cls / p.name.replace("20200101", "20210101"))
    import insarexplore.data.io.ingest as images

    original = images.ingest_image_folder

    def interrupted(*args, **kwargs):
        original(*args, **kwargs)  # the staging store is complete, then Ctrl-C arrives
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "ingest_image_folder", interrupted)
    assert cli.main(["ingest", str(ws), str(more)]) == 130
    assert "interrupted" in capsys.readouterr().err
    from insarexplore.workspace import Workspace

    assert Workspace.open(ws).open_data().sizes["sample"] == 6
    assert not list(ws.glob(".staging-*"))
    monkeypatch.setattr(images, "ingest_image_folder", original)
    assert cli.main(["ingest", str(ws), str(more)]) == 0  # the same command resumes
    assert Workspace.open(ws).open_data().sizes["sample"] == 12


# -- serve ------------------------------------------------------------------------------------
def make_embedded_workspace(path: Path, n: int = 40, size: int = 16, dim: int = 8):
    """A small workspace with phase data, a model folder and embeddings (no training)."""
    from insarexplore.data.schema import new_dataset
    from insarexplore.workspace import Workspace

    rng = np.random.default_rng(1)
    ws = Workspace.create(path)
    lon = rng.uniform(10, 20, n)
    lat = rng.uniform(30, 40, n)
    ws.add_data(
        new_dataset(
            phase=rng.uniform(-np.pi, np.pi, (n, size, size)).astype(np.float32),
            sample=[f"s{i:03d}" for i in range(n)],
            lon_min=lon,
            lat_min=lat,
            lon_max=lon + 0.1,
            lat_max=lat + 0.1,
            label=["mogi" if i % 2 else "none" for i in range(n)],
        )
    )
    version, _ = ws.new_model_dir("test")
    ws.set_current_model(version)
    ws.save_embeddings(version, ws.sample_ids(), rng.normal(size=(n, dim)).astype(np.float32))
    return ws


def wait_for_url(proc: subprocess.Popen, timeout: float = 240.0) -> str:
    """Read the child's stdout until the dashboard URL line appears."""
    import selectors
    import time

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if sel.select(timeout=1.0):
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("insarexplore dashboard: "):
                return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no dashboard URL; rc={proc.poll()} output={''.join(seen)[-2000:]}")


@pytest.mark.slow
def test_serve_prints_url_serves_page_and_stops_on_ctrl_c(tmp_path):
    import signal
    import urllib.request

    ws = make_embedded_workspace(tmp_path / "ws")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "insarexplore.cli",
            "serve",
            str(ws.path),
            "--port",
            "0",
            "--projection",
            "pca",
            "--prefix",
            "/user/me/insarexplore",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    )
    try:
        url = wait_for_url(proc)
        assert url.startswith("http://127.0.0.1:") and url.endswith("/user/me/insarexplore/")
        with urllib.request.urlopen(url, timeout=120) as resp:
            html = resp.read().decode()
        assert resp.status == 200 and "bokeh" in html.lower()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        assert "dashboard stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_options_are_serve_parameters():
    """``insarexplore serve`` and ``python -m insarexplore.app.server`` pass every option."""
    import inspect

    from insarexplore.app.server import build_parser, serve, serve_options

    args = build_parser().parse_args(
        ["ws", "--address", "0.0.0.0", "--port", "8080", "--user", "u", "--no-auth"]
    )
    options = serve_options(args)
    assert set(options) <= set(inspect.signature(serve).parameters)
    dests = {a.dest for a in build_parser()._actions} - {"help", "workspace"}
    assert dests - {"no_auth", "require_token"} <= set(options)  # folded into ``auth``
    assert options["address"] == "0.0.0.0" and options["port"] == 8080
    assert options["user"] == "u" and options["auth"] == "none"


def test_server_module_entry_is_the_serve_command(tmp_path, capsys):
    from insarexplore.app import server

    assert server.main([str(tmp_path / "none"), "--port", "0"]) == 2
    assert "insarexplore serve: error:" in capsys.readouterr().err


def test_serve_rejects_missing_workspace(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path / "none"), "--port", "0"]) == 2
    assert "no such folder" in capsys.readouterr().err


# -- labels and suggest -----------------------------------------------------------------------
def test_labels_import_export_counts(tmp_path, capsys):
    ws = make_embedded_workspace(tmp_path / "ws")
    src = tmp_path / "in.csv"
    src.write_text("sample,label\ns000,mogi\ns001,mogi\ns002,none\ns003,none\ns004,\n")
    assert cli.main(["labels", "import", str(ws.path), str(src), "--author", "bob"]) == 0
    assert "imported 4 labels" in capsys.readouterr().err
    assert cli.main(["labels", "counts", str(ws.path)]) == 0
    out = capsys.readouterr().out
    assert "2  mogi" in out and "2  none" in out

    out_csv = tmp_path / "out.csv"
    assert cli.main(["labels", "export", str(ws.path), str(out_csv)]) == 0
    import pandas as pd

    frame = pd.read_csv(out_csv)
    assert sorted(frame["sample"]) == ["s000", "s001", "s002", "s003"]
    assert {"lon_min", "lat_max"} <= set(frame.columns)

    out_geo = tmp_path / "out.geojson"
    assert cli.main(["labels", "export", str(ws.path), str(out_geo)]) == 0
    doc = json.loads(out_geo.read_text())
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 4

    from insarexplore.explore.labels import LabelStore

    with LabelStore(ws.labels_path) as store:
        events = store.events()
    assert {e["author"] for e in events} == {"bob"} and {e["origin"] for e in events} == {"import"}


def test_labels_import_unknown_ids_refused(tmp_path, capsys):
    ws = make_embedded_workspace(tmp_path / "ws")
    src = tmp_path / "bad.csv"
    src.write_text("sample,label\ns000,mogi\nghost-1,none\n")
    assert cli.main(["labels", "import", str(ws.path), str(src)]) == 2
    err = capsys.readouterr().err
    assert "ghost-1" in err and "nothing was imported" in err
    assert not ws.labels_path.exists() or cli.main(["labels", "counts", str(ws.path)]) == 0
    assert "mogi" not in capsys.readouterr().out
    assert cli.main(["labels", "import", str(ws.path), str(tmp_path / "none.csv")]) == 2
    assert cli.main(["labels", "export", str(ws.path), str(tmp_path / "x.txt")]) == 2
    assert "pass --format" in capsys.readouterr().err


def test_suggest_diversity_then_entropy(tmp_path, capsys):
    ws = make_embedded_workspace(tmp_path / "ws")
    # uncertainty needs labels of two classes: a clear error first
    assert cli.main(["suggest", str(ws.path)]) == 2
    assert "at least 2 classes" in capsys.readouterr().err
    assert cli.main(["suggest", str(ws.path), "--strategy", "diversity", "-n", "5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 5 and len({r["sample"] for r in rows}) == 5
    src = tmp_path / "in.csv"
    src.write_text("sample,label\ns000,a\ns001,a\ns002,b\ns003,b\n")
    assert cli.main(["labels", "import", str(ws.path), str(src)]) == 0
    out_csv = tmp_path / "next.csv"
    assert cli.main(["suggest", str(ws.path), "-n", "3", "-o", str(out_csv)]) == 0
    lines = out_csv.read_text().splitlines()
    assert lines[0] == "rank,sample,score,reason" and len(lines) == 4
    labelled = {"s000", "s001", "s002", "s003"}
    assert not labelled & {line.split(",")[1] for line in lines[1:]}


# -- synth and pretrain -----------------------------------------------------------------------
def test_synth_creates_appends_and_refuses_duplicates(tmp_path, capsys):
    ws = tmp_path / "ws"
    base = ["synth", str(ws), "-n", "24", "--size", "16", "--classes", "mogi,none"]
    assert cli.main(base) == 0
    assert "synthesised 24 interferograms (16 px)" in capsys.readouterr().err
    assert cli.main(base) == 2  # same seed -> same ids
    assert "already in the store" in capsys.readouterr().err
    assert cli.main([*base, "--seed", "1", "--png-dir", str(tmp_path / "png")]) == 0
    from insarexplore.workspace import Workspace

    ds = Workspace.open(ws).open_data()
    assert ds.sizes["sample"] == 48 and set(ds["label"].values) == {"mogi", "none"}
    assert len(list((tmp_path / "png").rglob("*.png"))) == 24
    with pytest.raises(SystemExit) as exc:
        cli.main(["synth", str(ws), "--classes", "mogi,volcano"])
    assert exc.value.code == 2
    assert "unknown class 'volcano'" in capsys.readouterr().err


def test_synth_renders_as_public_sets_ship_them_and_ingest_reads_them_back(tmp_path, capsys):
    from PIL import Image

    from insarexplore.workspace import Workspace

    pool, argv = tmp_path / "pool", ["synth", str(tmp_path / "s"), "-n", "30", "--size", "24"]
    real = ["--palette", "grey", "--look", "real", "--flat"]
    assert cli.main([*argv, "--png-dir", str(pool), *real]) == 0
    assert "30 images (grey palette as public sets ship them)" in capsys.readouterr().err
    files = sorted(pool.rglob("*.png"))
    assert all(f.parent == pool for f in files)  # flat: an unlabelled pool
    looks = {(Image.open(f).mode, Image.open(f).size) for f in files}
    assert len(files) == 30 and looks == {("RGB", (24, 24)), ("RGBA", (464, 373))}
    grey = np.asarray(Image.open(next(f for f in files if Image.open(f).mode == "RGB")))
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert cli.main(["ingest", str(tmp_path / "ws"), str(pool)]) == 0
    assert "30 grey" in capsys.readouterr().err  # read back as wrapped phase, grey palette
    ds = Workspace.open(tmp_path / "ws").open_data()
    assert ds.sizes["sample"] == 30 and not any(ds["label"].values.astype(str))
    plain = tmp_path / "plain"
    assert cli.main([*argv, "--seed", "1", "--png-dir", str(plain), "--palette", "grey"]) == 0
    assert {Image.open(f).size for f in plain.rglob("*.png")} == {(24, 24)}
    assert {f.parent.name for f in plain.rglob("*.png")} <= {
        "mogi",
        "dyke",
        "sill",
        "earthquake",
        "subsidence",
        "none",
    }
    # class folders: their labels come with the data, and the ingest says how to adopt them
    assert cli.main(["ingest", str(tmp_path / "ws"), str(plain)]) == 0
    err = capsys.readouterr().err
    assert "the data came with labels (" in err and "labels import" in err and "--from-data" in err


def test_labels_the_data_came_with_become_labels_on_request(tmp_path, capsys):
    """Class folders' labels stay with the data until `labels import --from-data` records
    them, never over a person's decision (a label given, or one removed); labels the store
    cannot keep are named and skipped; `labels counts` says how many are waiting."""
    from insarexplore.data.schema import new_dataset
    from insarexplore.explore.labels import LabelStore
    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ids = [f"s{i}" for i in range(8)]
    given = ["mogi", "mogi", "none", "none", "", "dyke", "a\tb", "dyke"]
    ws.add_data(new_dataset(phase=np.zeros((8, 4, 4), np.float32), sample=ids, label=given))
    assert ws.source_labels() == {s: g for s, g in zip(ids, given) if g}
    with LabelStore(ws.labels_path, author="ana") as store:
        store.assign("s0", "sill")  # a person's label is kept
        store.assign("s7", "mogi")
        store.remove("s7")  # and so is a person's removal
    assert cli.main(["labels", "counts", str(ws.path)]) == 0
    out = capsys.readouterr()
    assert "1  sill" in out.out and "4 labels not in the label store" in out.err, out
    assert cli.main(["labels", "import", str(ws.path), "--from-data"]) == 0
    err = capsys.readouterr().err
    assert "recorded 4 label(s)" in err and "2 sample(s) already labelled, or decided" in err
    assert "skipped 1 sample(s) labelled 'a\\tb' in the data: a label must be one line" in err
    with LabelStore(ws.labels_path, readonly=True) as store:
        assert store.current() == {"s0": "sill", "s1": "mogi", "s2": "none", "s3": "none",
                                   "s5": "dyke"}  # fmt: skip
    assert cli.main(["labels", "import", str(ws.path), "--from-data"]) == 0
    assert "nothing new to record" in capsys.readouterr().err
    assert cli.main(["labels", "counts", str(ws.path)]) == 0
    assert "not in the label store" not in capsys.readouterr().err
    assert cli.main(["labels", "import", str(ws.path)]) == 2  # neither a file nor --from-data
    assert "one of the two" in capsys.readouterr().err
    bare = Workspace.create(tmp_path / "bare")
    bare.add_data(new_dataset(phase=np.zeros((2, 4, 4), np.float32), sample=["a", "b"]))
    assert cli.main(["labels", "import", str(bare.path), "--from-data"]) == 2
    assert "came with no labels" in capsys.readouterr().err


def test_pretrain_needs_data(tmp_path, capsys):
    from insarexplore.workspace import Workspace

    Workspace.create(tmp_path / "ws")
    assert cli.main(["pretrain", str(tmp_path / "ws"), "--steps", "1"]) == 2
    assert "no data" in capsys.readouterr().err


def test_pretrain_views_larger_than_the_store_are_refused_and_leave_no_run(tmp_path, capsys):
    """Views are crops of the stored images: a larger view size is one line (it once ran the
    machine out of memory), and the failed start leaves no empty run folder behind."""
    ws = make_embedded_workspace(tmp_path / "ws", size=16)
    models = sorted(p.name for p in ws.models_dir.iterdir())
    argv = ["pretrain", str(ws.path), "--steps", "1", "--image-size", "64"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "image_size 64" in err[0] and "16 px" in err[0], err
    assert sorted(p.name for p in ws.models_dir.iterdir()) == models


@pytest.mark.slow
def test_pretrain_ctrl_c_then_resume(tmp_path):
    """SIGINT mid-run exits 130 with a checkpoint; the same command then finishes that run."""
    import os
    import signal
    import time

    ws = tmp_path / "ws"
    assert cli.main(["synth", str(ws), "-n", "64", "--size", "16"]) == 0
    cmd = [sys.executable, "-m", "insarexplore.cli", "pretrain", str(ws), "--steps", "3000",
           "--batch-size", "8", "--no-monitor", "--device", "cpu"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # a runner that starts the suite in the background (nohup, `cmd &`) hands SIGINT down as
    # ignored, and Python then never raises KeyboardInterrupt: give the child the default back
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip

    def logged_rows() -> int:  # metrics.csv gets a row every 10 steps
        files = list((ws / "models").glob("*/metrics.csv"))
        return len(files[0].read_text().splitlines()) - 1 if files else 0

    deadline = time.monotonic() + 300
    while logged_rows() < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "run the same command again to resume" in err
    runs = list((ws / "models").iterdir())
    assert len(runs) == 1 and (runs[0] / "checkpoint.pt").exists()
    assert json.loads((runs[0] / "meta.json").read_text())["status"] == "running"

    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert [p.name for p in (ws / "models").iterdir()] == [runs[0].name]  # resumed, not new
    meta = json.loads((runs[0] / "meta.json").read_text())
    assert meta["status"] == "done"
    from insarexplore.workspace import Workspace

    assert Workspace.open(ws).current_model == runs[0].name


def test_names_module_holds_the_encoders_input_names():
    """The CLI's choices come from insarexplore.names; models/encoders.py has its own copy."""
    from insarexplore.cli import model as cli_model
    from insarexplore.models import encoders
    from insarexplore.names import PHASE_INPUTS, RGB_INPUTS

    assert cli_model.PHASE_INPUTS is PHASE_INPUTS and cli_model.RGB_INPUTS is RGB_INPUTS
    assert encoders.PHASE_INPUTS is PHASE_INPUTS and encoders.RGB_INPUTS is RGB_INPUTS


def test_ctrl_c_says_one_thing_not_the_event_loops_teardown(tmp_path):
    """The data store's I/O runs asyncio tasks; Ctrl-C mid-write left them pending, and the
    interpreter's teardown printed a screenful about them. After an interrupt: one line."""
    script = """
import asyncio, sys
import insarexplore.cli as cli
import insarexplore.cli.explore as explore

def interrupted(args):
    loop = asyncio.new_event_loop()
    async def write_chunk():
        await asyncio.sleep(3600)
    loop.create_task(write_chunk())
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()  # the task is destroyed pending when collected
    raise KeyboardInterrupt

explore._cmd_info = interrupted
sys.exit(cli.main(["info", "ws"]))
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 130
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], res.stderr


def test_project_clusters_are_the_dashboards(tmp_path, capsys):
    """`project --clusters` proposes clusters on the map, as the dashboard does (it clustered
    the embeddings, so the two counts disagreed), and the dashboard then reads them cached."""
    from insarexplore.explore.clusters import cluster

    ws = make_embedded_workspace(tmp_path / "ws", n=60)
    assert cli.main(["project", str(ws.path), "--method", "pca", "--clusters"]) == 0
    err = capsys.readouterr().err
    assert "cluster proposals on the pca map, as the dashboard shows them" in err
    said = int(err.split(" cluster proposals")[0].split()[-1])
    table = cluster(ws, space="pca")
    assert said == int(table["cluster"].max()) + 1
    kinds = [k for k, _ in ws.list_artifacts("clusters")]
    assert len(kinds) == 1  # the dashboard's call found the CLI's result cached


def test_a_reader_that_goes_away_stops_the_output_quietly(tmp_path):
    """`insarexplore suggest ws | head -1`: a closed pipe is no traceback (it printed a
    BrokenPipeError traceback and exited 1)."""
    make_embedded_workspace(tmp_path / "ws")
    proc = subprocess.Popen(
        [sys.executable, "-m", "insarexplore.cli", "suggest", str(tmp_path / "ws"), "-n", "20",
         "--strategy", "diversity"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    proc.stdout.close()  # the reader is gone before the first line
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err and b"Exception ignored" not in err, err.decode()


def test_commands_say_when_samples_have_no_embedding_yet(tmp_path, capsys):
    """After an ingest without `embed`, scores, suggest and project left the new samples out
    without a word."""
    from insarexplore.cli import main
    from insarexplore.data.schema import new_dataset

    ws = make_embedded_workspace(tmp_path / "ws")
    ws.add_data(new_dataset(phase=np.zeros((3, 16, 16), np.float32), sample=["n1", "n2", "n3"]))
    for command in (["suggest", "--strategy", "diversity"], ["project", "--method", "pca"]):
        assert main([command[0], str(ws.path), *command[1:]]) == 0
        err = capsys.readouterr().err
        assert "note: 3 samples have no embedding" in err and "insarexplore embed" in err, err


def test_info_counts_labels_and_says_when_the_current_model_is_gone(tmp_path, capsys):
    import shutil

    from insarexplore.explore.labels import LabelStore

    ws = make_embedded_workspace(tmp_path / "ws")
    with LabelStore(ws.labels_path) as store:
        store.assign(["s000", "s001"], "mogi")
        store.assign(["s002"], "none")
    assert cli.main(["info", str(ws.path)]) == 0
    out = capsys.readouterr().out
    assert "labels     3 labelled (mogi 2, none 1)" in out  # it said only "labels.sqlite"
    shutil.rmtree(ws.model_dir(ws.current_model))
    assert cli.main(["info", str(ws.path)]) == 0
    assert f"{ws.current_model} (current): MISSING" in capsys.readouterr().out
    assert cli.main(["scores", str(ws.path)]) == 2
    assert "is missing (its folder was removed" in capsys.readouterr().err


def test_a_geojson_export_of_all_samples_says_how_many_are_labelled(tmp_path, capsys):
    from insarexplore.explore.labels import LabelStore

    ws = make_embedded_workspace(tmp_path / "ws")
    with LabelStore(ws.labels_path) as store:
        store.assign(["s000", "s001"], "mogi")
    out = tmp_path / "all.geojson"
    assert cli.main(["labels", "export", str(ws.path), str(out), "--all"]) == 0
    assert "wrote 40 samples (2 labelled)" in capsys.readouterr().err  # "40 labelled samples"


def test_ingest_names_each_skipped_file_once(tmp_path, capsys):
    """The readers' warning and the ingest's own list both named every skipped file."""
    src = write_pngs(tmp_path / "pngs")
    (src / "none" / "broken.png").write_bytes(b"\x89PNG broken")
    done = run_cli("ingest", str(tmp_path / "ws"), str(src))  # logging as a user sees it
    assert done.returncode == 0, done.stderr
    assert sum("broken.png" in line for line in done.stderr.splitlines()) == 1, done.stderr
