"""Which patches eq. 7 contrasts, and their cells: categories per patch, random sampling, one gather.

Everything is vectorised over the batch and stays on the device: patches are sampled with `topk`
over random scores, and the cells of the sampled patches are gathered straight from the feature map
as rows (B, k, P*P, C), the layout the pivot network and eq. 7 consume.
"""
from __future__ import annotations

import torch

from .categorize import IGNORE, categorize_patches, patch_fraction

__all__ = ["sample_patches", "patch_categories", "patch_cells"]


def sample_patches(selected: torch.Tensor, k: int, generator: torch.Generator | None = None):
    """Up to k uniformly random patches per image among `selected`, without replacement.

    Shape: selected (B, L) bool -> idx (B, k') long, valid (B, k') bool with k' = min(k, L).
    """
    scores = torch.rand(selected.shape, device=selected.device, generator=generator)  # (B, L) in [0, 1)
    scores = scores.masked_fill(~selected, -1.0)
    top, idx = scores.topk(min(k, selected.shape[1]), dim=1)  # (B, k')
    return idx, top >= 0


def patch_categories(mask, grid_hw, patch_size: int = 1, tolerance: float = 0.0, valid=None) -> torch.Tensor:
    """Category codes (B, gh, gw) as `categorize_patches` gives them; patches reaching into crop padding are IGNORE."""
    codes = categorize_patches(mask, grid_hw, patch_size, tolerance)
    if valid is not None:
        inside = patch_fraction(valid, grid_hw, patch_size) >= 1.0 - 1e-6  # (B, gh, gw)
        codes = codes.masked_fill(~inside, IGNORE)
    return codes


def patch_cells(feature: torch.Tensor, idx: torch.Tensor, grid_w: int, patch_size: int) -> torch.Tensor:
    """The cells of chosen patches, gathered straight from the feature map.

    Patch l of the (gh, gw) patch grid covers cells (r*P + i, c*P + j), r, c = divmod(l, gw), 0 <= i, j < P.
    Gathering only the sampled patches' cells keeps every later op (and the backward scatter) as
    small as the sample, whatever the map size. The gather follows the map's memory layout, so its
    gradient comes back in that layout (a channels_last gradient meeting an NCHW one costs copies).

    Shape: feature (B, C, H, W), idx (B, k) long -> (B, k, P*P, C).
    """
    P = patch_size
    B, C, H, W = feature.shape
    r, c = idx // grid_w, idx % grid_w  # (B, k)
    off = torch.arange(P, device=idx.device)
    di, dj = off.repeat_interleave(P), off.repeat(P)  # (P*P,): row-major offsets inside a patch
    flat = (((r * P).unsqueeze(2) + di) * W + (c * P).unsqueeze(2) + dj).flatten(1)  # (B, k*P*P) indices into H*W
    if feature.is_contiguous(memory_format=torch.channels_last):
        # NHWC memory is already one row of C channels per cell: index_select picks whole rows, and
        # its backward (index_add_ of rows) is much cheaper on the CPU than gather's scatter_add_
        # over an expanded (B, k*P*P, C) index (benchmarks/README.md, "The pivot's overhead in bf16").
        rows = feature.permute(0, 2, 3, 1).reshape(-1, C)  # (B*H*W, C), a view of NHWC memory
        offset = torch.arange(B, device=idx.device).unsqueeze(1) * (H * W)  # (B, 1): image b's first row
        cells = rows.index_select(0, (flat + offset).flatten())  # (B*k*P*P, C)
    else:
        cells = feature.flatten(2).gather(2, flat.unsqueeze(1).expand(-1, C, -1)).transpose(1, 2)  # (B, k*P*P, C)
    return cells.reshape(B, idx.shape[1], P * P, C)  # a view on the channels_last path
