"""Every number nclkit trains with, in one place, with where it comes from.

`paper` is the model and recipe of the NCL paper (ICCV 2023, §3 and §4 "Implementation Details").
`quick` is the same code with smaller numbers, tuned so that a 2-core CPU trains a useful model
on the built-in synthetic set in minutes; `real` is the CPU recipe for real photos; `course_gpu` is
the paper's recipe cut to the time of a free Colab T4 (the course). Readings of ambiguous passages
are argued in docs/interpretation.md.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Callable

from .encoder_options import BLOCK1_READINGS, ENCODER_OPTIONS, OUTPUT_STRIDES, check_encoder_options, encoder_defaults

__all__ = ["Config", "PRESETS", "ABLATIONS", "ABLATION_TABLES", "ABLATION_LABELS", "ablation_label", "get_config", "apply_overrides",
           "VARIANTS", "BLOCK1_READINGS", "OUTPUT_STRIDES", "QUICK_EPOCHS", "QUICK_REAL_EPOCHS"]

# Table 5: Base (plain BCE), Base+Pivot (BCE + NCL), Base+Pivot+PC (NCL + PC = full NCL).
VARIANTS = ("base", "pivot", "full")
# The ablation rows of Tables 5 and 6, each as the Config changes that make it; "full" (pivot after
# block 1) is both Table 5's last row and Table 6's first.
ABLATIONS: dict[str, dict[str, Any]] = {
    "base": {"variant": "base"}, "pivot": {"variant": "pivot"}, "full": {"variant": "full", "pivot_block": 1},
    "block2": {"variant": "full", "pivot_block": 2}, "block5": {"variant": "full", "pivot_block": 5},
}
# The rows of each ablation table, in the paper's order.
ABLATION_TABLES: dict[str, tuple[str, ...]] = {"5": ("base", "pivot", "full"), "6": ("full", "block2", "block5")}
# A row's label in a table where it is not the run's name: Table 6 calls full NCL "block1".
ABLATION_LABELS: dict[str, dict[str, str]] = {"6": {"full": "block1"}}

@dataclass
class Config:
    name: str = "paper"
    # --- model (paper §3.1, §4) ---
    encoder: str = "resnet101"            # paper §3.1: ResNet-101 with atrous convolution
    encoder_width: int = 64               # block 1's channels (64 in the ResNet paper; narrower: ResNet-10/18/34 only)
    output_stride: int = 8                # paper §4: "The outputstride is set to 8"
    aspp_rates: tuple[int, ...] = (12, 24, 36)  # paper §4: rates 1, 12, 24, 36; "1" is the 1x1 branch
    aspp_channels: int = 256              # DeepLabV3+ standard
    low_level_channels: int = 48          # DeepLabV3+ standard projection of the stride-4 feature
    decoder_channels: int = 256           # DeepLabV3+ standard
    # --- NCL method (paper §3.2-3.4) ---
    variant: str = "full"                 # Table 5 row: base | pivot | full
    pivot_block: int = 1                  # Table 6: best after block 1
    block1: str = "conv1"                 # ResNet paper's stage 1 = conv1 (stride 2); "maxpool": with the max-pool (stride 4)
    patch_size: int = 1                   # paper §3.2: block 1 is "point-wise classified", one cell = one patch
    tolerance: float = 0.0                # ours: exact categorisation; >0 absorbs noisy masks
    tau: float = 0.1                      # ours: paper gives no tau (docs/interpretation.md)
    omega: float = 0.01                   # paper §4: weight of L_NCL in eq. 9
    mu: float = 0.9                       # paper §4: weight of contour pixels in eq. 8
    aux_weight: float = 1.0               # paper §3.3: auxiliary PC losses are "accumulated" (summed), eq. 9 weighs none
    aux_before_upsampling: bool = False   # paper §3.3: aux classifiers "after each upsampling"; True adds one on ASPP's output
    max_patches: int = 128                # ours: cap on sampled tampered/authentic/contour patches per image
    sample_weighting: bool = True         # eq. 7 sums over all patches: sampled negatives weighted N/k to estimate the sums
    balanced_bce: bool = False            # ours, base/pivot only: tampered and authentic pixels weigh half each in the BCE
                                          # (class balancing alone, to compare with eq. 8's contour weighting)
    # --- data ---
    crop_size: int = 512                  # paper §4
    scale_min: float = 0.5                # DeepLabV3+ protocol [4]: random scale in [0.5, 2.0] before the crop
    scale_max: float = 2.0                # (scale_min = scale_max = 1 turns it off)
    batch_size: int = 4                   # paper §4
    num_workers: int = 4
    cache_images: bool = False            # ours: keep decoded training images in memory (small sets, num_workers 0)
    eval_max_side: int = 2048             # longer images are resized for the forward pass, map resized back
    train_max_side: int = 0               # >0: training images scaled down to this longer side before the crop
    train_authentic: bool = True          # train on the split's authentic images too (BCE negatives only)
    forged: int = 0                       # beyond the paper: forgeries made from the train split's own authentic
                                          # photos and masks (nclkit.data.forge), added to its training images
    # --- optimisation (paper §4, following DeepLabV3+) ---
    epochs: int = 70                      # paper §4.2: "early stop the training epoch at 70"
    lr: float = 0.007
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    amp: str = "auto"                     # auto: GPU bf16 (fp16+scaler without it); CPU bf16 if native, else fp32
    channels_last: bool = True            # NHWC memory: faster convolutions on GPUs and on bf16 CPUs
    compile: bool = False
    seed: int = 0
    max_train_seconds: float = 0.0        # 0 = no time budget; >0 stops training after that many seconds
    val_every: int = 1                    # epochs between validations (model selection on split "val")

    def __post_init__(self) -> None:
        self.validate()  # types first: a JSON list, a string or a number may stand where the rates go
        self.aspp_rates = tuple(int(r) for r in self.aspp_rates)

    def validate(self) -> None:
        """Refuse a value of the wrong type or range: one line naming the key, the value and what is allowed."""
        _check_types(self)
        _check_ranges(self)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r}; expected one of {VARIANTS}")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride={self.output_stride}; expected 8, 16 or 32")
        if not 1 <= self.pivot_block <= 5:
            raise ValueError(f"pivot_block={self.pivot_block}; expected 1..5 (Table 6)")
        if self.block1 not in BLOCK1_READINGS:
            raise ValueError(f"block1={self.block1!r}; expected one of {BLOCK1_READINGS}")
        check_encoder_options(self.encoder, output_stride=self.output_stride, block1=self.block1,
                              encoder_width=self.encoder_width)
        if not 0.0 < self.scale_min <= self.scale_max:
            raise ValueError(f"scale_min={self.scale_min}, scale_max={self.scale_max}; expected 0 < scale_min <= scale_max")
        if self.patch_size < 1:
            raise ValueError(f"patch_size={self.patch_size}; expected >= 1")
        if not 0.0 <= self.tolerance < 0.5:
            raise ValueError(f"tolerance={self.tolerance}; expected 0 <= tolerance < 0.5")
        if not 0.0 <= self.mu <= 1.0:
            raise ValueError(f"mu={self.mu}; expected 0 <= mu <= 1")
        if self.tau <= 0:
            raise ValueError(f"tau={self.tau}; expected > 0")
        if self.forged < 0:
            raise ValueError(f"forged={self.forged}; expected >= 0 (0 = the split's own images only)")
        if self.balanced_bce and self.variant == "full":
            raise ValueError("balanced_bce=True with variant 'full': full NCL has no plain BCE to balance (eq. 8 "
                             "weighs its pixels); use it with variant base or pivot")
        if self.amp not in ("auto", "bf16", "fp16", "fp32"):
            raise ValueError(f"amp={self.amp!r}; expected auto, bf16, fp16 or fp32")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["aspp_rates"] = list(self.aspp_rates)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: Any = None) -> "Config":
        """A Config from `to_dict`'s output: every key present, every value checked as `validate` checks it.

        `source` (a config.json, a checkpoint) opens the message of the ValueError raised for a dict
        that is not a complete, valid config.
        """
        where = f"{source}: " if source is not None else ""
        if not isinstance(d, dict):
            raise ValueError(f"{where}the config is a {type(d).__name__}; expected an object of key: value pairs")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"{where}unknown config keys {unknown}; known keys: {sorted(known)}")
        missing = [k for k in known if k not in d]
        if missing:
            raise ValueError(f"{where}the config lacks keys {missing} (written by another nclkit version?)")
        try:
            return cls(**d)
        except ValueError as err:
            raise ValueError(f"{where}{err}") from None

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)


# What a value of each annotated field type may be, in the words error messages use.
_KINDS = {"int": "a whole number", "float": "a finite number", "bool": "true or false", "str": "text",
          "tuple[int, ...]": "a list of whole numbers, e.g. [12, 24, 36] (--set aspp_rates=12,24,36)"}


def _has_kind(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    return isinstance(value, (list, tuple)) and all(_has_kind(v, "int") for v in value)


def _field_kinds() -> dict[str, str]:
    return {f.name: f.type for f in fields(Config)}


def _check_types(cfg: "Config") -> None:
    """Every field against its annotation (`int`, `float`, `bool`, `str`, `tuple[int, ...]`)."""
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if not _has_kind(value, f.type):
            raise ValueError(f"{f.name}={value!r}; expected {_KINDS[f.type]}")


def _at_least(low: float) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: v >= low), f">= {low:g}"


# The ranges of the numeric fields whose checks are one comparison (the others are in `validate`).
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "encoder_width": _at_least(8),
    "aspp_rates": (lambda v: len(v) > 0 and min(v) >= 1, "one or more atrous rates >= 1, e.g. 12,24,36"),
    "aspp_channels": _at_least(1), "low_level_channels": _at_least(1), "decoder_channels": _at_least(1),
    "omega": _at_least(0), "aux_weight": _at_least(0), "max_patches": _at_least(0),
    "crop_size": _at_least(1), "batch_size": _at_least(1), "num_workers": _at_least(0),
    "eval_max_side": _at_least(1), "train_max_side": _at_least(0), "epochs": _at_least(1),
    "lr": (lambda v: v > 0, "> 0"), "momentum": (lambda v: 0 <= v < 1, "0 <= momentum < 1"),
    "weight_decay": _at_least(0), "poly_power": _at_least(0), "seed": (lambda v: 0 <= v < 2**32, "0 .. 2**32 - 1"),
    "max_train_seconds": (lambda v: v >= 0, ">= 0 (0 = no time budget)"), "val_every": _at_least(1),
}


def _check_ranges(cfg: "Config") -> None:
    """The one-comparison ranges of _RANGES, then the relations between fields."""
    for key, (ok, allowed) in _RANGES.items():
        value = getattr(cfg, key)
        if not ok(value):
            shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
            raise ValueError(f"{key}={shown!r}; expected {allowed}")
    if cfg.variant != "base" and cfg.max_patches < 1:
        raise ValueError(f"max_patches={cfg.max_patches}; the {cfg.variant!r} variant samples patches for the NCL "
                         "loss: expected >= 1 (0 is for variant 'base')")


PRESETS: dict[str, Config] = {
    "paper": Config(name="paper"),
    # Same code, smaller numbers: a half-width ResNet-10 at output stride 32 on whole 128 px images, a
    # fixed 40-epoch schedule that always completes (the same model on every CPU; a slower one takes
    # longer and says so after epoch 1); measured choices in docs/reproduction.md.
    "quick": Config(
        name="quick",
        encoder="resnet10",     # ResNet-18 with one block per stage: 1.5x its speed at 128 px
        encoder_width=32,       # half width: 2.1x the fp32 step rate of width 64 (AVX2 and AVX-512 alike)
        output_stride=32,       # a further 1.3x; per epoch as good as OS 16 at width 64
        aspp_rates=(1, 2, 3),   # scaled to the 4x4 ASPP input of a 128 px image at OS 32
        aspp_channels=64,
        low_level_channels=32,
        decoder_channels=64,
        patch_size=2,           # kept from the tuned preset: 2x2 cells = 4x4 px at block 1 (stride 2)
        crop_size=128,          # the synthetic images whole (flips only): better per second than 96 px crops
        scale_min=1.0,          # no random scaling: the 128 px synthetic images are used whole
        scale_max=1.0,
        batch_size=32,          # 1.33x batch 8's images/s on 2 cores; with lr 0.2, F1 0.61 vs 0.57 in the same 5 min
        num_workers=0,          # on 2 cores a loader process steals a core from the math threads; 128 px PNGs decode fast
        cache_images=True,      # 800 decoded 128 px images are 52 MB; saves PNG decoding, ~6% of an epoch
        eval_max_side=512,
        epochs=40,              # about 10 min on 2 AVX2 cores in fp32 for the 800 training images of `nclkit synth`
        lr=0.2,                 # batch 8's 0.05 scaled linearly with the batch (docs/reproduction.md, quick preset)
        max_patches=64,
        max_train_seconds=0.0,  # no time guard: a cut schedule would give each machine another model
        amp="auto",             # bf16 where the CPU has it natively (1.4x faster here), fp32 elsewhere
        channels_last=True,     # 6% faster bf16 steps on this CPU (oneDNN's native layout), neutral in fp32
    ),
    # The CPU recipe for real photos of CASIA v1's size (384x256): a half-width ResNet-10 at OS 16, trained on the
    # images scaled down to 192 px and predicted at that scale; choices measured on the val split
    # of CASIA v1's grouped split (docs/reproduction.md, "Real forgeries").
    "real": Config(
        name="real",
        encoder="resnet10",
        encoder_width=32,       # half width: val F1 0.190 in 20 epochs, as full width's 0.189 in 50, at 2.3x the step rate
        output_stride=16,
        aspp_rates=(2, 4, 6),
        aspp_channels=64,
        low_level_channels=32,
        decoder_channels=64,
        patch_size=2,           # as the quick preset: 2x2 cells = 4x4 px at block 1
        train_max_side=192,     # whole-photo context in a 128 px crop, 4x cheaper than full size
        eval_max_side=192,      # predict at the scale it learned, map resized back to the photo
        crop_size=128,
        scale_min=1.0,          # no random scaling: [0.5, 2.0] gave val F1 0.194 vs 0.190 (noise) at 10% more time
        scale_max=1.0,
        train_authentic=False,  # tampered photos only: authentic ones hold nothing to contrast (eq. 7), halve the epoch
        batch_size=32,
        num_workers=0,
        cache_images=True,      # 643 decoded CASIA v1 training photos are ~190 MB
        epochs=20,              # 6 min of steps on 2 AVX2 cores in fp32; val F1 moves within 0.17-0.19 from epoch 8 on
        lr=0.2,
        max_patches=64,
        max_train_seconds=1800.0,  # at most 30 minutes of training on 2 CPU cores
        val_every=2,            # a validation curve at ~4 s per point
        amp="auto",
        channels_last=True,
    ),
    # The course's GPU recipe: the paper preset (optimiser, losses, omega, mu, pivot) with only what the time of a
    # free Colab T4 (16 GB) forces changed. The paper's ResNet-101 at output stride 8 on 512 px crops for 70 epochs
    # takes hours per run there; the course trains six runs (notebooks 05, 07, 08; nclkit.course estimates them).
    "course_gpu": Config(
        name="course_gpu",
        encoder="resnet50",     # ~1.4x the speed of ResNet-101 (half its blocks in stage 4, same widths)
        output_stride=16,       # ~1.5x faster than stride 8 (measured for ResNet-101 on an H200)
        aspp_rates=(6, 12, 18),  # DeepLabV3+'s rates for output stride 16 (half those of stride 8)
        crop_size=256,          # CASIA v1 photos are 384x256: full-height crops with no padding
        scale_min=1.0,          # no random rescaling: a downscaled 256 px photo would be mostly padding
        scale_max=1.0,
        batch_size=16,          # 256 px crops are 1/4 of 512 px ones: 4x the paper's batch in the same memory
        lr=0.014,               # the paper's 0.007 at batch 4, scaled by sqrt(16 / 4) for batch 16
        num_workers=2,          # Colab gives 2 CPU cores
        cache_images=True,      # 643 decoded CASIA v1 training photos are ~190 MB
        train_authentic=False,  # tampered photos only: authentic ones hold nothing to contrast (eq. 7)
        epochs=30,              # the course's six GPU runs in under an hour on a T4 (nclkit.course.course_gpu_minutes)
        val_every=5,            # validation predicts whole photos: every epoch would add ~10 % on a T4
    ),
}

# Epochs of the course's own runs at the quick scale (no GPU, or NCLKIT_QUICK=1) on the synthetic set:
# 200 steps of 32 images, under two minutes on 2 cores with bf16. 10 epochs (100 steps) left the
# test F1 below calling every pixel tampered (0.28 against 0.31); 20 reach 0.43-0.49 over seeds 0-2.
QUICK_EPOCHS = 20
# On real photos (CASIA v1, the `real` preset) full NCL's validation F1 is 0.17 by epoch 4 and flat
# after it (docs/reproduction.md), so the course's real-data run stops at 5 of the preset's 20 epochs.
QUICK_REAL_EPOCHS = 5


def ablation_label(table: str, run: str) -> str:
    """The label of ablation run `run` (a key of ABLATIONS) in Table `table`."""
    return ABLATION_LABELS.get(table, {}).get(run, run)


def get_config(preset: str | Config = "quick", **overrides: Any) -> Config:
    """The named preset as a fresh Config, with keyword overrides applied.

    An `encoder` override swaps the preset's encoder: its options that the new encoder cannot honour
    and that are not overridden too become the new encoder's own (`get_config("course_gpu",
    encoder="swin_t")` is Swin-T at output stride 32; naming `output_stride=16` as well is refused).
    """
    if isinstance(preset, Config):
        base = preset
    else:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        base = PRESETS[preset]
    if "encoder" in overrides:
        overrides = {**_encoder_options_of(base, overrides["encoder"]), **overrides}
    return base.replace(**overrides) if overrides else base.replace()


def _encoder_options_of(base: Config, encoder: Any) -> dict[str, Any]:
    """The options of `base` that `encoder` cannot honour, as that encoder's own values."""
    if encoder not in ENCODER_OPTIONS:
        return {}  # Config.validate names the unknown encoder
    own = encoder_defaults(encoder)
    return {key: value for key, value in own.items() if ENCODER_OPTIONS[encoder][key] is not None
            and getattr(base, key) not in ENCODER_OPTIONS[encoder][key]}


def _parse_value(key: str, text: str, kind: str) -> Any:
    """`--set key=text` as a value of the field's annotated kind; ValueError naming key, text and the kind."""
    try:
        if kind == "bool" and text.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return text.lower() in ("1", "true", "yes", "on")
        if kind.startswith("tuple"):
            return tuple(int(v) for v in text.split(",") if v.strip())
        if kind in ("int", "float", "str"):
            return {"int": int, "float": float, "str": str}[kind](text)
    except ValueError:
        pass
    raise ValueError(f"{key}={text!r}; expected {_KINDS[kind]}")


def apply_overrides(cfg: Config, items: list[str] | None) -> Config:
    """Apply `key=value` strings (the CLI's `--set`) to a Config, with typed parsing; `encoder=...` swaps
    the encoder as `get_config` does."""
    if not items:
        return cfg
    current = cfg.to_dict()
    changes: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in current:
            raise ValueError(f"unknown config key {key!r}; known keys: {sorted(current)}")
        changes[key] = _parse_value(key, text.strip(), _field_kinds()[key])
    if "encoder" in changes:  # as get_config does: the new encoder's own options where the old ones do not apply
        changes = {**_encoder_options_of(cfg, changes["encoder"]), **changes}
    return cfg.replace(**changes)
