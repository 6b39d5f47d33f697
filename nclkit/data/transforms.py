"""Joint image/mask transforms (torchvision.transforms.v2 on tv_tensors).

Train: optional resize of the longer side, random scaling by a factor drawn uniformly from
`scale_range` (DeepLabV3+'s protocol, which the paper follows: 0.5-2.0), random
crop to `crop_size` with zero padding where the image is smaller (paper §4: 512x512 crops),
random horizontal and vertical flips.
Padding is marked by a `valid` map (1 = real pixel, 0 = padding) so losses and metrics can
ignore it. Eval: optional resize only, full image.

The image is normalised with ImageNet's mean/std. That is only a fixed, conventional input
scaling: nclkit never loads ImageNet weights (the paper is pre-training-free).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .errors import DataError

__all__ = ["MEAN", "STD", "to_tensor_image", "denormalize", "JointTransform", "build_transforms"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def to_tensor_image(image: np.ndarray) -> torch.Tensor:
    """uint8 RGB (H, W, 3) -> normalised float32 (3, H, W)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {image.dtype} {image.shape}")
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (3, H, W)
    return _normalize(t.float().div_(255.0))


def _normalize(t: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, dtype=t.dtype, device=t.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=t.dtype, device=t.device).view(3, 1, 1)
    return (t - mean) / std


def denormalize(t: torch.Tensor) -> np.ndarray:
    """Inverse of `to_tensor_image`: float (3, H, W) -> uint8 (H, W, 3), for display."""
    mean = torch.tensor(MEAN, dtype=t.dtype, device=t.device).view(3, 1, 1)
    std = torch.tensor(STD, dtype=t.dtype, device=t.device).view(3, 1, 1)
    x = (t.detach() * std + mean).clamp(0, 1).mul(255).round().byte()
    return x.permute(1, 2, 0).cpu().numpy()  # (H, W, 3)


class _ResizeLongSide(v2.Transform):
    """Scale down so that the longer side is at most `max_side` (image bilinear+antialias, masks
    nearest); smaller images are left as they are, as the evaluator's forward pass does."""

    def __init__(self, max_side: int) -> None:
        super().__init__()
        self.max_side = int(max_side)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        s = min(1.0, self.max_side / max(h, w))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return v2.functional.resize(inpt, params["size"], antialias=True)


class _RandomScale(v2.Transform):
    """Scale by a factor drawn uniformly from [low, high] (image bilinear+antialias, masks nearest)."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = float(low), float(high)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = v2.query_size(flat_inputs)
        s = self.low + (self.high - self.low) * float(torch.rand(()))
        return {"size": [max(1, round(h * s)), max(1, round(w * s))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return v2.functional.resize(inpt, params["size"], antialias=True)


class JointTransform:
    """Apply the same geometric transform to image, mask and valid map, then normalise.

    Args:
        crop_size: random crop side (train), None for no crop (eval).
        flip: random horizontal and vertical flips, p = 0.5 each.
        resize: longer side to scale down to first (never up), None to keep the size.
        scale_range: (low, high) random scale factor applied before the crop; None or (1, 1) for none.
    Call:
        image uint8 (H, W, 3), mask uint8 (H, W) in {0,1} -> dict of
        image float32 (3, S, S), mask float32 (1, S, S), valid float32 (1, S, S).
    """

    def __init__(
        self,
        crop_size: int | None,
        flip: bool,
        resize: int | None = None,
        scale_range: tuple[float, float] | None = None,
    ) -> None:
        ops: list[v2.Transform] = []
        if resize is not None:
            if resize < 1:
                raise ValueError(f"resize={resize}; expected a positive side length or None")
            ops.append(_ResizeLongSide(resize))
        if scale_range is not None and tuple(scale_range) != (1.0, 1.0):
            low, high = scale_range
            if not 0 < low <= high:
                raise ValueError(f"scale_range={tuple(scale_range)}; expected 0 < low <= high")
            ops.append(_RandomScale(low, high))  # before the crop, as DeepLabV3+ does
        if crop_size is not None:
            if crop_size < 1:
                raise ValueError(f"crop_size={crop_size}; expected >= 1")
            # Zero fill for the image, the mask and the valid map: padding is authentic and invalid.
            ops.append(v2.RandomCrop(crop_size, pad_if_needed=True, fill=0, padding_mode="constant"))
        if flip:
            ops += [v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.5)]
        self.geometric = v2.Compose(ops) if ops else None
        self.crop_size, self.flip, self.resize = crop_size, flip, resize
        self.scale_range = None if scale_range is None else tuple(scale_range)

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> dict[str, torch.Tensor]:
        if image.shape[:2] != mask.shape[:2]:
            raise DataError(f"image size {image.shape[:2]} and mask size {mask.shape[:2]} differ")
        img = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))  # (3, H, W)
        msk = tv_tensors.Mask(torch.from_numpy(np.ascontiguousarray(mask))[None])  # (1, H, W)
        valid = tv_tensors.Mask(torch.ones_like(msk))
        if self.geometric is not None:
            img, msk, valid = self.geometric(img, msk, valid)
        return {
            "image": _normalize(img.as_subclass(torch.Tensor).float().div_(255.0)),
            "mask": msk.as_subclass(torch.Tensor).float(),
            "valid": valid.as_subclass(torch.Tensor).float(),
        }

    def __repr__(self) -> str:
        return (f"JointTransform(crop_size={self.crop_size}, flip={self.flip}, resize={self.resize}, "
                f"scale_range={self.scale_range})")


def build_transforms(train: bool, crop_size: int | None = None, train_max_side: int = 0,
                     scale_range: tuple[float, float] = (1.0, 1.0), resize: int | None = None) -> JointTransform:
    """The train (scale + crop + flips) or eval (full image) transform, from plain values (the Config
    fields of these names: `ManifestDataset` passes a Config's).

    Args:
        train: scale down to `train_max_side` (0 = keep), random scale in `scale_range`, random crop
            to `crop_size` and flips when True; the full image when False.
        resize: optional longer-side limit applied first (both modes); in training it defaults to
            `train_max_side`, so a model can learn at the scale it predicts at (eval_max_side).
    """
    if train:
        if crop_size is None:
            raise ValueError("a training transform needs crop_size")
        if resize is None and train_max_side:
            resize = int(train_max_side)
        scale = (float(scale_range[0]), float(scale_range[1]))
        return JointTransform(crop_size=int(crop_size), flip=True, resize=resize, scale_range=scale)
    return JointTransform(crop_size=None, flip=False, resize=resize)
