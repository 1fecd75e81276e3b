"""Adding data to a workspace as users hold it: mixed folders, later ingests, appends, crashes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from insarexplore import cli
from insarexplore.data.io import store as store_mod
from insarexplore.data.synthetic import generate
from insarexplore.data.synthetic.styles import write_styled_folder
from insarexplore.intake import add_to_workspace, detect_format
from insarexplore.workspace import Workspace


def grey_pool(path: Path, n: int = 12, size: int = 40, seed: int = 0, tifs: int = 2) -> Path:
    ds = generate(n, size=size, seed=seed, progress=False, id_prefix=f"p{seed}")
    write_styled_folder(ds, path, styles=("grey",), wedge_p=0.5, seed=seed, tif_names=tifs)
    return path


def colour_set(path: Path, n: int = 10, size: int = 36, seed: int = 1) -> Path:
    ds = generate(n, size=size, seed=seed, progress=False, id_prefix=f"c{seed}")
    labels = ["deformation" if lab != "none" else "none" for lab in ds["label"].values]
    labels[0], labels[1] = "deformation", "none"
    write_styled_folder(ds, path, styles=("cyclic", "rainbow"), labels=labels, wedge_p=0.3,
                        rgba_p=0.3, big_size=(60, 70), seed=seed)  # fmt: skip
    return path


def test_a_mixed_folder_is_read_as_images(tmp_path):
    pool = grey_pool(tmp_path / "pool")
    fmt, why = detect_format(pool)
    assert fmt == "images" and "2 .geo.diff_pha.tif" in why
    ws = Workspace.create(tmp_path / "ws")
    report = add_to_workspace(ws, pool, progress=False)
    assert report.added == 12 and report.total == 12 and report.skipped == []
    ds = ws.open_data()
    assert ds.insar.kind == "phase" and "image" in ds
    assert set(ds.insar.sample_table()["rendering"]) == {"grey"}
    assert sum(s.endswith(".geo.diff_pha.tif") for s in ds["sample"].values) == 2
    assert "palettes read back to phase: 12 grey (--palette" in " ".join(report.notes)


def test_the_cli_ingests_a_grey_pool_then_a_colour_set_without_options(tmp_path, capsys):
    pool, labelled = grey_pool(tmp_path / "pool"), colour_set(tmp_path / "labelled")
    ws = tmp_path / "ws"
    assert cli.main(["ingest", str(ws), str(pool)]) == 0
    assert cli.main(["ingest", str(ws), str(labelled)]) == 0
    err = capsys.readouterr().err
    assert "as images" in err and "fitting images to the store's size 40x40" in err
    ds = Workspace.open(ws).open_data()
    # the user sees how each palette family was read, the counts of what the store holds
    counts = ds.insar.sample_table()["rendering"].value_counts()
    said = [f"{counts['cyclic']:,} diverging", f"{counts['rainbow']:,} hue cycle"]
    assert all(s in err for s in said), err
    assert ds.sizes["sample"] == 22 and ds["phase"].shape[1:] == (40, 40)
    table = ds.insar.sample_table()
    assert set(table["rendering"]) >= {"grey", "cyclic", "rainbow"}
    assert set(table["label"]) == {"", "deformation", "none"}  # labels kept, pool unlabelled
    # the RGBA scenes' transparent wedges are no data
    assert np.isnan(ds["phase"].values).any()


def test_python_dash_m_runs_the_cli(tmp_path):
    out = subprocess.run([sys.executable, "-m", "insarexplore", "ingest", "--help"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0 and "--phase" in out.stdout


def test_appends_of_any_count_fit_the_store_chunks(tmp_path, monkeypatch):
    """Counts that are not multiples of the store chunk and span several chunks append."""
    ws = Workspace.create(tmp_path / "ws")
    for k, n in enumerate((13, 21, 7)):
        folder = tmp_path / f"f{k}"
        ds = generate(n, size=24, seed=k, progress=False, id_prefix=f"s{k}")
        write_styled_folder(ds, folder, styles=("cyclic",), seed=k, wedge_p=0)
        monkeypatch.setattr(store_mod, "_piece_len", lambda ds, budget=0: 5)  # many pieces
        add_to_workspace(ws, folder, progress=False)
    ds = ws.open_data(lazy=False)
    assert ds.sizes["sample"] == 41 and len(set(ds["sample"].values)) == 41
    # no blank samples: every image has pixels
    assert (ds["image"].values.reshape(41, -1).max(axis=1) > 0).all()


def test_a_crash_between_pieces_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    ws = Workspace.create(tmp_path / "ws")
    add_to_workspace(ws, grey_pool(tmp_path / "a", n=6, tifs=0), progress=False)
    before = ws.open_data(lazy=False)
    monkeypatch.setattr(store_mod, "_piece_len", lambda ds, budget=0: 3)

    def crash(stage, done):
        if done >= 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(store_mod, "append_hook", crash)
    with pytest.raises(KeyboardInterrupt):
        add_to_workspace(ws, grey_pool(tmp_path / "b", n=8, seed=5, tifs=0), progress=False)
    after = ws.open_data(lazy=False)
    assert list(after["sample"].values) == list(before["sample"].values)
    np.testing.assert_array_equal(after["image"].values, before["image"].values)
    assert not list(ws.path.glob(".staging-*"))
    monkeypatch.setattr(store_mod, "append_hook", lambda stage, done: None)
    add_to_workspace(ws, tmp_path / "b", progress=False)  # the same ingest again works
    assert ws.open_data().sizes["sample"] == 14


_KILLER = """
import os, signal, sys
from insarexplore.data.io import store
from insarexplore.intake import add_to_workspace
from insarexplore.workspace import Workspace
store._piece_len = lambda ds, budget=0: 3
def hook(stage, done):
    if done >= 3:
        os.kill(os.getpid(), signal.SIGKILL)
