"""Predict a tamper-probability map at an image's original resolution.

The forward pass sees the image with its longer side resized down to ``max_side`` (if longer) and
zero-padded (in normalised space, i.e. the dataset mean colour) to a multiple of 32, the largest
encoder output stride; the probability map is cropped back and resized bilinearly to the original
size, so every metric is computed at the resolution of the ground truth (docs/evaluation.md).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.transforms import to_tensor_image
from .devices import inference_dtype

__all__ = ["PAD_MULTIPLE", "predict_probability"]

PAD_MULTIPLE = 32  # the deepest encoder stride; every feature map then has an integer size


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _default_max_side(model: nn.Module) -> int | None:
    """The model's own `eval_max_side` (IMLModel.from_config sets it), None for any other model."""
    return getattr(model, "eval_max_side", None)


def predict_probability(
    model: nn.Module,
    image: np.ndarray,
    device: str | torch.device | None = None,
    max_side: int | None = None,
) -> np.ndarray:
    """Tamper probability of every pixel of one image, at the image's original resolution.

    Args:
        model: nclkit model; ``model(x).logits`` is (B, 1, H, W) at the input size.
        image: uint8 RGB. Shape (H, W, 3).
        device: where to run; None = the model's device (if given, the model is moved there).
        max_side: longer side of the forward pass; None = ``model.eval_max_side`` (no limit
            when the model has none). Smaller images are never upscaled.
    Returns:
        float32 probabilities in [0, 1]. Shape (H, W).
    Raises:
        FloatingPointError: the model's output is NaN (weights of a diverged run).
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected a uint8 RGB image of shape (H, W, 3), got {got}")
    if device is not None:
        model.to(device)
    dev = _model_device(model)
    max_side = _default_max_side(model) if max_side is None else max_side
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side={max_side}; expected a positive number of pixels or None")

    h, w = image.shape[:2]
    work = image
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 wants (W, H)
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)  # area: anti-aliased downscale
    if not work.flags.writeable:  # e.g. np.asarray(PIL image); torch warns on read-only arrays
        work = work.copy()
    wh, ww = work.shape[:2]
    x = to_tensor_image(work).unsqueeze(0).to(dev)  # (1, 3, wh, ww)
    pad_h, pad_w = -wh % PAD_MULTIPLE, -ww % PAD_MULTIPLE
    x = F.pad(x, (0, pad_w, 0, pad_h))  # (1, 3, wh + pad_h, ww + pad_w), zeros = mean colour

    was_training = model.training
    model.eval()
    try:
        dtype = inference_dtype(dev)  # bf16 on GPUs that have it, fp16 on older ones, fp32 on a CPU
        with torch.inference_mode(), torch.autocast("cuda", dtype or torch.float16, enabled=dtype is not None):
            out = model(x)
            logits = out.logits if hasattr(out, "logits") else out
            prob = torch.sigmoid(logits.float())[:, :, :wh, :ww]  # (1, 1, wh, ww)
            if (wh, ww) != (h, w):
                prob = F.interpolate(prob, size=(h, w), mode="bilinear", align_corners=False)
            result = prob[0, 0].clamp_(0.0, 1.0).cpu().numpy()  # (H, W)
    finally:
        model.train(was_training)
    if np.isnan(result).any():  # finite but exploded weights (a diverged run) give NaN maps
        raise FloatingPointError("the model's output is NaN: its weights are unusable (did its training diverge?)")
    return result.astype(np.float32, copy=False)
