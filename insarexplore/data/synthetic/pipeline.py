"""One block of synthetic samples: from drawn parameters to pixels, on a torch device.

Sources on the output grid (Okada on a sub-grid of it when the source is deep enough for the
field to be smooth at that scale, then bicubic interpolation of the line of sight), atmosphere
screens by batched FFT, stratified delay, ramps, coherence and coherence-consistent phase noise,
no-data cuts; all in cache-sized micro-batches.
"""

from __future__ import annotations

import math
import mmap
from typing import Any

import numpy as np

from insarexplore.data.synthetic import atmosphere, decorrelation
from insarexplore.data.synthetic.config import METADATA_VARS, SyntheticConfig
from insarexplore.data.synthetic.parameters import (
    INCIDENCE_RATE_DEG_PER_M,
    OKADA_CLASSES,
    deformation_enu,
    draw_block,
    los_vectors,
)

__all__ = ["render_block", "to_dataset"]

_PIXEL_KEYS = ("phase", "coherence", "displacement")
_COORD_KEYS = ("sample", "lon_min", "lon_max", "lat_min", "lat_max", "primary_date",
               "secondary_date", "frame", "label")  # fmt: skip
_PIXELS_PER_MICROBATCH = 1 << 17  # keeps every temporary inside the CPU caches
_MIN_MICROBATCH = 4  # samples: fewer leave Python overhead per op dominating at 224 px
_COARSE_FACTOR = 4  # smooth nuisance terms are synthesised on a 4x coarser grid


