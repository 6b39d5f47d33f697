"""Overlays, patch-category maps and matplotlib grids for notebooks and reports.

Colours of `category_map_rgb` follow the paper's Fig. 1: authentic patches blue, tampered patches
red, contour patches (both kinds of pixels, §3.1) purple.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["CATEGORY_COLORS", "overlay", "category_map_rgb", "show_grid", "show_samples"]

# code -> RGB; codes as in nclkit.ncl (0 authentic, 1 tampered, 2 contour, -1 ignored/padding)
CATEGORY_COLORS = {0: (40, 90, 220), 1: (220, 30, 30), 2: (140, 40, 170), -1: (128, 128, 128)}


def overlay(
    image: np.ndarray,
    mask_or_prob: Any,
    color: tuple[int, int, int] = (255, 0, 0),
    alpha: float = 0.5,
) -> np.ndarray:
    """Tint ``image`` with ``color`` where the mask is set (or in proportion to a probability).

    Args:
        image: uint8 RGB. Shape (H, W, 3).
        mask_or_prob: bool/{0,1} mask or probability in [0, 1] (numpy or torch). Shape (H, W).
        color: RGB of the tint.
        alpha: opacity of the tint where the mask is 1.
    Returns:
        uint8 RGB. Shape (H, W, 3).
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {image.dtype} {image.shape}")
    if hasattr(mask_or_prob, "detach"):
        mask_or_prob = mask_or_prob.detach().float().cpu().numpy()
    weight = np.asarray(mask_or_prob, dtype=np.float32)
    if weight.shape != image.shape[:2]:
        raise ValueError(f"mask/prob shape {weight.shape} differs from the image's {image.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha}; expected 0 <= alpha <= 1")
    w = (np.clip(weight, 0.0, 1.0) * alpha)[..., None]  # (H, W, 1)
    tint = np.asarray(color, dtype=np.float32).reshape(1, 1, 3)
    return np.rint(image * (1.0 - w) + tint * w).astype(np.uint8)


def category_map_rgb(codes: Any) -> np.ndarray:
    """Patch-category codes (0 authentic, 1 tampered, 2 contour) -> RGB picture (paper Fig. 1).

    Code -1 (patches in crop padding, ignored by the loss) is drawn grey.

    Shape: (h, w) integer codes -> uint8 (h, w, 3).
    """
    if hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"expected a 2-D map of category codes, got shape {codes.shape}")
    bad = sorted(set(np.unique(codes).tolist()) - set(CATEGORY_COLORS))
    if bad:
        raise ValueError(f"unknown category codes {bad}; expected 0 (authentic), 1 (tampered), "
                         "2 (contour) or -1 (ignored)")
    palette = np.array([CATEGORY_COLORS[i] for i in (-1, 0, 1, 2)], dtype=np.uint8)  # (4, 3)
    return palette[codes.astype(np.int64) + 1]  # (h, w, 3)


def show_grid(
    panels: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str] | None = None,
    cell_size: float = 2.5,
):
    """A rows x columns matplotlib figure of images; 2-D panels are drawn in grey scale 0..1.

    Args:
        panels: one list of arrays per row; all rows equally long.
        titles: column titles (shown above the first row).
    Returns:
        matplotlib Figure (not shown; call ``fig.savefig`` or let a notebook display it).
    """
    from matplotlib.figure import Figure  # here: slow to import; Figure without pyplot needs no GUI backend

    n_rows = len(panels)
    n_cols = len(panels[0]) if n_rows else 0
    if n_rows == 0 or n_cols == 0 or any(len(row) != n_cols for row in panels):
        raise ValueError("panels must be a non-empty list of equally long, non-empty rows")
    fig = Figure(figsize=(cell_size * n_cols, cell_size * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, row in enumerate(panels):
        for c, panel in enumerate(row):
            ax = axes[r][c]
            arr = np.asarray(panel)
            if arr.ndim == 2:
                ax.imshow(arr, cmap="gray", vmin=0.0, vmax=1.0)
            else:
                ax.imshow(arr)
            ax.set_axis_off()
            if r == 0 and titles is not None and c < len(titles):
                ax.set_title(titles[c], fontsize=9)
    return fig


def show_samples(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray | None] | None = None,
    probs: Sequence[np.ndarray] | None = None,
    threshold: float = 0.5,
    cell_size: float = 2.5,
):
    """One row per sample: image, ground truth (if given), probability (if given), overlay.

    The overlay tints ``prob > threshold`` red when probabilities are given, else the mask.
    An authentic sample's mask may be None (drawn all black).
    """
    n = len(images)
    if masks is not None and len(masks) != n or probs is not None and len(probs) != n:
        raise ValueError("images, masks and probs must be equally long")
    titles = ["image"] + (["ground truth"] if masks is not None else []) + \
        (["probability"] if probs is not None else []) + ["overlay"]
    rows = []
    for i, image in enumerate(images):
        row: list[np.ndarray] = [image]
        mask = None
        if masks is not None:
            mask = masks[i] if masks[i] is not None else np.zeros(image.shape[:2], np.uint8)
            row.append(mask.astype(np.float32))
        if probs is not None:
            row.append(probs[i])
            row.append(overlay(image, probs[i] > threshold))
        else:
            row.append(overlay(image, mask if mask is not None else np.zeros(image.shape[:2])))
        rows.append(row)
    return show_grid(rows, titles, cell_size)
