"""Encoders, heads, and saving/loading with clear errors on mismatches."""

from __future__ import annotations

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
