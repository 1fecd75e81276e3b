"""LiCSAR GeoTIFF reader on GeoTIFFs written here with rasterio (real georeferencing, nodata)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from readers_fixtures import NODATA, RES, WEST, write_geotiff, write_licsar_pair

from insarexplore.data.io.geotiff import find_licsar_pairs, read_licsar
from insarexplore.data.schema import S1_WAVELENGTH_M
from insarexplore.errors import InSARDataError

FRAME = "079D_07694_131313"


def test_single_pair_values_footprint_dates_and_sign(tmp_path):
    truth = write_licsar_pair(tmp_path, shape=(40, 48), coherence="uint8")
    ds = read_licsar(tmp_path / FRAME, progress=False)
    ds.insar.validate()
    assert list(ds["sample"].values) == [f"{FRAME}/20150819_20150912"]
    assert ds["frame"].item() == FRAME
    assert ds["primary_date"].values[0] == np.datetime64("2015-08-19")
    assert ds["secondary_date"].values[0] == np.datetime64("2015-09-12")
    # footprint from the raster bounds
    assert ds["lon_min"].item() == pytest.approx(WEST)
    assert ds["lon_max"].item() == pytest.approx(WEST + 48 * RES)
    assert ds["lat_max"].item() == pytest.approx(14.5)
    assert ds["lat_min"].item() == pytest.approx(14.5 - 40 * RES)
    assert ds.attrs["pixel_spacing_m"] == pytest.approx(RES * 111_320, rel=1e-3)
    phase = ds["phase"].values[0]
    assert phase.dtype == np.float32
    # nodata -> NaN exactly where it was written, values equal elsewhere
    np.testing.assert_array_equal(np.isnan(phase), np.isnan(truth["phase"]))
    np.testing.assert_allclose(phase, truth["phase"], atol=1e-6)
    assert np.nanmin(phase) >= -np.pi and np.nanmax(phase) < np.pi
    # 0-255 coherence encoding scaled to [0, 1]
    np.testing.assert_allclose(ds["coherence"].values[0], truth["coherence"], atol=1e-6)
    # displacement = -lambda / (4 pi) * unw: positive unw -> motion away (negative)
    expected = -S1_WAVELENGTH_M / (4 * np.pi) * truth["unw"]
    np.testing.assert_allclose(ds["displacement"].values[0], expected, rtol=1e-5, atol=1e-9)
    assert json.loads(ds.attrs["skipped"]) == []


def test_float_coherence_encoding_and_missing_layers(tmp_path):
    truth = write_licsar_pair(tmp_path, coherence="float", unwrapped=False)
    ds = read_licsar(truth["folder"], progress=False)
    np.testing.assert_allclose(ds["coherence"].values[0], truth["coherence"], atol=1e-6)
    assert "displacement" not in ds
    assert not bool(ds["has_displacement"].values[0])


def test_every_entry_point_finds_the_same_pairs(tmp_path):
    for i, (p, s) in enumerate([("20150819", "20150912"), ("20150912", "20151006")]):
        write_licsar_pair(tmp_path, primary=p, secondary=s, seed=i)
    frame = tmp_path / FRAME
    ids = lambda path: list(read_licsar(path, progress=False)["sample"].values)  # noqa: E731
    both = [f"{FRAME}/20150819_20150912", f"{FRAME}/20150912_20151006"]
    assert ids(frame) == both
    assert ids(frame / "interferograms") == both
    assert ids(frame / "interferograms" / "20150912_20151006") == both[1:]
    single = frame / "interferograms/20150819_20150912/20150819_20150912.geo.diff_pha.tif"
    assert ids(single) == both[:1]
    assert find_licsar_pairs(single)[0].coherence is not None


def test_phase_outside_range_is_rewrapped(tmp_path):
    """Phase wrapped to [0, 2 pi) (other processors' convention) reads as [-pi, pi)."""
    pha = np.linspace(0, 2 * np.pi, 30 * 30, dtype=np.float32).reshape(30, 30)
    pha[0, 0] = np.pi  # the upper edge belongs to -pi
    pair = tmp_path / FRAME / "interferograms" / "20200101_20200113"
    write_geotiff(pair / "20200101_20200113.geo.diff_pha.tif", pha)
    ds = read_licsar(pair, progress=False)
    out = ds["phase"].values[0]
    assert out.min() >= -np.pi and out.max() < np.pi
    assert out[0, 0] == pytest.approx(-np.pi)
    np.testing.assert_allclose(np.exp(1j * out), np.exp(1j * pha), atol=1e-5)


@pytest.mark.parametrize("top", [180.0, 4 * np.pi])  # degrees; unwrapped phase
def test_phase_that_is_not_wrapped_radians_is_refused_not_wrapped_again(tmp_path, top):
    pha = np.linspace(-top, top, 30 * 30, dtype=np.float32).reshape(30, 30)
    pair = tmp_path / FRAME / "interferograms" / "20200101_20200113"
    write_geotiff(pair / "20200101_20200113.geo.diff_pha.tif", pha)
    with pytest.raises(InSARDataError, match="beyond 2 pi: not wrapped phase in radians"):
        read_licsar(pair, progress=False)


def test_a_frame_with_licsar_previews_beside_its_pairs_is_licsar(tmp_path):
    """LiCSAR ships PAIR.geo.diff.png and PAIR.geo.unw.png beside each pair's GeoTIFFs: they
    are previews of the pair, not a folder of renderings (the frame was read as images)."""
    from PIL import Image

    from insarexplore.intake import detect_format

    for a, b in (("20200101", "20200113"), ("20200113", "20200125")):
        folder = write_licsar_pair(tmp_path, FRAME, a, b)["folder"]
        for kind in ("diff", "unw", "cc"):
            Image.new("RGB", (8, 8)).save(folder / f"{a}_{b}.geo.{kind}.png")
    fmt, why = detect_format(tmp_path / FRAME)
    assert fmt == "licsar" and why == "2 phase GeoTIFFs"
    # renderings named like LiCSAR products but of other pairs stay renderings
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8)).save(flat / f"x_20170104_20170317.geo.diff_pha_{i}.png")
    write_geotiff(flat / "y_20200101_20200113.geo.diff_pha.tif", np.zeros((8, 8), np.float32))
    assert detect_format(flat)[0] == "images"


