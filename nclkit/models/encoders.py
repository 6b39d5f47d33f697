"""Encoders that return the five "blocks" of the paper (§3.2, Table 6), always from scratch.

The paper divides ResNet-101 "into five stages as the original paper [ResNet]" and taps the
feature map after one of them for the pivot network (Table 6: block 1 is best). The ResNet paper's
Table 1 opens conv2_x with the 3x3 max-pool, so stage 1 is conv1 alone (stride 2). We follow that
split by default (`block1="conv1"`); `block1="maxpool"` counts the max-pool with block 1 instead
(stride 4, the same grid as block 2):

==========  ======================================  =====================================
block       ResNet                                  Swin-T
==========  ======================================  =====================================
1           conv1, BN, ReLU (stride 2)              patch embedding (4x4 conv + LayerNorm)
2           max-pool + layer1 (conv2_x, stride 4)   stage 1
3           layer2 (conv3_x)                        patch merging + stage 2
4           layer3 (conv4_x)                        patch merging + stage 3
5           layer4 (conv5_x)                        patch merging + stage 4
==========  ======================================  =====================================

Nominal strides are (2, 4, 8, 16, 32) ((4, 4, 8, 16, 32) with `block1="maxpool"`); an output
stride of 16 or 8 replaces the stride of the last one or two ResNet stages by atrous (dilated)
convolution (paper §3.1, DeepLabV3+). Swin-T has no stride-2 stage (its first layer is a 4x4
patch embedding) and no dilated form here: its strides are (4, 4, 8, 16, 32), and it refuses any other
output stride, the "conv1" reading and another width (nclkit.encoder_options lists what each encoder
honours; `Config.validate` checks a config against it before any model is built).

The method is pre-training-free (paper §1): every encoder is built with `weights=None`.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.resnet import BasicBlock

from ..encoder_options import OUTPUT_STRIDES, check_encoder_options, encoder_defaults

__all__ = ["ENCODERS", "OUTPUT_STRIDES", "ResNetEncoder", "SwinEncoder", "get_encoder"]


def _set_conv(conv: nn.Conv2d, stride: int, dilation: int) -> None:
    """Turn a 3x3 (or 1x1) conv into its strided/dilated form; 'same' padding for the 3x3."""
    conv.stride = (stride, stride)
    conv.dilation = (dilation, dilation)
    if conv.kernel_size[0] > 1:
        conv.padding = (dilation * (conv.kernel_size[0] // 2),) * 2


def _dilate_basic_layer(layer: nn.Sequential, dilation_in: int, dilation_out: int) -> None:
    """Replace the stride 2 of a BasicBlock stage by dilation (torchvision refuses this itself).

    Algorithme a trous: the first block's conv1 keeps the grid it used to stride on (dilation_in,
    stride 1); every 3x3 conv after it sees the would-be-subsampled grid, so it is dilated by
    dilation_out = 2 * dilation_in. The result equals the strided network on every
    dilation_out-th pixel (tests/test_encoders.py checks this).
    """
    first: BasicBlock = layer[0]
    _set_conv(first.conv1, stride=1, dilation=dilation_in)
    _set_conv(first.conv2, stride=1, dilation=dilation_out)
    if first.downsample is not None:
        _set_conv(first.downsample[0], stride=1, dilation=1)  # 1x1 projection: stride only
    for block in layer[1:]:
        _set_conv(block.conv1, stride=1, dilation=dilation_out)
        _set_conv(block.conv2, stride=1, dilation=dilation_out)


def _rebuild_narrow(net: tvm.ResNet, width: int) -> None:
    """Give a BasicBlock ResNet `width` channels in stage 1 (64 in the ResNet paper), doubling per
    stage as there; weights initialised as torchvision initialises them (zero-init residual)."""
    depths = [len(layer) for layer in (net.layer1, net.layer2, net.layer3, net.layer4)]
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.layer1 = net._make_layer(BasicBlock, width, depths[0])
    net.layer2 = net._make_layer(BasicBlock, 2 * width, depths[1], stride=2)
    net.layer3 = net._make_layer(BasicBlock, 4 * width, depths[2], stride=2)
    net.layer4 = net._make_layer(BasicBlock, 8 * width, depths[3], stride=2)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in net.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


class ResNetEncoder(nn.Module):
    """A torchvision ResNet (random init) cut into the five blocks of the paper.

    Args:
        depth: 10, 18, 34, 50 or 101. ResNet-10 is ResNet-18 with one BasicBlock per stage instead of
            two (not in torchvision's zoo, built from its parts): the same five blocks, channels and
            strides, trained about 1.5x faster on a CPU (the quick preset's encoder).
        output_stride: 8, 16 or 32; 16 dilates layer4, 8 dilates layer3 and layer4.
        block1: "conv1" (block 1 ends before the max-pool, stride 2) or "maxpool" (after it, stride 4).
            The parameters are the same either way, so a checkpoint loads under both readings.
        width: channels of block 1 (64 in the ResNet paper), doubled by each later stage; other
            widths for the BasicBlock ResNets only (a narrower ResNet-10 is the quick preset's encoder).

    Shape:
        x: (B, 3, H, W) -> list of 5 maps (B, channels[i], ~H/strides[i], ~W/strides[i]).
    """

    def __init__(self, depth: int, output_stride: int = 8, block1: str = "conv1", width: int = 64) -> None:
        super().__init__()
        check_encoder_options(f"resnet{depth}", output_stride=output_stride, block1=block1, encoder_width=width)
        if width < 8:
            raise ValueError(f"width={width}; expected >= 8")
        builders = {10: partial(tvm.ResNet, BasicBlock, [1, 1, 1, 1]),  # random init: it has no weights
                    **{d: partial(getattr(tvm, f"resnet{d}"), weights=None) for d in (18, 34, 50, 101)}}
        bottleneck = depth >= 50
        dilate = [False, output_stride <= 8, output_stride <= 16]  # layer2, layer3, layer4
        # Kaiming (fan_out) convs, BN 1/0, last BN of each residual branch zeroed: a from-scratch
        # ResNet starts as (near) identity blocks, which trains more stably without pre-training.
        kwargs = {"zero_init_residual": True}
        if bottleneck:
            net = builders[depth](replace_stride_with_dilation=dilate, **kwargs)
        else:  # torchvision's BasicBlock raises on dilation > 1: dilate it ourselves
            net = builders[depth](**kwargs)
            if width != 64:
                _rebuild_narrow(net, width)
            dilation = 1
            for layer, flag in zip((net.layer2, net.layer3, net.layer4), dilate):
                if flag:
                    _dilate_basic_layer(layer, dilation_in=dilation, dilation_out=2 * dilation)
                    dilation *= 2
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)  # (B, 64, H/2, W/2)
        self.maxpool = net.maxpool  # no parameters: it ends block 1 or opens block 2, as `block1` says
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        self.layer4 = net.layer4
        expansion = 4 if bottleneck else 1  # Bottleneck expansion
        self.channels = (width, width * expansion, 2 * width * expansion, 4 * width * expansion, 8 * width * expansion)
        self.strides = (2 if block1 == "conv1" else 4, 4, 8, min(16, output_stride), output_stride)
        self.output_stride = output_stride
        self.block1 = block1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)  # (B, 64, H/2, W/2)
        pooled = self.maxpool(x)  # (B, 64, H/4, W/4)
        features = [x if self.block1 == "conv1" else pooled]
        x = pooled
        for block in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = block(x)
            features.append(x)
        return features


class SwinEncoder(nn.Module):
    """torchvision's Swin-T (random init) cut into the five blocks, features returned as NCHW.

    Args (each has one value Swin-T honours, and any other is refused):
        output_stride: 32 (no dilated variant here).
        block1: "maxpool": block 1 is the stride-4 patch embedding, the grid of block 2.
        width: 64, the standard width: Swin-T keeps its own channels (96 in block 1).

    Shape:
        x: (B, 3, H, W) -> list of 5 maps (B, channels[i], ~H/strides[i], ~W/strides[i]).
        Any H, W work (torchvision pads for patch merging and windows). The maps are permuted
        views of NHWC tensors, i.e. channels_last in memory; use `.reshape`, not `.view`.
    """

    def __init__(self, output_stride: int = 32, block1: str = "maxpool", width: int = 64) -> None:
        super().__init__()
        check_encoder_options("swin_t", output_stride=output_stride, block1=block1, encoder_width=width)
        stages = tvm.swin_t(weights=None).features  # [embed, s1, merge, s2, merge, s3, merge, s4]
        self.embed = stages[0]
        self.stage1 = stages[1]
        self.stage2 = nn.Sequential(stages[2], stages[3])
        self.stage3 = nn.Sequential(stages[4], stages[5])
        self.stage4 = nn.Sequential(stages[6], stages[7])
        self.channels = (96, 96, 192, 384, 768)
        self.strides = (4, 4, 8, 16, 32)
        self.output_stride = 32

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in (self.embed, self.stage1, self.stage2, self.stage3, self.stage4):
            x = block(x)  # (B, h, w, C): torchvision's Swin works channels-last
            features.append(x.permute(0, 3, 1, 2))  # (B, C, h, w)
        return features


ENCODERS: dict[str, Callable[..., nn.Module]] = {
    "resnet10": partial(ResNetEncoder, 10),
    "resnet18": partial(ResNetEncoder, 18),
    "resnet34": partial(ResNetEncoder, 34),
    "resnet50": partial(ResNetEncoder, 50),
    "resnet101": partial(ResNetEncoder, 101),
    "swin_t": SwinEncoder,
}


def get_encoder(name: str, output_stride: int | None = None, block1: str | None = None, width: int | None = None
                ) -> nn.Module:
    """Encoder `name`, from scratch: forward gives 5 block features; has `.channels`, `.strides`.

    Args:
        name: one of ENCODERS (resnet10, resnet18, resnet34, resnet50, resnet101, swin_t).
        output_stride: 8, 16 or 32 for a ResNet (paper §4: 8), 32 for swin_t; None: the encoder's default.
        block1: "conv1" (ResNet's stage 1, stride 2) or "maxpool" (stride 4, swin_t's only reading).
        width: block 1's channels for ResNet-10/18/34 (64 = the standard network; the others: 64 only).
    Raises:
        ValueError: an unknown name, or an option the encoder cannot honour (nclkit.encoder_options).
    """
    options = {"output_stride": output_stride, "block1": block1, "encoder_width": width}
    defaults = {"encoder_width": 64, **encoder_defaults(name)}
    options = {key: defaults[key] if value is None else value for key, value in options.items()}
    check_encoder_options(name, **options)
    return ENCODERS[name](options["output_stride"], block1=options["block1"], width=options["encoder_width"])
