"""Encoders, heads, and saving/loading with clear errors on mismatches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from insarexplore.models import (
    PRESETS,
    ModelMismatchError,
    PredictionHead,
    ProjectionHead,
    build_encoder,
    count_parameters,
    load_encoder,
    save_encoder,
)


@pytest.mark.parametrize("arch", sorted(PRESETS))
@pytest.mark.parametrize("in_channels", [3, 4])
def test_presets_build_and_run(arch, in_channels):
    torch.manual_seed(0)
    model = build_encoder(arch, in_channels)
    size = 64 if PRESETS[arch].get("stem") == "imagenet" else 32
    out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, model.out_dim) and torch.isfinite(out).all()
    cfg = model.config
    assert cfg["in_channels"] == in_channels and cfg["arch"] == arch
    assert cfg["channel_kind"] == {3: "rgb", 4: "phase"}[in_channels]


def test_default_is_small_and_overridable():
    tiny = build_encoder()
    assert count_parameters(tiny) < 2_000_000 and tiny.config["stem"] == "pooled"
    wide = build_encoder("resnet-tiny", 4, widths=(8, 16, 32, 64), norm="group")
    assert wide.out_dim == 64 and wide.config["widths"] == [8, 16, 32, 64]
    with pytest.raises(ValueError, match="arch must be one of"):
        build_encoder("resnet-huge")
    with pytest.raises(ValueError, match="unknown options"):
        build_encoder("resnet-tiny", 4, patch_size=4)


def test_vit_interpolates_positions():
    vit = build_encoder("vit-tiny", 4, depth=1)
    assert vit(torch.randn(2, 4, 64, 64)).shape == (2, 192)
    assert vit(torch.randn(2, 4, 32, 32)).shape == (2, 192)


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(1)
    model = build_encoder("resnet-tiny", 4).eval()
    path = save_encoder(tmp_path / "m" / "encoder.pt", model)
    loaded, cfg = load_encoder(tmp_path / "m")  # a folder works too
    x = torch.randn(3, 4, 32, 32)
    assert torch.allclose(model(x), loaded(x), atol=1e-6)
    assert cfg == model.config and not loaded.training
    # weights_only: the file holds tensors and primitives only
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"format", "config", "state_dict"}
    vit = build_encoder("vit-tiny", 3, depth=1, image_size=32)
    save_encoder(tmp_path / "vit.pt", vit)
    assert load_encoder(tmp_path / "vit.pt")[1]["image_size"] == 32


def test_load_refuses_mismatches(tmp_path):
    path = save_encoder(tmp_path / "encoder.pt", build_encoder("resnet-tiny", 4))
    with pytest.raises(ModelMismatchError, match="in_channels is 4, expected 3"):
        load_encoder(path, in_channels=3)
    with pytest.raises(ModelMismatchError, match="arch"):
        load_encoder(path, arch="resnet18")
    with pytest.raises(ModelMismatchError, match="channel_kind"):
        load_encoder(path, channel_kind="rgb")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelMismatchError, match="cannot be read"):
        load_encoder(bad)
    torch.save({"hello": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ModelMismatchError, match="not an insarexplore encoder"):
        load_encoder(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "missing.pt")


def test_state_of_other_architecture_is_explained(tmp_path):
    from insarexplore.models.serialization import load_state_checked

    small = build_encoder("resnet-tiny", 4)
    with pytest.raises(ModelMismatchError, match="shape mismatch"):
        load_state_checked(small, build_encoder("resnet-tiny", 3).state_dict(), where="x")
    with pytest.raises(ModelMismatchError, match="missing"):
        load_state_checked(
            build_encoder("resnet-small", 4), build_encoder("vit-tiny", 4).state_dict(), where="x"
        )


def test_heads():
    head = ProjectionHead(16, 32, 8)
    assert head(torch.randn(4, 16)).shape == (4, 8)
    assert ProjectionHead(16, 32, 8, n_layers=3, last_bn=True, norm="layer")(
        torch.randn(4, 16)
    ).shape == (4, 8)
    assert PredictionHead(8, 16)(torch.randn(4, 8)).shape == (4, 8)
    with pytest.raises(ValueError, match="n_layers"):
        ProjectionHead(4, n_layers=0)
    with pytest.raises(ValueError, match="norm"):
        ProjectionHead(4, norm="group")


def _phase_batch(phi: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    v = valid.to(phi.dtype)
    return torch.stack([torch.cos(phi) * v, torch.sin(phi) * v, 0.8 * v, v], dim=1)


def test_phasor_gradient_is_the_fringe_rate_and_offset_invariant():
    from insarexplore.models.encoders import PhasorGradient

    torch.manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    phi = (0.3 * xx - 0.7 * yy)[None].repeat(2, 1, 1)  # a plane: constant fringe rate
    valid = torch.ones_like(phi, dtype=torch.bool)
    valid[1, 5, 5] = False
    g = PhasorGradient(coherence=True)(_phase_batch(phi, valid))
    assert g.shape == (2, 6, 16, 16)
    assert PhasorGradient(coherence=False)(_phase_batch(phi, valid)).shape == (2, 5, 16, 16)
    # exp(i dphi/dx) = exp(0.3 i), exp(i dphi/dy) = exp(-0.7 i) away from the last column/row
    assert torch.allclose(g[0, 0, :, :-1], torch.cos(torch.tensor(0.3)).expand(16, 15), atol=1e-5)
    assert torch.allclose(g[0, 1, :, :-1], torch.sin(torch.tensor(0.3)).expand(16, 15), atol=1e-5)
    assert torch.allclose(g[0, 3, :-1], torch.sin(torch.tensor(-0.7)).expand(15, 16), atol=1e-5)
    assert (g[:, :2, :, -1].abs().sum() == 0) and (g[:, 2:4, -1].abs().sum() == 0)  # padding
    # differences that touch the invalid pixel are zero
    assert g[1, 0, 5, 4] == 0 and g[1, 0, 5, 5] == 0 and g[1, 2, 4, 5] == 0
    # a constant phase offset leaves the input layer unchanged (exact symmetry)
    phi2 = torch.rand(16, 16) * 6
    x = _phase_batch(phi2[None], valid[:1])
    shifted = _phase_batch(phi2[None] + 2.1, valid[:1])
    assert torch.allclose(PhasorGradient()(x), PhasorGradient()(shifted), atol=1e-5)


def test_gradient_input_encoder_builds_saves_and_refuses_rgb(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("resnet-tiny", 4, phase_input="gradient")
    assert enc.config["phase_input"] == "gradient" and enc.input.out_channels == 5
    phi = torch.rand(3, 32, 32) * 6
    x = _phase_batch(phi, torch.ones_like(phi, dtype=torch.bool))
    enc.eval()
    with torch.no_grad():
        a, b = enc(x), enc(_phase_batch(phi - 1.3, torch.ones_like(phi, dtype=torch.bool)))
    assert torch.allclose(a, b, atol=1e-4)
    save_encoder(tmp_path / "e.pt", enc)
    back, cfg = load_encoder(tmp_path / "e.pt")
    assert cfg["phase_input"] == "gradient"
    with torch.no_grad():
        assert torch.allclose(back(x), a, atol=1e-5)
    with pytest.raises(ValueError, match="phase_input='gradient' needs phase channels"):
        build_encoder("resnet-tiny", 3, phase_input="gradient")
    assert build_encoder("resnet-tiny", 4, phase_input="gradient+coherence").input.coherence
    with pytest.raises(ValueError, match="phase_input must be"):
        build_encoder("resnet-tiny", 4, phase_input="laplacian")


def _rainbow(phi: torch.Tensor, shade: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, W) phase -> (B, 3, H, W) hue-cycle rendering through the product's palette."""
    from insarexplore.data.palettes import render_phase

    out = []
    for i in range(len(phi)):
        amp = None if shade is None else shade[i].numpy()
        out.append(render_phase(phi[i].numpy(), "rainbow", amplitude=amp))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255.0