def test_exact_zeros_are_nodata_unless_told_otherwise(tmp_path):
    """LiCSAR writes 0 outside the frame, often without a nodata tag."""
    pha = np.random.default_rng(0).uniform(-3, 3, (20, 20)).astype(np.float32)
    pha[:, :6] = 0.0
    unw = pha * 2
    unw[10:, 10:] = 0.0  # unwrapping mask
    cc = np.full((20, 20), 200, np.uint8)
    pair = tmp_path / FRAME / "interferograms" / "20200101_20200113"
    write_geotiff(pair / "20200101_20200113.geo.diff_pha.tif", pha)
    write_geotiff(pair / "20200101_20200113.geo.unw.tif", unw)
    write_geotiff(pair / "20200101_20200113.geo.cc.tif", cc)
    ds = read_licsar(pair, progress=False)
    assert np.isnan(ds["phase"].values[0, :, :6]).all()
    assert np.isfinite(ds["phase"].values[0, :, 6:]).all()
    # coherence and displacement follow the phase mask; unw zeros are no data too
    assert np.isnan(ds["coherence"].values[0, :, :6]).all()
    assert np.isnan(ds["displacement"].values[0, 10:, 10:]).all()
    assert np.isfinite(ds["displacement"].values[0, :10, 6:]).all()
    kept = read_licsar(pair, zero_nodata=False, progress=False)
    assert (kept["phase"].values[0, :, :6] == 0).all()
    assert (kept["displacement"].values[0, 10:, 10:] == 0).all()


def test_patches_have_their_own_footprints(tmp_path):
    truth = write_licsar_pair(tmp_path, shape=(40, 48))
    ds = read_licsar(tmp_path, patch_size=16, stride=16, progress=False)
    assert ds.sizes["y"] == ds.sizes["x"] == 16
    assert ds.sizes["sample"] == 2 * 3  # 40 // 16 rows, 48 // 16 cols
    parent = f"{FRAME}/20150819_20150912"
    assert set(ds["group"].values) == {parent}
    for sid in ds["sample"].values:
        r = int(sid.split("_r")[1].split("_c")[0])
        c = int(sid.split("_c")[1])
        one = ds.sel(sample=sid)
        assert float(one["lon_min"]) == pytest.approx(WEST + c * RES)
        assert float(one["lon_max"]) == pytest.approx(WEST + (c + 16) * RES)
        assert float(one["lat_max"]) == pytest.approx(14.5 - r * RES)
        assert float(one["lat_min"]) == pytest.approx(14.5 - (r + 16) * RES)
        np.testing.assert_array_equal(
            np.isnan(one["phase"].values), np.isnan(truth["phase"][r : r + 16, c : c + 16])
        )
        np.testing.assert_allclose(
            one["phase"].values, truth["phase"][r : r + 16, c : c + 16], atol=1e-6
        )


