"""The encoders nclkit builds and the options each honours, as plain data (no torch).

`Config.validate` checks a config against this table, so an encoder name that does not exist or an
option its encoder cannot honour is refused before any model is built, naming the encoder and the
option; `nclkit.models.encoders` builds exactly these encoders and refuses the same values.

- `output_stride`: the ResNets replace the stride of their last stages by atrous convolution (8, 16
  or 32); Swin-T has no dilated form: 32 only.
- `block1`: where block 1 ends. A ResNet reads it either way ("conv1", stride 2, or "maxpool",
  stride 4); Swin-T's block 1 is its 4x4 patch embedding, a stride-4 map: "maxpool" only.
- `encoder_width`: block 1's channels. The BasicBlock ResNets (10, 18, 34) take any width >= 8;
  the Bottleneck ResNets and Swin-T have their own: 64 for the ResNets, Swin-T's 96 channels are
  fixed and counted as the standard width 64.
"""
from __future__ import annotations

from typing import Any

__all__ = ["ENCODER_OPTIONS", "ENCODER_NAMES", "OUTPUT_STRIDES", "BLOCK1_READINGS", "check_encoder_options",
           "encoder_defaults"]

# The encoder's output strides (atrous convolution in the last stages, DeepLabV3+).
OUTPUT_STRIDES = (8, 16, 32)
# Where block 1 ends (Table 6): "conv1" = the ResNet paper's stage 1 (stride 2), "maxpool" = with the max-pool (stride 4).
BLOCK1_READINGS = ("conv1", "maxpool")
_ANY_WIDTH = None  # any encoder_width >= 8

_RESNET = {"output_stride": OUTPUT_STRIDES, "block1": BLOCK1_READINGS}
# Each encoder's honoured values per option (None: any value the Config allows), first = its default.
ENCODER_OPTIONS: dict[str, dict[str, tuple[Any, ...] | None]] = {
    "resnet10": {**_RESNET, "encoder_width": _ANY_WIDTH},
    "resnet18": {**_RESNET, "encoder_width": _ANY_WIDTH},
    "resnet34": {**_RESNET, "encoder_width": _ANY_WIDTH},
    "resnet50": {**_RESNET, "encoder_width": (64,)},
    "resnet101": {**_RESNET, "encoder_width": (64,)},
    "swin_t": {"output_stride": (32,), "block1": ("maxpool",), "encoder_width": (64,)},
}
ENCODER_NAMES = tuple(ENCODER_OPTIONS)


def check_encoder_options(encoder: str, **options: Any) -> None:
    """ValueError naming the encoder and the option when `encoder` does not exist or cannot honour a value."""
    if encoder not in ENCODER_OPTIONS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {sorted(ENCODER_OPTIONS)}")
    for key, value in options.items():
        allowed = ENCODER_OPTIONS[encoder][key]
        if allowed is not None and value not in allowed:
            shown = ", ".join(map(repr, allowed))
            raise ValueError(f"encoder {encoder!r} does not support {key}={value!r}; it supports {shown}")


def encoder_defaults(encoder: str) -> dict[str, Any]:
    """The value `encoder` takes for each option it fixes (its first honoured one)."""
    if encoder not in ENCODER_OPTIONS:
        raise ValueError(f"unknown encoder {encoder!r}; expected one of {sorted(ENCODER_OPTIONS)}")
    return {key: allowed[0] for key, allowed in ENCODER_OPTIONS[encoder].items() if allowed is not None}
