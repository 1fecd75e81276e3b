"""Random draws of every per-sample parameter, with the cheap signal-to-nuisance acceptance.

Ranges (metres, degrees) and where they come from:

* ``mogi``: volume change 1e6-1e7 m^3 (inflation or deflation) at 1-5 km depth (Mogi 1958;
  ranges of Gaddes et al. 2019, JGR Solid Earth 124, "Simultaneous classification and location
  of volcanic deformation in SAR interferograms using deep learning and the VolcNet database").
* ``sill``: near-horizontal (dip 0-10) tensile rectangle, centroid 1.5-3.5 km deep, 2-6 km on a
  side, opening 0.2-1 m (closing for a quarter of draws) (Gaddes et al. 2019).
* ``dyke``: near-vertical (dip 75-90) tensile rectangle, top 0-2 km deep, 2-10 km long, 1.5-6
  km high, opening 0.1-0.7 m (Gaddes et al. 2019). Dips within 1.5 degrees of vertical are set
  to 90 (the float32 renderer uses Okada's exact vertical formulas there).
* ``earthquake``: Mw 5-7, centroid 2-15 km deep (shallow crustal events seen by Sentinel-1),
  Mw capped so that the rupture is at most 1.5x the scene (at 100 m/px: 5.8 at 64 px, 6.3 at
  128 px, 6.7 at 224 px; a larger event shows only a ramp-like fragment in a small patch);
  mechanism normal (dip 40-65, rake -110..-70), thrust (dip 20-45, rake 70-110) or strike-slip
  (dip 70-90, rake within 20 of 0 or 180). Moment M0 = 10^(1.5 Mw + 9.1) N m (Hanks & Kanamori
  1979); rupture length and width from Wells & Coppersmith (1994, all slip types:
  log10 L_km = -2.44 + 0.59 Mw, log10 W_km = -1.01 + 0.32 Mw); slip = M0 / (mu L W), mu = 30 GPa.
  The centroid is pushed down when needed so the rupture stays below the surface.
* ``subsidence``: aquifer or reservoir compaction as a closing horizontal rectangle (the
  tabular-reservoir form of Geertsma 1973 nuclei, integrated: an Okada tensile source with
  negative opening, dip 0-3), 3-12 km on a side. Its equivalent depth is 0.35-0.6 of the
  half-diagonal: real compacting layers thin out gradually, so basins have rounded edges, not
  the sharp rim of a thin slab. A broad bowl, wider than volcanic sources, 2-30 cm/yr
  (e.g. Chaussard et al. 2014 for Mexico City and Indonesian basins), over 48-372 day pairs.
* Nuisance: turbulent delay std 0.2-2 cm over the scene (log-uniform), corner 1-10 km; stratified delay
  -4..4 cm per km of height; relief std from a few metres (basins) to 400 m, volcanic edifices
  300-1500 m high; planar ramps up to 1.5 mm/km; coherence by temporal baseline and land cover.

Difficulty (signal-to-nuisance acceptance): the signal ``S`` is the peak-to-peak line-of-sight
deformation after removing the best-fitting plane, the nuisance ``N`` the expected std of the
atmospheric + ramp delay. ``easy`` keeps S/N >= 4 and at least 2 fringes, with the source in the
central 40% of the scene and high coherence; ``medium`` S/N >= 1.5 and at least 1 fringe,
central 70%; ``hard`` 0.4 <= S/N <= 2 and at least 0.4 fringe, anywhere in the scene (partly
outside), lower coherence and more water. Sources are redrawn (nuisance kept, so its
distribution is the same for every class) up to ``max_tries`` times using a coarse 12 x 12
evaluation, before any full-resolution work; survivors are rescaled in amplitude into range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from insarexplore.data.synthetic.locations import CLASS_LOCATION_KIND, LOCATIONS
from insarexplore.data.synthetic.sources import mogi, rectangular_dislocation

__all__ = ["CLASSES", "DIFFICULTIES", "Difficulty", "draw_block", "deformation_enu", "los_vectors"]

CLASSES = ("mogi", "sill", "dyke", "earthquake", "subsidence", "none")
OKADA_CLASSES = ("sill", "dyke", "earthquake", "subsidence")  # rectangular sources
MECHANISMS = ("normal", "thrust", "strike-slip")
SHEAR_MODULUS = 3.0e10
INCIDENCE_RATE_DEG_PER_M = 16.0 / 250e3  # 30-46 degrees across a 250 km IW swath


@dataclass(frozen=True)
class Difficulty:
    """Acceptance window and nuisance settings of one difficulty level."""

    snr_min: float
    snr_max: float
    min_fringes: float
    max_offset: float  # source position, fraction of the half-extent from the centre
    coherence: tuple[float, float]  # permanent (long-term) coherence range
    water_prob: float
    patchiness: tuple[float, float]


DIFFICULTIES = {
    "easy": Difficulty(4.0, np.inf, 2.0, 0.4, (0.6, 0.92), 0.15, (0.3, 1.0)),
    "medium": Difficulty(1.5, np.inf, 1.0, 0.7, (0.4, 0.88), 0.3, (0.5, 1.5)),
    "hard": Difficulty(0.4, 2.0, 0.4, 1.0, (0.25, 0.75), 0.45, (0.8, 2.0)),
}


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


def los_vectors(heading_deg: Any, incidence_deg: Any, xp: Any = np) -> tuple[Any, Any, Any]:
    """Ground-to-satellite unit vector (east, north, up) for heading and incidence (degrees)."""
    a = heading_deg * (np.pi / 180.0)
    t = incidence_deg * (np.pi / 180.0)
    st = xp.sin(t)
    return -st * xp.cos(a), st * xp.sin(a), xp.cos(t)


def deformation_enu(
    p: dict[str, np.ndarray], idx: np.ndarray, e: Any, n: Any, *, kind: str, xp: Any = np
) -> tuple[Any, Any, Any]:
    """Displacement (ue, un, uz) of the sources of samples ``idx`` (all of one ``kind``).

    ``e``/``n`` are scene coordinates (metres from the centre) broadcastable to the output; the
    per-sample parameters are reshaped to ``(len(idx), 1, ...)`` to broadcast against them.
    """
    nd = max(getattr(e, "ndim", 1), getattr(n, "ndim", 1))

    def col(name: str, k: int | None = None) -> Any:
        v = p[name][idx] if k is None else p[name][idx, k]
        v = np.asarray(v, dtype=np.float64).reshape((len(idx),) + (1,) * (nd - 1))
        if xp is np:
            return v
        return xp.as_tensor(v, dtype=e.dtype, device=e.device)

    if kind == "mogi":
        return mogi(e - col("src_e_m"), n - col("src_n_m"), depth=col("depth_m"),
                    volume_change=col("volume_change_m3"))  # fmt: skip
    return rectangular_dislocation(
        e, n, centroid_e=col("src_e_m"), centroid_n=col("src_n_m"), depth=col("depth_m"),
        strike=col("strike_deg"), dip=col("dip_deg"), length=col("length_m"),
        width=col("width_m"), rake=col("rake_src"), slip=col("slip_src"),
        opening=col("opening_src"),
    )  # fmt: skip


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _draw_sources(rng: np.random.Generator, p: dict[str, Any], idx: np.ndarray, half: float,
                  diff: Difficulty) -> None:  # fmt: skip
    """Draw source parameters in place for samples ``idx`` (any mix of classes)."""
    n = len(idx)
    lab = p["label"][idx]
    off = diff.max_offset * half
    p["src_e_m"][idx] = rng.uniform(-off, off, n)
    p["src_n_m"][idx] = rng.uniform(-off, off, n)
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    sign = np.where(rng.random(n) < 0.65, 1.0, -1.0)
    m = lab == "mogi"
    p["depth_m"][idx[m]] = u(1000, 5000)[m]
    p["volume_change_m3"][idx[m]] = (sign * _log_uniform(rng, 1e6, 1e7, n))[m]
    s = lab == "sill"
    p["depth_m"][idx[s]] = u(1500, 3500)[s]
    p["length_m"][idx[s]], p["width_m"][idx[s]] = u(2000, 6000)[s], u(2000, 6000)[s]
    p["dip_deg"][idx[s]], p["strike_deg"][idx[s]] = u(0, 10)[s], u(0, 360)[s]
    p["opening_m"][idx[s]] = (np.where(rng.random(n) < 0.75, 1.0, -1.0) * u(0.2, 1.0))[s]
    d = lab == "dyke"
    dip = u(75, 90)
    dip = np.where(dip > 88.5, 90.0, dip)
    height = u(1500, 6000)
    p["dip_deg"][idx[d]], p["strike_deg"][idx[d]] = dip[d], u(0, 360)[d]
    p["length_m"][idx[d]], p["width_m"][idx[d]] = u(2000, 10000)[d], height[d]
    p["depth_m"][idx[d]] = (u(50, 2000) + 0.5 * height * np.sin(np.radians(dip)))[d]
    p["opening_m"][idx[d]] = u(0.1, 0.7)[d]
    q = lab == "earthquake"
    if q.any():
        mech = np.asarray(p["mechanism"][idx], dtype=object)
        # cap so the rupture is at most 1.5x the scene: a bigger event shows only a fragment
        mw_max = np.clip((np.log10(1.5 * 2 * half / 1e3) + 2.44) / 0.59, 5.3, 7.0)
        mw = u(5.0, mw_max)
        length = 10 ** (-2.44 + 0.59 * mw) * 1e3
        width = 10 ** (-1.01 + 0.32 * mw) * 1e3
        dip = np.select([mech == "normal", mech == "thrust"], [u(40, 65), u(20, 45)], u(70, 90))
        rake = np.select(
            [mech == "normal", mech == "thrust"],
            [u(-110, -70), u(70, 110)],
            np.where(rng.random(n) < 0.5, 0.0, 180.0) + u(-20, 20),
        )
        rise = 0.5 * width * np.sin(np.radians(dip))
        depth = np.maximum(u(2000, 15000), rise + 100.0)
        m0 = 10 ** (1.5 * mw + 9.1)
        for key, val in (("magnitude", mw), ("length_m", length), ("width_m", width),
                         ("dip_deg", dip), ("rake_deg", rake), ("depth_m", depth),
                         ("strike_deg", u(0, 360)),
                         ("slip_m", m0 / (SHEAR_MODULUS * length * width))):  # fmt: skip
            p[key][idx[q]] = val[q]
    b = lab == "subsidence"
    length, width = u(3000, 12000), u(3000, 12000)
    p["length_m"][idx[b]], p["width_m"][idx[b]] = length[b], width[b]
    p["depth_m"][idx[b]] = (u(0.35, 0.6) * 0.5 * np.hypot(length, width))[b]
    p["dip_deg"][idx[b]], p["strike_deg"][idx[b]] = u(0, 3)[b], u(0, 360)[b]
    p["opening_m"][idx[b]] = -1.0  # compaction; scaled to rate x baseline in _coarse_signal
    p["subsidence_rate_m_per_yr"][idx[b]] = u(0.02, 0.30)[b]


_SOURCE_KEYS = ("src_e_m", "src_n_m", "depth_m", "volume_change_m3", "opening_m", "slip_m",
                "magnitude", "rake_deg", "strike_deg", "dip_deg", "length_m", "width_m",
                "subsidence_rate_m_per_yr")  # fmt: skip


def _sync_src(p: dict[str, Any]) -> None:
    """Renderer inputs without NaN: zero slip/opening/rake where a term does not apply."""
    p["opening_src"] = np.nan_to_num(p["opening_m"])  # tensile: sill, dyke, subsidence
    p["slip_src"] = np.nan_to_num(p["slip_m"])
    p["rake_src"] = np.nan_to_num(p["rake_deg"])


def _coarse_signal(p: dict[str, Any], idx: np.ndarray, half: float) -> np.ndarray:
    """Detrended peak-to-peak LOS deformation (m) on a 12 x 12 grid, per sample in ``idx``."""
    c = np.linspace(-half, half, 12)
    e, n = np.meshgrid(c, c)
    e, n = e.ravel()[None, :], n.ravel()[None, :]
    design = np.stack([np.ones(e.size), e[0] / half, n[0] / half], 1)
    pinv = np.linalg.pinv(design)
    out = np.zeros(len(idx))
    _sync_src(p)
    le, ln, lu = los_vectors(p["heading_deg"][idx], p["incidence_deg"][idx])
    for kind in ("mogi", "okada"):
        sel = np.isin(p["label"][idx], OKADA_CLASSES) if kind == "okada" else (
            p["label"][idx] == kind)  # fmt: skip
        if not sel.any():
            continue
        ue, un, uz = deformation_enu(p, idx[sel], e, n, kind=kind)
        los = ue * le[sel, None] + un * ln[sel, None] + uz * lu[sel, None]
        sub = p["label"][idx[sel]] == "subsidence"
        if sub.any():  # scale the compaction to the drawn rate and baseline
            ib = idx[sel][sub]
            target = p["subsidence_rate_m_per_yr"][ib] * p["baseline_days"][ib] / 365.25
            centre = deformation_enu(p, ib, p["src_e_m"][ib, None], p["src_n_m"][ib, None],
                                     kind=kind)[2]  # fmt: skip
            peak = np.maximum(np.abs(uz[sub]).max(1), np.abs(centre[:, 0]))
            scale = target / np.maximum(peak, 1e-12)
            p["opening_m"][ib] *= scale
            p["opening_src"][ib] *= scale
            los[sub] *= scale[:, None]
        resid = los - (pinv @ los.T).T @ design.T
        out[sel] = resid.max(1) - resid.min(1)
    return out


def _scale_source(p: dict[str, Any], i: np.ndarray, f: np.ndarray) -> None:
    """Multiply the amplitude of sources ``i`` by ``f`` (deformation is linear in it)."""
    for key in ("volume_change_m3", "opening_m", "slip_m"):
        v = p[key][i]
        p[key][i] = np.where(np.isfinite(v), v * f, v)
    q = p["label"][i] == "earthquake"
    if q.any():
        m0 = SHEAR_MODULUS * p["slip_m"][i] * p["length_m"][i] * p["width_m"][i]
        p["magnitude"][i[q]] = ((np.log10(m0) - 9.1) / 1.5)[q]


def accept_sources(rng: np.random.Generator, p: dict[str, Any], *, half: float,
                   diff: Difficulty, wavelength_m: float, max_tries: int) -> None:  # fmt: skip
    """Draw sources until the coarse signal-to-nuisance ratio falls in the difficulty window."""
    lab = p["label"]
    todo = np.flatnonzero(lab != "none")
    fringe = wavelength_m / 2.0
    nuis = p["nuisance_m"]
    for _ in range(max_tries):
        if todo.size == 0:
            break
        _draw_sources(rng, p, todo, half, diff)
        sig = _coarse_signal(p, todo, half)
        snr = sig / nuis[todo]
        ok = (snr >= diff.snr_min) & (snr <= diff.snr_max) & (sig >= diff.min_fringes * fringe)
        p["snr_coarse"][todo] = snr
        todo = todo[~ok]
    if todo.size:  # rescale the last draws into the window
        sig = np.maximum(p["snr_coarse"][todo] * nuis[todo], 1e-9)
        lo = np.maximum(diff.snr_min * nuis[todo], diff.min_fringes * fringe)
        hi = np.minimum(diff.snr_max * nuis[todo], np.maximum(lo * 4, 30 * fringe))
        target = np.clip(sig, lo, np.maximum(hi, lo))
        _scale_source(p, todo, target / sig)
        p["snr_coarse"][todo] = target / nuis[todo]
    _sync_src(p)


def draw_block(rng: np.random.Generator, labels: np.ndarray, *, size: int, pixel_spacing_m: float,
               difficulty: str, wavelength_m: float, nodata_fraction: float,
               max_tries: int = 20) -> dict[str, Any]:  # fmt: skip
    """All per-sample parameters of one block of samples whose classes are ``labels``."""
    diff = DIFFICULTIES[difficulty]
    n = len(labels)
    half = 0.5 * (size - 1) * pixel_spacing_m
    lab = np.asarray(labels, dtype=object)
    p: dict[str, Any] = {"label": lab}
    deform = [c for c in CLASSES if c != "none"]
    mimic = np.where(lab == "none", np.asarray(deform, dtype=object)[rng.integers(0, 5, n)], lab)
    mech = np.where(
        lab == "earthquake", np.asarray(MECHANISMS, dtype=object)[rng.integers(0, 3, n)], ""
    )
    p["mechanism"] = mech
    # location: a place of the right kind (earthquakes: a zone with the drawn mechanism)
    loc = np.empty(n, dtype=np.int64)
    for i in range(n):
        kinds = CLASS_LOCATION_KIND[mimic[i]]
        cand = [j for j, lc in enumerate(LOCATIONS) if lc.kind in kinds
                and (mech[i] == "" or lc.tag == mech[i])]  # fmt: skip
        loc[i] = cand[rng.integers(0, len(cand))]
    kind = np.array([LOCATIONS[j].kind for j in loc], dtype=object)
    p["location_index"] = loc
    p["location_name"] = np.array([LOCATIONS[j].name for j in loc], dtype=object)
    lat = np.array([LOCATIONS[j].lat for j in loc])
    # geometry: Sentinel-1 headings (sun-synchronous, inclination 98.18 deg) vary with latitude
    asc = rng.random(n) < 0.5
    psi = np.degrees(np.arcsin(np.clip(0.1423 / np.cos(np.radians(lat)), -1, 1))) + 3.6
    p["pass_direction"] = np.where(asc, "ascending", "descending").astype(object)
    p["heading_deg"] = np.where(asc, -psi, 180.0 + psi) + rng.normal(0, 0.3, n)
    span = INCIDENCE_RATE_DEG_PER_M * 2 * half
    p["incidence_deg"] = rng.uniform(30 + span / 2, 46 - span / 2, n)
    # dates: 6-day multiples while Sentinel-1B flew (2016-09-26 .. 2021-12-23), else 12
    start = np.datetime64("2015-01-01")
    primary = start + rng.integers(0, 3833, n).astype("timedelta64[D]")  # to mid-2025
    s1b = (primary >= np.datetime64("2016-09-26")) & (primary <= np.datetime64("2021-12-23"))
    step = np.where(s1b, 6, 12)
    max_days = np.select([mimic == "earthquake", mimic == "subsidence"], [36, 372], 96)
    min_days = np.where(mimic == "subsidence", 48, step)
    k = rng.integers(np.ceil(min_days / step), max_days // step + 1)
    p["baseline_days"] = (k * step).astype(np.float64)
    p["primary_date"] = primary
    p["secondary_date"] = primary + (k * step).astype("timedelta64[D]")
    # nuisance: atmosphere, topography, ramps
    p["turb_std_m"] = _log_uniform(rng, 0.002, 0.02, n)
    p["turb_corner_m"] = _log_uniform(rng, 1000, 10000, n)
    p["strat_k"] = np.clip(rng.normal(0, 2e-5, n), -4e-5, 4e-5)
    relief_hi = np.select([kind == "volcano", kind == "seismic"], [400.0, 400.0], 30.0)
    p["relief_m"] = rng.uniform(0.1, 1.0, n) * relief_hi
    has_ed = rng.random(n) < np.where(kind == "volcano", 0.7, 0.05)
    p["edifice_h_m"] = np.where(has_ed, rng.uniform(300, 1500, n), 0.0)
    p["edifice_r_m"] = rng.uniform(2000, 6000, n)
    p["edifice_e_m"] = rng.uniform(-0.5, 0.5, n) * half
    p["edifice_n_m"] = rng.uniform(-0.5, 0.5, n) * half
    grad = rng.uniform(0, 1.5e-6, n)
    ang = rng.uniform(0, 2 * np.pi, n)
    p["ramp_ge"], p["ramp_gn"] = grad * np.cos(ang), grad * np.sin(ang)
    relief_std = np.sqrt(p["relief_m"] ** 2 + (0.35 * p["edifice_h_m"]) ** 2)
    p["nuisance_m"] = np.sqrt(p["turb_std_m"] ** 2 + (p["strat_k"] * relief_std) ** 2
                              + (grad * 2 * half / np.sqrt(12)) ** 2)  # fmt: skip
    # decorrelation: permanent coherence + temporal decay, patchy land cover, water
    perm = rng.uniform(*diff.coherence, n)
    tau = rng.uniform(12, 48, n)
    p["coh_base"] = perm + (0.97 - perm) * np.exp(-p["baseline_days"] / tau)
    p["patchiness"] = rng.uniform(*diff.patchiness, n)
    wet = rng.random(n) < diff.water_prob
    p["water_fraction"] = np.where(wet, rng.uniform(0.03, 0.3, n), 0.0)
    p["water_coherence"] = rng.uniform(0.02, 0.12, n)
    p["has_nodata"] = rng.random(n) < nodata_fraction
    # sources, accepted against the nuisance drawn above
    for key in _SOURCE_KEYS:
        p[key] = _nan(n)
    p["snr_coarse"] = np.zeros(n)
    accept_sources(rng, p, half=half, diff=diff, wavelength_m=wavelength_m, max_tries=max_tries)
    p["volume_change_m3"] = np.where(
        lab == "subsidence", p["opening_m"] * p["length_m"] * p["width_m"], p["volume_change_m3"]
    )
    # scene centre: the source sits on the named place
    src_e = np.nan_to_num(p["src_e_m"])
    src_n = np.nan_to_num(p["src_n_m"])
    lon = np.array([LOCATIONS[j].lon for j in loc])
    m_per_deg = 111_320.0
    p["source_lat"] = np.where(lab == "none", np.nan, lat)
    p["source_lon"] = np.where(lab == "none", np.nan, lon)
    jitter = rng.uniform(-0.3, 0.3, (2, n)) * half * (lab == "none")
    p["lat0"] = lat - (src_n + jitter[1]) / m_per_deg
    p["lon0"] = lon - (src_e + jitter[0]) / (m_per_deg * np.cos(np.radians(lat)))
    return p
