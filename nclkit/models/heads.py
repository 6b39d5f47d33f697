"""Small building blocks shared by the decoder: conv-BN-ReLU, 1-logit classifiers, weight init.

The auxiliary classifiers follow the side outputs of Cun & Pun (paper ref. [7]): a 1x1 conv that
turns an intermediate decoder feature into one tamper logit per cell, so the PC loss (paper §3.3,
eq. 8) can supervise "each upsampling process" against a shrunken mask.
"""
from __future__ import annotations

from torch import nn

__all__ = ["ConvBNReLU", "LogitHead", "init_weights"]


class ConvBNReLU(nn.Sequential):
    """k x k conv (no bias, 'same' padding, optional dilation) -> BatchNorm -> ReLU.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size: 1 or 3.
        dilation: atrous rate (paper §4: ASPP rates 12, 24, 36).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
    ) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                padding=dilation * (kernel_size // 2),
                dilation=dilation,
                bias=False,
            ),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class LogitHead(nn.Sequential):
    """1x1 conv to a single tamper logit (main classifier and auxiliary classifiers).

    Shape:
        (B, in_channels, h, w) -> (B, 1, h, w)
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__(nn.Conv2d(in_channels, 1, kernel_size=1))


def init_weights(module: nn.Module) -> None:
    """From-scratch init of a decoder (the method uses no pre-training, paper §1).

    Convs: Kaiming normal (fan_out, ReLU), bias 0; norms: weight 1, bias 0. 1-channel logit convs
    get a small normal init so that every pixel starts near p = 0.5 instead of at a large logit.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if m.out_channels == 1:
                nn.init.normal_(m.weight, std=0.01)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
