"""Encoders (nclkit.models.encoders): declared channels and strides, block-1 readings, atrous equivalence."""
from __future__ import annotations

import pytest
import torch
from torchvision.models.resnet import BasicBlock
from torch import nn

from nclkit.encoder_options import ENCODER_NAMES, ENCODER_OPTIONS
from nclkit.models import ENCODERS, SwinEncoder, get_encoder


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_encoder_declared_channels_and_strides(name, output_stride):
    if output_stride not in ENCODER_OPTIONS[name]["output_stride"]:
        with pytest.raises(ValueError, match=f"encoder '{name}' does not support output_stride={output_stride}"):
            get_encoder(name, output_stride)
        return
    encoder = get_encoder(name, output_stride).eval()
    assert len(encoder.channels) == 5 and len(encoder.strides) == 5
    assert encoder.strides[-1] == output_stride
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
    # Block 1 is conv1's output (stride 2); the max-pool opens block 2. "maxpool" counts the max-pool
    # with block 1 (stride 4). Same parameters, same later blocks.
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


def test_narrow_resnet_halves_every_stage_and_keeps_the_grid():
    wide, narrow = get_encoder("resnet10", 16), get_encoder("resnet10", 16, width=32)
    assert narrow.channels == (32, 32, 64, 128, 256) and narrow.strides == wide.strides
    with torch.no_grad():
        feats = narrow(torch.randn(2, 3, 64, 96))
    assert [tuple(f.shape[1:]) for f in feats] == [(c, -(-64 // s), -(-96 // s))
                                                   for c, s in zip(narrow.channels, narrow.strides)]
    # initialised as torchvision initialises a ResNet: each residual branch starts at zero
    blocks = [m for m in narrow.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 4 and all(float(b.bn2.weight.abs().sum()) == 0.0 for b in blocks)
    n_wide, n_narrow = (sum(p.numel() for p in e.parameters()) for e in (wide, narrow))
    assert 3.5 < n_wide / n_narrow < 4.5  # conv weights scale with width squared
    with pytest.raises(ValueError, match="width"):
        get_encoder("resnet50", 16, width=32)


def test_the_registry_lists_the_encoders_built():
    assert tuple(ENCODERS) == ENCODER_NAMES


@pytest.mark.parametrize("option, value", [("output_stride", 16), ("output_stride", 8), ("block1", "conv1"),
                                           ("width", 32)])
def test_swin_refuses_what_it_cannot_honour(option, value):
    key = "encoder_width" if option == "width" else option
    with pytest.raises(ValueError, match=f"encoder 'swin_t' does not support {key}={value!r}"):
        get_encoder("swin_t", **{option: value})
    with pytest.raises(ValueError, match="swin_t"):
        SwinEncoder(**{option: value})
    assert get_encoder("swin_t").strides == (4, 4, 8, 16, 32)