def test_frames_of_different_sizes_need_patch_size(tmp_path):
    write_licsar_pair(tmp_path, frame="079D_07694_131313", shape=(40, 48))
    write_licsar_pair(tmp_path, frame="021D_09150_131313", shape=(36, 50), west=29.0, seed=1)
    with pytest.raises(InSARDataError, match="different sizes.*patch_size"):
        read_licsar(tmp_path, progress=False)
    ds = read_licsar(tmp_path, patch_size=16, progress=False)
    assert set(ds["frame"].values) == {"079D_07694_131313", "021D_09150_131313"}
    assert ds.sizes["sample"] == 2 * 3 + 2 * 3


def test_an_odd_sized_pair_is_skipped_and_named_not_the_whole_frame(tmp_path):
    """One truncated or reprocessed pair must not stop its frame: it is skipped, with why."""
    write_licsar_pair(tmp_path, primary="20150819", secondary="20150912")
    write_licsar_pair(tmp_path, primary="20150912", secondary="20151006", seed=1)
    write_licsar_pair(tmp_path, primary="20151006", secondary="20151030", shape=(39, 48), seed=2)
    ds = read_licsar(tmp_path, progress=False)
    assert list(ds["sample"].values) == [f"{FRAME}/20150819_20150912", f"{FRAME}/20150912_20151006"]
    (entry,) = json.loads(ds.attrs["skipped"])
    assert "20151006_20151030" in entry["file"]
    assert "size 39x48" in entry["problem"] and "40x48" in entry["problem"]
    assert "patch_size" in entry["problem"]
    with pytest.raises(InSARDataError, match="39x48"):  # strict: the odd pair is an error
        read_licsar(tmp_path, progress=False, strict=True)
    assert read_licsar(tmp_path, patch_size=16, progress=False).sizes["sample"] == 3 * 2 * 3


def test_a_frame_with_no_usual_size_still_needs_patch_size(tmp_path):
    write_licsar_pair(tmp_path, primary="20150819", secondary="20150912")
    write_licsar_pair(tmp_path, primary="20150912", secondary="20151006", shape=(39, 48), seed=1)
    with pytest.raises(InSARDataError, match=f"frame {FRAME} have different sizes.*patch_size"):
        read_licsar(tmp_path, progress=False)


def test_impossible_and_reversed_dates_are_kept_and_reported(tmp_path, caplog):
    write_licsar_pair(tmp_path, primary="20200230", secondary="20200312")
    write_licsar_pair(tmp_path, primary="20200401", secondary="20200310", seed=1)
    with caplog.at_level(logging.WARNING, logger="insarexplore.data.io"):
        ds = read_licsar(tmp_path, progress=False)
    assert ds.sizes["sample"] == 2
    text = caplog.text
    assert (
        "1 of 2 interferograms: a date in the name is not a calendar date" in text
        and "20200230" in text
    )
    assert (
        "1 of 2 interferograms: the name puts the later date first" in text and "20200401" in text
    )
    bad = ds.sel(sample=f"{FRAME}/20200230_20200312")
    assert np.isnat(bad["primary_date"].values)


def test_an_unusable_coherence_file_keeps_its_pair_without_coherence(tmp_path):
    """A coherence raster that cannot be read as coherence (here uint16 up to 65535) is named,
    and the phase is kept with NaN coherence (the whole pair used to be skipped)."""
    from readers_fixtures import write_geotiff

    write_licsar_pair(tmp_path, primary="20150819", secondary="20150912")
    truth = write_licsar_pair(tmp_path, primary="20150912", secondary="20151006", seed=1)
    cc = next(tmp_path.rglob("20150912_20151006.geo.cc.tif"))
    write_geotiff(cc, np.full((40, 48), 60000, np.uint16))
    ds = read_licsar(tmp_path, progress=False)
    assert ds.sizes["sample"] == 2
    kept = ds.sel(sample=f"{FRAME}/20150912_20151006")
    np.testing.assert_allclose(kept["phase"].values, truth["phase"], atol=1e-6)
    assert np.isnan(kept["coherence"].values).all() and not bool(kept["has_coherence"])
    assert bool(ds.sel(sample=f"{FRAME}/20150819_20150912")["has_coherence"])
    (entry,) = json.loads(ds.attrs["skipped"])
    assert entry["file"] == str(cc)
    assert entry["problem"].startswith("coherence not loaded: coherence values up to 6e+04")
    with pytest.raises(InSARDataError, match="coherence"):
        read_licsar(tmp_path, progress=False, strict=True)


