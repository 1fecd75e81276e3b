"""Renderings as public sets ship them: grey, cyclic and hue-cycle palettes read back to phase."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from readers_fixtures import fringe_phase

from insarexplore.data.io.images import read_image_folder
from insarexplore.data.palettes import detect_palette, recover_phase, render_phase
from insarexplore.data.synthetic.styles import (
    amplitude_texture,
    degraded,
    diverging_lut,
    foreign_lut,
    hue_cycle_lut,
    nodata_wedge,
    render_styled,
    write_styled_folder,
)


def _err(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.abs(np.angle(np.exp(1j * (a[ok] - b[ok])))).mean())


@pytest.mark.parametrize("style", ["grey", "cyclic", "rainbow"])
def test_each_style_is_detected_and_read_back(style):
    ph = fringe_phase((64, 64), 3)
    amp = amplitude_texture(64, 64, seed=1)
    wedge = nodata_wedge(64, 64, np.random.default_rng(0))
    img = render_styled(ph, style, amplitude=amp, wedge=wedge)
    assert detect_palette(img) == style
    back = recover_phase(img, "auto")
    # the wedge is no data in every style (black is a phase in grey, but not a 5x5 black block)
    assert np.isnan(back[wedge]).mean() > 0.9
    assert np.isfinite(back[~wedge]).mean() > 0.97
    assert _err(back, np.where(wedge, np.nan, ph)) < 0.05


def test_grey_black_pixels_are_phase_not_nodata():
    ph = np.full((16, 16), -np.pi + 0.001, np.float32)
    ph[::2] = 0.5  # stripes: isolated rows of black
    img = render_phase(ph, "grey")
    assert (img[1::2] == 0).all()
    back = recover_phase(img, "grey")
    assert np.isfinite(back).all()


def test_palette_invariance_of_the_encoder_input():
    """The same interferogram in grey, cyclic and shaded hue-cycle renderings gives the encoder
    (almost) the same input: its fringe-rate layer sees phase, not palette."""
    from insarexplore.data.accessor import phase_channels
    from insarexplore.models.encoders import PhasorGradient

    ph = fringe_phase((64, 64), 5)
    amp = amplitude_texture(64, 64, seed=2)
    layer = PhasorGradient()
    outs = []
    for style in ("grey", "cyclic", "rainbow"):
        back = recover_phase(render_styled(ph, style, amplitude=amp), "auto")
        x = torch.from_numpy(phase_channels(back[None], None))
        outs.append(layer(x))
    for other in outs[1:]:
        assert torch.nn.functional.cosine_similarity(outs[0].flatten(), other.flatten(), 0) > 0.97


def test_rgba_transparent_is_nodata_and_big_scenes_fit(tmp_path):
    ph = fringe_phase((40, 40), 1)
    wedge = nodata_wedge(40, 40, np.random.default_rng(1))
    rgba = render_styled(ph, "cyclic", wedge=wedge, size=(60, 80), rgba=True)
    assert rgba.shape == (60, 80, 4) and (rgba[..., 3] == 0).any()
    Image.fromarray(rgba).save(tmp_path / "scene_20200101_20200113.png")
    Image.fromarray(render_styled(ph, "grey")).save(tmp_path / "grey_20200101_20200125.png")
    ds = read_image_folder(tmp_path, size=40)
    assert ds.insar.kind == "phase" and ds["phase"].shape == (2, 40, 40)
    table = ds.insar.sample_table()
    assert sorted(table["rendering"]) == ["cyclic", "grey"]
    scene = ds["phase"].sel(sample="scene_20200101_20200113.png").values
    assert np.isnan(scene).any() and np.isfinite(scene).mean() > 0.5


def test_write_styled_folder_mixes_styles_per_site(tmp_path):
    from insarexplore.data.synthetic import generate

    ds = generate(12, size=32, seed=0, progress=False)
    sites = ["A"] * 6 + ["B"] * 6
    looks = {"A": [0, 1, 0], "B": [0, 0, 1]}
    paths = write_styled_folder(ds, tmp_path, styles=looks, site=sites, labels=sites,
                                rgba_p=0.0, wedge_p=0.0, tif_names=1)  # fmt: skip
    assert paths[0].name.endswith(".geo.diff_pha.tif") and len(paths) == 12
    read = read_image_folder(tmp_path)
    style = read.insar.sample_table()["rendering"]
    assert set(style[read["label"].values == "A"]) == {"cyclic"}
    assert set(style[read["label"].values == "B"]) == {"rainbow"}


def _gradient_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean circular error of neighbouring-pixel phase differences (what the encoder sees)."""
    d = [np.diff(a, axis=k) - np.diff(b, axis=k) for k in (0, 1)]
    e = np.concatenate([np.abs(np.angle(np.exp(1j * x[np.isfinite(x)]))) for x in d])
    return float(e.mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hue_cycles_of_other_tools_read_exactly(seed):
    """A hue cycle that is not this module's table (lower saturation, another starting hue),
    shaded by amplitude, reads back to the phase up to a constant offset: the hue is the phase."""
    ph = fringe_phase((64, 64), 6)
    lut = foreign_lut("rainbow", np.random.default_rng(seed))
    assert not np.array_equal(lut, foreign_lut("rainbow", np.random.default_rng(seed + 10)))
    amp = amplitude_texture(64, 64, seed=seed)
    img = render_styled(ph, "rainbow", amplitude=amp, lut=lut)
    assert detect_palette(img) == "rainbow"
    back = recover_phase(img, "auto")
    assert _gradient_error(back, ph) < 0.02
    offset = np.angle(np.mean(np.exp(1j * (back - ph))))
    assert _err(back, ph + offset) < 0.02


def test_cyclic_palettes_of_other_tools_read_with_bounded_error():
    """A diverging palette of another tool reads with some error (the reader knows one table),
    still far closer than chance: fringes keep their place and count."""
    ph = fringe_phase((64, 64), 6)
    for seed in range(3):
        lut = foreign_lut("cyclic", np.random.default_rng(seed))
        img = render_styled(ph, "cyclic", lut=lut)
        assert detect_palette(img) == "cyclic"
        back = recover_phase(img, "auto")
        assert 0.01 < _gradient_error(back, ph) < 0.3  # the own table reads at < 0.01
    own = recover_phase(render_styled(ph, "cyclic"), "auto")
    assert _gradient_error(own, ph) < 0.01


def test_write_styled_folder_foreign_tables_per_site(tmp_path):
    """With ``foreign``, one site's images share one table of each style, another site's
    differ; the draws of styles, wedges and sizes are those of the run without."""
    from insarexplore.data.synthetic import generate

    ds = generate(8, size=32, seed=0, progress=False)
    sites = ["A"] * 4 + ["B"] * 4
    looks = {"A": [0, 1, 0], "B": [0, 1, 0]}
    kw = dict(styles=looks, site=sites, rgba_p=0.3, wedge_p=0.5, seed=3)
    plain = write_styled_folder(ds, tmp_path / "plain", **kw)
    other = write_styled_folder(ds, tmp_path / "foreign", foreign=True, **kw)
    imgs = [np.asarray(Image.open(p)) for p in plain]
    fimgs = [np.asarray(Image.open(p)) for p in other]
    assert {a.shape for a in imgs} == {(32, 32, 3), (373, 464, 4)}  # both kinds drawn
    for a, b in zip(imgs, fimgs):
        assert a.shape == b.shape  # the same sizes and RGBA draws
        assert ((a[..., :3] == 0).all(-1) == (b[..., :3] == 0).all(-1)).all()  # same wedges
        assert not np.array_equal(a, b)
    small = [i for i, a in enumerate(fimgs) if a.shape == (32, 32, 3)]
    in_a, in_b = [i for i in small if i < 4], [i for i in small if i >= 4]
    assert len(in_a) >= 2 and in_b  # the draws of seed 3 leave these at 32 px

    # within a site a colour always means one phase
    def table(i: int) -> dict:
        phase, rgb = ds["phase"].values[i].ravel(), fimgs[i].reshape(-1, 3)
        ok = rgb.any(axis=1) & np.isfinite(phase)  # black: no data
        return dict(zip(map(tuple, rgb[ok]), phase[ok]))

    a0, a1, b0 = table(in_a[0]), table(in_a[1]), table(in_b[0])
    shared = set(a0) & set(a1)
    assert shared and all(abs(np.angle(np.exp(1j * (a0[c] - a1[c])))) < 0.05 for c in shared)
    assert len(set(a0) & set(b0)) < 0.2 * min(len(a0), len(b0))  # B has its own colours


@pytest.mark.parametrize("foreign", [False, True])
def test_write_styled_folder_reverse_renders_the_other_sign(tmp_path, foreign):
    """A style in ``reverse`` is rendered with its table run backwards: read back, its phase is
    the conjugate of the plain rendering's (grey and the other style untouched)."""
    from insarexplore.data.synthetic import generate

    ds = generate(6, size=48, seed=0, progress=False)
    kw = dict(styles=("cyclic", "rainbow"), site=["A"] * 6, wedge_p=0.0, seed=1, foreign=foreign)
    plain = write_styled_folder(ds, tmp_path / "plain", **kw)
    other = write_styled_folder(ds, tmp_path / "rev", reverse=("rainbow",), **kw)
    seen = set()
    for a, b in zip(plain, other):
        ia, ib = np.asarray(Image.open(a)), np.asarray(Image.open(b))
        style = detect_palette(ia)
        assert detect_palette(ib) == style  # the same family, the other way round
        pa, pb = recover_phase(ia, "auto"), recover_phase(ib, "auto")
        seen.add(style)
        if style == "cyclic":
            assert np.array_equal(ia, ib)
        else:  # conjugated, up to the constant offset a foreign table starts at
            d = np.angle(np.exp(1j * (pa + pb)))
            ok = np.isfinite(d)
            assert np.abs(np.exp(1j * d[ok]).mean()) > 0.95
            assert np.abs(np.exp(1j * (pa - pb)[ok]).mean()) < 0.5
    assert seen == {"cyclic", "rainbow"}
    for bad in ("rainbow", ("viridis",)):
        with pytest.raises(ValueError, match="reverse"):
            write_styled_folder(ds, tmp_path / "bad", reverse=bad, **kw)


def test_foreign_tables_stay_in_their_family():
    """Another tool's diverging palette is still detected as diverging, its hue cycle as a hue
    cycle (the detector and the fixtures agree on what a family is)."""
    ph = fringe_phase((48, 48), 6)
    amp = amplitude_texture(48, 48, seed=1)
    for seed in range(60):
        rng = np.random.default_rng(seed)
        assert detect_palette(render_styled(ph, "cyclic", lut=foreign_lut("cyclic", rng))) == (
            "cyclic"
        )
        lut = foreign_lut("rainbow", rng)
        assert detect_palette(render_styled(ph, "rainbow", amplitude=amp, lut=lut)) == "rainbow"


_KEPT = ("as rendered", "halved", "JPEG 50")  # the degradations these tests hold to


@pytest.mark.parametrize(
    "light_blue",
    [(150, 230, 220), (120, 220, 210), (100, 200, 190), (80, 210, 190), (60, 200, 200)],
)
def test_a_diverging_palette_whose_light_blue_leans_cyan_is_not_a_hue_cycle(light_blue):
    """Its cyan or teal (and pixels resampled or compressed between its yellow and its blue)
    is not the green of a hue cycle."""
    rng = np.random.default_rng(0)
    lut = diverging_lut(light_blue)
    for ph in (fringe_phase((224, 224), 8), rng.uniform(-np.pi, np.pi, (224, 224))):
        for name, im in degraded(render_phase(ph, lut=lut)).items():
            assert name not in _KEPT or detect_palette(im) == "cyclic"


@pytest.mark.parametrize("saturation", [1.0, 0.7, 0.5])
def test_hue_cycles_read_as_hue_cycles_pale_resampled_or_compressed(saturation):
    lut = hue_cycle_lut(saturation)
    amp = amplitude_texture(224, 224, seed=2)
    for ph in (fringe_phase((224, 224), 8), fringe_phase((224, 224), 3)):
        for name, im in degraded(render_phase(ph, lut=lut, amplitude=amp)).items():
            assert name not in _KEPT or detect_palette(im) == "rainbow"


def test_render_phase_refuses_a_bad_table():
    with pytest.raises(ValueError, match="lut"):
        render_phase(np.zeros((4, 4)), lut=np.ones((16, 3)))  # floats 0-1: all but black
    with pytest.raises(ValueError, match="lut"):
        render_phase(np.zeros((4, 4)), lut=np.ones((16, 4), np.uint8))