def test_hue_gradient_reads_the_fringe_rate_of_renderings():
    from insarexplore.models.encoders import HueGradient

    yy, xx = torch.meshgrid(torch.arange(24.0), torch.arange(24.0), indexing="ij")
    phi = torch.angle(torch.exp(1j * (0.4 * xx - 0.25 * yy)))[None]
    x = _rainbow(phi)
    g = HueGradient()(x)
    assert g.shape == (1, 7, 24, 24) and torch.equal(g[:, :3], x)  # RGB passes through
    # on a hue-cycle rendering the hue phasor differences are the phase differences
    rate_x = torch.atan2(g[0, 4, :, :-1], g[0, 3, :, :-1])
    rate_y = torch.atan2(g[0, 6, :-1], g[0, 5, :-1])
    assert torch.allclose(rate_x, torch.tensor(0.4), atol=0.03)
    assert torch.allclose(rate_y, torch.tensor(-0.25), atol=0.03)
    # a shift along the palette and amplitude shading change the colours, not the fringe rate
    shade = torch.rand(1, 24, 24) * 0.5 + 0.5
    shifted = HueGradient()(_rainbow(torch.angle(torch.exp(1j * (phi + 2.0))), shade))
    assert not torch.allclose(shifted[:, :3], x, atol=0.05)
    assert torch.allclose(shifted[:, 3:], g[:, 3:], atol=0.05)
    # grey pixels (no hue) contribute nothing
    assert HueGradient()(torch.full((1, 3, 8, 8), 0.5))[:, 3:].abs().max() == 0


