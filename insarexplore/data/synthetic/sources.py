"""Elastic half-space deformation sources: Mogi point source and Okada (1985) rectangles.

All functions are vectorised and array-library agnostic: pass numpy arrays (float64 is the
reference precision, checked against Okada's published Table 2) or torch tensors (the
generator's fast path, any device). Parameters broadcast against the observation points, so a
batch of sources is evaluated at once with per-sample parameters of shape ``(n, 1, 1)``.

Conventions: east ``e``, north ``n``, up ``z`` in metres; displacements in metres, ``uz``
positive upwards; strike clockwise from north with the fault dipping to the right of strike
(Aki & Richards); rake 0 = left-lateral, 90 = thrust, -90 = normal; opening positive = tensile.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["mogi", "okada85", "rectangular_dislocation"]

_VERTICAL_EPS = 1e-6  # |cos(dip)| below this uses Okada's cos(dip) = 0 formulas


def _xp(*arrays: Any) -> Any:
    """Return the array namespace (numpy or torch) of the inputs."""
    for a in arrays:
        if type(a).__module__.startswith("torch"):
            import torch

            return torch
    return np


def _as(xp: Any, value: Any, like: Any) -> Any:
    """Convert a scalar/array parameter to the namespace, dtype and device of ``like``."""
    if xp is np:
        return np.asarray(value, dtype=np.result_type(like, np.float32))
    if isinstance(value, xp.Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return xp.as_tensor(value, dtype=like.dtype, device=like.device)


def mogi(
    e: Any, n: Any, *, depth: Any, volume_change: Any, nu: float = 0.25
) -> tuple[Any, Any, Any]:
    """Surface displacement (ue, un, uz) of a Mogi point pressure source at (0, 0, -depth).

    ``e``, ``n`` are horizontal offsets from the source (m); ``volume_change`` in m^3 (positive =
    inflation, uplift). Closed form: u = (1 - nu) dV / pi * (e, n, depth) / (r^2 + depth^2)^1.5.
    """
    xp = _xp(e, n, depth, volume_change)
    if xp is np:
        e = np.asarray(e, dtype=np.float64)
        n = np.asarray(n, dtype=np.float64)
    depth = _as(xp, depth, e)
    volume_change = _as(xp, volume_change, e)
    if bool((depth <= 0).any()):
        raise ValueError("depth must be positive (metres below the surface)")
    r2 = e * e + n * n + depth * depth
    c = (1.0 - nu) * volume_change / math.pi / (r2 * xp.sqrt(r2))
    return c * e, c * n, c * depth


def _okada_terms(
    xp: Any, xi: Any, eta: Any, q: Any, sn: Any, cs: Any, ratio: float, vertical: bool,
    need: tuple[bool, bool, bool], shared: tuple[Any, Any, Any, bool],
) -> tuple[Any, ...]:  # fmt: skip
    """Okada (1985) eq. 25-30 integrands f(xi, eta) for the three dislocation types.

    Returns the nine terms (strike, dip, tensile) x (ux, uy, uz) before the -U/(2 pi) factors;
    types whose ``need`` flag is False come back as zeros (saves work for pure shear/tensile).
    ``ratio`` is mu / (lambda + mu) = 1 - 2 nu. ``shared`` holds what the four corners have in
    common: q^2, q sin(dip), q cos(dip) and whether q is nonzero everywhere. Products of
    full-size arrays with per-source factors are grouped so that each costs one pass.
    """
    qq, q_sn, q_cs, q_nonzero = shared
    ytil = eta * cs + q_sn
    dtil = eta * sn - q_cs
    xi2q2 = xi * xi + qq
    r = xp.sqrt(xi2q2 + eta * eta)
    r_eta = r + eta
    r_xi = r + xi
    r_d = r + dtil
    inv_r = 1.0 / r
    # Okada's singular points: R + eta = 0 -> use -ln(R - eta) and drop 1/(R + eta) terms;
    # likewise for R + xi; q = 0 -> arctan term is 0; xi = 0 -> I5 = 0. They are rare on a
    # grid, so the masked forms run only where one occurs.
    ok_eta = r_eta > 0
    if bool(ok_eta.all()):
        ln_r_eta = xp.log(r_eta)
        inv_r_eta = 1.0 / r_eta
    else:
        ln_r_eta = xp.log(xp.where(ok_eta, r_eta, 1.0 / (r - eta)))
        inv_r_eta = xp.where(ok_eta, 1.0 / xp.where(ok_eta, r_eta, 1.0), 0.0)
    rre = inv_r_eta * inv_r  # 1 / (R (R + eta))
    ok_xi = r_xi > 0
    if bool(ok_xi.all()):
        rrx = inv_r / r_xi  # 1 / (R (R + xi))
    else:
        rrx = xp.where(ok_xi, inv_r / xp.where(ok_xi, r_xi, 1.0), 0.0)
    if q_nonzero:
        atn = xp.arctan(xi * eta / (q * r))
    else:
        q_nz = q != 0
        atn = xp.where(q_nz, xp.arctan(xi * eta / (xp.where(q_nz, q, 1.0) * r)), 0.0)

    if vertical:
        inv_rd = 1.0 / r_d
        q_rd = q * inv_rd
        i1 = xi * q_rd * inv_rd * (-0.5 * ratio)
        i3 = (eta * inv_rd + ytil * q_rd * inv_rd - ln_r_eta) * (0.5 * ratio)
        i4 = q_rd * -ratio
        i5 = xi * inv_rd * (-ratio * sn)
    else:
        x = xp.sqrt(xi2q2)
        r_x = r + x
        cs_rd = cs * r_d
        num = eta * (x + q_cs) + x * r_x * sn
        xi_nz = xi != 0
        if bool(xi_nz.all()):
            i5 = xp.arctan(num / (xi * r_x * cs)) * (ratio * 2.0 / cs)
        else:
            den = xp.where(xi_nz, xi, 1.0) * r_x * cs
            i5 = xp.where(xi_nz, xp.arctan(num / den) * (ratio * 2.0 / cs), 0.0)
        i4 = (xp.log(r_d) - sn * ln_r_eta) * (ratio / cs)
        i3 = (ytil / cs_rd - ln_r_eta) * ratio + i4 * (sn / cs)
        i1 = xi / cs_rd * -ratio - i5 * (sn / cs)
    q_rre = q * rre
    xq_rre = xi * q_rre
    zero = (0.0, 0.0, 0.0)
    ss = ds = ts = zero
    if need[0]:
        i2 = ln_r_eta * -ratio - i3
        q_ire = q * inv_r_eta
        ss = (xq_rre + atn + i1 * sn, ytil * q_rre + q_ire * cs + i2 * sn,
              dtil * q_rre + q_ire * sn + i4 * sn)  # fmt: skip
    if need[1] or need[2]:
        q_rrx = q * rrx
    if need[1]:
        sc = sn * cs
        ds = (q * inv_r - i3 * sc, ytil * q_rrx + atn * cs - i1 * sc,
              dtil * q_rrx + atn * sn - i5 * sc)  # fmt: skip
    if need[2]:
        s2 = sn * sn
        xa = xq_rre - atn
        ts = (q * q_rre - i3 * s2, -(dtil * q_rrx + xa * sn + i1 * s2),
              ytil * q_rrx + xa * cs - i5 * s2)  # fmt: skip
    return ss, ds, ts


def okada85(
    x: Any,
    y: Any,
    d: Any,
    dip: Any,
    L: Any,  # noqa: N803 (Okada's symbols)
    W: Any,  # noqa: N803
    U1: Any,  # noqa: N803
    U2: Any,  # noqa: N803
    U3: Any,  # noqa: N803
    nu: float = 0.25,
) -> tuple[Any, Any, Any]:
    """Surface displacement of a rectangular dislocation in Okada's (1985) own frame.

    ``x`` runs along strike, ``y`` perpendicular (fault dips towards -y); the fault's lower edge
    lies at depth ``d`` below the origin and the fault extends ``L`` along x and ``W`` up-dip.
    ``dip`` in degrees, ``U1/U2/U3`` = strike-slip, dip-slip, tensile dislocation. Returns
    (ux, uy, uz). Reproduces Okada's Table 2 check values (see tests).
    """
    xp = _xp(x, y, d, dip, L, W, U1, U2, U3)
    if xp is np:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    d, dip, L, W = (_as(xp, v, x) for v in (d, dip, L, W))
    U1, U2, U3 = (_as(xp, v, x) for v in (U1, U2, U3))  # noqa: N806
    if bool((d < 0).any()):
        raise ValueError("d (depth of the fault's lower edge) must be >= 0")
    if bool((L <= 0).any()) or bool((W <= 0).any()):
        raise ValueError("L and W (fault length and width) must be positive")
    rad = dip * (math.pi / 180.0)
    sn, cs = xp.sin(rad), xp.cos(rad)
    vertical = xp.abs(cs) < _VERTICAL_EPS
    ratio = 1.0 - 2.0 * nu
    need = (bool((U1 != 0).any()), bool((U2 != 0).any()), bool((U3 != 0).any()))
    p = y * cs + d * sn
    q = y * sn - d * cs

    def chinnery(cs_used: Any, vert: bool) -> list[Any]:
        """f(x, p) - f(x, p - W) - f(x - L, p) + f(x - L, p - W) (Chinnery's notation)."""
        shared = (q * q, q * sn, q * cs_used, bool((q != 0).all()))
        out: list[Any] = [0.0] * 9
        x_l, p_w = x - L, p - W
        for xi, eta, plus in ((x, p, True), (x, p_w, False), (x_l, p, False), (x_l, p_w, True)):
            terms = _okada_terms(xp, xi, eta, q, sn, cs_used, ratio, vert, need, shared)
            flat = [t for group in terms for t in group]
            out = [o + t if plus else o - t for o, t in zip(out, flat)]
        return out

    with np.errstate(divide="ignore", invalid="ignore"):  # singular points are masked above
        if bool(vertical.all()):
            f = chinnery(cs * 0.0, True)
        elif not bool(vertical.any()):
            f = chinnery(cs, False)
        else:  # mixed batch: evaluate both branches and pick per element
            fv = chinnery(cs * 0.0, True)
            fg = chinnery(xp.where(vertical, 1.0, cs), False)
            f = [xp.where(vertical, a, b) for a, b in zip(fv, fg)]
    amps = (-U1 / (2 * math.pi), -U2 / (2 * math.pi), U3 / (2 * math.pi))
    used = [k for k in range(3) if need[k]]
    if not used:  # nothing slips: zeros of the broadcast output shape
        zeros = (x + y + d + L + W) * 0.0
        return zeros, zeros * 1.0, zeros * 1.0
    out = []
    for comp in range(3):
        u = 0.0
        for k in used:
            u = u + f[3 * k + comp] * amps[k]
        out.append(u)
    return out[0], out[1], out[2]


def rectangular_dislocation(
    e: Any,
    n: Any,
    *,
    centroid_e: Any,
    centroid_n: Any,
    depth: Any,
    strike: Any,
    dip: Any,
    length: Any,
    width: Any,
    rake: Any = 0.0,
    slip: Any = 0.0,
    opening: Any = 0.0,
    nu: float = 0.25,
) -> tuple[Any, Any, Any]:
    """Surface displacement (ue, un, uz) of a rectangular fault or crack in map coordinates.

    The rectangle is placed by its centroid (``centroid_e``, ``centroid_n``, ``depth`` below the
    surface, metres), oriented by ``strike`` and ``dip`` (degrees) and sized by ``length`` (along
    strike) and ``width`` (down dip). ``slip`` (m) acts in the direction ``rake``; ``opening`` (m)
    is the tensile part (negative closes). The fault must not cut the surface.
    """
    xp = _xp(e, n, centroid_e, centroid_n, depth, strike, dip, length, width, rake, slip, opening)
    if xp is np:
        e = np.asarray(e, dtype=np.float64)
        n = np.asarray(n, dtype=np.float64)
    depth, strike, dip, length, width, rake, slip, opening = (
        _as(xp, v, e) for v in (depth, strike, dip, length, width, rake, slip, opening)
    )
    centroid_e, centroid_n = _as(xp, centroid_e, e), _as(xp, centroid_n, e)
    if bool((depth <= 0).any()):
        raise ValueError("depth (of the centroid) must be positive")
    rad_d = dip * (math.pi / 180.0)
    half_rise = 0.5 * width * xp.sin(rad_d)
    if bool((depth - half_rise < 0).any()):
        raise ValueError("depth: the rectangle's top edge would lie above the surface")
    rad_s = strike * (math.pi / 180.0)
    se, sno = xp.sin(rad_s), xp.cos(rad_s)  # unit vector along strike
    ye, yn = -sno, se  # Okada's +y: 90 degrees anticlockwise from strike (fault dips to -y)
    half_run = 0.5 * width * xp.cos(rad_d)
    # origin of Okada's frame: the surface point above the lower-edge corner
    oe = centroid_e - 0.5 * length * se - half_run * ye
    on = centroid_n - 0.5 * length * sno - half_run * yn
    de, dn = e - oe, n - on
    x = de * se + dn * sno
    y = de * ye + dn * yn
    rake_r = rake * (math.pi / 180.0)
    ux, uy, uz = okada85(
        x,
        y,
        depth + half_rise,
        dip,
        length,
        width,
        slip * xp.cos(rake_r),
        slip * xp.sin(rake_r),
        opening,
        nu=nu,
    )
    return ux * se + uy * ye, ux * sno + uy * yn, uz