def empty_pixels(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised float32 array for pixels, in small (4 KiB) pages where possible.

    numpy asks for transparent huge pages for large arrays; on the virtual machines this
    project measures on, first touching huge pages costs about three times as much as small
    ones (0.6-1.2 s against 0.2 s for 600 MB), which is a quarter of the generation time.
    """
    nbytes = 4 * math.prod(shape)
    if nbytes < 1 << 22 or not hasattr(mmap, "MADV_NOHUGEPAGE"):
        return np.empty(shape, dtype=np.float32)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(buf, dtype=np.float32).reshape(shape)  # the array keeps buf alive


def _labels(cfg: SyntheticConfig, start: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Balanced classes: sample i gets class i mod k, shuffled within the block."""
    names = np.asarray(cfg.classes, dtype=object)
    lab = names[np.arange(start, start + count) % len(names)]
    return lab[rng.permutation(count)]


def _okada_stride(p: dict[str, Any], i: int, spacing: float, cap: int) -> int:
    """Sub-grid step (pixels) for an Okada source: top depth / 2 pixels, within 1..cap.

    The surface field of a source whose top lies at depth h has no structure much finer than
    h, so sampling it every h/2 and interpolating bicubically loses little (tests bound the
    error: a few percent of the peak at worst, near the borders, well under 1% on average).
    """
    top = p["depth_m"][i] - 0.5 * p["width_m"][i] * math.sin(math.radians(p["dip_deg"][i]))
    return int(np.clip(top // (2.0 * spacing), 1, cap))


_CUBIC: dict[tuple[int, int, str], Any] = {}


def _cubic_matrix(n_in: int, n_out: int, dev: Any) -> Any:
    """(n_out, n_in) matrix of bicubic interpolation with aligned corners (cached).

    Keys' cubic convolution with a = -0.75 and clamped borders, as torch's ``bicubic`` mode
    uses: ``w @ f @ w.T`` equals ``F.interpolate(f, mode="bicubic", align_corners=True)`` up
    to float rounding, as two small matrix products instead of 16 taps per output pixel.
    """
    import torch

    key = (n_in, n_out, str(dev))
    if key not in _CUBIC:
        a = -0.75
        src = np.arange(n_out) * ((n_in - 1) / max(n_out - 1, 1))
        j = np.floor(src).astype(np.int64)
        t = src - j
        near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731  |x| <= 1
        far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731  1 < |x| < 2
        w = np.zeros((n_out, n_in))
        for k, coef in enumerate((far(t + 1), near(t), near(1 - t), far(2 - t))):
            np.add.at(w, (np.arange(n_out), np.clip(j - 1 + k, 0, n_in - 1)), coef)
        _CUBIC[key] = torch.as_tensor(w, dtype=torch.float32, device=dev)
    return _CUBIC[key]


def _render_deformation(
    p: dict[str, Any], idx: np.ndarray, cfg: SyntheticConfig, dev: Any, out: Any = None
) -> Any:
    """Line-of-sight deformation (metres, float32) of samples ``idx``, shape (b, size, size).

    ``out``, a float32 tensor of that shape on ``dev``, receives the result when given.
    """
    import torch

    size, dx = cfg.size, cfg.pixel_spacing_m
    c = (torch.arange(size, device=dev, dtype=torch.float32) - (size - 1) / 2) * dx
    e, n = c[None, None, :], -c[None, :, None]
    b = len(idx)
    heading = torch.as_tensor(p["heading_deg"][idx], dtype=torch.float32, device=dev)[:, None, None]
    inc0 = torch.as_tensor(p["incidence_deg"][idx], dtype=torch.float32, device=dev)[:, None, None]
    a = heading * (math.pi / 180)
    # incidence grows away from the satellite (right-looking: look direction (cos a, -sin a));
    # it changes by about 1 degree across a scene, so each LOS component is a plane to 1e-4:
    # exact values at the centre and one step east and north give the plane
    half = (size - 1) / 2 * dx
    rate = INCIDENCE_RATE_DEG_PER_M * half
    c0 = los_vectors(heading, inc0, xp=torch)
    ce = los_vectors(heading, inc0 + rate * torch.cos(a), xp=torch)
    cn = los_vectors(heading, inc0 - rate * torch.sin(a), xp=torch)

    def project(sel: np.ndarray, u: tuple[Any, Any, Any], ee: Any, nn: Any) -> Any:
        """Line of sight of displacement ``u`` at coordinates (ee, nn) for samples ``sel``."""
        los = 0.0
        for comp, v0, ve, vn in zip(u, c0, ce, cn):
            v0, ve, vn = v0[sel], ve[sel], vn[sel]
            los = los + comp * (v0 + (ve - v0) * (ee / half) + (vn - v0) * (nn / half))
        return los

    if out is None:
        out = torch.empty((b, size, size), device=dev)
    lab = p["label"][idx]
    rest = np.flatnonzero(~np.isin(lab, ("mogi", *OKADA_CLASSES)))  # "none": no deformation
    if rest.size:
        out[rest] = 0.0
    sel = np.flatnonzero(lab == "mogi")
    if sel.size:
        out[sel] = project(sel, deformation_enu(p, idx[sel], e, n, kind="mogi", xp=torch), e, n)
    okada = np.flatnonzero(np.isin(lab, OKADA_CLASSES))
    strides = np.array([_okada_stride(p, idx[j], dx, cfg.okada_max_stride) for j in okada])
    # shear apart from tensile (Okada skips unused terms), vertical apart from dipping (one
    # branch of Okada's formulas per call)
    shear = lab[okada] == "earthquake"
    vert = p["dip_deg"][idx[okada]] == 90.0
    keys = np.stack([strides, shear, vert], 1) if len(okada) else np.zeros((0, 3), dtype=int)
    for key in sorted({tuple(int(v) for v in row) for row in keys}):
        s = key[0]
        m = math.ceil((size - 1) / s) + 1
        cc = torch.linspace(-(size - 1) / 2 * dx, (size - 1) / 2 * dx, m, device=dev)
        group = okada[(keys == np.asarray(key)).all(1)]
        step = max(1, _PIXELS_PER_MICROBATCH // (m * m))
        for lo in range(0, len(group), step):
            sel = group[lo : lo + step]
            ee, nn = cc[None, None, :], -cc[None, :, None]
            los = project(sel, deformation_enu(p, idx[sel], ee, nn, kind="okada", xp=torch),
                          ee, nn)  # fmt: skip
            if s > 1:  # LOS is smooth wherever the displacement is: interpolate it alone
                w = _cubic_matrix(m, size, dev)
                los = torch.matmul(w, torch.matmul(los, w.T))
            out[sel] = los
    return out


_PLANES: dict[tuple[int, str], tuple[Any, Any]] = {}


def _plane_fit(npix: int, size: int, dev: Any) -> tuple[Any, Any]:
    """Design matrix of a plane on the every-2nd-pixel grid and its pseudo-inverse (cached)."""
    import torch

    key = (size, str(dev))
    if key not in _PLANES:
        m = len(range(0, size, 2))
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, m, device=dev),
                                torch.linspace(-1, 1, m, device=dev), indexing="ij")  # fmt: skip
        design = torch.stack([torch.ones_like(xx), xx, yy], -1).reshape(-1, 3)
        _PLANES[key] = (design, torch.linalg.pinv(design))
    return _PLANES[key]


def _render(
    p: dict[str, Any], idx: np.ndarray, cfg: SyntheticConfig, gen: Any, dev: Any,
    disp: Any, dst: tuple[Any, Any] | None,
) -> dict:  # fmt: skip
    """Phase and coherence of samples ``idx`` (into ``dst`` when given) plus measured stats.

    ``disp`` is their line-of-sight deformation; ``dst`` optional (phase, coherence) tensors on
    ``dev`` that receive the result in place (no copy of the pixels afterwards).
    """
    import torch

    size, dx = cfg.size, cfg.pixel_spacing_m
    b = len(idx)
    col = lambda k: p[k][idx]  # noqa: E731
    turb = atmosphere.turbulent_screens(col("turb_std_m"), size, pixel_spacing_m=dx,
                                        corner_m=col("turb_corner_m"), generator=gen, device=dev)  # fmt: skip
    # smooth terms on a coarse grid spanning the same extent: DEM (stratified delay), ramps,
    # land-cover and water fields for coherence; one batched FFT, one upsampling
    m = max(8, size // _COARSE_FACTOR)
    spacing = dx * (size - 1) / (m - 1)
    betas = np.concatenate([np.full(b, 3.4), np.full(b, 2.6), np.full(b, 3.6)])
    fields = atmosphere.power_law_fields(3 * b, m, m, spacing_m=spacing, beta=betas,
                                         generator=gen, device=dev)  # fmt: skip
    dem = atmosphere.fractal_dem(
        fields[:b], col("relief_m"), spacing_m=spacing, edifice_height_m=col("edifice_h_m"),
        edifice_radius_m=col("edifice_r_m"), edifice_e_m=col("edifice_e_m"),
        edifice_n_m=col("edifice_n_m"),
    )  # fmt: skip
    k = torch.as_tensor(col("strat_k"), dtype=torch.float32, device=dev)[:, None, None]
    ramp = atmosphere.orbital_ramps(col("ramp_ge"), col("ramp_gn"), m, spacing_m=spacing,
                                    device=dev)  # fmt: skip
    coh, wet = decorrelation.coherence_maps(
        fields[b : 2 * b], fields[2 * b :], col("coh_base"), patchiness=col("patchiness"),
        water_fraction=col("water_fraction"), water_coherence=col("water_coherence"),
    )  # fmt: skip
    smooth = atmosphere.upsample(torch.stack([dem * k + ramp, coh], 1), size, size)
    nuisance = turb + smooth[:, 0]
    coh = decorrelation.gradient_decorrelation(smooth[:, 1], disp, wavelength_m=cfg.wavelength_m)
    clean = (-4.0 * math.pi / cfg.wavelength_m) * (disp + nuisance)
    phase, coh_est = decorrelation.noisy_phase(clean, coh, looks=cfg.looks, generator=gen,
                                               out=dst)  # fmt: skip
    if bool(np.any(col("has_nodata"))):
        nodata = decorrelation.nodata_masks(col("has_nodata"), size, generator=gen, device=dev)
        phase.masked_fill_(nodata, torch.nan)
        coh_est.masked_fill_(nodata, torch.nan)
    # measured signal (detrended peak-to-peak on every 2nd pixel) and nuisance std
    sub = disp[:, ::2, ::2].reshape(b, -1)
    design, pinv = _plane_fit(sub.shape[1], size, dev)
    resid = sub - (sub @ pinv.T) @ design.T
    ramp_flat = ramp.reshape(b, -1)
    flat = nuisance.reshape(b, -1)  # std as a norm: ten times faster than Tensor.std here
    nuisance_std = torch.linalg.vector_norm(flat - flat.mean(1, keepdim=True), dim=1)
    nuisance_std /= math.sqrt(flat.shape[1] - 1)
    return {
        "phase": phase, "coherence": coh_est,
        "mean_coherence": coh_est.reshape(b, -1).nanmean(1),
        "signal": resid.amax(1) - resid.amin(1), "nuisance_std": nuisance_std,
        "turb_std": torch.as_tensor(col("turb_std_m")),  # exact: screens have unit std
        "ramp_ptp": ramp_flat.amax(1) - ramp_flat.amin(1),
        "water": wet.float().mean(dim=(1, 2)),
    }  # fmt: skip


def render_block(
    cfg: SyntheticConfig, seed: int, block: int, count: int, dev: Any,
    out: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Samples ``block * block_size ... + count`` as plain arrays (see :func:`to_dataset`).

    ``out`` may hold preallocated ``(count, size, size)`` float32 arrays for the pixel
    variables, written in place (saves a copy of the whole set in :func:`generate`).
    """
    import torch

    rng = np.random.default_rng([seed, block])
    start = block * cfg.block_size
    labels = _labels(cfg, start, count, rng)
    p = draw_block(rng, labels, size=cfg.size, pixel_spacing_m=cfg.pixel_spacing_m,
                   difficulty=cfg.difficulty, wavelength_m=cfg.wavelength_m,
                   nodata_fraction=cfg.nodata_fraction, max_tries=cfg.max_tries)  # fmt: skip
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(rng.integers(0, 2**62)))
    # on the CPU micro-batches sized for the cache; on a GPU the whole block at once (a
    # cache-sized batch leaves a GPU launch-bound), the same for every block of a config
    host = dev.type == "cpu"
    micro = max(_MIN_MICROBATCH, _PIXELS_PER_MICROBATCH // (cfg.size * cfg.size))
    if not host:
        micro = max(micro, cfg.block_size)
    shape = (count, cfg.size, cfg.size)
    r = dict(out) if out is not None else {}
    for k in _PIXEL_KEYS:
        if k not in r:
            r[k] = empty_pixels(shape)
    # on the CPU torch writes straight into the output arrays; elsewhere results are copied
    pix = {k: torch.from_numpy(r[k]) for k in _PIXEL_KEYS}
    on_device: dict[str, list[Any]] = {}  # per-sample statistics, brought back in one copy
    stats: dict[str, np.ndarray] = {}
    with torch.no_grad():
        disp = _render_deformation(p, np.arange(count), cfg, dev,
                                   out=pix["displacement"] if host else None)  # fmt: skip
        if not host:
            pix["displacement"].copy_(disp)
        for lo in range(0, count, micro):
            hi = min(count, lo + micro)
            dst = (pix["phase"][lo:hi], pix["coherence"][lo:hi]) if host else None
            got = _render(p, np.arange(lo, hi), cfg, gen, dev, disp[lo:hi], dst)
            for k, v in got.items():
                if k in _PIXEL_KEYS:
                    if not host:
                        pix[k][lo:hi].copy_(v)
                    continue
                if host:
                    stats.setdefault(k, np.empty(count, dtype=np.float64))[lo:hi] = v.numpy()
                else:
                    on_device.setdefault(k, []).append(v.double())
        if on_device:
            keys = list(on_device)
            both = torch.stack([torch.cat(on_device[k]) for k in keys]).cpu().numpy()
            stats.update({k: both[i] for i, k in enumerate(keys)})
    r.update(stats)
    half_m = 0.5 * cfg.size * cfg.pixel_spacing_m
    dlat = half_m / 111_320.0
    dlon = dlat / np.cos(np.radians(p["lat0"]))
    fringe = cfg.wavelength_m / 2
    deform = labels != "none"
    meta = {
        **{k: p[k] for k in METADATA_VARS if k in p},
        "atmosphere_cm": r["turb_std"] * 100.0,
        "stratified_cm_per_km": p["strat_k"] * 1e5,
        "ramp_cm": r["ramp_ptp"] * 100.0,
        "snr": np.where(deform, r["signal"] / np.maximum(r["nuisance_std"], 1e-6), 0.0),
        "signal_fringes": np.where(deform, r["signal"] / fringe, 0.0),
        "mean_coherence": r["mean_coherence"],
        "water_fraction": r["water"],
        "difficulty": np.full(count, cfg.difficulty, dtype=object),
        # pixel position of the source (centre or centroid), may lie outside the scene
        "source_col": (cfg.size - 1) / 2 + p["src_e_m"] / cfg.pixel_spacing_m,
        "source_row": (cfg.size - 1) / 2 - p["src_n_m"] / cfg.pixel_spacing_m,
    }
    meta = {k: meta[k] for k in METADATA_VARS}
    for k, v in meta.items():
        meta[k] = v.astype(object) if v.dtype == object else v.astype(np.float64)
    ids = [f"{cfg.id_prefix}-{seed}-{start + i:07d}" for i in range(count)]
    track = (p["location_index"] * 37 + (p["pass_direction"] == "ascending") * 89) % 175 + 1
    frame = [f"{t:03d}{d[0].upper()}_{(1000 + 97 * j) % 10000:05d}_131313"
             for t, d, j in zip(track, p["pass_direction"], p["location_index"])]  # fmt: skip
    return {
        "phase": r["phase"], "coherence": r["coherence"], "displacement": r["displacement"],
        "sample": np.asarray(ids, dtype=object), "lon_min": p["lon0"] - dlon,
        "lon_max": p["lon0"] + dlon, "lat_min": p["lat0"] - dlat, "lat_max": p["lat0"] + dlat,
        "primary_date": p["primary_date"], "secondary_date": p["secondary_date"],
        "frame": np.asarray(frame, dtype=object), "label": labels, **meta,
    }  # fmt: skip


def to_dataset(
    parts: list[dict[str, np.ndarray]], cfg: SyntheticConfig, seed: int,
    pixels: dict[str, np.ndarray] | None = None, device: str = "cpu",
) -> Any:  # fmt: skip
    """One data-model Dataset from raw blocks (a single concatenation of plain arrays).

    ``pixels`` gives the already assembled pixel variables of all parts (no copy).
    ``device`` is the torch device type that rendered the pixels ("cpu", "cuda", ...),
    recorded as ``attrs["generator_device"]``: the same seed gives other pixels on another
    device type.
    """
    from insarexplore.data.schema import new_dataset

    keys = [k for k in parts[0] if pixels is None or k not in pixels]
    cat = {k: (parts[0][k] if len(parts) == 1 else np.concatenate([q[k] for q in parts]))
           for k in keys}  # fmt: skip
    cat.update(pixels or {})
    ds = new_dataset(
        **{k: cat[k] for k in _PIXEL_KEYS + _COORD_KEYS},
        source=f"synthetic:seed={seed}",
        extra={k: cat[k] for k in METADATA_VARS},
        wavelength_m=cfg.wavelength_m,
        pixel_spacing_m=cfg.pixel_spacing_m,
    )
    ds.attrs["generator_device"] = str(device)
    return ds