def test_cyclic_palette_hue_advances_with_phase():
    """Why HueGradient also suits the cyclic diverging palette: its hue is monotonic in phase."""
    from insarexplore.data.palettes import palette_lut
    from insarexplore.models.colour import hue

    lut = torch.from_numpy(palette_lut("cyclic", 256)).float().T[None, :, :, None] / 255.0
    h, sat, _ = hue(lut)
    h, sat = h[0, :, 0], sat[0, :, 0]
    steps = torch.remainder(torch.diff(torch.cat([h, h[:1]])) + 0.5, 1.0) - 0.5  # wrapped
    # never runs back (beyond 8-bit rounding) where coloured
    assert (steps[sat > 0.2] >= -0.005).all()
    assert abs(float(steps.sum()) - 1.0) < 1e-3  # one full turn per cycle of phase


def test_hue_gradient_encoder_needs_rgb_and_survives_a_round_trip(tmp_path):
    torch.manual_seed(0)
    enc = build_encoder("resnet-micro", 3, phase_input="hue-gradient")
    assert enc.input.out_channels == 7
    save_encoder(tmp_path / "e.pt", enc)
    back, cfg = load_encoder(tmp_path / "e.pt")
    assert cfg["phase_input"] == "hue-gradient"
    x = torch.rand(2, 3, 32, 32)
    enc.eval()
    with torch.no_grad():
        assert torch.allclose(back(x), enc(x), atol=1e-5)
    with pytest.raises(ValueError, match="phase_input='hue-gradient' needs RGB channels"):
        build_encoder("resnet-micro", 4, phase_input="hue-gradient")


@pytest.mark.parametrize(
    ("in_channels", "phase_input"),
    [(4, "gradient"), (4, "gradient+coherence"), (3, "hue-gradient"), (4, "raw")],
)
def test_input_layers_keep_channels_last(in_channels, phase_input):
    """channels_last input stays channels_last through the fixed input layer and the stem,
    with the same values as the contiguous path."""
    from insarexplore.models import build_encoder

    enc = build_encoder("resnet-micro", in_channels, phase_input=phase_input).eval()
    enc = enc.to(memory_format=torch.channels_last)
    x = torch.rand(2, in_channels, 16, 16)
    if in_channels == 4:
        x[:, :2] = x[:, :2] * 2 - 1
    xl = x.contiguous(memory_format=torch.channels_last)
    cl = torch.channels_last
    inp = enc.input(xl)
    assert inp.is_contiguous(memory_format=cl)
    assert enc.stem(inp).is_contiguous(memory_format=cl)
    torch.testing.assert_close(inp, enc.input(x))
    with torch.no_grad():
        torch.testing.assert_close(enc(xl), enc(x), rtol=1e-4, atol=1e-5)