def test_pairs_with_and_without_coherence_concatenate(tmp_path):
    write_licsar_pair(tmp_path, primary="20150819", secondary="20150912", coherence="uint8")
    write_licsar_pair(tmp_path, primary="20150912", secondary="20151006", coherence=None, seed=2)
    ds = read_licsar(tmp_path, progress=False)
    assert ds["has_coherence"].values.tolist() == [True, False]
    assert np.isnan(ds["coherence"].values[1]).all()
    assert np.isfinite(ds["coherence"].values[0]).any()


def test_reprojects_other_crs_to_lonlat(tmp_path):
    pha = np.random.default_rng(0).uniform(-3, 3, (20, 20)).astype(np.float32)
    pair = tmp_path / "utm" / "20200101_20200113"
    # UTM zone 37N, 100 m pixels, north-west corner at (500 km E, 1600 km N) ~ 39 E, 14.5 N
    write_geotiff(
        pair / "20200101_20200113.geo.diff_pha.tif",
        pha,
        west=500_000.0,
        north=1_600_000.0,
        res=100.0,
        crs="EPSG:32637",
    )
    ds = read_licsar(pair, progress=False)
    assert 38.9 < ds["lon_min"].item() < ds["lon_max"].item() < 39.1
    assert 14.4 < ds["lat_min"].item() < ds["lat_max"].item() < 14.5


# -- bad input -------------------------------------------------------------------------------


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(InSARDataError, match="does not exist"):
        read_licsar(tmp_path / "nope")
    with pytest.raises(InSARDataError, match="no LiCSAR wrapped-phase files"):
        read_licsar(tmp_path)
    (tmp_path / "x.tif").write_bytes(b"")
    with pytest.raises(InSARDataError, match="not a LiCSAR wrapped-phase file"):
        read_licsar(tmp_path / "x.tif")


def _bad_folder(tmp_path):
    """One good pair plus: corrupt, truncated, integer, all-nodata, and size-mismatched pairs."""
    write_licsar_pair(tmp_path, primary="20150101", secondary="20150113")
    ifg = tmp_path / FRAME / "interferograms"
    (ifg / "20150113_20150125").mkdir()
    (ifg / "20150113_20150125" / "20150113_20150125.geo.diff_pha.tif").write_bytes(b"not a tiff")
    good = write_licsar_pair(tmp_path, primary="20150125", secondary="20150206")["folder"]
    raw = (good / "20150125_20150206.geo.diff_pha.tif").read_bytes()
    (good / "20150125_20150206.geo.diff_pha.tif").write_bytes(raw[: len(raw) // 2])
    write_geotiff(
        ifg / "20150206_20150218" / "20150206_20150218.geo.diff_pha.tif",
        np.ones((40, 48), np.int16),
    )
    write_geotiff(
        ifg / "20150218_20150302" / "20150218_20150302.geo.diff_pha.tif",
        np.full((40, 48), NODATA, np.float32),
        nodata=NODATA,
    )
    mm = write_licsar_pair(tmp_path, primary="20150302", secondary="20150314")["folder"]
    write_geotiff(mm / "20150302_20150314.geo.cc.tif", np.ones((40, 47), np.uint8))


def test_bad_files_are_skipped_and_reported(tmp_path, caplog):
    _bad_folder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="insarexplore.data.io"):
        ds = read_licsar(tmp_path, progress=False)
    # the pair whose coherence raster has the wrong size is kept, without coherence
    assert list(ds["sample"].values) == [f"{FRAME}/20150101_20150113", f"{FRAME}/20150302_20150314"]
    skipped = {e["file"].split("/")[-1]: e["problem"] for e in json.loads(ds.attrs["skipped"])}
    assert len(skipped) == 5
    assert "cannot read" in skipped["20150113_20150125.geo.diff_pha.tif"]
    assert "cannot read" in skipped["20150125_20150206.geo.diff_pha.tif"]
    assert "dtype int16" in skipped["20150206_20150218.geo.diff_pha.tif"]
    assert "all NaN" in skipped["20150218_20150302.geo.diff_pha.tif"]
    assert skipped["20150302_20150314.geo.cc.tif"].startswith("coherence not loaded: ")
    assert "40x47" in skipped["20150302_20150314.geo.cc.tif"]
    assert np.isnan(ds["coherence"].values[1]).all()
    assert (
        "skipped 4 of 6 files; 1 companion files (coherence, unwrapped phase) not loaded"
        in caplog.text
    )


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("20150113_20150125", r"20150113_20150125\.geo\.diff_pha\.tif: cannot read"),
        ("20150206_20150218", r"20150206_20150218\.geo\.diff_pha\.tif: .*dtype int16"),
        ("20150218_20150302", r"20150218_20150302\.geo\.diff_pha\.tif: .*all NaN"),
        ("20150302_20150314", r"20150302_20150314\.geo\.cc\.tif: coherence raster is 40x47"),
    ],
)
def test_strict_raises_naming_the_file(tmp_path, pair, message):
    _bad_folder(tmp_path)
    with pytest.raises(InSARDataError, match=message):
        read_licsar(tmp_path / FRAME / "interferograms" / pair, strict=True, progress=False)


