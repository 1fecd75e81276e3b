"""Mogi and Okada (1985) sources: published check values, closed form, frames and patterns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from insarexplore.data.synthetic.sources import mogi, okada85, rectangular_dislocation

# Okada (1985) Table 2 (nu = 0.25), see /work/shared/DATA_FORMATS.md
CASE2 = dict(x=2.0, y=3.0, d=4.0, dip=70.0, L=3.0, W=2.0)
CASE3 = dict(x=0.0, y=0.0, d=4.0, dip=90.0, L=3.0, W=2.0)
CHECKS = [
    (CASE2, (1, 0, 0), (-8.689e-3, -4.298e-3, -2.747e-3)),
    (CASE2, (0, 1, 0), (-4.682e-3, -3.527e-2, -3.564e-2)),
    (CASE2, (0, 0, 1), (-2.660e-4, +1.056e-2, +3.214e-3)),
    (CASE3, (1, 0, 0), (0.0, +5.253e-3, 0.0)),
    (CASE3, (0, 1, 0), (0.0, 0.0, 0.0)),
    (CASE3, (0, 0, 1), (+1.223e-2, 0.0, -1.606e-2)),
]


def _sig4(v: float) -> float:
    return 0.0 if abs(v) < 1e-12 else float(f"{v:.4g}")


@pytest.mark.parametrize(("case", "u", "expected"), CHECKS)
def test_okada_table2_to_four_significant_digits(case, u, expected):
    got = okada85(**case, U1=u[0], U2=u[1], U3=u[2], nu=0.25)
    assert all(np.asarray(g).dtype == np.float64 for g in got)
    assert [_sig4(float(g)) for g in got] == [_sig4(e) for e in expected]


def test_okada_is_vectorised_and_matches_pointwise():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(-10, 10, (2, 7, 5))
    dips = np.array([10.0, 45.0, 70.0, 90.0, 89.0])[None, :]  # one dip per column, mixed branch
    ux, uy, uz = okada85(x, y, 5.0, dips, 4.0, 3.0, 0.3, -0.7, 0.2)
    assert ux.shape == (7, 5)
    for i in range(7):
        for j in range(5):
            one = okada85(x[i, j], y[i, j], 5.0, dips[0, j], 4.0, 3.0, 0.3, -0.7, 0.2)
            np.testing.assert_allclose([ux[i, j], uy[i, j], uz[i, j]], one, rtol=1e-10, atol=1e-14)


def test_okada_torch_float32_agrees_with_numpy_float64():
    torch = pytest.importorskip("torch")
    c = np.linspace(-8000, 8000, 33)
    e, n = np.meshgrid(c, -c)
    kw = dict(centroid_e=300.0, centroid_n=-200.0, depth=3000.0, strike=30.0, dip=60.0,
              length=6000.0, width=3000.0, rake=45.0, slip=1.0, opening=0.5)  # fmt: skip
    ref = rectangular_dislocation(e, n, **kw)
    got = rectangular_dislocation(torch.tensor(e, dtype=torch.float32),
                                  torch.tensor(n, dtype=torch.float32), **kw)  # fmt: skip
    peak = max(np.abs(r).max() for r in ref)
    for r, g in zip(ref, got):
        assert np.abs(r - g.double().numpy()).max() < 1e-4 * peak


def test_mogi_closed_form():
    nu, dv, d = 0.25, 2e6, 3000.0
    e = np.array([0.0, 1000.0, -2500.0, 4000.0])
    n = np.array([0.0, 500.0, 1500.0, -3000.0])
    ue, un, uz = mogi(e, n, depth=d, volume_change=dv, nu=nu)
    r = np.hypot(e, n)
    c = (1 - nu) * dv / np.pi / (r**2 + d**2) ** 1.5
    np.testing.assert_allclose(uz, c * d, rtol=1e-12)
    np.testing.assert_allclose(np.hypot(ue, un), c * r, rtol=1e-12)
    np.testing.assert_allclose(np.arctan2(un[1:], ue[1:]), np.arctan2(n[1:], e[1:]))  # radial
    assert uz[0] == pytest.approx((1 - nu) * dv / (np.pi * d**2))  # peak above the source


def test_mogi_uz_is_radially_symmetric_and_deflation_flips_sign():
    ang = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    e, n = 2500 * np.cos(ang), 2500 * np.sin(ang)
    _, _, uz = mogi(e, n, depth=2000.0, volume_change=5e6)
    assert np.ptp(uz) < 1e-12 * abs(uz[0])
    _, _, uz_d = mogi(e, n, depth=2000.0, volume_change=-5e6)
    np.testing.assert_allclose(uz_d, -uz)


def test_wrapper_matches_okada_frame_for_strike_east():
    # strike 90 (east): Okada's x = east, y = north, origin above the lower-edge corner
    L, W, dip, d_low = 4000.0, 2000.0, 60.0, 5000.0  # noqa: N806
    rise, run = W / 2 * math.sin(math.radians(dip)), W / 2 * math.cos(math.radians(dip))
    e, n = np.array([1000.0, -3000.0, 6000.0]), np.array([2000.0, -1000.0, 500.0])
    ref = okada85(e, n, d_low, dip, L, W, 0.0, 1.0, 0.0)
    got = rectangular_dislocation(e, n, centroid_e=L / 2, centroid_n=run, depth=d_low - rise,
                                  strike=90.0, dip=dip, length=L, width=W, rake=90.0, slip=1.0)  # fmt: skip
    np.testing.assert_allclose(got, ref, atol=1e-12)


def test_strike_slip_quadrants_and_left_lateral_sense():
    c = np.linspace(-6000, 6000, 61)
    e, n = np.meshgrid(c, c)
    ue, un, uz = rectangular_dislocation(e, n, centroid_e=0.0, centroid_n=0.0, depth=3000.0,
                                         strike=0.0, dip=90.0, length=8000.0, width=4000.0,
                                         rake=0.0, slip=1.0)  # fmt: skip
    # left-lateral on a north-striking fault: the east side moves north, the west side south
    assert un[30, 40] > 0 > un[30, 20]
    # vertical motion has four lobes of alternating sign around the fault's ends
    q = [uz[40:, 31:].sum(), uz[40:, :30].sum(), uz[:21, :30].sum(), uz[:21, 31:].sum()]
    signs = np.sign(q)
    assert signs[0] == -signs[1] == signs[2] == -signs[3] != 0


def test_thrust_uplifts_the_hanging_wall_and_normal_faulting_drops_it():
    c = np.linspace(-10000, 10000, 81)
    e, n = np.meshgrid(c, c)
    # strike east, dips south: up-dip is north; the plane would reach the surface at n = trace
    kw = dict(centroid_e=0.0, centroid_n=0.0, depth=4000.0, strike=90.0, dip=30.0,
              length=10000.0, width=5000.0, slip=1.0)  # fmt: skip
    trace = 2500 * math.cos(math.radians(30)) + (4000 - 1250) / math.tan(math.radians(30))
    _, _, up = rectangular_dislocation(e, n, rake=90.0, **kw)
    _, _, down = rectangular_dislocation(e, n, rake=-90.0, **kw)
    i, _ = np.unravel_index(np.argmax(up), up.shape)
    assert up.max() > 2 * abs(up.min())  # thrust: mostly uplift
    assert 0 < n[i, 0] < trace  # above the upper fault, on the hanging wall
    np.testing.assert_allclose(down, -up)  # normal faulting is the exact opposite


def test_bad_parameters_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match="depth"):
        mogi(0.0, 0.0, depth=-100.0, volume_change=1e6)
    with pytest.raises(ValueError, match="depth"):
        rectangular_dislocation(0.0, 0.0, centroid_e=0, centroid_n=0, depth=-5.0, strike=0,
                                dip=45, length=1000, width=1000, slip=1.0)  # fmt: skip
    with pytest.raises(ValueError, match="depth"):  # top edge above the surface
        rectangular_dislocation(0.0, 0.0, centroid_e=0, centroid_n=0, depth=100.0, strike=0,
                                dip=90, length=1000, width=1000, slip=1.0)  # fmt: skip
    with pytest.raises(ValueError, match="L and W"):
        okada85(1.0, 1.0, 4.0, 45.0, -3.0, 2.0, 1.0, 0.0, 0.0)
