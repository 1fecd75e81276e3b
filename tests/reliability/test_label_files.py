"""Label exports: spreadsheet-safe CSV that imports back exactly, exact Hephaestus round trips,
no silent overwrites, and no folder made from a mistyped file name."""

from __future__ import annotations

import json

import pytest

from insarexplore import cli
from insarexplore.errors import InSARDataError
from insarexplore.explore.labelio import (
    export_csv,
    export_geojson,
    export_hephaestus,
    import_csv,
    import_hephaestus,
)
from insarexplore.explore.labels import LabelStore

TRICKY = {
    "s1": "=1+1",
    "s2": "+cmd",
    "s3": "-2",
    "s4": "@SUM(A1)",
    "s5": "'=already quoted",
    "s6": "'plain quote",
    "=s7": "mogi",
    "-s8": "a+b",
    "s9": "b+a",
}


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "a.sqlite", author="ana") as s:
        s.assign_many(TRICKY.items(), origin="person")
        yield s


def test_csv_cells_cannot_run_as_formulas(store, tmp_path):
    import csv

    export_csv(store, tmp_path / "l.csv")
    with open(tmp_path / "l.csv", newline="") as fh:
        cells = [c for row in csv.reader(fh) for c in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells


def test_csv_round_trip_is_exact(store, tmp_path):
    export_csv(store, tmp_path / "l.csv")
    with LabelStore(tmp_path / "b.sqlite") as other:
        assert import_csv(other, tmp_path / "l.csv") == len(TRICKY)
        assert other.current() == TRICKY


def test_hephaestus_round_trip_is_exact(store, tmp_path):
    export_hephaestus(store, tmp_path / "h.json")
    records = {r["sample"]: r["label"] for r in json.loads((tmp_path / "h.json").read_text())}
    assert records["-s8"] == ["a", "b"]  # a multi-label is still a Hephaestus label list
    assert records["s1"] == ["=1+1"]
    with LabelStore(tmp_path / "b.sqlite") as other:
        import_hephaestus(other, tmp_path / "h.json")
        assert other.current() == TRICKY


def test_exports_refuse_to_overwrite_unless_asked(store, tmp_path):
    for fn, name in ((export_csv, "l.csv"), (export_hephaestus, "h.json")):
        path = tmp_path / name
        path.write_text("precious")
        with pytest.raises(FileExistsError, match=name):
            fn(store, path)
        assert path.read_text() == "precious"
        fn(store, path, overwrite=True)
        assert path.read_text() != "precious"
    geo = tmp_path / "l.geojson"
    geo.write_text("precious")
    with pytest.raises(FileExistsError):
        export_geojson(store, geo, None)
    assert geo.read_text() == "precious"


def test_hephaestus_folder_export_refuses_existing_annotations(store, tmp_path):
    folder = tmp_path / "annotations"
    assert export_hephaestus(store, str(folder) + "/") == len(TRICKY)
    assert len(list(folder.glob("*.json"))) == len(TRICKY)
    with pytest.raises(FileExistsError, match="annotations"):
        export_hephaestus(store, folder)
    store.remove(["s1", "s2"])
    assert export_hephaestus(store, folder, overwrite=True) == len(TRICKY) - 2
    assert len(list(folder.glob("*.json"))) == len(TRICKY) - 2  # no stale records left


def test_a_path_without_suffix_does_not_become_a_folder(store, tmp_path):
    with pytest.raises(InSARDataError, match="labels_out"):
        export_hephaestus(store, tmp_path / "labels_out")
    assert not (tmp_path / "labels_out").exists()


def test_cli_export_overwrite_needs_force(ws, tmp_path, capsys):
    out = tmp_path / "labels.csv"
    assert cli.main(["labels", "export", str(ws.path), str(out)]) == 0
    first = out.read_text()
    capsys.readouterr()
    out.write_text("edited by hand")
    assert cli.main(["labels", "export", str(ws.path), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "labels.csv" in err[-1] and "--force" in err[-1]
    assert out.read_text() == "edited by hand"
    assert cli.main(["labels", "export", str(ws.path), str(out), "--force"]) == 0
    assert out.read_text() == first


def test_cli_export_path_without_suffix_is_an_error(ws, tmp_path, capsys):
    target = tmp_path / "mylabels"
    assert cli.main(["labels", "export", str(ws.path), str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0]
    assert not target.exists()
    # a folder said as such still works
    assert cli.main(["labels", "export", str(ws.path), str(target) + "/"]) == 0
    assert len(list(target.glob("*.json"))) == 3


def test_cli_export_without_labels_is_one_line(tmp_path, capsys):
    from .conftest import make_workspace

    ws = make_workspace(tmp_path / "ws")
    ws.labels_path.unlink()
    assert cli.main(["labels", "export", str(ws.path), str(tmp_path / "x.csv")]) == 2
    assert "no labels" in capsys.readouterr().err
    assert not ws.labels_path.exists()  # a reader creates nothing
    # every footprint, for a map before the first label
    out = tmp_path / "all.geojson"
    assert cli.main(["labels", "export", str(ws.path), str(out), "--all"]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["features"]) == 40 and {f["properties"]["label"] for f in doc["features"]} == {
        ""
    }
    assert not ws.labels_path.exists()


def test_suggestion_csv_cells_cannot_run_as_formulas(tmp_path, capsys):
    import csv

    import numpy as np

    from insarexplore.data.schema import new_dataset
    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ids = [f"{c}id{i}" for i, c in enumerate("=+-@=+-@=+")]
    ws.add_data(new_dataset(phase=np.zeros((10, 4, 4), np.float32), sample=ids))
    version, _ = ws.new_model_dir("test")
    ws.set_current_model(version)
    vectors = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    ws.save_embeddings(version, ids, vectors)
    out = tmp_path / "next.csv"
    argv = ["suggest", str(ws.path), "-n", "5", "--strategy", "diversity", "-o", str(out)]
    assert cli.main(argv) == 0
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    assert all(r["sample"][:1] == "'" and r["sample"][1:] in ids for r in rows)


def test_cli_outputs_never_replace_a_file_unasked_nor_the_workspaces_own(tmp_path, capsys):
    """`suggest -o` / `scores -o` replace an existing file only with --force, and no export
    ever writes over the workspace's own files (its label store above all)."""
    import numpy as np

    from insarexplore.data.schema import new_dataset
    from insarexplore.workspace import Workspace

    ws = Workspace.create(tmp_path / "ws")
    ids = [f"s{i}" for i in range(10)]
    ws.add_data(new_dataset(phase=np.zeros((10, 4, 4), np.float32), sample=ids))
    version, _ = ws.new_model_dir("test")
    ws.set_current_model(version)
    ws.save_embeddings(version, ids, np.random.default_rng(0).normal(size=(10, 4)))
    with LabelStore(ws.labels_path, author="ana") as s:
        s.assign("s1", "mogi")
    labels_before = ws.labels_path.read_bytes()
    out = tmp_path / "keep.csv"
    out.write_text("precious")
    suggest = ["suggest", str(ws.path), "-n", "3", "--strategy", "diversity", "-o"]
    assert cli.main([*suggest, str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keep.csv" in err[0] and "--force" in err[0]
    assert out.read_text() == "precious"
    assert cli.main([*suggest, str(out), "--force"]) == 0
    assert out.read_text().startswith("rank,sample")
    capsys.readouterr()
    link = tmp_path / "link.csv"
    link.symlink_to(ws.labels_path)
    for argv in (
        [*suggest, str(ws.labels_path), "--force"],
        [*suggest, str(link), "--force"],
        ["scores", str(ws.path), "-o", str(ws.path / "workspace.json"), "--force"],
        ["scores", str(ws.path), "-o", str(ws.path / "labels.sqlite-wal")],
        ["labels", "export", str(ws.path), str(ws.labels_path), "--force", "--format", "csv"],
        ["labels", "export", str(ws.path), str(ws.path / "models" / "x.csv")],
        [*suggest, str(ws.path / "LABELS.SQLITE"), "--force"],  # one file on macOS
    ):
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "part of the workspace" in err[0], (argv, err)
    assert ws.labels_path.read_bytes() == labels_before
    assert json.loads((ws.path / "workspace.json").read_text())["current_model"] == version
    # a link loop on the way is one line too
    (tmp_path / "loopa").symlink_to(tmp_path / "loopb")
    (tmp_path / "loopb").symlink_to(tmp_path / "loopa")
    for argv in (
        ["labels", "export", str(ws.path), str(tmp_path / "loopa" / "x.csv")],
        [*suggest, str(tmp_path / "loopa" / "x.csv")],
    ):
        assert cli.main(argv) == 2, argv
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    # a file where a folder should be is named as such
    (tmp_path / "afile").write_text("x")
    assert cli.main(["labels", "export", str(ws.path), str(tmp_path / "afile" / "x.csv")]) == 2
    assert "afile is a file, not a folder" in capsys.readouterr().err
    assert cli.main([*suggest, str(tmp_path / "afile" / "x.csv")]) == 2
    assert "afile is a file, not a folder" in capsys.readouterr().err


def test_an_interrupted_folder_export_leaves_the_folder_as_it_was(store, tmp_path, monkeypatch):
    """Ctrl-C part-way through `labels export ws folder/ --format hephaestus --force` left a
    mix of old and new records, and temporary files in the user's folder."""
    from pathlib import Path

    folder = tmp_path / "annotations"
    export_hephaestus(store, str(folder) + "/")
    before = {f.name: f.read_bytes() for f in folder.iterdir()}
    store.assign(sorted(TRICKY), "changed")
    written = []
    real = Path.write_bytes

    def interrupted(self, data):
        if len(written) == 3:
            raise KeyboardInterrupt
        written.append(self)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_hephaestus(store, folder, overwrite=True)
    monkeypatch.undo()
    assert {f.name: f.read_bytes() for f in folder.iterdir()} == before
    hidden = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert hidden == []  # no staging folder, no liveness file beside the folder
    export_hephaestus(store, folder, overwrite=True)
    labels = {json.loads(f.read_text())["label"][0] for f in folder.iterdir()}
    assert labels == {"changed"}


def test_a_folder_export_never_replaces_files_it_did_not_write(store, tmp_path, monkeypatch):
    """Exporting into the Hephaestus release folder replaced the release's own <uniqueID>.json
    of a labelled sample (and a later --force export then deleted it)."""
    from insarexplore.errors import InSARDataError

    folder = tmp_path / "release"
    folder.mkdir()
    own = export_hephaestus(store, str(tmp_path / "probe") + "/")  # names the files would get
    names = sorted(p.name for p in (tmp_path / "probe").iterdir())
    assert own == len(names)
    (folder / names[0]).write_text('{"uniqueID": 1, "label": ["Deformation"]}')
    with pytest.raises(InSARDataError, match="not written by an export"):
        export_hephaestus(store, folder, overwrite=True)
    assert (folder / names[0]).read_text() == '{"uniqueID": 1, "label": ["Deformation"]}'
    monkeypatch.chdir(folder.parent / "probe")  # "." as the target: it had no name to stage by
    assert export_hephaestus(store, ".", overwrite=True) == own


def test_an_export_clears_what_a_crashed_export_left_beside_it(store, tmp_path):
    from .conftest import dead_pid

    out = tmp_path / "l.csv"
    left = tmp_path / f".l.csv.tmp-{dead_pid()}.0badc0de"  # its writer and liveness file gone
    left.write_text("half")
    export_csv(store, out)
    assert out.exists() and not left.exists()
