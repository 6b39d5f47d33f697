"""Checkers of the course's write-it-yourself exercises, one per notebook.

Each `check_*` takes the learner's function, compares it with nclkit on a few small cases through
`check_function`, prints the verdict and returns True or False; none ever raises, so a
notebook whose exercises are left unsolved still runs from top to bottom.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .engine.metrics import global_f1, nan_mean, pixel_f1
from .engine.trainer import poly_lambda
from .models.pivot import PivotNetwork
from .ncl.categorize import categorize_patches
from .ncl.ncl_loss import ncl_terms
from .ncl.pc_loss import pc_loss

__all__ = ["check_function", "check_tampered_share", "check_patch_categories", "check_pivot_pooling",
           "check_ncl_term2", "check_pc_loss", "check_poly_lr", "check_f1_protocols", "check_all_tampered_f1",
           "check_block_strides", "check_best_threshold"]


def check_function(candidate: Any, reference: Any, cases: list[tuple], name: str, atol: float = 1e-5) -> bool:
    """Compare a learner's function with nclkit's on `cases` (argument tuples); print the verdict, never raise.

    An untouched exercise (its body raises NotImplementedError or returns None) prints "not solved yet",
    so a notebook left unsolved still runs from top to bottom.
    """
    for args in cases:
        try:
            got = candidate(*args)
        except NotImplementedError:
            got = None
        except Exception as err:  # noqa: BLE001 - a learner's bug is reported, not raised
            print(f"{name}: your function raised {type(err).__name__}: {err}")
            return False
        if got is None:
            print(f"{name}: not solved yet")
            return False
        want = reference(*args)
        got = torch.as_tensor(got, dtype=torch.float64)
        if got.shape != want.shape or not torch.allclose(got, want.double(), atol=atol, rtol=1e-4):
            print(f"{name}: not yet: expected {want.tolist() if want.numel() < 5 else tuple(want.shape)}, "
                  f"got {got.tolist() if got.numel() < 5 else tuple(got.shape)}")
            return False
    print(f"{name}: solved, it matches nclkit on {len(cases)} cases")
    return True


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _blob_masks(n: int, size: int, seed: int = 0) -> list[torch.Tensor]:
    """n masks (size, size) in {0, 1}, each a random rectangle: tampered, authentic and contour regions."""
    gen, masks = _gen(seed), []
    for _ in range(n):
        y0, x0 = torch.randint(0, size // 2, (2,), generator=gen).tolist()
        h, w = torch.randint(size // 4, size // 2, (2,), generator=gen).tolist()
        mask = torch.zeros(size, size)
        mask[y0:y0 + h, x0:x0 + w] = 1
        masks.append(mask)
    return masks


def check_tampered_share(candidate: Any) -> bool:
    """Notebook 00: candidate(mask) -> the fraction of the mask's pixels that are tampered (a float)."""
    masks = [torch.zeros(8, 8), torch.ones(4, 6), *_blob_masks(3, 32)]
    cases = [(m.numpy().astype(np.uint8),) for m in masks]
    return check_function(candidate, lambda m: torch.tensor(float(m.mean())), cases, "tampered share")