def test_duplicate_ids_are_refused(tmp_path):
    write_licsar_pair(tmp_path / "copy1")
    write_licsar_pair(tmp_path / "copy2")
    ds = read_licsar(tmp_path, progress=False)
    assert ds.sizes["sample"] == 1
    (entry,) = json.loads(ds.attrs["skipped"])
    assert "duplicate sample id" in entry["problem"] and "copy2" in entry["file"]
    with pytest.raises(InSARDataError, match="duplicate sample id"):
        read_licsar(tmp_path, strict=True, progress=False)


def test_bad_parameters(tmp_path):
    write_licsar_pair(tmp_path)
    with pytest.raises(ValueError, match="patch_size"):
        read_licsar(tmp_path, patch_size=0)
    with pytest.raises(ValueError, match="stride needs patch_size"):
        read_licsar(tmp_path, stride=8)
    with pytest.raises(InSARDataError, match="exceeds"):
        read_licsar(tmp_path, patch_size=64, strict=True, progress=False)


def test_ingest_streams_the_same_samples_into_zarr(tmp_path):
    from insarexplore.data.io.ingest import ingest_licsar
    from insarexplore.data.io.store import open_dataset

    write_licsar_pair(tmp_path / "in", primary="20150819", secondary="20150912")
    write_licsar_pair(tmp_path / "in", primary="20150912", secondary="20151006", coherence=None)
    write_licsar_pair(tmp_path / "in", frame="021D_09150_131313", shape=(36, 50), seed=3)
    (tmp_path / "in" / "bad.geo.diff_pha.tif").write_bytes(b"broken")
    ref = read_licsar(tmp_path / "in", patch_size=16, progress=False)
    store = tmp_path / "out.zarr"
    report = ingest_licsar(tmp_path / "in", store, patch_size=16, chunk_size=4, progress=False)
    assert report.n_files == 4 and report.n_written == ref.sizes["sample"] == 6 + 6 + 2 * 3
    assert len(report.skipped) == 1 and "bad.geo.diff_pha.tif" in report.skipped[0]["file"]
    ds = open_dataset(store, lazy=False)
    assert list(ds["sample"].values) == list(ref["sample"].values)
    np.testing.assert_array_equal(ds["phase"].values, ref["phase"].values)
    np.testing.assert_array_equal(ds["coherence"].values, ref["coherence"].values)
    np.testing.assert_allclose(ds["lat_min"].values, ref["lat_min"].values)
    assert len(json.loads(ds.attrs["skipped"])) == 1
    # different frame sizes without patch_size: refused before anything is written
    with pytest.raises(InSARDataError, match="different sizes"):
        ingest_licsar(tmp_path / "in", tmp_path / "other.zarr", progress=False)
    assert not (tmp_path / "other.zarr").exists()
    with pytest.raises(InSARDataError, match="already exists"):
        ingest_licsar(tmp_path / "in", store, patch_size=16, progress=False)


