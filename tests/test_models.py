"""Encoders, DeepLabV3+ and the IML model: shapes, strides, atrous equivalence, training mode."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nclkit.models import (
    ASPP,
    ENCODERS,
    IMLModel,
    ModelOutput,
    build_model,
    get_encoder,
)
from nclkit.presets import get_config


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.slow
def test_paper_preset_512_shapes():
    torch.manual_seed(0)
    model = build_model("paper").eval()
    assert model.cfg.encoder == "resnet101" and model.cfg.output_stride == 8
    with torch.no_grad():
        out = model(torch.randn(1, 3, 512, 512))
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (1, 1, 512, 512)
    assert len(out.features) == 5
    assert out.features[0].shape == (1, 64, 256, 256)  # block 1: conv1, stride 2
    assert out.features[1].shape == (1, 256, 128, 128)  # block 2: max-pool + conv2_x, stride 4
    assert out.features[4].shape == (1, 2048, 64, 64)  # block 5 at OS 8
    assert [a.shape[-1] for a in out.aux_logits] == [128]  # after the first upsampling only
    assert model.pivot.channels == 64 and model.pivot_stride == 2
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_encoder_declared_channels_and_strides(name, output_stride):
    encoder = get_encoder(name, output_stride).eval()
    assert len(encoder.channels) == 5 and len(encoder.strides) == 5
    expected_os = 32 if name == "swin_t" else output_stride
    assert encoder.strides[-1] == expected_os
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 64, 64))
    assert len(features) == 5
    for feature, channels, stride in zip(features, encoder.channels, encoder.strides):
        assert feature.shape == (1, channels, 64 // stride, 64 // stride)


def test_os16_gives_32x32_block5_at_512():
    encoder = get_encoder("resnet18", 16).eval()
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 512, 512))
    assert features[0].shape[-2:] == (256, 256)
    assert features[4].shape[-2:] == (32, 32)


def test_block1_readings_conv1_and_maxpool():
    # Block 1 is conv1's output (stride 2); the max-pool opens block 2. "maxpool" keeps the older
    # reading (block 1 after the max-pool, stride 4). Same parameters, same later blocks.
    torch.manual_seed(0)
    conv1 = get_encoder("resnet10", 16, block1="conv1").eval()
    pooled = get_encoder("resnet10", 16, block1="maxpool").eval()
    pooled.load_state_dict(conv1.state_dict())
    assert conv1.strides[:2] == (2, 4) and pooled.strides[:2] == (4, 4)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = conv1(x), pooled(x)
    assert a[0].shape[-2:] == (32, 32) and b[0].shape[-2:] == (16, 16)
    torch.testing.assert_close(b[0], torch.nn.functional.max_pool2d(a[0], 3, 2, 1))
    for fa, fb in zip(a[1:], b[1:]):
        torch.testing.assert_close(fa, fb)
    with pytest.raises(ValueError, match="block1"):
        get_encoder("resnet10", 16, block1="stem")


def test_basic_block_dilation_follows_a_trous_schedule():
    encoder = get_encoder("resnet18", 8)
    # layer3: stride removed, first conv on the old grid (1), the rest dilated by 2.
    assert encoder.layer3[0].conv1.stride == (1, 1) and encoder.layer3[0].conv1.dilation == (1, 1)
    assert encoder.layer3[0].conv2.dilation == (2, 2) and encoder.layer3[0].conv2.padding == (2, 2)
    assert encoder.layer3[0].downsample[0].stride == (1, 1)
    assert encoder.layer3[1].conv1.dilation == (2, 2)
    # layer4: first conv at 2, the rest at 4.
    assert encoder.layer4[0].conv1.dilation == (2, 2)
    assert encoder.layer4[1].conv2.dilation == (4, 4) and encoder.layer4[1].conv2.padding == (4, 4)
    assert get_encoder("resnet18", 32).layer4[0].conv1.stride == (2, 2)


def test_resnet10_is_resnet18_with_one_block_per_stage():
    r10, r18 = get_encoder("resnet10", 16), get_encoder("resnet18", 16)
    for name in ("layer1", "layer2", "layer3", "layer4"):
        assert len(getattr(r10, name)) == 1 and len(getattr(r18, name)) == 2
        assert type(getattr(r10, name)[0]) is type(getattr(r18, name)[0])
    assert r10.channels == r18.channels and r10.strides == r18.strides
    assert r10.layer4[0].conv2.dilation == (2, 2)  # OS 16: layer4 dilated like ResNet-18's


def _randomise_norms(module: nn.Module) -> None:
    """Non-trivial BN (zero-init residual BNs would hide the residual branches)."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
            m.bias.data = torch.randn(m.bias.shape, generator=g) * 0.1
            m.running_mean = torch.randn(m.running_mean.shape, generator=g) * 0.1
            m.running_var = torch.rand(m.running_var.shape, generator=g) + 0.5


@pytest.mark.parametrize("name", ["resnet10", "resnet18", "resnet50"])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_dilated_encoder_equals_strided_one_on_the_coarse_grid(name, output_stride):
    # Algorithme a trous: same weights, stride replaced by dilation -> identical values on every
    # (32 / output_stride)-th cell of block 5. float64, so that the check can be exact.
    torch.manual_seed(0)
    strided = get_encoder(name, 32).eval()
    _randomise_norms(strided)
    dilated = get_encoder(name, output_stride).eval()
    dilated.load_state_dict(strided.state_dict())
    strided, dilated = strided.double(), dilated.double()
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        coarse = strided(x)[4]  # (1, C, 2, 2)
        fine = dilated(x)[4]  # (1, C, 64/OS, 64/OS)
    step = 32 // output_stride
    torch.testing.assert_close(fine[..., ::step, ::step], coarse, rtol=1e-9, atol=1e-9)


