"""Leftovers and malformed label files are reported, never counted or crashed on (issue 14)."""

from __future__ import annotations

import json

import pytest

from insarexplore import cli


@pytest.fixture
def ws(tmp_path):
    path = tmp_path / "ws"
    assert cli.main(["synth", str(path), "-n", "8", "--size", "16"]) == 0
    return path


def test_info_reports_unfinished_runs_instead_of_counting_them(ws, capsys):
    (ws / "models" / "simclr-a").mkdir()
    b = ws / "models" / "simclr-b"
    b.mkdir()
    from insarexplore.ssl.checkpoint import save_checkpoint

    save_checkpoint(b / "checkpoint.pt", step=29)  # interrupted after the last logged step
    (b / "metrics.csv").write_text("step,loss\n10,1.0\n20,0.9\n")
    capsys.readouterr()
    assert cli.main(["info", str(ws), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["models"] == []
    runs = status["unfinished_runs"]
    assert "before its first checkpoint" in runs["simclr-a"]
    assert "interrupted at step 29" in runs["simclr-b"] and "resumes" in runs["simclr-b"]
    assert cli.main(["info", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "models     0" in out and "run        simclr-b: interrupted at step 29" in out


@pytest.mark.parametrize(
    "doc, problem",
    [
        ({"type": "FeatureCollection", "features": "nope"}, "'features' must be a list"),
        ({"type": "FeatureCollection", "features": [7]}, "feature 0 is a int"),
        ({"type": "FeatureCollection", "features": [{"properties": "x"}]}, "not an object"),
        (
            {"type": "FeatureCollection", "features": [{"properties": {"sample": 1, "label": []}}]},
            "label of type list",
        ),
    ],
)
def test_geojson_with_wrongly_typed_members_is_one_line(ws, tmp_path, capsys, doc, problem):
    src = tmp_path / "bad.geojson"
    src.write_text(json.dumps(doc))
    capsys.readouterr()
    assert cli.main(["labels", "import", str(ws), str(src)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.geojson" in err[0] and problem in err[0]
