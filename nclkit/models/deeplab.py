"""The IML model: DeepLabV3+ (paper §3.1, §4), auxiliary classifiers (§3.3), pivot network (§3.2).

Data flow (Figure 2a):

    image -> encoder blocks 1..5 -> ASPP on block 5 (stride OS) - - - -> [aux logit (stride OS), optional]
                                     | first upsampling: bilinear up to block 2's size
             block 2 (stride 4) -> 1x1 proj -> concat (fused feature) --> aux logit (stride 4)
                                     | two 3x3 conv-BN-ReLU
                                     classifier -> second upsampling: bilinear up to H x W -> logits (stride 1)

Paper §3.3 places the auxiliary classifiers "after each upsampling": after the first one the fused
stride-4 feature gets an auxiliary classifier, after the second one the main output is supervised
itself. `aux_before_upsampling` adds a classifier on the ASPP output, before any upsampling.

The pivot network reads block `pivot_block` (Table 6: block 1) but is called by the NCL loss,
not in `forward`; it is a plain attribute, `model.pivot` (nclkit.models.pivot says why). The model
is the only reader of `pivot_block`: its output carries the tapped map as `pivot_feature`, sized to
`model.pivot`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..presets import Config, get_config
from .encoders import get_encoder
from .heads import ConvBNReLU, LogitHead, init_weights
from .pivot import PivotNetwork

__all__ = ["ASPPPooling", "ASPP", "DeepLabV3PlusDecoder", "ModelOutput", "IMLModel", "build_model", "MODEL_KEYS"]


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Bilinear resize to an exact (h, w); the actual size, so any input size works."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class ASPPPooling(nn.Sequential):
    """Image-level branch of ASPP: global average -> 1x1 conv -> ReLU, broadcast back to h x w.

    No BatchNorm: on a 1x1 map with batch 1 it has a single value per channel and train-mode
    BN fails (or normalises everything to zero); a conv bias takes its place.

    Shape:
        (B, C_in, h, w) -> (B, C_out, h, w)
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return super().forward(x).expand(-1, -1, h, w)  # (B, C_out, 1, 1) -> (B, C_out, h, w)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (DeepLabV3+; paper §4: rates 1, 12, 24, 36).

    "Rate 1" is the 1x1 branch; `rates` are the 3x3 atrous branches; plus image pooling.
    The concatenated branches are projected back to `channels` (1x1 conv-BN-ReLU, dropout 0.1
    as in the original DeepLabV3+ implementation).

    Args:
        in_channels: channels of encoder block 5.
        channels: width of every branch and of the output.
        rates: atrous rates of the 3x3 branches.

    Shape:
        (B, in_channels, h, w) -> (B, channels, h, w)
    """

    def __init__(self, in_channels: int, channels: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        branches = [ConvBNReLU(in_channels, channels, kernel_size=1)]
        branches += [ConvBNReLU(in_channels, channels, kernel_size=3, dilation=r) for r in rates]
        branches.append(ASPPPooling(in_channels, channels))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(
            ConvBNReLU(len(branches) * channels, channels, kernel_size=1),
            nn.Dropout(0.1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([branch(x) for branch in self.branches], dim=1)  # (B, n_branches*C, h, w)
        return self.project(y)


class DeepLabV3PlusDecoder(nn.Module):
    """DeepLabV3+ decoder: upsample the ASPP output to the stride-4 feature and refine.

    Args:
        high_channels: ASPP output channels.
        low_in_channels: channels of the stride-4 encoder feature (block 2).
        low_channels: its 1x1 projection (DeepLabV3+: 48).
        channels: width of the two 3x3 conv-BN-ReLU (DeepLabV3+: 256).

    Shape:
        high: (B, high_channels, h, w), low: (B, low_in_channels, H/4, W/4) ->
        fused: (B, high_channels + low_channels, H/4, W/4), the upsampled-and-concatenated
        feature (input of the stride-4 auxiliary classifier), and
        out: (B, channels, H/4, W/4).
    """

    def __init__(
        self,
        high_channels: int,
        low_in_channels: int,
        low_channels: int,
        channels: int,
    ) -> None:
        super().__init__()
        self.project_low = ConvBNReLU(low_in_channels, low_channels, kernel_size=1)
        self.fused_channels = high_channels + low_channels
        self.refine = nn.Sequential(
            ConvBNReLU(self.fused_channels, channels, kernel_size=3),
            ConvBNReLU(channels, channels, kernel_size=3),
        )

    def forward(self, high: torch.Tensor, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.project_low(low)
        high = _resize(high, low.shape[-2:])  # first upsampling: to the real block-2 size
        fused = torch.cat([high, low], dim=1)  # (B, C_high + C_low, H/4, W/4)
        return fused, self.refine(fused)


@dataclass
class ModelOutput:
    """What `IMLModel.forward` returns.

    logits: (B, 1, H, W) tamper logits at the input size.
    features: the 5 encoder block features (B, C_i, ~H/s_i, ~W/s_i).
    aux_logits: auxiliary logits, coarse to fine: [(B, 1, ~H/4, ~W/4)], preceded by
        (B, 1, ~H/OS, ~W/OS) with aux_before_upsampling.
    pivot_feature: the block feature the pivot network reads and eq. 7 contrasts,
        features[pivot_block - 1] (the same tensor).
    """

    logits: torch.Tensor
    features: list[torch.Tensor]
    aux_logits: list[torch.Tensor]
    pivot_feature: torch.Tensor


# The Config fields an IMLModel is built from (IMLModel.from_config): what a checkpoint's weights fit.
MODEL_KEYS = ("encoder", "encoder_width", "output_stride", "block1", "aspp_rates", "aspp_channels", "low_level_channels",
              "decoder_channels", "aux_before_upsampling", "pivot_block")


class IMLModel(nn.Module):
    """Encoder + ASPP + DeepLabV3+ decoder + auxiliary classifiers + pivot network.

    Args (keyword-only, as the Config fields of these names; the defaults are the paper preset's):
        encoder, encoder_width, output_stride, block1: the encoder (nclkit.models.encoders.get_encoder).
        aspp_rates, aspp_channels: ASPP's atrous rates and width.
        low_level_channels, decoder_channels: the DeepLabV3+ decoder's projection and width.
        aux_before_upsampling: also an auxiliary classifier on the ASPP output.
        pivot_block: the block (1-5) whose feature the pivot network reads.
        eval_max_side: the longer side `predict_probability` and `evaluate` shrink an image to when
            not told (None: no limit); `from_config` sets it from the config the model is trained with.

    Shape:
        x: (B, 3, H, W), any H, W -> ModelOutput (see there).
    """

    def __init__(
        self,
        *,
        encoder: str = "resnet101",
        encoder_width: int = 64,
        output_stride: int = 8,
        block1: str = "conv1",
        aspp_rates: tuple[int, ...] = (12, 24, 36),
        aspp_channels: int = 256,
        low_level_channels: int = 48,
        decoder_channels: int = 256,
        aux_before_upsampling: bool = False,
        pivot_block: int = 1,
        eval_max_side: int | None = None,
    ) -> None:
        super().__init__()
        self.pivot_block = pivot_block
        self.aux_before_upsampling = aux_before_upsampling
        self.eval_max_side = eval_max_side
        self.encoder = get_encoder(encoder, output_stride, block1=block1, width=encoder_width)
        channels = self.encoder.channels
        self.aspp = ASPP(channels[4], aspp_channels, aspp_rates)
        self.decoder = DeepLabV3PlusDecoder(
            high_channels=aspp_channels,
            low_in_channels=channels[1],
            low_channels=low_level_channels,
            channels=decoder_channels,
        )
        self.classifier = LogitHead(decoder_channels)
        # Paper §3.3: PC loss "after each upsampling": on the fused stride-4 feature (after the first)
        # and on the main logits (after the second); optionally also on the ASPP output (before any).
        heads = [LogitHead(aspp_channels)] if aux_before_upsampling else []
        self.aux_heads = nn.ModuleList(heads + [LogitHead(self.decoder.fused_channels)])
        for part in (self.aspp, self.decoder, self.classifier, self.aux_heads):
            init_weights(part)
        self.pivot = PivotNetwork(channels[pivot_block - 1])

    @classmethod
    def from_config(cls, cfg: Config) -> "IMLModel":
        """The model of a Config: the fields of MODEL_KEYS, and `eval_max_side`."""
        return cls(**{key: getattr(cfg, key) for key in MODEL_KEYS}, eval_max_side=cfg.eval_max_side)

    @property
    def pivot_stride(self) -> int:
        """Nominal stride of the feature the pivot network reads (block `pivot_block`)."""
        return self.encoder.strides[self.pivot_block - 1]

    @property
    def aux_strides(self) -> tuple[int, ...]:
        """Nominal strides of `aux_logits`, coarse to fine."""
        before = (self.encoder.strides[4],) if self.aux_before_upsampling else ()
        return (*before, self.encoder.strides[1])

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = self.encoder(x)
        high = self.aspp(features[4])  # (B, C_aspp, H/OS, W/OS)
        fused, decoded = self.decoder(high, features[1])  # (B, C_f, H/4, W/4), (B, C_d, H/4, W/4)
        logits = _resize(self.classifier(decoded), x.shape[-2:])  # second upsampling: (B, 1, H, W)
        aux_logits = [self.aux_heads[-1](fused)]  # (B, 1, H/4, W/4)
        if self.aux_before_upsampling:
            aux_logits.insert(0, self.aux_heads[0](high))  # (B, 1, H/OS, W/OS)
        return ModelOutput(logits=logits, features=features, aux_logits=aux_logits,
                           pivot_feature=features[self.pivot_block - 1])


def build_model(preset_or_config: str | Config = "quick", **overrides) -> IMLModel:
    """An IMLModel from a preset name ("paper", "quick") or a Config, with Config overrides.

    Example: `build_model("paper", output_stride=16)`.
    """
    if not isinstance(preset_or_config, (str, Config)):
        raise TypeError(
            f"build_model expects a preset name or a Config, got {type(preset_or_config).__name__}"
        )
    return IMLModel.from_config(get_config(preset_or_config, **overrides))
