"""Decorrelation: coherence maps and phase noise consistent with them.

Coherence is built from smooth correlated random fields (land cover: vegetation, fields and
snow patches decorrelate more than rock and towns), water bodies (coherence near zero) and the
loss of coherence where fringes become too dense to resolve (near-field of earthquakes and
dykes). Phase noise is then drawn so that its spread follows the coherence: a pixel with
coherence gamma gets the phase of ``gamma + sqrt((1 - gamma^2) / L) * w`` with ``w`` complex
circular Gaussian (the interferometric phase of partially correlated speckle, Hanssen 2001
sec. 4.2, with ``L`` effective looks). Decorrelated areas thus carry random-looking speckle, as
in real interferograms, instead of being blanked; NaN is kept for true no-data only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from insarexplore.data.synthetic.atmosphere import _t

__all__ = ["coherence_maps", "gradient_decorrelation", "noisy_phase", "nodata_masks"]


def coherence_maps(
    land_field: Any,
    water_field: Any,
    base: Any,
    *,
    patchiness: Any,
    water_fraction: Any,
    water_coherence: Any,
) -> tuple[Any, Any]:
    """Coherence (n, m, m) in (0, 1) and a boolean water mask, on the grid of the fields.

    ``land_field``/``water_field`` are unit-std correlated random fields (see
    :func:`~insarexplore.data.synthetic.atmosphere.power_law_fields`). ``base`` is the typical
    land coherence per sample (set by temporal baseline and land cover), ``patchiness`` the std
    of its logit across the scene (fields, forest, snow), ``water_fraction`` the share of the
    scene under water (0 for none), whose coherence is ``water_coherence``.
    """
    import torch

    n = land_field.shape[0]
    dev = land_field.device
    frac = _t(water_fraction, n, dev)
    # per-sample threshold so that about `frac` of the scene is water (only where there is any)
    flat = water_field.reshape(n, -1)
    pos = ((1.0 - frac.reshape(n)).clamp(0, 1) * (flat.shape[1] - 1)).long()
    thresh = torch.full((n, 1, 1), torch.inf, device=dev)
    for i in torch.nonzero(frac.reshape(n) > 0).reshape(-1).tolist():
        thresh[i] = flat[i].kthvalue(int(pos[i]) + 1).values
    wet = water_field > thresh
    b = _t(base, n, dev).clamp(1e-3, 1 - 1e-3)
    coh = torch.sigmoid(torch.log(b / (1 - b)) + _t(patchiness, n, dev) * land_field)
    coh = torch.where(wet, _t(water_coherence, n, dev).expand_as(coh), coh)
    return coh, wet


def gradient_decorrelation(
    coherence: Any, los_m: Any, *, wavelength_m: float, limit_rad_per_px: float = 1.6
) -> Any:
    """Reduce coherence where the deformation fringe rate approaches the aliasing limit.

    Real interferograms decorrelate where phase changes by about pi or more per pixel (too many
    fringes inside a multilook cell); coherence is multiplied by exp(-(g / limit)^2) with ``g``
    the phase gradient in radians per pixel.
    """
    import torch

    scale = 4.0 * np.pi / wavelength_m
    gx = torch.zeros_like(los_m)
    gy = torch.zeros_like(los_m)
    gx[:, :, 1:] = (los_m[:, :, 1:] - los_m[:, :, :-1]).abs()
    gy[:, 1:, :] = (los_m[:, 1:, :] - los_m[:, :-1, :]).abs()
    g = torch.maximum(gx, gy) * (scale / limit_rad_per_px)
    if float(g.max()) < 0.05:  # no dense fringes anywhere: skip the exp
        return coherence
    return coherence * torch.exp(-g * g)


def noisy_phase(
    clean_phase: Any, coherence: Any, *, looks: float, generator: Any,
    out: tuple[Any, Any] | None = None,
) -> tuple[Any, Any]:  # fmt: skip
    """Add coherence-consistent phase noise; return (wrapped phase, estimated coherence).

    The estimated coherence shares the noise draw (pixels whose speckle disagreed more read as
    less coherent), clipped to [0, 1], like a coherence estimate from a small window. ``out``
    optionally gives the two result tensors to write into.
    """
    import torch

    w = torch.randn((2, *coherence.shape), generator=generator, device=coherence.device)
    c = torch.sqrt((1.0 - coherence * coherence).clamp_min(0.0) / looks)
    noise = torch.atan2(c * w[1], coherence + c * w[0])
    phase_out, est_out = out if out is not None else (None, None)
    phase = torch.remainder(clean_phase + noise + np.pi, 2 * np.pi, out=phase_out).sub_(np.pi)
    est = torch.clamp(coherence + 0.35 * c * w[0], 0.0, 1.0, out=est_out)
    return phase, est


def nodata_masks(has_nodata: Any, size: int, *, generator: Any, device: Any = None) -> Any:
    """Boolean (n, size, size) masks of true no-data: a straight cut across one corner.

    Mimics the edge of a swath or burst gap at the border of a frame; all False for samples
    where ``has_nodata`` is False. At most about a quarter of the scene is cut.
    """
    import torch

    flags = torch.as_tensor(np.asarray(has_nodata, dtype=bool), device=device)
    n = flags.shape[0]
    u = torch.rand((n, 3), generator=generator, device=device)
    ang = u[:, 0] * 2 * np.pi
    depth = 0.05 + 0.2 * u[:, 1]  # fraction of the diagonal that is cut
    c = torch.linspace(-0.5, 0.5, size, device=device)
    proj = (
        torch.cos(ang)[:, None, None] * c[None, None, :]
        + torch.sin(ang)[:, None, None] * c[None, :, None]
    )
    edge = proj.amax(dim=(1, 2), keepdim=True)
    return (proj > edge - depth[:, None, None] * 1.4142) & flags[:, None, None]
