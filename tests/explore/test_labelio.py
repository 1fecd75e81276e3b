"""Label import/export: CSV, GeoJSON (QGIS-valid), Hephaestus JSON; unknown ids refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from insarexplore.data.schema import new_dataset
from insarexplore.errors import InSARDataError
from insarexplore.explore.labelio import (
    export_csv,
    export_geojson,
    export_hephaestus,
    import_csv,
    import_geojson,
    import_hephaestus,
)
from insarexplore.explore.labels import LabelStore, UnknownSampleError


@pytest.fixture
def ds():
    n = 6
    lon = np.linspace(10.0, 15.0, n)
    lat = np.linspace(40.0, 42.0, n)
    lon_min = lon.copy()
    lon_min[5] = np.nan  # one unknown footprint
    return new_dataset(
        phase=np.zeros((n, 4, 4), np.float32),
        sample=[f"s{i}" for i in range(n)],
        lon_min=lon_min,
        lat_min=lat,
        lon_max=lon + 0.5,
        lat_max=lat + 0.3,
        primary_date=np.array(["2020-01-01"] * n, dtype="datetime64[ns]"),
        secondary_date=np.array([f"2020-01-{7 + i:02d}" for i in range(n)], dtype="datetime64[ns]"),
        frame=["079D_07694_131313"] * n,
    )


def _stores(tmp_path):
    a = LabelStore(tmp_path / "a.sqlite", author="ana")
    b = LabelStore(tmp_path / "b.sqlite", author="bo")
    return a, b


def test_csv_round_trip(tmp_path, ds):
    a, b = _stores(tmp_path)
    a.assign(["s0", "s1"], "mogi")
    a.assign(["s4"], "none")
    assert export_csv(a, tmp_path / "l.csv", ds) == 3
    text = (tmp_path / "l.csv").read_text()
    assert text.splitlines()[0].startswith("sample,label,lon_min")
    assert import_csv(b, tmp_path / "l.csv", known_ids=ds["sample"].values) == 3
    assert b.current() == a.current()
    assert {e["origin"] for e in b.events()} == {"import"}
    b.undo()  # an import is one operation
    assert b.current() == {}


def test_import_refuses_unknown_ids_and_writes_nothing(tmp_path, ds):
    _, b = _stores(tmp_path)
    (tmp_path / "bad.csv").write_text("sample,label\ns0,mogi\nX1,mogi\nX2,sill\n")
    with pytest.raises(UnknownSampleError) as err:
        import_csv(b, tmp_path / "bad.csv", known_ids=ds["sample"].values)
    assert err.value.ids == ["X1", "X2"]
    assert isinstance(err.value, InSARDataError) and "X1, X2" in str(err.value)
    assert b.current() == {}
    (tmp_path / "conflict.csv").write_text("sample,label\ns0,mogi\ns0,sill\n")
    with pytest.raises(InSARDataError, match="two labels"):
        import_csv(b, tmp_path / "conflict.csv")
    (tmp_path / "cols.csv").write_text("id,class\ns0,mogi\n")
    with pytest.raises(InSARDataError, match="missing column"):
        import_csv(b, tmp_path / "cols.csv")


def test_geojson_is_valid_for_qgis(tmp_path, ds):
    a, b = _stores(tmp_path)
    a.assign(["s1", "s5"], "dyke")
    assert export_geojson(a, tmp_path / "l.geojson", ds) == 2
    doc = json.loads((tmp_path / "l.geojson").read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    by_id = {f["properties"]["sample"]: f for f in doc["features"]}
    geom = by_id["s1"]["geometry"]
    assert geom["type"] == "Polygon"
    ring = np.array(geom["coordinates"][0])
    assert ring.shape == (5, 2) and (ring[0] == ring[-1]).all()  # closed
    lon0, lat0 = float(ds.lon_min[1]), float(ds.lat_min[1])
    assert ring[0].tolist() == [lon0, lat0]  # [lon, lat] order
    assert -180 <= ring[:, 0].min() and ring[:, 1].max() <= 90
    area2 = np.sum(ring[:-1, 0] * ring[1:, 1] - ring[1:, 0] * ring[:-1, 1])
    assert area2 > 0  # counter-clockwise exterior ring (RFC 7946 right-hand rule)
    assert by_id["s1"]["properties"]["label"] == "dyke"
    assert by_id["s1"]["properties"]["primary_date"] == "2020-01-01"
    assert by_id["s5"]["geometry"] is None  # unknown footprint: null geometry, still listed
    assert import_geojson(b, tmp_path / "l.geojson", known_ids=ds["sample"].values) == 2
    assert b.current() == a.current()


def test_geojson_export_and_accessor_share_one_footprint_writer(tmp_path, ds):
    a, _ = _stores(tmp_path)
    a.assign(["s0", "s2", "s5"], "mogi")
    export_geojson(a, tmp_path / "l.geojson", ds, include_unlabelled=True)
    exported = {f["id"]: f for f in json.loads((tmp_path / "l.geojson").read_text())["features"]}
    accessor = {f["id"]: f for f in ds.insar.footprints_geojson()["features"]}
    assert sorted(exported) == [f"s{i}" for i in range(6)]
    assert sorted(accessor) == [f"s{i}" for i in range(5)]  # the accessor skips unknown ones
    for sid, feat in accessor.items():
        assert exported[sid]["geometry"] == feat["geometry"]
        assert exported[sid]["properties"]["secondary_date"] == feat["properties"]["secondary_date"]
    assert exported["s2"]["properties"]["label"] == "mogi"
    assert exported["s1"]["properties"]["label"] == ""
    assert exported["s5"]["geometry"] is None


def test_hephaestus_round_trip_and_matching(tmp_path, ds):
    a, b = _stores(tmp_path)
    a.assign(["s0"], "Deformation")
    a.assign(["s3"], "Deformation+Earthquake")
    assert export_hephaestus(a, tmp_path / "h.json", ds) == 2
    recs = json.loads((tmp_path / "h.json").read_text())
    rec3 = next(r for r in recs if r["sample"] == "s3")
    assert rec3["label"] == ["Deformation", "Earthquake"]
    assert rec3["frameID"] == "079D_07694_131313" and rec3["primary_date"] == "20200101"
    assert import_hephaestus(b, tmp_path / "h.json", ds) == 2
    assert b.current() == a.current()
    # real-style records (no 'sample'): matched by frame and dates; folder form
    folder = tmp_path / "ann"
    folder.mkdir()
    rec = {
        "uniqueID": 7,
        "frameID": "079D_07694_131313",
        "primary_date": "20200101",
        "secondary_date": "20200108",
        "label": ["Non_Deformation"],
    }
    (folder / "7.json").write_text(json.dumps(rec))
    _, c = _stores(tmp_path / "c")
    assert import_hephaestus(c, folder, ds) == 1
    assert c.current() == {"s1": "Non_Deformation"}
    rec["secondary_date"] = "19990101"
    (folder / "8.json").write_text(json.dumps(rec))
    with pytest.raises(UnknownSampleError, match="uniqueID=7"):
        import_hephaestus(c, folder, ds)


@pytest.mark.slow
def test_import_real_hephaestus_annotations(tmp_path):
    """All 19,919 real annotation files import; per-label counts match the data README."""
    import tarfile
    from pathlib import Path

    archive = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hephaestus"
    archive = archive.resolve() / "annotations.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} not present")
    with tarfile.open(archive) as tar:
        known = ["hephaestus/" + Path(m.name).stem for m in tar if m.name.endswith(".json")]
    with LabelStore(tmp_path / "l.sqlite") as store:
        assert import_hephaestus(store, archive, known_ids=known) == 19_919
        counts = store.counts()
    per_label = {
        name: sum(n for joined, n in counts.items() if name in joined.split("+"))
        for name in ("Non_Deformation", "Deformation", "Earthquake")
    }
    assert per_label == {"Non_Deformation": 18_100, "Deformation": 1_804, "Earthquake": 55}
    assert sum(n for joined, n in counts.items() if "+" in joined) == 40


def test_rows_csv_refuses_folders_and_special_files_and_writes_through_links(tmp_path):
    import os

    from insarexplore.explore.labelio import write_rows_csv

    rows = [{"sample": "=cmd", "score": 1.0}]
    with pytest.raises(InSARDataError, match="is a folder"):
        write_rows_csv(tmp_path, rows, ["sample", "score"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_rows_csv(tmp_path / "missing" / "s.csv", rows, ["sample", "score"])
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(InSARDataError, match="not a regular file"):
        write_rows_csv(fifo, rows, ["sample", "score"])
    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    target.write_text("old\n")
    link.symlink_to(target)
    assert write_rows_csv(link, rows, ["sample", "score"]) == 1
    assert link.is_symlink() and target.read_text() == "sample,score\n'=cmd,1.0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.csv", "link.csv", "target.csv"]


def test_hephaestus_folder_export_names_files_by_unique_id_and_keeps_the_annotation(tmp_path):
    """Files are ``<uniqueID>.json`` as in the release (they were 0.json, 1.json, ...), and a
    label that is still the data's own keeps the data's activity type, intensity, phase and
    confidence (they were dropped: [] and 1.0)."""
    import pandas as pd

    table = pd.DataFrame(
        {
            "label": ["Deformation", "Non_Deformation", "Non_Deformation", ""],
            "activity_type": ["Dyke+Sill", "", "", ""],
            "intensity_level": ["Low", "", "", ""],
            "activity_phase": ["Unrest", "Rest", "Rest", ""],
            "confidence": [0.7, 0.9, 0.8, np.nan],
        },
        index=pd.Index(["hephaestus/5", "hephaestus/9", "hephaestus/0", "s0"], name="sample"),
    )
    a, b = _stores(tmp_path)
    a.assign(["hephaestus/5"], "Deformation")  # the data's own label
    a.assign(["hephaestus/9"], "Deformation")  # a person changed it
    a.assign(["hephaestus/0", "s0"], "Non_Deformation")
    folder = tmp_path / "out"
    assert export_hephaestus(a, str(folder) + "/", table) == 4
    s0 = json.loads(
        next(f for f in folder.glob("*.json") if f.stem not in ("0", "5", "9")).read_text()
    )
    assert s0["sample"] == "s0" and s0["uniqueID"] > 10**6  # made from its id, stable
    assert sorted(f.name for f in folder.glob("*.json")) == sorted(
        ["0.json", "5.json", "9.json", f"{s0['uniqueID']}.json"]
    )
    rec5 = json.loads((folder / "5.json").read_text())
    assert rec5["uniqueID"] == 5 and rec5["sample"] == "hephaestus/5"
    assert rec5["activity_type"] == ["Dyke", "Sill"] and rec5["intensity_level"] == ["Low"]
    assert rec5["phase"] == "Unrest" and rec5["confidence"] == 0.7
    rec9 = json.loads((folder / "9.json").read_text())
    assert rec9["label"] == ["Deformation"]
    assert rec9["activity_type"] == [] and rec9["confidence"] == 1.0 and "phase" not in rec9
    assert import_hephaestus(b, folder, known_ids=table.index) == 4
    assert b.current() == a.current()
    a.remove(["hephaestus/9"])  # overwrite leaves no stale record behind ...
    (folder / "77.json").write_text(json.dumps(annotation_like := {"uniqueID": 77, "label": []}))
    assert export_hephaestus(a, folder, table, overwrite=True) == 3
    names = sorted(f.name for f in folder.glob("*.json"))
    assert names == sorted(["0.json", "5.json", "77.json", f"{s0['uniqueID']}.json"])  # keeps 77
    assert json.loads((folder / "77.json").read_text()) == annotation_like


def test_hephaestus_export_takes_the_stored_unique_id(tmp_path):
    import pandas as pd

    table = pd.DataFrame(
        {"label": ["Deformation", ""], "uniqueID": [1234, np.nan]},
        index=pd.Index(["frame/a", "frame/b"], name="sample"),
    )
    a, _ = _stores(tmp_path)
    a.assign(["frame/a", "frame/b"], "Deformation")
    folder = tmp_path / "out"
    assert export_hephaestus(a, str(folder) + "/", table) == 2
    names = sorted(f.name for f in folder.glob("*.json"))
    assert len(names) == 2 and "1234.json" in names
    with LabelStore(tmp_path / "a.sqlite", author="carla") as other:
        other.assign(["frame/c"], "Deformation")  # another sample: the others keep their ids
    table.loc["frame/c"] = {"label": "", "uniqueID": np.nan}
    assert export_hephaestus(a, folder, table, overwrite=True) == 3
    assert set(names) < {f.name for f in folder.glob("*.json")}
    by_sample = {
        r["sample"]: r for r in map(json.loads, map(Path.read_text, folder.glob("*.json")))
    }
    assert by_sample["frame/c"]["annotator"] == "carla"  # who gave the label, not who exports
    assert by_sample["frame/a"]["annotator"] == "ana"


def test_importing_a_folder_without_annotations_is_an_error(tmp_path):
    """`labels import ws pngs/` said "imported 0 labels" and exited 0."""
    a, _ = _stores(tmp_path)
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(InSARDataError, match="pngs: no Hephaestus annotation"):
        import_hephaestus(a, tmp_path / "pngs")
