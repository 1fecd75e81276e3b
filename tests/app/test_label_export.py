"""The dashboard's CSV/GeoJSON downloads are the files ``insarexplore labels export`` writes."""

from __future__ import annotations

import json

import numpy as np

from insarexplore import cli
from insarexplore.app.state import ExplorerState
from insarexplore.explore.labelio import import_csv, import_geojson
from insarexplore.explore.labels import LabelStore
from insarexplore.workspace import Workspace


def test_dashboard_downloads_equal_cli_export(app_data, workspace_copy, tmp_path):
    ws = Workspace.open(workspace_copy)
    ids = list(app_data.table.index)
    store = LabelStore(ws.labels_path, author="alice", session="s1")
    state = ExplorerState(app_data, label_store=store, author="alice", session="s1")
    # not in id order, and labels a spreadsheet would run as formulas
    store.assign([ids[40], ids[3], ids[17]], "mogi")
    store.assign([ids[8], ids[61]], "=SUM(A1)")
    store.assign([ids[25]], "-dyke")
    state.refresh_labels()
    csv, geo = state.export("csv"), state.export("geojson")
    store.close()

    out_csv, out_geo = tmp_path / "cli.csv", tmp_path / "cli.geojson"
    assert cli.main(["labels", "export", str(ws.path), str(out_csv)]) == 0
    assert cli.main(["labels", "export", str(ws.path), str(out_geo)]) == 0
    assert out_csv.read_bytes() == csv
    assert out_geo.read_bytes() == geo

    # what the two files hold: every label, neutralised in the CSV, footprints exact
    rows = csv.decode().splitlines()
    assert (
        rows[0] == "sample,label,lon_min,lat_min,lon_max,lat_max,primary_date,secondary_date,frame"
    )
    assert [r.split(",")[0] for r in rows[1:]] == sorted([ids[i] for i in (3, 8, 17, 25, 40, 61)])
    assert sum(",'=SUM(A1)," in r for r in rows) == 2 and sum(",'-dyke," in r for r in rows) == 1
    doc = json.loads(geo)
    assert len(doc["features"]) == 6
    f = next(f for f in doc["features"] if f["id"] == ids[25])
    assert f["properties"]["label"] == "-dyke"
    x0, y0, x1, y1 = app_data.table.loc[ids[25], ["lon_min", "lat_min", "lon_max", "lat_max"]]
    assert f["geometry"]["coordinates"][0] == [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    assert f["properties"]["primary_date"] == str(
        np.datetime_as_string(app_data.table.loc[ids[25], "primary_date"].to_datetime64(), "D")
    )

    # and both import back to the same labels
    for reader, path in ((import_csv, out_csv), (import_geojson, out_geo)):
        with LabelStore(tmp_path / f"{path.suffix}.sqlite", author="bo") as other:
            assert reader(other, path, known_ids=ids) == 6
            with LabelStore(ws.labels_path, readonly=True) as orig:
                assert other.current() == orig.current()
