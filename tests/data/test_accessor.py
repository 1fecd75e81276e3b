import io
import json

import numpy as np
import pytest
from PIL import Image

from insarexplore.data.accessor import phase_channels
from insarexplore.data.schema import new_dataset
from insarexplore.errors import InSARDataError


def test_phase_channels_are_cos_sin_coherence_valid(tiny_phase_ds):
    ds = tiny_phase_ds.copy(deep=True)
    ds["phase"].values[0, 0, 0] = np.nan
    ch = ds.insar.to_channels()
    assert ch.shape == (6, 4, 16, 16) and ch.dtype == np.float32
    ph = ds["phase"].values[1]
    np.testing.assert_allclose(ch[1, 0], np.cos(ph), atol=1e-6)
    np.testing.assert_allclose(ch[1, 1], np.sin(ph), atol=1e-6)
    np.testing.assert_allclose(ch[1, 2], ds["coherence"].values[1])
    assert ch[0, :, 0, 0].tolist() == [0, 0, 0, 0]
    assert ch[0, 3].sum() == 16 * 16 - 1
    assert ds.insar.n_channels == 4


def test_channels_without_coherence_use_validity():
    ph = np.zeros((1, 4, 4), np.float32)
    ph[0, 0, 0] = np.nan
    ch = phase_channels(ph)
    np.testing.assert_array_equal(ch[0, 2], ch[0, 3])


def test_rgb_channels():
    img = np.full((2, 4, 4, 3), 255, np.uint8)
    ds = new_dataset(image=img)
    ch = ds.insar.to_channels()
    assert ch.shape == (2, 3, 4, 4) and ch.max() == 1.0
    with pytest.raises(InSARDataError, match="no 'phase'"):
        ds.insar.to_channels(kind="phase")


def test_patches_have_their_own_footprints(tiny_phase_ds):
    p = tiny_phase_ds.insar.patches(8, stride=8)
    assert p.sizes["sample"] == 6 * 4
    first = p.sel(sample="id0_r0_c0")
    assert float(first["lat_max"]) == pytest.approx(40.16)
    assert float(first["lat_min"]) == pytest.approx(40.08)
    assert float(first["lon_min"]) == pytest.approx(10.0)
    assert float(first["lon_max"]) == pytest.approx(10.08)
    br = p.sel(sample="id0_r8_c8")
    assert float(br["lat_min"]) == pytest.approx(40.0)
    assert float(br["lon_max"]) == pytest.approx(10.16)
    assert str(first["group"].values) == "id0"
    assert float(p.sel(sample="id3_r8_c0")["depth_m"]) == 3000
    np.testing.assert_array_equal(first["phase"].values, tiny_phase_ds["phase"].values[0, :8, :8])


def test_patches_drop_mostly_empty_and_check_size(tiny_phase_ds):
    ds = tiny_phase_ds.copy(deep=True)
    ds["phase"].values[:, :8, :] = np.nan
    p = ds.insar.patches(8, min_valid=0.5)
    assert p.sizes["sample"] == 6 * 2
    assert ds.insar.patches(8).sizes["sample"] == 6 * 2  # all-NaN patches are never kept
    assert p.attrs["pixel_spacing_m"] == 1000.0
    with pytest.raises(InSARDataError, match="exceeds"):
        ds.insar.patches(32)
    with pytest.raises(ValueError, match="stride"):
        ds.insar.patches(8, stride=0)


def test_footprints_geojson_is_valid_and_skips_unknown(tiny_phase_ds):
    ds = tiny_phase_ds.copy(deep=True)
    ds["lon_min"].values[2] = np.nan
    gj = ds.insar.footprints_geojson(properties=["depth_m"])
    json.dumps(gj)
    assert gj["type"] == "FeatureCollection"
    assert len(gj["features"]) == 5
    f0 = gj["features"][0]
    ring = f0["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert f0["properties"]["label"] == "a"
    assert f0["properties"]["primary_date"] == "2020-01-01"
    assert f0["properties"]["depth_m"] == 0.0


def test_thumbnail_is_png_in_cyclic_palette(tiny_phase_ds):
    png = tiny_phase_ds.insar.thumbnail("id1", size=32)
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.size == (32, 32)
    coh = Image.open(io.BytesIO(tiny_phase_ds.insar.thumbnail(0, variable="coherence")))
    assert coh.size == (16, 16)


def test_sample_table(tiny_phase_ds):
    t = tiny_phase_ds.insar.sample_table()
    assert list(t.index) == [f"id{i}" for i in range(6)]
    assert {"label", "depth_m", "lon_min", "primary_date", "group"} <= set(t.columns)


def test_unknown_coherence_falls_back_to_validity():
    ph = np.zeros((1, 2, 2), np.float32)
    coh = np.array([[[0.3, np.nan], [0.0, 1.0]]], np.float32)
    ch = phase_channels(ph, coh)
    np.testing.assert_allclose(ch[0, 2], [[0.3, 1.0], [0.0, 1.0]])