def test_whole_frames_can_be_ingested_again_into_their_own_store(tmp_path, capsys):
    """Real frames are never square: a store of whole 40x48 frames takes more of them (it
    used to ask for square patches, although the frames were the store's size)."""
    from insarexplore import cli
    from insarexplore.workspace import Workspace

    write_licsar_pair(tmp_path / "a", FRAME, "20200101", "20200113")
    write_licsar_pair(tmp_path / "b", FRAME, "20200113", "20200125", seed=1)
    write_licsar_pair(tmp_path / "c", FRAME, "20200125", "20200206", shape=(30, 48), seed=2)
    ws = tmp_path / "ws"
    assert cli.main(["ingest", str(ws), str(tmp_path / "a" / FRAME)]) == 0
    assert cli.main(["ingest", str(ws), str(tmp_path / "b" / FRAME)]) == 0
    assert "reading whole frames, as the store holds (40x48)" in capsys.readouterr().err
    ds = Workspace.open(ws).open_data()
    assert ds.sizes["sample"] == 2 and (ds.sizes["y"], ds.sizes["x"]) == (40, 48)
    assert cli.main(["ingest", str(ws), str(tmp_path / "c" / FRAME)]) == 2  # another size
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "30" in err[0], err
    assert Workspace.open(ws).open_data().sizes["sample"] == 2


def test_a_frame_ingested_again_adds_only_its_new_pairs(tmp_path):
    """LiCSAR frames grow a pair every few days: ingesting the frame again adds the new pairs
    (whole frames and patches alike); the old ones are not read again."""
    from insarexplore.intake import add_to_workspace
    from insarexplore.workspace import Workspace

    write_licsar_pair(tmp_path / "in", primary="20150819", secondary="20150912")
    write_licsar_pair(tmp_path / "in", primary="20150912", secondary="20151006", seed=1)
    for patches in (None, 16):
        ws = Workspace.create(tmp_path / f"ws{patches}")
        first = add_to_workspace(ws, tmp_path / "in", patch_size=patches, progress=False)
        again = add_to_workspace(ws, tmp_path / "in", patch_size=patches, progress=False)
        assert again.added == 0 and again.total == first.total
        assert any("2 interferograms already in the workspace" in n for n in again.notes)
    write_licsar_pair(tmp_path / "in", primary="20151006", secondary="20151030", seed=2)
    for patches, per_pair in ((None, 1), (16, 6)):
        ws = Workspace.open(tmp_path / f"ws{patches}")
        more = add_to_workspace(ws, tmp_path / "in", patch_size=patches, progress=False)
        assert more.added == per_pair and more.total == 3 * per_pair
        assert sum(f"{FRAME}/20151006_20151030" in str(s) for s in ws.sample_ids()) == per_pair


def test_licsar_frames_join_a_workspace_of_renderings(tmp_path):
    """LiCSAR frames into a workspace started from PNG renderings were refused ('variables
    unknown to the store: coherence, displacement'; no image): their phase now joins it,
    rendered for the gallery, and the note says what is not kept."""
    from readers_fixtures import rendered, write_image

    from insarexplore.data.palettes import render_phase
    from insarexplore.intake import add_to_workspace
    from insarexplore.workspace import Workspace

    for i in range(4):
        write_image(tmp_path / "pngs" / f"r{i}.png", rendered((16, 16), i))
    ws = Workspace.create(tmp_path / "ws")
    add_to_workspace(ws, tmp_path / "pngs", progress=False)
    truth = write_licsar_pair(tmp_path / "frames")
    report = add_to_workspace(ws, tmp_path / "frames", progress=False)
    assert report.added == 2 * 3 and report.total == 4 + 6
    assert any("rendered in the cyclic palette" in n and "coherence" in n for n in report.notes)
    ds = ws.open_data(lazy=False)
    assert "coherence" not in ds and "displacement" not in ds
    patch = ds.sel(sample=f"{FRAME}/20150819_20150912_r0_c16")
    np.testing.assert_allclose(patch["phase"].values, truth["phase"][:16, 16:32], atol=1e-6)
    np.testing.assert_array_equal(patch["image"].values, render_phase(patch["phase"].values))


def test_licsar_frames_join_a_workspace_of_renderings_without_phase(tmp_path):
    """A store of RGB renderings only (--phase off): the frames come in as renderings."""
    from readers_fixtures import rendered, write_image

    from insarexplore.intake import add_to_workspace
    from insarexplore.workspace import Workspace

    for i in range(3):
        write_image(tmp_path / "pngs" / f"r{i}.png", rendered((16, 16), i))
    ws = Workspace.create(tmp_path / "ws")
    add_to_workspace(ws, tmp_path / "pngs", recover_phase=False, progress=False)
    write_licsar_pair(tmp_path / "frames")
    report = add_to_workspace(ws, tmp_path / "frames", progress=False)
    assert report.added == 6 and any("phase" in n and "not kept" in n for n in report.notes)
    ds = ws.open_data(lazy=False)
    assert "phase" not in ds and ds["image"].shape == (9, 16, 16, 3)
