"""Atmospheric and orbital nuisance: batched FFT power-law screens, fractal DEMs, ramps.

Everything here is batched over samples and runs in torch on any device (CPU by default): the
random spectral coefficients come from a ``torch.Generator`` so a seed fixes the result on a
given device type.

Turbulent delay follows a two-regime power law (Hanssen 2001, "Radar Interferometry", ch. 4;
Treuhaft & Lanyi 1987): phase power ~ k^-11/3 at scales below the effective thickness of the
wet layer (3-D Kolmogorov turbulence) and ~ k^-8/3 above it (a thin 2-D layer). The corner
between the regimes varies per sample (1-10 km), so some screens look smooth and blotchy, others
rougher. Standard deviations of a few centimetres are typical of Sentinel-1 pairs (e.g. Parker
et al. 2015; Morishita et al. 2020). Stratified delay is linear in the height of a synthetic
fractal DEM (Doin et al. 2009: a few cm per km of relief differs between acquisitions).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "BETA_SHORT",
    "BETA_LONG",
    "power_law_fields",
    "turbulent_screens",
    "fractal_dem",
    "orbital_ramps",
    "upsample",
    "grid",
]

BETA_SHORT = 11.0 / 3.0  # 3-D turbulence, scales below the corner
BETA_LONG = 8.0 / 3.0  # thin-layer turbulence, scales above the corner


def _t(value: Any, n: int, device: Any) -> Any:
    """Per-sample parameter as a float32 tensor of shape (n, 1, 1)."""
    import torch

    return torch.as_tensor(np.asarray(value, dtype=np.float32), device=device).reshape(n, 1, 1)


def _wavenumbers(h: int, w: int, spacing_m: float, device: Any) -> Any:
    """|k| in cycles per metre on the rfft2 grid, shape (h, w // 2 + 1)."""
    import torch

    ky = torch.fft.fftfreq(h, d=spacing_m, device=device)
    kx = torch.fft.rfftfreq(w, d=spacing_m, device=device)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


_LOGK: dict[tuple[int, int, float, str], Any] = {}


def _log_wavenumbers(h: int, w: int, spacing_m: float, device: Any) -> Any:
    """log |k| on the rfft2 grid (0 at k = 0), shape (1, h, w // 2 + 1), cached."""
    import torch

    key = (h, w, float(spacing_m), str(device))
    if key not in _LOGK:
        k = _wavenumbers(h, w, spacing_m, device)
        _LOGK[key] = torch.log(torch.where(k > 0, k, torch.ones_like(k)))[None]
    return _LOGK[key]


_POWER: dict[tuple[int, int, float, float, str], tuple[Any, float]] = {}


def _k_power(h: int, w: int, spacing_m: float, half_beta: float, device: Any) -> tuple[Any, float]:
    """|k|^-half_beta on the rfft2 grid divided by its maximum, and the log of that maximum.

    Zero at k = 0 (fields have no mean). Cached per grid and exponent: the generator uses a
    handful of exponents, so the per-sample spectral shaping is a lookup, not a pow.
    """
    import torch

    key = (h, w, float(spacing_m), float(half_beta), str(device))
    hit = _POWER.get(key)  # one lookup: another generation thread may clear the cache
    if hit is None:
        if len(_POWER) > 64:  # many distinct exponents: keep the cache small
            _POWER.clear()
        t = -half_beta * _log_wavenumbers(h, w, spacing_m, device)[0].double()
        top = float(t.max())
        table = torch.exp(t - top).float()
        table[0, 0] = 0.0
        hit = _POWER[key] = (table, top)
    return hit


def _amplitudes(
    n: int, h: int, w: int, spacing_m: float, beta: Any, corner_m: Any, beta_long: Any,
    device: Any,
) -> Any:  # fmt: skip
    """Spectral amplitude per sample, (n or 1, h, w // 2 + 1), each up to a positive factor.

    k^(-beta/2), or with a corner k^(-beta_long/2) at wavenumbers below 1 / corner, joined
    continuously: the long branch is k^(-beta_long/2) * kc^((beta_long - beta) / 2).
    """
    import torch

    hb = np.broadcast_to(np.asarray(beta, dtype=np.float64) * 0.5, (n,))
    if corner_m is None:
        hbl = hb
    else:
        hbl = np.broadcast_to(np.asarray(beta if beta_long is None else beta_long,
                                         dtype=np.float64) * 0.5, (n,))  # fmt: skip
        logkc = np.log(1.0 / np.broadcast_to(np.asarray(corner_m, dtype=np.float64), (n,)))
        logk = _log_wavenumbers(h, w, spacing_m, device)
    groups, inv = np.unique(np.stack([hb, hbl], 1), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    amp = None
    for g, (short, long_) in enumerate(groups):
        rows = np.flatnonzero(inv == g)
        a_short, top_short = _k_power(h, w, spacing_m, short, device)
        if corner_m is None:
            part = a_short[None]
        else:
            a_long, top_long = _k_power(h, w, spacing_m, long_, device)
            factor = np.exp(top_long - top_short + (long_ - short) * logkc[rows])
            kc = torch.as_tensor(logkc[rows], dtype=torch.float32, device=device)
            f = torch.as_tensor(factor, dtype=torch.float32, device=device)
            part = torch.where(logk < kc[:, None, None], a_long * f[:, None, None], a_short)
        if len(groups) == 1:
            return part
        if amp is None:
            amp = torch.empty((n, h, w // 2 + 1), device=device)
        amp[rows] = part
    return amp


def power_law_fields(
    n: int,
    h: int,
    w: int,
    *,
    spacing_m: float,
    beta: Any,
    generator: Any,
    corner_m: Any = None,
    beta_long: Any = None,
    device: Any = None,
    std: Any = None,
) -> Any:
    """Zero-mean random fields with power spectrum ~ k^-beta, batched via irfft2.

    With ``corner_m`` (per sample, metres) and ``beta_long`` the spectrum switches to
    k^-beta_long at wavelengths longer than the corner, continuously. Each field has exactly
    unit standard deviation, or ``std`` (per sample) when given. Returns float32 (n, h, w).
    """
    import torch

    if n == 0:
        return torch.zeros((0, h, w), device=device)
    amp = _amplitudes(n, h, w, spacing_m, beta, corner_m, beta_long, device)
    coef = torch.randn((n, h, w // 2 + 1, 2), generator=generator, device=device)
    coef.mul_(amp[..., None])
    spec = torch.view_as_complex(coef)
    # columns kx = 0 (and w/2 for even w) must be Hermitian in ky for a real field
    cols = [0] + ([w // 2] if w % 2 == 0 else [])
    flip = (-torch.arange(h, device=device)) % h
    for c in cols:
        col = spec[:, :, c]
        spec[:, :, c] = 0.5 * (col + col[:, flip].conj())
    # std per sample from Parseval's theorem (the k = 0 term is zero, so the mean is too):
    # rfft columns other than 0 (and w/2 for even w) stand for two conjugate coefficients
    power = 2.0 * torch.linalg.vector_norm(coef, dim=(1, 2, 3)).square()
    power -= coef[:, :, cols].square().sum(dim=(1, 2, 3))
    scale = (h * w) / torch.sqrt(power).clamp_min(1e-12)
    if std is not None:
        scale *= torch.as_tensor(np.asarray(std, dtype=np.float32), device=device).reshape(n)
    return torch.fft.irfft2(spec, s=(h, w)).mul_(scale[:, None, None])


def upsample(field: Any, h: int, w: int) -> Any:
    """Bilinear upsampling of a batch (n, h0, w0) or (n, c, h0, w0) to (h, w).

    Corners are aligned: the coarse grid samples the same extent as the fine one, so planar
    fields (ramps) are reproduced exactly.
    """
    import torch.nn.functional as F  # noqa: N812

    if field.shape[-2:] == (h, w):
        return field
    four = field.ndim == 4
    out = F.interpolate(field if four else field[:, None], size=(h, w), mode="bilinear",
                        align_corners=True)  # fmt: skip
    return out if four else out[:, 0]


def grid(m: int, spacing_m: float, device: Any = None) -> tuple[Any, Any]:
    """East and north coordinates (metres from the scene centre) of an m x m grid, row 0 north.

    Shapes (1, 1, m) and (1, m, 1), for broadcasting against (n, m, m) batches.
    """
    import torch

    c = (torch.arange(m, device=device, dtype=torch.float32) - (m - 1) / 2) * float(spacing_m)
    return c[None, None, :], -c[None, :, None]


def turbulent_screens(
    std_m: Any,
    size: int,
    *,
    pixel_spacing_m: float,
    corner_m: Any,
    generator: Any,
    device: Any = None,
) -> Any:
    """Turbulent tropospheric delay (metres), two-regime power law, per-sample std and corner."""
    n = len(np.atleast_1d(std_m))
    return power_law_fields(
        n,
        size,
        size,
        spacing_m=pixel_spacing_m,
        beta=np.full(n, BETA_SHORT),
        beta_long=np.full(n, BETA_LONG),
        corner_m=corner_m,
        generator=generator,
        device=device,
        std=np.atleast_1d(std_m),
    )


def fractal_dem(
    unit_field: Any,
    relief_m: Any,
    *,
    spacing_m: float,
    edifice_height_m: Any = None,
    edifice_radius_m: Any = None,
    edifice_e_m: Any = None,
    edifice_n_m: Any = None,
) -> Any:
    """Synthetic topography (metres above the scene mean) on the grid of ``unit_field``.

    ``unit_field`` is a unit-std power-law field (elevation spectrum ~ k^-beta, beta about 3-4
    for natural relief, Turcotte 1997: use :func:`power_law_fields`), scaled to ``relief_m``
    per sample, plus an optional Gaussian-flanked volcanic edifice (height 0 disables) centred
    at (``edifice_e_m``, ``edifice_n_m``) from the scene centre.
    """
    import torch

    n, m = unit_field.shape[0], unit_field.shape[-1]
    dev = unit_field.device
    dem = unit_field * _t(relief_m, n, dev)
    if edifice_height_m is not None and bool(np.any(np.asarray(edifice_height_m) > 0)):
        e, nn = grid(m, spacing_m, dev)
        de = e - _t(edifice_e_m, n, dev)
        dn = nn - _t(edifice_n_m, n, dev)
        r2 = (de * de + dn * dn) / _t(edifice_radius_m, n, dev) ** 2
        dem = dem + _t(edifice_height_m, n, dev) * torch.exp(-r2)
    return dem - dem.mean(dim=(1, 2), keepdim=True)


def orbital_ramps(grad_e: Any, grad_n: Any, m: int, *, spacing_m: float, device: Any = None) -> Any:
    """Planar ramps (metres) on an m x m grid: residual orbit error and long-wavelength delay.

    ``grad_e``/``grad_n`` in metres per metre, per sample; zero at the scene centre.
    """
    n = len(np.atleast_1d(grad_e))
    e, nn = grid(m, spacing_m, device)
    return _t(grad_e, n, device) * e + _t(grad_n, n, device) * nn
