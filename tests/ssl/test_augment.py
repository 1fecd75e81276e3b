"""Each augmentation keeps shapes, dtypes, value ranges and the unit circle of (cos, sin)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from insarexplore.data.palettes import palette_lut, render_phase
from insarexplore.ssl import augment as A
from insarexplore.ssl import augment_rgb as R


def phase_batch(b: int = 6, size: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    phi = (torch.rand(b, size, size, generator=g) * 2 - 1) * math.pi
    coh = torch.rand(b, size, size, generator=g)
    valid = (torch.rand(b, size, size, generator=g) > 0.1).float()
    x = torch.stack([torch.cos(phi), torch.sin(phi), coh, torch.ones_like(coh)], dim=1)
    return x * valid[:, None]


def check_phase(x: torch.Tensor, size: int = 32) -> None:
    assert x.dtype == torch.float32 and x.shape[1:] == (4, size, size)
    assert torch.isfinite(x).all()
    valid = x[:, 3]
    assert set(valid.unique().tolist()) <= {0.0, 1.0}
    norm = x[:, 0] ** 2 + x[:, 1] ** 2
    assert torch.allclose(norm[valid == 1], torch.ones(()), atol=1e-4)
    assert (x[:, :3][(valid == 0)[:, None].expand(-1, 3, -1, -1)] == 0).all()
    assert (x[:, 2] >= 0).all() and (x[:, 2] <= 1).all()


PHASE_STEPS = {
    "offset": A.phase_offset,
    "conjugate": lambda x: A.phase_conjugate(x, 1.0),
    "atmosphere": lambda x: A.atmosphere(x, 2.0, 1.0),
    "noise": lambda x: A.phase_noise(x, 0.5, 1.0),
    "decorrelation": lambda x: A.decorrelation(x, 0.5, 1.0),
    "cutout": lambda x: A.cutout(x, 1.0),
    "palette_warp": lambda x: A.palette_warp(x, 1.0),
    "flip": A.random_flip,
    "rot90": A.random_rot90,
    "crop": lambda x: A.random_resized_crop(x, 32),
    "geometry": lambda x: A.random_geometry(x, 32),
    "pipeline": A.PhaseAugment(32),
}


@pytest.mark.parametrize("name", sorted(PHASE_STEPS))
def test_phase_step_invariants(name):
    torch.manual_seed(0)
    x = phase_batch()
    out = PHASE_STEPS[name](x)
    check_phase(out)
    if name not in ("flip", "rot90", "conjugate", "offset") and name != "pipeline":
        assert not torch.equal(out, x) or name == "crop"


def test_phase_offset_is_a_constant_shift_of_wrapped_phase():
    torch.manual_seed(1)
    x = phase_batch()
    out = A.phase_offset(x)
    valid = x[:, 3] == 1
    d = torch.atan2(out[:, 1], out[:, 0]) - torch.atan2(x[:, 1], x[:, 0])
    d = torch.remainder(d, 2 * math.pi)
    for i in range(len(x)):
        di = d[i][valid[i]]
        circ = torch.angle(torch.exp(1j * (di - di[0])))  # all equal modulo 2 pi
        assert circ.abs().max() < 1e-4
    assert torch.equal(out[:, 2:], x[:, 2:])


def test_atmosphere_is_smooth_and_scaled():
    torch.manual_seed(2)
    screen = A.power_law_screen(4, 64, 64, torch.full((4,), 11 / 3), torch.device("cpu"))
    assert screen.shape == (4, 64, 64)
    assert torch.allclose(screen.std(dim=(1, 2)), torch.ones(4), atol=1e-4)
    # low-frequency: neighbouring pixels strongly correlated
    corr = (screen[:, :, 1:] * screen[:, :, :-1]).mean() / (screen**2).mean()
    assert corr > 0.9
    x = phase_batch(size=64)
    out = A.atmosphere(x, max_std=0.0, p=1.0)
    assert torch.allclose(out, x, atol=1e-6)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"conjugate_p": 0.5, "noise_p": 1.0, "noise_std": 1.0},
        {"atmosphere_p": 0.0},
        {"palette_warp_p": 0.5},
    ],
)
def test_pipeline_is_the_composition_of_the_public_steps(options):
    """PhaseAugment draws the same random numbers as the public functions applied in turn, and
    its result is theirs (it only fuses the three phase rotations into one)."""
    aug = A.PhaseAugment(24, **options)
    x = phase_batch(b=8, size=32, seed=7)
    torch.manual_seed(11)
    got = aug(x)
    torch.manual_seed(11)
    y = A.random_geometry(x, 24, aug.crop_scale, aug.crop_ratio, aug.flip_p, aug.rot90, True)
    y = A.decorrelation(y, aug.decorrelation_threshold, aug.decorrelation_p)
    if aug.atmosphere_p > 0:
        y = A.atmosphere(y, aug.atmosphere_std, aug.atmosphere_p)
    y = A.phase_noise(y, aug.noise_std, aug.noise_p)
    y = A.phase_offset(y)
    if aug.palette_warp_p > 0:
        y = A.palette_warp(y, aug.palette_warp_p)
    if aug.conjugate_p > 0:
        y = A.phase_conjugate(y, aug.conjugate_p)
    want = A.cutout(y, aug.cutout_p)
    check_phase(got, 24)
    assert torch.allclose(got, want, atol=1e-5)
    torch.manual_seed(11)
    moved = A.random_geometry(x, 24, aug.crop_scale, aug.crop_ratio, aug.flip_p, aug.rot90, True)
    assert not torch.allclose(got[:, :2], moved[:, :2], atol=1e-2)  # the phase steps did act


def test_decorrelation_only_touches_low_coherence():
    torch.manual_seed(3)
    x = phase_batch()
    out = A.decorrelation(x, max_threshold=0.3, p=1.0)
    high = x[:, 2] >= 0.3
    assert torch.equal(
        out[:, :2][high[:, None].expand(-1, 2, -1, -1)],
        x[:, :2][high[:, None].expand(-1, 2, -1, -1)],
    )


def test_flip_and_rot_are_permutations():
    torch.manual_seed(4)
    x = phase_batch()
    for fn in (A.random_flip, A.random_rot90):
        out = fn(x)
        for i in range(len(x)):
            assert torch.equal(
                out[i].flatten(1).sort(dim=1).values, x[i].flatten(1).sort(dim=1).values
            )
    with pytest.raises(ValueError, match="square"):
        A.random_rot90(torch.zeros(1, 4, 8, 6))


def test_crop_full_scale_is_identity_on_smooth_phase():
    phi = torch.rand(2, 16, 16) * 6
    x = torch.stack([phi.cos(), phi.sin(), torch.ones_like(phi), torch.ones_like(phi)], 1)
    out = A.random_resized_crop(x, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(out, x, atol=1e-5)
    assert A.random_resized_crop(x, 8).shape == (2, 4, 8, 8)


def test_phase_checks_channels():
    with pytest.raises(ValueError, match="cos, sin, coh, valid"):
        A.phase_offset(torch.zeros(2, 3, 8, 8))


def rendered_batch(palette: str, b: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    phases = [
        np.angle(np.exp(1j * (8 * (yy - 0.5) ** 2 + 6 * xx + rng.uniform(0, 6)))) for _ in range(b)
    ]
    amp = rng.uniform(0.3, 1.0, (size, size)) if palette == "rainbow" else None
    rgb = np.stack([render_phase(p, palette, amplitude=amp) for p in phases])
    return torch.as_tensor(rgb).permute(0, 3, 1, 2).float() / 255.0


def check_rgb(x: torch.Tensor, size: int = 32) -> None:
    assert x.dtype == torch.float32 and x.shape[1:] == (3, size, size)
    assert torch.isfinite(x).all() and (x >= 0).all() and (x <= 1).all()


RGB_STEPS = {
    "hue": lambda x: R.hue_rotation(x, 1.0),
    "gray": lambda x: R.grayscale(x, 1.0),
    "noise": R.pixel_noise,
    "palette": R.palette_jitter,
    "pipeline": R.RGBAugment(32),
}


@pytest.mark.parametrize("palette", ["cyclic", "rainbow"])
@pytest.mark.parametrize("name", sorted(RGB_STEPS))
def test_rgb_step_invariants(name, palette):
    torch.manual_seed(5)
    check_rgb(RGB_STEPS[name](rendered_batch(palette)))


def test_palette_jitter_shifts_along_cyclic_palette():
    torch.manual_seed(6)
    x = rendered_batch("cyclic")
    out = R.palette_jitter(x, p=1.0, swap_p=0.0)
    lut = torch.as_tensor(palette_lut("cyclic", 256)).float() / 255
    # every output pixel is a cyclic palette colour, and positions moved by one constant
    flat = out.permute(0, 2, 3, 1).reshape(-1, 3)
    assert torch.cdist(flat, lut).min(dim=1).values.max() < 0.02
    pos_in = torch.cdist(x.permute(0, 2, 3, 1).reshape(len(x), -1, 3), lut).argmin(-1)
    pos_out = torch.cdist(out.permute(0, 2, 3, 1).reshape(len(x), -1, 3), lut).argmin(-1)
    diff = torch.remainder(pos_out - pos_in, 256).float()
    circ = torch.remainder(diff - diff.median(dim=1, keepdim=True).values + 128, 256) - 128
    assert (circ.abs() <= 6).float().mean() > 0.95


def test_palette_jitter_swaps_styles_and_rainbow_keeps_shading():
    torch.manual_seed(7)
    x = rendered_batch("cyclic")
    out = R.palette_jitter(x, p=1.0, swap_p=1.0)  # cyclic -> rainbow: saturated hue colours
    _, sat, _ = R.hue(out)
    assert sat.mean() > 0.95
    y = rendered_batch("rainbow")
    out = R.palette_jitter(y, p=1.0, swap_p=0.0)  # rainbow stays rainbow: brightness kept
    assert torch.allclose(out.max(dim=1).values, y.max(dim=1).values, atol=0.02)


def test_hue_roundtrip():
    x = rendered_batch("rainbow")
    h, s, v = R.hue(x)
    assert torch.allclose(R._hsv_to_rgb(h, s, v), x, atol=1e-5)


def test_fused_geometry_is_an_exact_dihedral_transform():
    torch.manual_seed(8)
    x = torch.rand(16, 3, 12, 12)
    out = A.random_geometry(x, 12, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.5, rot90=True)
    seen = set()
    for i in range(len(x)):
        variants = []
        for k in range(4):
            r = torch.rot90(x[i], k, dims=(-2, -1))
            variants += [r, r.flip(-1)]
        match = [j for j, v in enumerate(variants) if torch.allclose(out[i], v, atol=1e-5)]
        assert match, f"sample {i} is not a flip/rotation of its input"
        seen.add(match[0])
    assert len(seen) > 3  # the transforms actually vary


def test_resize_batch_keeps_invariants():
    x = phase_batch(3, 32)
    small = A.resize_batch(x, 16)
    check_phase(small, 16)
    assert A.resize_batch(x, 32) is x
    rgb = A.resize_batch(rendered_batch("cyclic"), 20)
    check_rgb(rgb, 20)


def test_palette_warp_is_the_read_back_of_a_foreign_rendering():
    """A warped sample's phase is what the reader makes of the same phase rendered in one of the
    foreign diverging tables; p = 0 leaves the batch as it is."""
    from insarexplore.data.palettes import recover_phase
    from insarexplore.data.synthetic.styles import foreign_lut

    x = phase_batch(b=4, size=16, seed=3)
    assert torch.equal(A.palette_warp(x, 0.0), x)
    torch.manual_seed(5)
    out = A.palette_warp(x, 1.0)
    torch.manual_seed(5)
    A._mask(4, 1.0, x.device)
    pick = torch.randint(32, (4,))
    for i in range(4):
        phi = torch.atan2(x[i, 1], x[i, 0]).numpy()
        lut = foreign_lut("cyclic", np.random.default_rng(10_000 + int(pick[i])))
        want = recover_phase(render_phase(phi, lut=lut), "cyclic")
        got = torch.atan2(out[i, 1], out[i, 0]).numpy()
        ok = x[i, 3].numpy() == 1
        err = np.abs(np.angle(np.exp(1j * (got - want))))[ok]
        assert err.max() < 0.02  # the same table entry, up to the phase's binning
        moved = np.abs(np.angle(np.exp(1j * (got - phi))))[ok]
        assert moved.mean() > 0.05  # and it does differ from the phase it was given
