"""Pivot-consistent (PC) loss, eq. 8 of the paper, and the plain BCE of the Base model.

  L_PC = mu / |t^| * sum_{t^} BCE(t^)  +  (1 - mu) / |t| * sum_t BCE(t)

t^ are contour pixels (pixels of the contour patches the pivot network consumed, so the loss keeps
their spatial layout, §3.3), t all pixels. The paper writes log-likelihoods; BCE is their negation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .categorize import whole_factors

__all__ = ["bce_loss", "balanced_bce_loss", "pc_loss", "shrink_mask", "resize_bool"]


def _check(logits: torch.Tensor, mask: torch.Tensor) -> None:
    if logits.shape != mask.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and mask {tuple(mask.shape)} must have the same shape")


def _mean_bce(bce: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Mean of `bce` over the True pixels of `where`; 0 (with a gradient path) where there are none."""
    where = where.to(bce.dtype)
    return (bce * where).sum() / where.sum().clamp(min=1)


def bce_loss(logits: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel-wise BCE with logits, mean over valid pixels. Shapes (B, 1, H, W)."""
    _check(logits, mask)
    bce = F.binary_cross_entropy_with_logits(logits.float(), mask.float(), reduction="none")
    return _mean_bce(bce, torch.ones_like(bce, dtype=torch.bool) if valid is None else valid > 0.5)


def balanced_bce_loss(logits: torch.Tensor, mask: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Class-balanced BCE: (mean BCE over tampered pixels + mean BCE over authentic pixels) / 2.

    Not in the paper: the Base model with its classes balanced, to tell what eq. 8's contour weighting
    adds beyond balancing (a batch without one of the classes gives that class's half 0).
    """
    _check(logits, mask)
    bce = F.binary_cross_entropy_with_logits(logits.float(), mask.float(), reduction="none")
    inside = torch.ones_like(bce, dtype=torch.bool) if valid is None else valid > 0.5
    tampered = mask > 0.5
    return 0.5 * (_mean_bce(bce, tampered & inside) + _mean_bce(bce, ~tampered & inside))


def pc_loss(
    logits: torch.Tensor,
    mask: torch.Tensor,
    contour: torch.Tensor,
    mu: float = 0.9,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 8: mu * mean BCE over contour pixels + (1 - mu) * mean BCE over all pixels.

    Args:
        logits: (B, 1, H, W) raw scores; mask: (B, 1, H, W) in {0, 1}; contour: (B, 1, H, W) bool.
        mu: the extra weight of contour pixels (paper: 0.9).
        valid: optional (B, 1, H, W); pixels with valid <= 0.5 (crop padding) are left out of both means.

    Means are taken over the whole batch. With no contour pixel the first term is 0.
    """
    _check(logits, mask)
    _check(logits, contour)
    bce = F.binary_cross_entropy_with_logits(logits.float(), mask.float(), reduction="none")
    inside = torch.ones_like(bce, dtype=torch.bool) if valid is None else valid > 0.5
    return mu * _mean_bce(bce, contour.bool() & inside) + (1.0 - mu) * _mean_bce(bce, inside)


def shrink_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Ground truth shrunk to an auxiliary classifier's size (§3.3): area fraction >= 0.5 -> 1."""
    size, hw = tuple(size), tuple(mask.shape[-2:])
    if hw == size:
        return mask.float()
    k = whole_factors(hw, size)
    # Whole windows: plain average pooling equals "area" interpolation, several times faster on the CPU.
    area = F.avg_pool2d(mask.float(), k) if k else F.interpolate(mask.float(), size=size, mode="area")
    return (area >= 0.5).float()


def resize_bool(flags: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (B, 1, h, w) bool map; a coarse pixel is set if any fine pixel under it is set."""
    size, hw = tuple(size), tuple(flags.shape[-2:])
    if hw == size:
        return flags.bool()
    if hw[0] >= size[0] and hw[1] >= size[1]:
        k = whole_factors(hw, size)
        return (F.max_pool2d(flags.float(), k) if k else F.adaptive_max_pool2d(flags.float(), size)) > 0.5
    k = whole_factors(size, hw)
    if k:  # whole-number upscaling: nearest neighbour is each cell repeated k times
        return flags.bool().repeat_interleave(k[0], -2).repeat_interleave(k[1], -1)
    return F.interpolate(flags.float(), size=size, mode="nearest") > 0.5