store.append_hook = hook
add_to_workspace(Workspace.open(sys.argv[1]), sys.argv[2], progress=False)
"""


def test_kill_9_mid_append_is_rolled_back_on_the_next_open(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    add_to_workspace(ws, grey_pool(tmp_path / "a", n=6, tifs=0), progress=False)
    before = ws.open_data(lazy=False)
    more = grey_pool(tmp_path / "b", n=8, seed=5, tifs=0)
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(ws.path), str(more)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    assert (ws.path / ".data.zarr.append-pending.json").exists()
    after = ws.open_data(lazy=False)  # rolled back: no ids without pixels
    assert list(after["sample"].values) == list(before["sample"].values)
    np.testing.assert_array_equal(after["phase"].values, before["phase"].values)
    assert not (ws.path / ".data.zarr.append-pending.json").exists()
    assert add_to_workspace(ws, more, progress=False).total == 14


def test_concurrent_ingests_keep_every_sample(tmp_path):
    folders = []
    for k in range(3):
        ds = generate(8, size=24, seed=k, progress=False, id_prefix=f"k{k}")
        write_styled_folder(ds, tmp_path / f"src{k}", styles=("grey",), seed=k, wedge_p=0)
        folders.append(tmp_path / f"src{k}")
    ws = tmp_path / "ws"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    code = "from insarexplore import cli; import sys; sys.exit(cli.main(sys.argv[1:]))"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, "ingest", str(ws), str(f)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for f in folders
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    ds = Workspace.open(ws).open_data(lazy=False)
    assert ds.sizes["sample"] == 24 and len(set(ds["sample"].values)) == 24
    assert not list(Path(ws).glob(".staging-*"))


def test_a_phase_only_store_takes_renderings_as_phase(tmp_path, capsys):
    ws = tmp_path / "ws"
    assert cli.main(["synth", str(ws), "-n", "12", "--size", "32"]) == 0
    folder = tmp_path / "r"
    ds = generate(6, size=40, seed=3, progress=False, id_prefix="r")
    write_styled_folder(ds, folder, styles=("cyclic",), seed=3, wedge_p=0)
    Image.fromarray(np.zeros((40, 40, 3), np.uint8) + 7).save(folder / "flat.png")
    assert cli.main(["ingest", str(ws), str(folder)]) == 0
    err = capsys.readouterr().err
    assert "phase only" in err and "skipped 1 file" in err
    data = Workspace.open(ws).open_data()
    assert data.sizes["sample"] == 18 and "image" not in data
    assert "rendering" in data  # a per-sample variable new to the store is added, not refused


def test_cli_ingest_help_explains_the_defaults():
    text = textwrap.dedent(
        subprocess.run(
            [sys.executable, "-m", "insarexplore", "ingest", "--help"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout  # fmt: skip
    )
    assert "what most files" in text and "store's size" in text


def test_two_folders_with_the_same_names_need_an_id_prefix(tmp_path, capsys):
    ds = generate(4, size=24, seed=0, progress=False, id_prefix="same")
    for k in ("a", "b"):
        write_styled_folder(ds, tmp_path / k, styles=("grey",), seed=0, wedge_p=0)
    ws = str(tmp_path / "ws")
    assert cli.main(["ingest", ws, str(tmp_path / "a")]) == 0
    assert cli.main(["ingest", ws, str(tmp_path / "b")]) == 2
    assert "--id-prefix" in capsys.readouterr().err
    assert cli.main(["ingest", ws, str(tmp_path / "b"), "--id-prefix", "b/"]) == 0
    ids = Workspace.open(ws).open_data()["sample"].values
    assert len(ids) == 8 and sum(str(i).startswith("b/") for i in ids) == 4


def test_a_folder_that_has_grown_adds_only_its_new_files(tmp_path, capsys, monkeypatch):
    """Ingesting a folder again after files arrived was refused whole ('ids already in the
    store ... --id-prefix', advice that would store the old files twice)."""
    import shutil

    grey_pool(tmp_path / "first", n=6, seed=0, tifs=0)
    grey_pool(tmp_path / "later", n=9, seed=1, tifs=0)
    folder = tmp_path / "archive"
    shutil.copytree(tmp_path / "first", folder)
    ws = str(tmp_path / "ws")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["ingest", ws, "archive"]) == 0  # relative: sources are stored absolute
    monkeypatch.chdir(tmp_path / "first")
    before = Workspace.open(ws).open_data(lazy=False)
    for f in (tmp_path / "later").iterdir():
        if not (folder / f.name).exists():
            shutil.copy(f, folder / f.name)
    new = len(list(folder.iterdir())) - 6
    assert new > 0
    capsys.readouterr()
    assert cli.main(["ingest", ws, str(folder)]) == 0
    err = capsys.readouterr().err
    assert "6 files already in the workspace (ingested before): not added again" in err
    after = Workspace.open(ws).open_data(lazy=False)
    assert after.sizes["sample"] == 6 + new
    np.testing.assert_array_equal(after["phase"].values[:6], before["phase"].values)
    assert cli.main(["ingest", ws, str(folder)]) == 0  # nothing new: nothing added, no error
    assert f"added 0 samples to {Path(ws)} (now {6 + new})" in capsys.readouterr().err
    # a copy elsewhere is other files with the same names: refused, not taken as ingested
    shutil.copytree(folder, tmp_path / "copy")
    assert cli.main(["ingest", ws, str(tmp_path / "copy")]) == 2
    assert "--id-prefix" in capsys.readouterr().err
