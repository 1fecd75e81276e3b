"""Folders of rendered interferograms: formats, labels, file-name metadata, sizes, bad files,
phase recovery, and streaming ingestion into Zarr."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image
from readers_fixtures import fringe_phase, rendered, write_geotiff, write_image

from insarexplore.data.io.images import (
    list_image_files,
    parse_image_name,
    read_image_folder,
)
from insarexplore.data.io.ingest import ingest_image_folder
from insarexplore.data.io.store import open_dataset
from insarexplore.errors import InSARDataError

NAME_A = "africa_adwa_079D_07894_131313_adwa_20150819_20150912_{}_{}_1.png"


@pytest.fixture
def class_folder(tmp_path):
    """0/ and 1/ class folders; crops of one interferogram sit in both; PNG, JPEG, TIFF, grey."""
    root = tmp_path / "set"
    for i in range(4):
        write_image(root / str(i % 2) / NAME_A.format(i * 32, 0), rendered((32, 32), i))
    write_image(root / "0" / "20141121_20141203.geo.diff1_1.png", rendered((32, 32), 10))
    write_image(root / "1" / "20141121_20141203.geo.diff1_2.png", rendered((32, 32), 11))
    write_image(root / "1" / "scene.jpg", rendered((32, 32), 12), quality=95)
    write_image(root / "0" / "rgb_only.tif", rendered((32, 32), 13))  # RGB TIFF, no georef
    write_image(root / "1" / "grey.png", rendered((32, 32), 14)[..., 1])
    return root


def test_parse_image_name():
    meta = parse_image_name("africa_adwa_079D_07894_131313_adwa_20150819_20150912_274_137_1")
    assert meta["frame"] == "079D_07894_131313"
    assert meta["primary_date"] == np.datetime64("2015-08-19")
    assert meta["secondary_date"] == np.datetime64("2015-09-12")
    assert meta["crop"] == "274_137_1"
    assert meta["key"] == "africa_adwa_079D_07894_131313_adwa_20150819_20150912"
    meta = parse_image_name("20141121_20141203.geo.diff1_1")
    assert (meta["frame"], meta["crop"], meta["key"]) == ("", "1_1", "20141121_20141203.geo.diff")
    assert meta["secondary_date"] == np.datetime64("2014-12-03")
    meta = parse_image_name("volcano_crop_12")
    assert meta["crop"] == "" and np.isnat(meta["primary_date"]) and not meta["dated"]
    assert np.isnat(parse_image_name("20151340_20151350_1")["primary_date"])  # not a date


def test_class_folders_formats_and_groups(class_folder):
    ds = read_image_folder(class_folder, workers=2, recover_phase=False)
    ds.insar.validate()
    assert ds.insar.kind == "rgb"
    assert ds.sizes["sample"] == 9 and ds["image"].shape[1:] == (32, 32, 3)
    table = ds.insar.sample_table()
    assert table.loc["0/rgb_only.tif", "label"] == "0"
    assert table.loc["1/scene.jpg", "label"] == "1"
    # the RGB-only TIFF is read as an image, pixel for pixel
    np.testing.assert_array_equal(
        ds["image"].sel(sample="0/rgb_only.tif").values, rendered((32, 32), 13)
    )
    # grayscale replicated to three bands
    grey = ds["image"].sel(sample="1/grey.png").values
    np.testing.assert_array_equal(grey[..., 0], rendered((32, 32), 14)[..., 1])
    assert (grey[..., 0] == grey[..., 2]).all()
    # crops of one interferogram share a group across class folders
    a = [s for s in ds["sample"].values if "africa" in s]
    assert len({table.loc[s, "group"] for s in a}) == 1
    assert table.loc[a[0], "frame"] == "079D_07894_131313"
    assert table.loc["1/" + NAME_A.format(32, 0), "crop"] == "32_0_1"
    b = ["0/20141121_20141203.geo.diff1_1.png", "1/20141121_20141203.geo.diff1_2.png"]
    assert table.loc[b[0], "group"] == table.loc[b[1], "group"] != table.loc[a[0], "group"]
    assert table.loc["1/scene.jpg", "group"] == "1/scene.jpg"
    assert table.loc[b[0], "primary_date"] == np.datetime64("2014-11-21")
    assert json.loads(ds.attrs["skipped"]) == []


def test_label_options(class_folder):
    assert set(read_image_folder(class_folder, labels=False)["label"].values) == {""}
    mapped = read_image_folder(class_folder, labels={"0": "none", "1": "deformation"})
    assert set(mapped["label"].values) == {"none", "deformation"}
    assert {f.label for f in list_image_files(class_folder / "0")} == {""}  # no sub-folders
    with pytest.raises(InSARDataError, match="not in one"):
        list_image_files(class_folder / "0", labels=True)
    with pytest.raises(ValueError, match="labels must be"):
        list_image_files(class_folder, labels="folders")


def test_frame_folders_are_not_classes(tmp_path):
    for frame in ("079D_07694_131313", "021D_09150_131313"):
        write_image(tmp_path / frame / "20200101_20200113.png", rendered((16, 16), 0))
    files = list_image_files(tmp_path)
    assert {f.label for f in files} == {""}
    assert {f.sample for f in files} == {
        "079D_07694_131313/20200101_20200113.png",
        "021D_09150_131313/20200101_20200113.png",
    }
    # the frame comes from the folder, and keeps the groups of the two frames apart
    assert len({f.group for f in files}) == 2
    assert {f.frame for f in files} == {"079D_07694_131313", "021D_09150_131313"}


def test_common_size_crop_and_resize(tmp_path):
    big = rendered((227, 227), 0)
    write_image(tmp_path / "a_20200101_20200113_1.png", big)
    write_image(tmp_path / "b_20200101_20200113_2.png", rendered((224, 224), 1))
    write_image(tmp_path / "c_20200101_20200113_3.png", rendered((224, 224), 2))
    write_image(tmp_path / "d.png", rendered((100, 60), 3))
    ds = read_image_folder(tmp_path)  # most common size: 224 x 224
    assert ds["image"].shape[1:3] == (224, 224)
    # 227 -> 224 is a centre crop (exact pixels), 100x60 is resized
    np.testing.assert_array_equal(ds["image"].values[0], big[1:225, 1:225])
    assert ds["orig_height"].values.tolist() == [227, 224, 224, 100]
    small = read_image_folder(tmp_path, size=(48, 64))
    assert small["image"].shape[1:3] == (48, 64)
    strict_size = read_image_folder(tmp_path, fit="error")
    assert strict_size.sizes["sample"] == 2
    assert "differs from the common size 224x224" in strict_size.attrs["skipped"]
    with pytest.raises(InSARDataError, match=r"a_20200101_20200113_1\.png: size 227x227 differs"):
        read_image_folder(tmp_path, fit="error", size=224, strict=True)
    with pytest.raises(ValueError, match="fit"):
        read_image_folder(tmp_path, fit="stretch")
    with pytest.raises(ValueError, match="size"):
        read_image_folder(tmp_path, size=0)


def _with_bad_files(root):
    for i in range(3):
        write_image(root / f"good_{i}.png", rendered((24, 24), i))
    raw = (root / "good_0.png").read_bytes()
    (root / "truncated.png").write_bytes(raw[: len(raw) // 2])
    (root / "junk.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "empty.png").write_bytes(b"")
    write_image(root / "blank.png", np.zeros((24, 24, 3), np.uint8))
    write_geotiff(root / "phase.tif", fringe_phase((24, 24)))  # float32 GeoTIFF, not a rendering
    write_geotiff(root / "float3.tif", np.zeros((3, 24, 24), np.float32))
    Image.fromarray(np.zeros((24, 24), np.float32) + 0.5).save(root / "plain_float.tiff")


def test_bad_files_are_skipped_with_reasons(tmp_path, caplog):
    _with_bad_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="insarexplore.data.io"):
        ds = read_image_folder(tmp_path)
    assert sorted(ds["sample"].values) == ["good_0.png", "good_1.png", "good_2.png"]
    why = {e["file"].rsplit("/", 1)[-1]: e["problem"] for e in json.loads(ds.attrs["skipped"])}
    assert set(why) == {
        "truncated.png",
        "junk.jpg",
        "empty.png",
        "blank.png",
        "phase.tif",
        "float3.tif",
        "plain_float.tiff",
    }
    assert "truncated" in why["truncated.png"]
    assert "not a readable image" in why["junk.jpg"] and "not a readable image" in why["empty.png"]
    assert "blank image" in why["blank.png"]
    assert "float32" in why["phase.tif"] and "read_licsar" in why["phase.tif"]
    assert "3 band(s) of dtype float32" in why["float3.tif"]
    assert "float32" in why["plain_float.tiff"]
    assert "skipped 7 of 10 files" in caplog.text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.png", "truncated"),
        ("blank.png", "blank image"),
        ("phase.tif", "float32"),
        ("junk.jpg", "not a readable image"),
    ],
)
def test_strict_raises_naming_the_file(tmp_path, name, message):
    _with_bad_files(tmp_path)
    for other in tmp_path.iterdir():
        if other.name != name and not other.name.startswith("good"):
            other.unlink()
    with pytest.raises(InSARDataError, match=rf"{name}: .*{message}"):
        read_image_folder(tmp_path, strict=True, size=24)


def test_missing_empty_and_all_bad(tmp_path):
    with pytest.raises(InSARDataError, match="does not exist"):
        read_image_folder(tmp_path / "nope")
    with pytest.raises(InSARDataError, match="no image files"):
        read_image_folder(tmp_path)
    (tmp_path / "a.png").write_bytes(b"nope")
    with pytest.raises(InSARDataError, match="none of the 1 image files could be read"):
        read_image_folder(tmp_path)


@pytest.mark.parametrize("palette", ["cyclic", "rainbow"])
def test_recover_phase_from_png_renderings(tmp_path, palette):
    from insarexplore.data.palettes import render_phase

    truth = np.stack([fringe_phase((40, 40), seed) for seed in range(3)])
    for i, ph in enumerate(truth):
        write_image(tmp_path / f"ifg_{i}.png", render_phase(ph, palette=palette))
    ds = read_image_folder(tmp_path, recover_phase=True, palette=palette)
    assert ds.insar.kind == "phase" and "image" in ds and ds.attrs["palette"] == palette
    err = np.angle(np.exp(1j * (ds["phase"].values - truth)))
    assert np.abs(err).max() < 0.05
    with pytest.raises(ValueError, match="palette"):
        read_image_folder(tmp_path, recover_phase=True, palette="viridis")


@pytest.mark.parametrize("executor", ["thread", pytest.param("process", marks=pytest.mark.slow)])
def test_ingest_matches_in_memory_read(class_folder, tmp_path, executor):
    _with_bad_files(class_folder / "0")
    store = tmp_path / "out.zarr"
    report = ingest_image_folder(
        class_folder, store, chunk_size=4, workers=2, executor=executor, size=32, progress=False
    )
    assert report.n_files == 9 + 10 and report.n_written == 9 + 3
    assert len(report.skipped) == 7 and report.images_per_s > 0
    ds = open_dataset(store, lazy=True)
    ref = read_image_folder(class_folder, size=32)
    assert list(ds["sample"].values) == list(ref["sample"].values)
    np.testing.assert_array_equal(ds["image"].values, ref["image"].values)
    assert list(ds["group"].values) == list(ref["group"].values)
    assert len(json.loads(ds.attrs["skipped"])) == 7
    with pytest.raises(InSARDataError, match="already exists"):
        ingest_image_folder(class_folder, store, size=32, progress=False)


def test_readers_import_shared_pieces_not_each_other():
    """No reader takes private names from another reader, and images.py does not know ingest."""
    import ast
    from pathlib import Path

    import insarexplore.data.io as io

    folder = Path(io.__file__).parent
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(io.__name__):
                module = node.module.rsplit(".", 1)[-1]
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert module.startswith("_") or not private, f"{path.name}: {module}.{private}"
                if path.name == "images.py":
                    assert module != "ingest"
    from insarexplore.data.io import images

    assert not hasattr(images, "ingest_image_folder")


def test_ingest_append_refuses_duplicates(tmp_path):
    for i in range(5):
        write_image(tmp_path / "a" / f"x{i}.png", rendered((16, 16), i))
        write_image(tmp_path / "b" / f"y{i}.png", rendered((16, 16), 10 + i))
    store = tmp_path / "s.zarr"
    ingest_image_folder(tmp_path / "a", store, chunk_size=2, progress=False)
    report = ingest_image_folder(tmp_path / "b", store, mode="a", chunk_size=2, progress=False)
    assert report.n_written == 5
    ds = open_dataset(store, lazy=False)
    assert ds.sizes["sample"] == 10
    with pytest.raises(InSARDataError, match="already in the store"):
        ingest_image_folder(tmp_path / "b", store, mode="a", progress=False)


def test_sixteen_bit_grey_and_palette_modes(tmp_path):
    grey16 = (np.arange(20 * 20, dtype=np.uint16).reshape(20, 20) * 150).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    Image.fromarray(rendered((20, 20), 1)).convert("P").save(tmp_path / "pal.png")
    Image.fromarray(rendered((20, 20), 2)).convert("RGBA").save(tmp_path / "rgba.png")
    ds = read_image_folder(tmp_path)
    assert ds.sizes["sample"] == 3 and json.loads(ds.attrs["skipped"]) == []
    np.testing.assert_array_equal(ds["image"].sel(sample="g16.png").values[..., 0], grey16 // 257)
    np.testing.assert_array_equal(ds["image"].sel(sample="rgba.png").values, rendered((20, 20), 2))
