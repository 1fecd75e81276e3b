"""Palettes: rendering wrapped phase and recovering it from a rendering."""

from __future__ import annotations

import numpy as np
import pytest

from insarexplore.data.palettes import PALETTES, palette_lut, recover_phase, render_phase


def circular_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (np.asarray(a, np.float64) - b))))


@pytest.mark.parametrize("palette", PALETTES)
def test_lut_is_cyclic_and_render_shapes(palette):
    lut = palette_lut(palette)
    assert lut.shape == (1024, 3) and lut.dtype == np.uint8
    if palette == "grey":  # a ramp: black at -pi, white just below +pi, then back to black
        assert (lut[0] == 0).all() and (lut[-1] == 255).all()
    else:  # the colour just below +pi is next to the colour at -pi (a closed cycle)
        assert np.abs(lut[0].astype(int) - lut[-1].astype(int)).max() <= 4
    ph = np.array([[np.nan, 0.0], [-np.pi, 3.0]], np.float32)
    rgb = render_phase(ph, palette=palette)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 0).all()  # NaN -> no-data black


def test_cyclic_anchor_colours():
    rgb = render_phase(np.array([-np.pi, 0.0, -np.pi / 3 * 2, np.pi / 3 * 2]), palette="cyclic")
    assert tuple(rgb[0]) == (110, 0, 20)  # dark red at -pi
    assert rgb[1].min() >= 245  # white at 0
    assert rgb[2][0] > 200 and rgb[2][2] < 60  # red/yellow side for negative phase
    assert rgb[3][2] > 150 and rgb[3][0] < 60  # blue side for positive phase


@pytest.mark.parametrize("palette", PALETTES)
def test_recover_dense_phase_grid(palette):
    """Every phase on a dense grid comes back within 0.05 rad (no ambiguity in either palette)."""
    ph = np.linspace(-np.pi, np.pi, 100_000, endpoint=False).astype(np.float32)
    rec = recover_phase(render_phase(ph, palette=palette), palette=palette)
    assert rec.dtype == np.float32 and rec.shape == ph.shape
    assert np.all(rec >= -np.pi) and np.all(rec < np.pi)
    assert circular_error(rec, ph).max() < 0.05


@pytest.mark.parametrize("palette", PALETTES)
def test_recover_fringe_image_with_nodata(palette):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    unw = 25 * np.exp(-((xx - 0.4) ** 2 + (yy - 0.6) ** 2) / 0.04) + 4 * xx
    ph = (np.mod(unw + rng.normal(0, 0.3, unw.shape) + np.pi, 2 * np.pi) - np.pi).astype(np.float32)
    ph[:5, :7] = np.nan
    rec = recover_phase(render_phase(ph, palette=palette), palette=palette)
    np.testing.assert_array_equal(np.isnan(rec), np.isnan(ph))
    valid = np.isfinite(ph)
    assert circular_error(rec[valid], ph[valid]).max() < 0.05


def test_rainbow_recovery_undoes_amplitude_shading():
    rng = np.random.default_rng(1)
    ph = rng.uniform(-np.pi, np.pi, (48, 48)).astype(np.float32)
    amp = rng.uniform(0.0, 1.0, ph.shape)
    rgb = render_phase(ph, palette="rainbow", amplitude=amp)
    assert circular_error(recover_phase(rgb, palette="rainbow"), ph).max() < 0.05


def test_recover_is_a_constant_offset_equivariant_map():
    """A constant phase offset in the data is the same offset in the recovered phase."""
    ph = np.random.default_rng(2).uniform(-np.pi, np.pi, (32, 32)).astype(np.float32)
    a = recover_phase(render_phase(ph))
    b = recover_phase(render_phase(np.angle(np.exp(1j * (ph + 1.0))).astype(np.float32)))
    assert circular_error(b - a, 1.0).max() < 0.05


def test_bad_arguments():
    with pytest.raises(ValueError, match="palette"):
        recover_phase(np.zeros((2, 2, 3), np.uint8), palette="viridis")
    with pytest.raises(ValueError, match="3 channels"):
        recover_phase(np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        recover_phase(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="palette"):
        render_phase(np.zeros((2, 2)), palette="viridis")