def check_patch_categories(candidate: Any) -> bool:
    """Notebook 01: candidate(mask, patch_px) -> (H // patch_px, W // patch_px) codes 0/1/2 (authentic/tampered/contour)."""
    cases = [(m, px) for m, px in zip(_blob_masks(3, 32), (4, 8, 2))]

    def reference(mask, patch_px):
        grid = (mask.shape[0] // patch_px, mask.shape[1] // patch_px)  # one cell per patch
        return categorize_patches(mask[None, None], grid)[0]

    return check_function(candidate, reference, cases, "patch categories")


def check_pivot_pooling(candidate: Any) -> bool:
    """Notebook 02: candidate(branch_map, is_contour) -> (C,) mean of the (C, H, W) map over the contour cells."""
    gen, cases = _gen(0), []
    for channels in (4, 8):
        pivot = PivotNetwork(channels).eval()  # eval: the branch is a fixed per-cell function
        feature = torch.randn(channels, 6, 6, generator=gen)
        is_contour = torch.rand(6, 6, generator=gen) > 0.7
        rows, weight = feature.flatten(1).T[None], is_contour.flatten()[None]  # (1, 36, C), (1, 36): cells as rows
        with torch.no_grad():
            branch_rows = pivot.plus(rows, weight[..., None].float())[0]  # (36, C)
        branch_map = branch_rows.T.reshape(channels, 6, 6)  # back to the (C, H, W) map the learner sees
        cases.append((branch_map, is_contour, pivot, rows, weight))

    def reference(branch_map, is_contour, pivot, rows, weight):
        with torch.no_grad():
            return pivot(rows, weight)[0][0]  # se+ of the one image

    return check_function(lambda m, c, *_: candidate(m, c), reference, cases, "pivot pooling")


def check_ncl_term2(candidate: Any) -> bool:
    """Notebook 03: candidate(p, n, se_plus, tau) -> term 2 of eq. 7 for one image, as a loss (0-dim)."""
    gen, cases = _gen(0), []
    for m, n, tau in ((5, 7, 0.1), (3, 12, 0.5), (8, 2, 1.0)):
        cases.append((torch.randn(m, 16, generator=gen), torch.randn(n, 16, generator=gen),
                      torch.randn(16, generator=gen), tau))

    def reference(p, n, se_plus, tau):
        return ncl_terms(p, n, se_plus, torch.zeros_like(se_plus), tau)[1].detach()

    return check_function(candidate, reference, cases, "eq. 7, term 2")


def check_pc_loss(candidate: Any) -> bool:
    """Notebook 04: candidate(logits, mask, contour, mu) -> eq. 8 as `nclkit.pc_loss` computes it (0-dim)."""
    gen, cases = _gen(0), []
    for mu in (0.9, 0.5):
        mask = (torch.rand(2, 1, 16, 16, generator=gen) > 0.6).float()
        contour = torch.rand(2, 1, 16, 16, generator=gen) > 0.8
        cases.append((torch.randn(2, 1, 16, 16, generator=gen), mask, contour, mu))
    return check_function(candidate, lambda *a: pc_loss(*a).detach(), cases, "eq. 8")


def check_poly_lr(candidate: Any) -> bool:
    """Notebook 05: candidate(base_lr, step, total_steps, power) -> the learning rate of the poly schedule."""
    cases = [(0.007, 0, 100, 0.9), (0.007, 50, 100, 0.9), (0.01, 99, 100, 0.9), (0.01, 30, 40, 2.0)]
    return check_function(candidate, lambda lr, s, t, p: torch.tensor(lr * poly_lambda(t, p)(s)), cases,
                          "poly learning rate", atol=1e-9)


def check_f1_protocols(candidate: Any) -> bool:
    """Notebook 06: candidate(probs, masks) -> (mean per-image F1, global F1) at threshold 0.5."""
    gen = _gen(1)
    masks = [m.numpy().astype(np.uint8) for m in _blob_masks(4, 24, seed=1)]
    probs = [np.clip(m + 0.6 * torch.randn(m.shape, generator=gen).numpy(), 0, 1).astype(np.float32) for m in masks]
    cases = [(probs, masks), (probs[:2], masks[:2])]

    def reference(probs, masks):
        return torch.tensor([nan_mean([pixel_f1(p, m) for p, m in zip(probs, masks)]), global_f1(probs, masks)])

    return check_function(candidate, reference, cases, "per-image and global F1")


def check_all_tampered_f1(candidate: Any) -> bool:
    """Notebook 07: candidate(masks) -> mean per-image F1 of calling every pixel tampered (a table's floor)."""

    masks = [m.numpy().astype(np.uint8) for m in _blob_masks(5, 20, seed=2)]
    cases = [(masks,), (masks[:1],)]

    def reference(masks):
        return torch.tensor(nan_mean([pixel_f1(np.ones(m.shape, np.float32), m) for m in masks]))

    return check_function(candidate, reference, cases, "all-tampered F1")


def check_block_strides(candidate: Any, encoders: list[Any]) -> bool:
    """Notebook 08: candidate(encoder, size) -> the five block strides, measured from a size x size input."""
    cases = [(encoder, 64) for encoder in encoders]
    return check_function(candidate, lambda encoder, size: torch.tensor(encoder.strides, dtype=torch.float64),
                          cases, "block strides")


def check_best_threshold(candidate: Any) -> bool:
    """Notebook 09: candidate(prob, mask, thresholds) -> the threshold of the list with the highest F1 (first on ties)."""

    gen = _gen(3)
    masks = [m.numpy().astype(np.uint8) for m in _blob_masks(3, 24, seed=3)]
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    cases = [(np.clip(0.5 * m + 0.5 * torch.rand(m.shape, generator=gen).numpy() ** k, 0, 1), m, thresholds)
             for m, k in zip(masks, (1, 2, 4))]

    def reference(prob, mask, thresholds):
        scores = [pixel_f1(prob, mask, t) for t in thresholds]
        return torch.tensor(thresholds[int(np.argmax(scores))])

    return check_function(candidate, reference, cases, "best threshold")
