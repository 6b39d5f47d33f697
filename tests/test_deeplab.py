"""DeepLabV3+ and the IML model (nclkit.models.deeplab): shapes, auxiliary heads, the pivot's size, training mode, bf16."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nclkit.models import ASPP, IMLModel, ModelOutput, build_model, get_encoder
from nclkit.presets import get_config


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.slow
def test_paper_preset_512_shapes():
    torch.manual_seed(0)
    model = build_model("paper").eval()
    assert model.encoder.strides[-1] == 8 and len(model.encoder.layer3) == 23  # ResNet-101 at OS 8
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
    atrous = [m.dilation for m in model.aspp.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert atrous == [(12, 12), (24, 24), (36, 36)]  # §4's ASPP rates
    assert torch.isfinite(out.logits).all()


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
    assert isinstance(model, IMLModel) and model.pivot_block == 5 and model.eval_max_side == cfg.eval_max_side
    assert model.pivot.channels == 8 * cfg.encoder_width  # block 5 of a ResNet-10 of that width
    assert build_model("quick", pivot_block=2).pivot.channels == cfg.encoder_width
    assert build_model("quick", pivot_block=5, encoder_width=64).pivot.channels == 512  # the standard ResNet-10
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("huge")
    with pytest.raises(TypeError, match="preset name or a Config"):
        build_model({"encoder": "resnet18"})


def test_pivot_is_sized_for_the_tapped_block():
    for block in range(1, 6):
        model = build_model("quick", pivot_block=block)
        assert model.pivot.channels == model.encoder.channels[block - 1], block


@pytest.mark.parametrize("block", [1, 2, 5])
def test_output_carries_the_tapped_block(block):
    # The model alone reads pivot_block: its output hands the loss that block's map, sized to the pivot.
    model = build_model("quick", pivot_block=block).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.pivot_feature is out.features[block - 1]
    assert out.pivot_feature.shape[1] == model.pivot.channels
    assert out.pivot_feature.shape[-1] == 64 // model.pivot_stride


def test_quick_model_is_small():
    model = build_model("quick")
    n = _n_params(model)
    print(f"quick preset: {n / 1e6:.2f} M parameters")
    assert 1.5e6 < n < 2.2e6  # half-width ResNet-10 (1.2 M) + a 64-wide ASPP/decoder and the auxiliary heads
    assert _n_params(build_model("quick", encoder_width=64)) > 2.5 * n  # width 64: about 4x the encoder


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
    assert [h[0].in_channels for h in extra.aux_heads] == [get_config("quick").aspp_channels, extra.decoder.fused_channels]


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


def test_the_model_takes_plain_values_and_from_config_reads_a_config():
    cfg = get_config("quick", pivot_block=2)
    torch.manual_seed(0)
    a = IMLModel.from_config(cfg)
    torch.manual_seed(0)
    b = IMLModel(encoder="resnet10", encoder_width=32, output_stride=32, block1="conv1", aspp_rates=(1, 2, 3),
                 aspp_channels=64, low_level_channels=32, decoder_channels=64, pivot_block=2)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert (a.eval_max_side, b.eval_max_side) == (cfg.eval_max_side, None) and not hasattr(a, "cfg")