def test_unknown_encoder_lists_valid_names():
    with pytest.raises(ValueError, match="resnet101.*swin_t|swin_t.*resnet101") as err:
        get_encoder("vgg16", 8)
    assert "vgg16" in str(err.value)
    with pytest.raises(ValueError, match="output_stride"):
        get_encoder("resnet18", 4)
    with pytest.raises(ValueError, match="unknown encoder"):
        build_model("quick", encoder="resnet152")


def test_build_model_accepts_preset_config_and_overrides():
    cfg = get_config("quick", pivot_block=5)
    model = build_model(cfg)
    assert isinstance(model, IMLModel) and model.cfg.pivot_block == 5
    assert model.pivot.channels == 512  # ResNet-18 block 5
    assert build_model("quick", pivot_block=2).pivot.channels == 64
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("huge")
    with pytest.raises(TypeError, match="preset name or a Config"):
        build_model({"encoder": "resnet18"})


def test_quick_model_is_small():
    model = build_model("quick")
    n = _n_params(model)
    print(f"quick preset: {n / 1e6:.2f} M parameters")
    assert 5e6 < n < 7e6  # ResNet-10 (4.9 M) + a 64-wide ASPP/decoder and the auxiliary heads


@pytest.mark.parametrize("preset, overrides", [("quick", {}), ("quick", {"encoder": "swin_t"})])
def test_odd_input_size_gives_same_size_logits(preset, overrides):
    model = build_model(preset, **overrides).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 100, 130))
    assert out.logits.shape == (1, 1, 100, 130)
    assert out.features[1].shape[-2:] == out.aux_logits[-1].shape[-2:]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_aux_logits_strides_coarse_to_fine(output_stride):
    model = build_model("quick", output_stride=output_stride, aux_before_upsampling=True).eval()
    assert model.aux_strides == (output_stride, 4)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 128))
    assert [tuple(a.shape) for a in out.aux_logits] == [
        (2, 1, 128 // output_stride, 128 // output_stride),
        (2, 1, 32, 32),
    ]


def test_aux_heads_after_each_upsampling_by_default():
    # One auxiliary classifier after the first upsampling (fused stride-4 feature); the main output
    # follows the second. The extra head on the ASPP output exists only when asked for.
    model = build_model("quick").eval()
    assert len(model.aux_heads) == 1 and model.aux_strides == (4,)
    assert model.aux_heads[0][0].in_channels == model.decoder.fused_channels
    with torch.no_grad():
        out = model(torch.randn(2, 3, 128, 128))
    assert [tuple(a.shape) for a in out.aux_logits] == [(2, 1, 32, 32)]
    extra = build_model("quick", aux_before_upsampling=True)
    assert [h[0].in_channels for h in extra.aux_heads] == [extra.cfg.aspp_channels, extra.decoder.fused_channels]


@pytest.mark.parametrize("encoder, size", [("resnet18", 64), ("swin_t", 64)])
@pytest.mark.parametrize("batch", [1, 2])
def test_train_mode_forward_backward(encoder, size, batch):
    torch.manual_seed(0)
    model = build_model("quick", encoder=encoder).train()
    out = model(torch.randn(batch, 3, size, size))
    loss = out.logits.mean() + sum(a.mean() for a in out.aux_logits) + out.features[0].mean()
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("pivot."):
            continue  # called by the loss, not by forward
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name


def test_aspp_pooling_branch_is_spatially_constant_and_batch1_safe():
    aspp = ASPP(in_channels=8, channels=4, rates=(1, 2)).train()
    x = torch.randn(1, 8, 5, 7)
    y = aspp(x)
    assert y.shape == (1, 4, 5, 7)
    pooled = aspp.branches[-1](x)
    assert torch.equal(pooled, pooled[..., :1, :1].expand_as(pooled))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in aspp.branches[-1].modules())


def test_bf16_autocast_and_channels_last():
    torch.manual_seed(0)
    model = build_model("quick").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = model(x).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x).logits
        model = model.to(memory_format=torch.channels_last)
        cl = model(x.contiguous(memory_format=torch.channels_last)).logits
    assert low.dtype == torch.bfloat16 and torch.isfinite(low.float()).all()
    torch.testing.assert_close(low.float(), reference, rtol=0.1, atol=0.05)
    torch.testing.assert_close(cl, reference, rtol=1e-4, atol=1e-4)


def test_config_saved_before_the_new_readings_keeps_the_old_ones(tmp_path):
    # A checkpoint whose config predates `block1`, `aux_before_upsampling`, `sample_weighting` and
    # random scaling is rebuilt with the readings it was trained with, and its weights load.
    from nclkit.engine.checkpoint import check_compatible, load_model, save_checkpoint
    from nclkit.presets import LEGACY_VALUES, Config

    old = {k: v for k, v in get_config("quick").to_dict().items() if k not in LEGACY_VALUES}
    cfg = Config.from_dict(old)
    assert (cfg.block1, cfg.aux_before_upsampling, cfg.sample_weighting) == ("maxpool", True, False)
    assert (cfg.scale_min, cfg.scale_max) == (1.0, 1.0)
    legacy = build_model(cfg)
    assert legacy.encoder.strides[0] == 4 and len(legacy.aux_heads) == 2
    path = save_checkpoint({"model": legacy.state_dict(), "config": old}, tmp_path / "old.pt")
    model, _ = load_model(path)
    assert model.cfg.block1 == "maxpool" and len(model.aux_heads) == 2
    check_compatible(old, get_config("quick", block1="maxpool", aux_before_upsampling=True), path)
    with pytest.raises(ValueError, match="block1"):
        check_compatible(old, get_config("quick", aux_before_upsampling=True), path)
