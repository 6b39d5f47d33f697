"""Helpers several test files share: a small config, images and records on disk, stand-in models, the one-line error check."""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from nclkit.data import Record
from nclkit.presets import get_config


def small_cfg(**kw):
    """The quick preset at 64 px, batch 4, one epoch, no workers."""
    return get_config("quick", crop_size=64, batch_size=4, epochs=1, num_workers=0, eval_max_side=64, **kw)


def make_pair(folder: Path, name: str, hw=(40, 48), region=(slice(8, 20), slice(10, 30))) -> Record:
    """A tampered image (RGB noise) and its 0/255 mask of a known region; returns the Record."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name))
    Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    m = np.zeros(hw, np.uint8)
    m[region] = 255
    Image.fromarray(m).save(folder / f"{name}_gt.png")
    return Record(str(folder / f"{name}.png"), str(folder / f"{name}_gt.png"), 1, "t", "test", name)


def one_line_error(capsys, *needles) -> str:
    """The last stderr line names every needle; no traceback was printed."""
    full = capsys.readouterr().err
    assert "Traceback" not in full, full[-2000:]
    last = [line for line in full.strip().splitlines() if line.startswith("nclkit ")][-1]
    for needle in needles:
        assert needle in last, (needle, last)
    return last


# Stand-in models whose output is known: predicting and evaluating need no trained weights.

@dataclass
class LogitsOut:
    logits: torch.Tensor


class RedDetector(nn.Module):
    """Logit = gain * (red - green) + bias in normalised units: red regions read as tampered."""

    def __init__(self, gain: float = 4.0, bias: float = -0.5):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([gain, -gain, 0.0]).view(1, 3, 1, 1))
            self.conv.bias.fill_(bias)

    def forward(self, x):
        return LogitsOut(self.conv(x))


def _sample(rng, h, w, box):
    image = rng.integers(60, 120, (h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if box is not None:
        y0, y1, x0, x1 = box
        mask[y0:y1, x0:x1] = 1
        image[y0:y1, x0:x1, 0] = rng.integers(150, 256, (y1 - y0, x1 - x0))
        image[y0:y1, x0:x1, 1] = rng.integers(0, 90, (y1 - y0, x1 - x0))
    image[0, :8, 0] = 255  # a few false-positive pixels so that metrics are not trivially 1
    image[0, :8, 1] = 0
    return image, mask


def write_toy_records(folder: Path) -> list[Record]:
    """Three tampered images (a red, low-green region) and two authentic ones of assorted sizes, on disk."""
    rng = np.random.default_rng(0)
    out = []
    specs = [("t1", 40, 52, (5, 20, 10, 30)), ("t2", 33, 47, (0, 33, 0, 10)), ("t3", 64, 30, (20, 50, 5, 25)),
             ("a1", 36, 36, None), ("a2", 50, 41, None)]
    for name, h, w, box in specs:
        image, mask = _sample(rng, h, w, box)
        Image.fromarray(image).save(folder / f"{name}.png")
        mask_path = None
        if box is not None:
            mask_path = str(folder / f"{name}_gt.png")
            Image.fromarray(mask * 255).save(mask_path)
        out.append(Record(str(folder / f"{name}.png"), mask_path, int(box is not None), "toy", "test", name))
    return out


class TinyModel(RedDetector):
    """A RedDetector (gain 5, no bias) with an eval size that records the inputs it is given."""

    def __init__(self):
        super().__init__(gain=5.0, bias=0.0)
        self.eval_max_side = 64
        self.seen = []

    def forward(self, x):
        self.seen.append((tuple(x.shape), self.training, torch.is_grad_enabled()))
        return super().forward(x)


def random_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def square_batch(b=2, size=64, kind="square"):
    """Random images and hand-drawn masks: two tampered rectangles off the patch grid, none, or one aligned patch."""
    mask = torch.zeros(b, 1, size, size)
    if kind == "square":
        mask[0, :, 10:40, 12:44] = 1
        if b > 1:
            mask[1, :, 30:60, 5:25] = 1
    elif kind == "single_patch":  # exactly one tampered 8x8 patch (P=2 at stride 4), aligned: no contour
        mask[0, :, 8:16, 8:16] = 1
    return torch.randn(b, 3, size, size), mask


class StandInModel:
    """What the criterion reads from a model, at a fraction of its cost: a pivot network, and outputs of the
    real model's shapes (blocks at strides 2, 4, 8, 16, 16; auxiliary logits at its auxiliary strides) filled
    with random leaf tensors, so that a test can see which of them a loss sends gradients to."""

    strides = (2, 4, 8, 16, 16)

    def __init__(self, cfg, channels=(8, 12, 16, 20, 24), seed=0):
        from nclkit.models import PivotNetwork

        self.channels = channels
        self.aux_strides = (cfg.output_stride, 4) if cfg.aux_before_upsampling else (4,)
        self.generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.pivot_block = cfg.pivot_block
        self.pivot = PivotNetwork(channels[cfg.pivot_block - 1]).train()

    def _leaf(self, *shape, scale=1.0, shift=0.0):
        return (torch.randn(*shape, generator=self.generator) * scale + shift).requires_grad_()

    def __call__(self, x):
        from nclkit.models import ModelOutput

        B, _, H, W = x.shape
        features = [self._leaf(B, c, H // s, W // s) for c, s in zip(self.channels, self.strides)]
        # logits spread around a non-zero value: contour and other pixels then have unlike BCE
        logits = self._leaf(B, 1, H, W, scale=2.0, shift=0.5)
        aux = [self._leaf(B, 1, H // s, W // s, scale=2.0, shift=0.5) for s in self.aux_strides]
        return ModelOutput(logits=logits, features=features, aux_logits=aux,
                           pivot_feature=features[self.pivot_block - 1])

    def train(self):
        self.pivot.train()
        return self

    def eval(self):
        self.pivot.eval()
        return self
