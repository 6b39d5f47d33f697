"""Patch categorisation (paper §3.2, Fig. 1): tampered, authentic and contour patches.

A feature map tapped after an encoder block is a grid of cells; a patch is a P x P window of cells.
Its category follows from the pixels it covers in the ground-truth mask: a patch with no tampered
pixel is authentic, one with only tampered pixels is tampered, one with both is a contour patch
(eq. 3: C holds tampered and authentic pixels at once). `tolerance` lets a few stray pixels of a
noisy (e.g. JPEG'd) mask not turn a patch into a contour patch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["AUTHENTIC", "TAMPERED", "CONTOUR", "IGNORE", "cell_fraction", "patch_fraction", "categorize_patches"]

AUTHENTIC = 0
TAMPERED = 1
CONTOUR = 2
IGNORE = -1  # patches that reach into crop padding; never sampled (used by the criterion only)

_EPS = 1e-6  # float pooling of a 0/1 mask is exact up to rounding; this absorbs the rounding


def whole_factors(big: tuple[int, int], small: tuple[int, int]) -> tuple[int, int] | None:
    """(big_h / small_h, big_w / small_w) when both divide exactly, else None: when plain pooling
    (or repetition, upwards) over whole windows maps one size onto the other."""
    if big[0] % small[0] or big[1] % small[1]:
        return None
    return big[0] // small[0], big[1] // small[1]


def _check_mask(mask: torch.Tensor) -> None:
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must have shape (B, 1, H, W), got {tuple(mask.shape)}")


def cell_fraction(mask: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Fraction of each grid cell's pixel footprint that is set in `mask`.

    Shape: mask (B, 1, H, W) -> (B, 1, grid_h, grid_w). Exact when H, W are multiples of the grid;
    otherwise each cell covers the pixel window adaptive pooling assigns to it.
    """
    _check_mask(mask)
    return F.adaptive_avg_pool2d(mask.float(), tuple(int(g) for g in grid_hw))


def patch_fraction(mask: torch.Tensor, grid_hw: tuple[int, int], patch_size: int = 1) -> torch.Tensor:
    """Tampered-pixel fraction of every P x P patch of the grid. (B, 1, H, W) -> (B, gh, gw)."""
    gh, gw = grid_hw[0] // patch_size, grid_hw[1] // patch_size
    if gh < 1 or gw < 1:
        raise ValueError(f"patch_size={patch_size} is larger than the feature grid {tuple(grid_hw)}")
    _check_mask(mask)
    k = whole_factors(tuple(mask.shape[-2:]), tuple(grid_hw))
    if k:
        # Every cell covers k[0] x k[1] pixels: one pooling over whole patches gives the same
        # fractions as cells-then-patches, 3x faster on the CPU (adaptive pooling is slow there).
        window = (k[0] * patch_size, k[1] * patch_size)
        return F.avg_pool2d(mask.float(), window)[:, 0]  # (B, gh, gw); trailing cells dropped (floor)
    cells = cell_fraction(mask, grid_hw)[:, :, : gh * patch_size, : gw * patch_size]  # trailing cells dropped
    return F.avg_pool2d(cells, patch_size)[:, 0]  # (B, gh, gw); cells have equal footprints


def categorize_patches(
    mask: torch.Tensor,
    grid_hw: tuple[int, int],
    patch_size: int = 1,
    tolerance: float = 0.0,
) -> torch.Tensor:
    """Label every patch of a feature grid authentic (0), tampered (1) or contour (2).

    Args:
        mask: (B, 1, H, W) ground truth in {0, 1}.
        grid_hw: (grid_h, grid_w), the spatial size of the tapped feature map.
        patch_size: P; a patch is P x P grid cells, so the patch grid is (grid_h // P, grid_w // P).
        tolerance: a patch whose tampered fraction is <= tolerance is authentic, >= 1 - tolerance is
            tampered, anything between is contour.

    Returns:
        LongTensor (B, grid_h // P, grid_w // P) of category codes.
    """
    if patch_size < 1:
        raise ValueError(f"patch_size={patch_size}; expected >= 1")
    if not 0.0 <= tolerance < 0.5:
        raise ValueError(f"tolerance={tolerance}; expected 0 <= tolerance < 0.5")
    frac = patch_fraction(mask, grid_hw, patch_size)  # (B, gh, gw)
    codes = torch.full_like(frac, CONTOUR, dtype=torch.long)
    codes[frac <= tolerance + _EPS] = AUTHENTIC
    codes[frac >= 1.0 - tolerance - _EPS] = TAMPERED
    return codes
