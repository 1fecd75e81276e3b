"""Hephaestus annotations: the 19,919 real files, small hand-made folders, joins to images."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from readers_fixtures import rendered, write_image

from insarexplore.data.io.hephaestus import (
    hephaestus_image_paths,
    read_hephaestus,
    read_hephaestus_annotations,
)
from insarexplore.errors import InSARDataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
ARCHIVE = SHARED / "data" / "hephaestus" / "annotations.tar.gz"


def annotation(uid: int, frame: str = "155D_02579_100800", pair=("20170310", "20170322"), **kw):
    base = {
        "uniqueID": uid, "frameID": frame, "primary_date": pair[0], "secondary_date": pair[1],
        "corrupted": 0, "processing_error": 0, "glacier_fringes": 0, "orbital_fringes": 0,
        "atmospheric_fringes": 2, "low_coherence": 0, "no_info": 0, "image_artifacts": 0,
        "label": ["Non_Deformation"], "activity_type": [], "intensity_level": [],
        "phase": "Rest", "confidence": 0.8, "segmentation_mask": [], "is_crowd": 0,
        "caption": "No deformation activity can be detected.",
    }  # fmt: skip
    base.update(kw)
    return base


def write_annotations(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for rec in records:
        (folder / f"{rec['uniqueID']}.json").write_text(json.dumps(rec))
    return folder


@pytest.mark.skipif(not ARCHIVE.exists(), reason=f"Hephaestus annotations not found at {ARCHIVE}")
def test_real_archive_reproduces_the_readme_counts():
    t0 = time.perf_counter()
    df = read_hephaestus_annotations(ARCHIVE)
    seconds = time.perf_counter() - t0
    assert len(df) == 19_919
    assert json.loads(df.attrs["skipped"]) == []
    assert df["uniqueID"].is_unique
    assert df["frameID"].nunique() == 38
    labels = Counter(label for labs in df["label_list"] for label in labs)
    assert labels == {"Non_Deformation": 18_100, "Deformation": 1_804, "Earthquake": 55}
    assert int((df["n_labels"] > 1).sum()) == 40
    activity = Counter(a for acts in df["activity_type_list"] for a in acts)
    assert activity == {
        "Sill": 1_264, "Dyke": 527, "Mogi": 333, "Earthquake": 55, "Unidentified": 51,
        "Spheroid": 25,
    }  # fmt: skip
    assert df["phase"].value_counts().to_dict() == {
        "Rest": 18_100, "Unrest": 1_670, "Rebound": 134, "None": 15,
    }  # fmt: skip
    # the deterministic join of the 40 multi-label files
    assert (df.loc[df["n_labels"] > 1, "label"] == "Deformation+Earthquake").all()
    assert df["primary_date"].dtype.kind == "M" and not df["primary_date"].isna().any()
    assert seconds < 60, f"reading the archive took {seconds:.1f} s (about 4 s expected)"


def test_folder_of_json_and_join_order(tmp_path):
    folder = write_annotations(
        tmp_path / "ann",
        [
            annotation(3, label=["Earthquake", "Deformation"], activity_type=["Dyke", "Earthquake", "Dyke"],
                       intensity_level=["High", "None", "High"], phase="Unrest"),
            annotation(1),
            annotation(2, label=["Deformation"], activity_type=["Mogi"], phase="Rebound", confidence=0.6),
        ],
    )  # fmt: skip
    df = read_hephaestus_annotations(folder)
    assert df["uniqueID"].tolist() == [1, 2, 3]
    assert df["label"].tolist() == ["Non_Deformation", "Deformation", "Deformation+Earthquake"]
    assert df.loc[2, "activity_type"] == "Dyke+Earthquake"
    assert df.loc[2, "activity_type_list"] == ["Dyke", "Earthquake", "Dyke"]
    assert df.loc[2, "intensity_level"] == "High+None"
    assert df["primary_date"].iloc[0] == np.datetime64("2017-03-10")
    assert df.loc[1, "confidence"] == 0.6 and df.loc[0, "atmospheric_fringes"] == 2


def test_tar_is_read_without_extracting(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rec in (annotation(7), annotation(8, label=["Deformation"])):
            raw = json.dumps(rec).encode()
            info = tarfile.TarInfo(f"annotations/{rec['uniqueID']}.json")
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    archive = tmp_path / "ann.tar.gz"
    archive.write_bytes(buf.getvalue())
    df = read_hephaestus_annotations(archive)
    assert df["uniqueID"].tolist() == [7, 8]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ann.tar.gz"]
    (tmp_path / "broken.tar.gz").write_bytes(buf.getvalue()[:100])
    with pytest.raises(InSARDataError, match="broken.tar.gz"):
        read_hephaestus_annotations(tmp_path / "broken.tar.gz")


def test_bad_and_duplicate_files(tmp_path):
    folder = write_annotations(tmp_path / "ann", [annotation(1), annotation(2)])
    (folder / "bad.json").write_text("{not json")
    (folder / "nolabel.json").write_text(json.dumps({"uniqueID": 5, "frameID": "x"}))
    (folder / "dup.json").write_text(json.dumps(annotation(2)))
    (folder / "baddate.json").write_text(json.dumps(annotation(9, primary_date="2017031")))
    df = read_hephaestus_annotations(folder)
    assert df["uniqueID"].tolist() == [1, 2]
    why = {Path(e["file"]).name: e["problem"] for e in json.loads(df.attrs["skipped"])}
    assert "invalid JSON" in why["bad.json"]
    assert "missing field" in why["nolabel.json"]
    assert "duplicate uniqueID 2" in why["dup.json"]
    assert "bad dates" in why["baddate.json"]
    with pytest.raises(InSARDataError, match=r"bad\.json: invalid JSON"):
        read_hephaestus_annotations(folder, strict=True)
    with pytest.raises(InSARDataError, match="does not exist"):
        read_hephaestus_annotations(tmp_path / "missing.tar.gz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InSARDataError, match="no readable Hephaestus annotation"):
        read_hephaestus_annotations(tmp_path / "empty")


def _image_tree(tmp_path):
    records = [
        annotation(1, pair=("20170310", "20170322")),
        annotation(2, pair=("20170322", "20170403"), label=["Deformation"], activity_type=["Sill"],
                   intensity_level=["Low"], phase="Unrest", confidence=0.7),
        annotation(3, pair=("20170403", "20170415")),  # no image on disk
        annotation(4, pair=("20170415", "20170427")),  # corrupt image
    ]  # fmt: skip
    folder = write_annotations(tmp_path / "ann", records)
    root = tmp_path / "images"
    ifg = root / "155D_02579_100800" / "interferograms"
    write_image(ifg / "20170310_20170322" / "InSAR.png", rendered((40, 40), 0))
    write_image(ifg / "20170322_20170403" / "InSAR.png", rendered((40, 40), 1))
    coh = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (40, 1))
    write_image(ifg / "20170322_20170403" / "Coherence.png", coh)
    (ifg / "20170415_20170427").mkdir(parents=True)
    (ifg / "20170415_20170427" / "InSAR.png").write_bytes(b"\x89PNG broken")
    return folder, root


def test_join_to_images(tmp_path):
    folder, root = _image_tree(tmp_path)
    paths = hephaestus_image_paths(read_hephaestus_annotations(folder), root)
    assert paths["has_insar"].tolist() == [True, True, False, True]

    ds = read_hephaestus(folder, root, size=32, progress=False)
    ds.insar.validate()
    assert list(ds["sample"].values) == ["hephaestus/1", "hephaestus/2"]
    assert ds["image"].shape == (2, 32, 32, 3)
    assert list(ds["label"].values) == ["Non_Deformation", "Deformation"]
    assert list(ds["group"].values) == [
        "155D_02579_100800/20170310_20170322", "155D_02579_100800/20170322_20170403",
    ]  # fmt: skip
    assert ds["activity_type"].values[1] == "Sill" and ds["activity_phase"].values[1] == "Unrest"
    assert ds["intensity_level"].values[1] == "Low" and ds["confidence"].values[1] == 0.7
    assert ds["uniqueID"].values.tolist() == [1, 2]
    assert np.isnan(ds["lon_min"].values).all() and np.isnan(ds["lat_max"].values).all()
    assert ds["primary_date"].values[1] == np.datetime64("2017-03-22")
    # coherence: Coherence.png / 255 where present, NaN where absent
    assert np.isnan(ds["coherence"].values[0]).all()
    c = ds["coherence"].values[1]
    assert 0 <= c.min() < 0.05 and 0.95 < c.max() <= 1 and (np.diff(c[0]) >= 0).all()
    assert ds.attrs["n_without_images"] == 1
    (skip,) = json.loads(ds.attrs["skipped"])
    assert skip["file"].endswith("20170415_20170427/InSAR.png")
    with pytest.raises(InSARDataError, match=r"20170415_20170427/InSAR\.png"):
        read_hephaestus(folder, root, size=32, strict=True, progress=False)


def test_ingest_streams_the_same_samples(tmp_path):
    from insarexplore.data.io.ingest import ingest_hephaestus
    from insarexplore.data.io.store import open_dataset

    folder, root = _image_tree(tmp_path)
    ref = read_hephaestus(folder, root, size=32, progress=False)
    report = ingest_hephaestus(folder, root, tmp_path / "h.zarr", size=32, chunk_size=1,
                               progress=False)  # fmt: skip
    assert (report.n_files, report.n_written, len(report.skipped)) == (3, 2, 1)
    ds = open_dataset(tmp_path / "h.zarr", lazy=False)
    assert list(ds["sample"].values) == list(ref["sample"].values)
    np.testing.assert_array_equal(ds["image"].values, ref["image"].values)
    np.testing.assert_array_equal(ds["coherence"].values, ref["coherence"].values)
    assert list(ds["activity_phase"].values) == ["Rest", "Unrest"]
    assert ds.attrs["n_without_images"] == 1


def test_skip_counts_do_not_mix_annotation_files_and_images(tmp_path, caplog):
    """Unreadable annotation files and unreadable images are counted against the files they
    come from (it said 'skipped 3 of 3' for 2 bad annotations and 1 bad image of 3 joined)."""
    import logging

    from insarexplore.data.io.ingest import ingest_hephaestus

    folder, root = _image_tree(tmp_path)
    (folder / "bad1.json").write_text("{")
    (folder / "bad2.json").write_text("[]")
    with caplog.at_level(logging.WARNING, logger="insarexplore.data.io"):
        report = ingest_hephaestus(folder, root, tmp_path / "h.zarr", size=32, progress=False)
    # 3 annotations with an image (1 unreadable) + 2 unreadable annotation files
    assert (report.n_files, report.n_written, len(report.skipped)) == (5, 2, 3)
    assert "skipped 3 of 5 files" in caplog.text


def test_join_without_images_is_a_clear_error(tmp_path):
    folder = write_annotations(tmp_path / "ann", [annotation(1)])
    (tmp_path / "images").mkdir()
    with pytest.raises(InSARDataError, match="InSAR.png"):
        read_hephaestus(folder, tmp_path / "images", progress=False)
    with pytest.raises(InSARDataError, match="does not exist"):
        read_hephaestus(folder, tmp_path / "nope", progress=False)


def test_the_ingest_says_how_many_annotations_had_no_image(tmp_path, capsys):
    """Annotations whose interferogram is not under --images are not added: the command
    line says how many (it said nothing; only the store's attributes counted them)."""
    from insarexplore import cli

    folder, root = _image_tree(tmp_path)
    argv = ["ingest", str(tmp_path / "ws"), str(folder), "--images", str(root), "--size", "32"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert f"1 annotation(s) have no image under {root}: not added" in err


def test_a_grown_hephaestus_set_adds_only_its_new_interferograms(tmp_path):
    """Ingesting the set again decoded every image, then refused the duplicates with advice
    (--id-prefix) that Hephaestus ingests do not take."""
    from insarexplore.intake import add_to_workspace
    from insarexplore.workspace import Workspace

    folder, root = _image_tree(tmp_path)
    ws = Workspace.create(tmp_path / "ws")
    first = add_to_workspace(ws, folder, format="hephaestus", images=root, size=32, progress=False)
    assert first.added == 2
    again = add_to_workspace(ws, folder, format="hephaestus", images=root, size=32, progress=False)
    assert again.added == 0 and any(
        "2 interferograms already in the workspace" in n for n in again.notes
    )
    write_annotations(folder, [annotation(9, pair=("20170427", "20170509"))])
    ifg = root / "155D_02579_100800" / "interferograms"
    write_image(ifg / "20170427_20170509" / "InSAR.png", rendered((40, 40), 3))
    more = add_to_workspace(ws, folder, format="hephaestus", images=root, size=32, progress=False)
    assert more.added == 1 and more.total == 3
    assert "hephaestus/9" in set(ws.sample_ids())
