"""The synthetic generator: data model, determinism, physics patterns, nuisance, rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from insarexplore.data import schema
from insarexplore.data.synthetic import (
    CLASSES,
    METADATA_VARS,
    SyntheticConfig,
    atmosphere,
    decorrelation,
    generate,
    generate_to_zarr,
    render_dataset,
)


@pytest.fixture(scope="module")
def easy():
    """240 easy samples (40 per class) at 64 px, no no-data cuts."""
    return generate(240, size=64, seed=11, difficulty="easy", nodata_fraction=0.0)


def _of(ds, cls):
    return np.flatnonzero(ds["label"].values == cls)


def test_output_is_the_data_model_with_metadata(easy):
    schema.validate(easy)
    assert easy.sizes == {"sample": 240, "y": 64, "x": 64}
    for v in ("phase", "coherence", "displacement"):
        assert easy[v].dtype == np.float32
    ph = easy["phase"].values
    assert ph.min() >= -np.pi and ph.max() < np.pi and np.isfinite(ph).all()
    coh = easy["coherence"].values
    assert 0 <= coh.min() and coh.max() <= 1
    counts = {c: int((easy["label"].values == c).sum()) for c in CLASSES}
    assert counts == {c: 40 for c in CLASSES}
    for key in METADATA_VARS:
        assert easy[key].dims == ("sample",)
    assert easy.attrs["pixel_spacing_m"] == 100.0
    assert len(set(easy["sample"].values)) == 240


def test_parameters_are_nan_or_empty_where_not_applicable(easy):
    mogi, quake, none = _of(easy, "mogi"), _of(easy, "earthquake"), _of(easy, "none")
    assert np.isfinite(easy["volume_change_m3"].values[mogi]).all()
    assert np.isnan(easy["magnitude"].values[mogi]).all()
    assert np.isnan(easy["depth_m"].values[none]).all()
    assert set(easy["mechanism"].values[quake]) <= {"normal", "thrust", "strike-slip"}
    assert set(easy["mechanism"].values[mogi]) == {""}
    assert np.isfinite(easy["magnitude"].values[quake]).all()
    depth = easy["depth_m"].values[mogi]
    assert ((depth >= 1000) & (depth <= 5000)).all()
    dv = np.abs(easy["volume_change_m3"].values[mogi])
    assert (dv > 0).all()
    dyke = _of(easy, "dyke")
    assert ((easy["dip_deg"].values[dyke] >= 75) & (easy["dip_deg"].values[dyke] <= 90)).all()
    assert (easy["location_name"].values != "").all()


def test_sentinel1_geometry_dates_and_footprints(easy):
    asc = easy["pass_direction"].values == "ascending"
    assert 0 < asc.sum() < 240 and set(easy["pass_direction"].values) == {"ascending", "descending"}  # fmt: skip
    head = easy["heading_deg"].values
    assert ((head[asc] > -30) & (head[asc] < -8)).all()
    assert ((head[~asc] > 188) & (head[~asc] < 210)).all()
    inc = easy["incidence_deg"].values
    assert ((inc > 30) & (inc < 46)).all()
    p, s = easy["primary_date"].values, easy["secondary_date"].values
    days = (s - p).astype("timedelta64[D]").astype(int)
    assert (days > 0).all() and (days % 6 == 0).all()
    s1b = (p >= np.datetime64("2016-09-26")) & (p <= np.datetime64("2021-12-23"))
    assert (days[~s1b] % 12 == 0).all()
    assert (p >= np.datetime64("2015-01-01")).all() and (p <= np.datetime64("2025-12-31")).all()
    lat = 0.5 * (easy["lat_min"].values + easy["lat_max"].values)
    width_m = (easy["lon_max"].values - easy["lon_min"].values) * 111_320 * np.cos(np.radians(lat))
    np.testing.assert_allclose(width_m, 6400.0, rtol=1e-3)
    np.testing.assert_allclose((easy["lat_max"] - easy["lat_min"]).values * 111_320, 6400.0)


def test_same_seed_same_set_other_seed_other_set():
    a = generate(20, size=32, seed=3)
    b = generate(20, size=32, seed=3)
    c = generate(20, size=32, seed=4)
    np.testing.assert_array_equal(a["phase"].values, b["phase"].values)
    np.testing.assert_array_equal(a["depth_m"].values, b["depth_m"].values)
    assert (a["label"].values == b["label"].values).all()
    assert not np.allclose(np.nan_to_num(a["phase"].values), np.nan_to_num(c["phase"].values))
    assert not set(a["sample"].values) & set(c["sample"].values)


def test_worker_threads_do_not_change_the_set():
    one = generate(150, size=24, seed=5, block_size=32, workers=1)
    three = generate(150, size=24, seed=5, block_size=32, workers=3)
    for k in ("phase", "coherence", "displacement", "snr", "mean_coherence", "magnitude"):
        np.testing.assert_array_equal(one[k].values, three[k].values)
    assert (one["sample"].values == three["sample"].values).all()


def test_none_has_zero_deformation_and_sources_do_not(easy):
    d = np.abs(easy["displacement"].values).max(axis=(1, 2))
    none = easy["label"].values == "none"
    assert (d[none] == 0).all()
    assert (d[~none] > 0.01).all()  # easy: at least 2 fringes (2.8 cm) of signal


def test_mogi_is_radially_symmetric(easy):
    """The even part of the LOS field about the source (its vertical part) is constant on rings."""
    checked = 0
    for i in _of(easy, "mogi"):
        d = easy["displacement"].values[i].astype(np.float64)
        r0, c0 = round(easy["source_row"].values[i]), round(easy["source_col"].values[i])
        half = min(r0, c0, 63 - r0, 63 - c0)
        if half < 8:
            continue
        sub = d[r0 - half : r0 + half + 1, c0 - half : c0 + half + 1]
        even = 0.5 * (sub + sub[::-1, ::-1])
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
        ring = np.hypot(yy, xx).round().astype(int)
        spread = max(even[ring == k].std() for k in range(1, half))
        assert spread < 0.06 * np.abs(even).max()
        assert np.abs(even[half, half]) >= 0.95 * np.abs(even).max()  # peak at the source
        checked += 1
    assert checked >= 10


def test_earthquakes_have_lobes_of_both_signs(easy):
    def two_signed(i):
        d = easy["displacement"].values[i]
        ptp = d.max() - d.min()
        return d.max() > 0.1 * ptp and -d.min() > 0.1 * ptp

    quakes = _of(easy, "earthquake")
    assert np.mean([two_signed(i) for i in quakes]) >= 0.4
    # strike-slip: four lobes of alternating sign, nearly always both signs in view (a deep
    # event seen through a small window can show a single lobe)
    ss = quakes[easy["mechanism"].values[quakes] == "strike-slip"]
    assert len(ss) >= 5 and np.mean([two_signed(i) for i in ss]) >= 0.75
    for cls in ("mogi", "sill", "subsidence"):  # single-signed bowls and domes
        assert np.mean([two_signed(i) for i in _of(easy, cls)]) <= 0.1


def _along_across(d, strike_deg):
    gy, gx = np.gradient(d.astype(np.float64))
    ge, gn = gx, -gy  # row 0 is north
    s = math.radians(strike_deg)
    along = ge * math.sin(s) + gn * math.cos(s)
    across = ge * math.cos(s) - gn * math.sin(s)
    return (along**2).sum() / (across**2).sum()


def test_dykes_are_elongated_along_strike(easy):
    ratio = [_along_across(easy["displacement"].values[i], easy["strike_deg"].values[i])
             for i in _of(easy, "dyke")]  # fmt: skip
    assert max(ratio) < 0.5 and np.median(ratio) < 0.15
    mogi = [_along_across(easy["displacement"].values[i], 0.0) for i in _of(easy, "mogi")]
    assert np.median(mogi) > 0.5  # a point source is not


def test_subsidence_is_broad_and_negative(easy):
    sub, mog = _of(easy, "subsidence"), _of(easy, "mogi")
    d = easy["displacement"].values
    assert all(-d[i].min() > 3 * max(d[i].max(), 0) for i in sub)
    assert (easy["subsidence_rate_m_per_yr"].values[sub] > 0).all()
    assert (easy["volume_change_m3"].values[sub] < 0).all()

    def half_area(i):
        return (np.abs(d[i]) > 0.5 * np.abs(d[i]).max()).mean()

    assert np.median([half_area(i) for i in sub]) > 0.1
    # slower than volcanic sources: longer pairs for a comparable signal
    assert np.median(easy["baseline_days"].values[sub]) > 2 * np.median(
        easy["baseline_days"].values[mog]
    )


def test_difficulty_controls_signal_to_nuisance():
    kw = dict(size=32, seed=2, classes=("mogi", "dyke", "earthquake"), nodata_fraction=0.0)
    easy = generate(60, difficulty="easy", **kw)
    hard = generate(60, difficulty="hard", **kw)
    assert np.median(easy["snr"].values) > 3 * np.median(hard["snr"].values)
    assert np.median(easy["signal_fringes"].values) > np.median(hard["signal_fringes"].values)
    assert (easy["signal_fringes"].values >= 1.5).mean() > 0.9
    # decorrelation is part of the difficulty too (compared without deformation fringes)
    kw["classes"] = ("none",)
    calm = generate(30, difficulty="easy", **kw)["mean_coherence"].values
    rough = generate(30, difficulty="hard", **kw)["mean_coherence"].values
    assert calm.mean() > rough.mean() + 0.1


def test_decorrelation_is_speckle_not_nan_and_nodata_is_nan():
    ds = generate(12, size=32, seed=5, nodata_fraction=1.0)
    ph = ds["phase"].values
    nan = np.isnan(ph)
    assert nan.any(axis=(1, 2)).all() and not nan.all(axis=(1, 2)).any()
    assert (nan.mean(axis=(1, 2)) < 0.35).all()
    assert (np.isnan(ds["coherence"].values) == nan).all()
    clean = generate(12, size=32, seed=5, nodata_fraction=0.0)
    assert np.isfinite(clean["phase"].values).all()


def test_phase_noise_follows_coherence():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    levels = [0.0, 0.3, 0.6, 0.9, 0.99]
    coh = torch.tensor(levels, dtype=torch.float32)[:, None, None].expand(5, 64, 64)
    phase, est = decorrelation.noisy_phase(torch.zeros(5, 64, 64), coh, looks=1.0, generator=gen)
    resultant = torch.exp(1j * phase.double()).mean(dim=(1, 2)).abs().numpy()
    assert resultant[0] < 0.05  # no coherence: uniform random phase
    assert (np.diff(resultant) > 0).all() and resultant[-1] > 0.95
    assert ((est >= 0) & (est <= 1)).all()


def test_power_law_screens_have_the_two_regimes():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(1)
    n, size, dx = 16, 128, 100.0

    def slope(corner):
        f = atmosphere.power_law_fields(n, size, size, spacing_m=dx, beta=np.full(n, 11 / 3),
                                        beta_long=np.full(n, 8 / 3),
                                        corner_m=np.full(n, corner), generator=gen)  # fmt: skip
        assert torch.allclose(f.std(dim=(1, 2)), torch.ones(n), atol=1e-4)
        p = (torch.fft.rfft2(f).abs() ** 2).mean(0).numpy()
        k = atmosphere._wavenumbers(size, size, dx, None).numpy()
        lo, hi = 1 / 12000, 1 / 400  # between corner-free bands
        sel = (k > lo) & (k < hi)
        return np.polyfit(np.log(k[sel]), np.log(p[sel]), 1)[0]

    # every scale longer than a 1 m corner: thin-layer regime; shorter than 10,000 km: 3-D
    assert slope(1.0) == pytest.approx(-8 / 3, abs=0.3)
    assert slope(1e7) == pytest.approx(-11 / 3, abs=0.3)
    mixed = slope(2000.0)  # corner inside the band: in between
    assert -11 / 3 + 0.1 < mixed < -8 / 3 - 0.1


def test_okada_subgrid_interpolation_is_accurate():
    from insarexplore.data.synthetic.parameters import draw_block
    from insarexplore.data.synthetic.pipeline import _render_deformation

    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    labels = np.array(["sill", "dyke", "earthquake"] * 4, dtype=object)
    p = draw_block(rng, labels, size=64, pixel_spacing_m=100.0, difficulty="medium",
                   wavelength_m=0.0555, nodata_fraction=0.0)  # fmt: skip
    idx = np.arange(len(labels))
    fast = _render_deformation(p, idx, SyntheticConfig(size=64), torch.device("cpu"))
    exact = _render_deformation(p, idx, SyntheticConfig(size=64, okada_max_stride=1),
                                torch.device("cpu"))  # fmt: skip
    peak = exact.abs().amax(dim=(1, 2))
    err = (fast - exact).abs()
    assert (err.amax(dim=(1, 2)) < 0.05 * peak).all()
    assert (err.mean(dim=(1, 2)) < 0.005 * peak).all()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(classes=("mogi", "volcano")), "classes"),
        (dict(classes=()), "classes"),
        (dict(size=0), "size"),
        (dict(size=-64), "size"),
        (dict(difficulty="extreme"), "difficulty"),
        (dict(pixel_spacing_m=-1.0), "pixel_spacing_m"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate(4, **kwargs)


def test_bad_count_raises():
    with pytest.raises(ValueError, match="n must"):
        generate(0)


def test_streaming_to_zarr_equals_generate(tmp_path):
    from insarexplore.data.io.store import open_dataset

    path = generate_to_zarr(tmp_path / "syn.zarr", 150, chunk_size=64, seed=7, size=32,
                            progress=False)  # fmt: skip
    got = open_dataset(path, lazy=False)
    ref = generate(150, size=32, seed=7)
    assert got.sizes["sample"] == 150
    np.testing.assert_array_equal(got["phase"].values, ref["phase"].values)
    np.testing.assert_array_equal(got["magnitude"].values, ref["magnitude"].values)
    assert (got["label"].values == ref["label"].values).all()


def test_streaming_with_blocks_straddling_chunks_and_threads(tmp_path):
    from insarexplore.data.io.store import open_dataset

    path = generate_to_zarr(tmp_path / "syn.zarr", 170, chunk_size=64, seed=2, size=16,
                            block_size=48, workers=2, progress=False)  # fmt: skip
    got = open_dataset(path, lazy=False)
    ref = generate(170, size=16, seed=2, block_size=48, workers=1)
    for k in ("phase", "coherence", "displacement", "snr"):
        np.testing.assert_array_equal(got[k].values, ref[k].values)
    assert (got["sample"].values == ref["sample"].values).all()


def test_stream_chunk_keeps_a_chunk_of_pixels_within_the_budget():
    from insarexplore.data.synthetic.generator import _CHUNK_BUDGET, _stream_chunk

    assert _stream_chunk(1024, 128, 256) == 1024  # 192 MiB of pixels: as asked
    assert _stream_chunk(64, 224, 256) == 64  # a smaller request is kept
    at_224 = _stream_chunk(1024, 224, 256)
    assert at_224 % 256 == 0 and at_224 * 3 * 224 * 224 * 4 <= _CHUNK_BUDGET
    assert 1 <= _stream_chunk(1024, 2048, 256) < 256  # below one block when it must


def test_streaming_with_chunks_cut_to_the_memory_budget(tmp_path, monkeypatch):
    import zarr

    from insarexplore.data.io.store import open_dataset
    from insarexplore.data.synthetic import generator

    # a budget of 100 images of 16 px: chunks of 96 samples (two blocks of 48), 6 writes
    monkeypatch.setattr(generator, "_CHUNK_BUDGET", 100 * 3 * 16 * 16 * 4)
    path = generate_to_zarr(tmp_path / "syn.zarr", 530, chunk_size=1024, seed=3, size=16,
                            block_size=48, workers=2, progress=False)  # fmt: skip
    assert zarr.open_group(str(path), mode="r")["phase"].chunks[0] == 96
    got = open_dataset(path, lazy=False)
    ref = generate(530, size=16, seed=3, block_size=48, workers=1)
    for k in ("phase", "coherence", "displacement", "snr", "depth_m", "primary_date"):
        np.testing.assert_array_equal(got[k].values, ref[k].values)
    for k in ("sample", "label", "mechanism", "location_name"):
        assert (got[k].values == ref[k].values).all()


def test_render_dataset_writes_class_folders_with_licsar_names(tmp_path):
    from PIL import Image

    ds = generate(12, size=32, seed=1)
    paths = render_dataset(ds, tmp_path, palette="mixed")
    assert len(paths) == 12
    assert {p.parent.name for p in paths} == set(CLASSES)
    for p, (sid, pd_, sd) in zip(paths, zip(ds["sample"].values, ds["primary_date"].values,
                                            ds["secondary_date"].values)):  # fmt: skip
        d1 = str(np.datetime64(pd_, "D")).replace("-", "")
        d2 = str(np.datetime64(sd, "D")).replace("-", "")
        assert f"_{d1}_{d2}_" in p.name and p.name.endswith(f"{sid}.png")
        img = np.asarray(Image.open(p))
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    with pytest.raises(ValueError, match="palette"):
        render_dataset(ds, tmp_path, palette="viridis")


def test_command_line_writes_store_and_pngs(tmp_path, capsys):
    from insarexplore.data.io.store import open_dataset
    from insarexplore.data.synthetic.__main__ import main

    out = tmp_path / "cli.zarr"
    code = main([str(out), "-n", "12", "--size", "32", "--render", str(tmp_path / "png")])
    assert code == 0 and "wrote 12 interferograms" in capsys.readouterr().out
    assert open_dataset(out, lazy=False).sizes["sample"] == 12
    assert len(list((tmp_path / "png").rglob("*.png"))) == 12
    assert (tmp_path / "png_contact_sheet.png").exists()
    assert main([str(tmp_path / "bad.zarr"), "-n", "4", "--classes", "mogi,volcano"]) == 2


@pytest.mark.gpu
def test_generates_on_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    ds = generate(64, size=64, seed=0, device="cuda")
    schema.validate(ds)
    assert ds.sizes["sample"] == 64
