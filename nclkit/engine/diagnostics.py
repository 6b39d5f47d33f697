"""Measurements for the question the course asks: what does the contrastive loss (eq. 7) do to the network?

- `loss_gradients`: the gradient that eq. 7 (weighted by omega, as eq. 9 adds it) and the pixel loss
  (BCE, or eq. 8 with its auxiliary heads) each send into the tapped feature map, and eq. 7's three
  terms beside their values at chance.
- `ncl_at_chance` is the value of eq. 7's terms when every patch feature is the same, so that every
  similarity is equal: what a network that has learned nothing to contrast scores. A term that stays
  near it contrasts nothing.
- `patch_probe`: a linear probe of the tapped features: a logistic regression fitted on the patches of
  some images, its tampered-vs-authentic AUC on the patches of others. It asks whether the features
  eq. 7 shapes separate the two classes at all, whatever the decoder makes of them.

Every function works on a copy of the model and its own random generator: measuring a model while it
trains (`nclkit.engine.train(..., epoch_end=...)`) changes neither its weights, its BatchNorm
statistics nor the random stream of the training run.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..data import ManifestDataset
from ..data.transforms import build_transforms
from ..ncl.categorize import AUTHENTIC, TAMPERED
from ..ncl.ncl_loss import batch_ncl_loss
from ..ncl.sampling import patch_categories
from ..ncl.total_loss import NCLCriterion
from .metrics import pixel_auc

__all__ = ["loss_gradients", "ncl_at_chance", "patch_features", "patch_probe"]


def _ncl(criterion: NCLCriterion, pivot: nn.Module, feature, mask, valid, seed: int):
    """Eq. 7 with the criterion's settings and a sample of patches fixed by `seed`."""
    g = torch.Generator(device=feature.device).manual_seed(seed)
    return batch_ncl_loss(pivot, feature, mask, valid, g, tau=criterion.tau, patch_size=criterion.patch_size,
                          tolerance=criterion.tolerance, max_patches=criterion.max_patches,
                          sample_weighting=criterion.sample_weighting)


def ncl_at_chance(criterion: NCLCriterion, pivot: nn.Module, feature: torch.Tensor, mask: torch.Tensor,
                  valid: torch.Tensor | None = None, seed: int = 0) -> dict[str, float]:
    """Eq. 7's terms for the same patches as `feature` would give, with every cell's feature equal.

    All cosine similarities are then 1 (the pivot's outputs see identical rows too), so each term is
    log(1 + weighted number of negatives): the loss of a feature map that separates nothing.
    """
    with torch.no_grad():
        _, terms, _ = _ncl(criterion, pivot, torch.ones_like(feature), mask, valid, seed)
    return {k: float(v) for k, v in terms.items()}


def loss_gradients(model: nn.Module, criterion: NCLCriterion, image: torch.Tensor, mask: torch.Tensor,
                   valid: torch.Tensor | None = None, seed: int = 0) -> dict[str, float]:
    """What each part of the loss sends into the tapped map on one batch, in train mode, in fp32.

    Returns:
        grad_pixel: norm of the gradient of the pixel loss (BCE for base/pivot; eq. 8 at the output and
            the auxiliary heads for full) with respect to the tapped feature map;
        grad_ncl: the same for omega * L_NCL (0 for base, whose loss has no eq. 7);
        grad_ncl_unweighted: for L_NCL itself (also for base: what eq. 7 would send);
        cosine: cosine between the two gradients (do they pull the features the same way?);
        ncl_t1..3 and chance_t1..3: eq. 7's terms on the batch and at chance (`ncl_at_chance`).
    """
    devices = [image.device] if image.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # ASPP's dropout draws: from a stream of its own, seeded
        torch.manual_seed(seed)
        return _loss_gradients(model, criterion, image, mask, valid, seed)


def _loss_gradients(model, criterion, image, mask, valid, seed: int) -> dict[str, float]:
    m = copy.deepcopy(model).float().train()  # a copy: the BatchNorm statistics of `model` stay as they are
    out = m(image.float())
    feature = out.pivot_feature
    ncl, terms, _ = _ncl(criterion, m.pivot, feature, mask, valid, seed)
    pixel_only = dataclasses.replace(criterion, omega=0.0)  # eq. 9 without eq. 7: BCE, or eq. 8 + aux heads
    generator = torch.Generator(device=image.device).manual_seed(seed)
    pixel = pixel_only(out, mask, valid, pivot=m.pivot, generator=generator).total
    (g_pixel,) = torch.autograd.grad(pixel, feature, retain_graph=True)
    (g_ncl,) = torch.autograd.grad(ncl, feature)
    weight = 0.0 if criterion.variant == "base" else criterion.omega
    cosine = torch.nn.functional.cosine_similarity(g_pixel.flatten(), g_ncl.flatten(), dim=0)
    chance = ncl_at_chance(criterion, m.pivot, feature.detach(), mask, valid, seed)
    return {
        "grad_pixel": float(g_pixel.norm()), "grad_ncl": weight * float(g_ncl.norm()),
        "grad_ncl_unweighted": float(g_ncl.norm()), "cosine": float(cosine),
        **{k: float(v.detach()) for k, v in terms.items()}, **{k.replace("ncl_", "chance_"): v for k, v in chance.items()},
    }


def patch_features(model: nn.Module, records: Sequence, patch_size: int, max_side: int | None,
                   per_image: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """f(p) of up to `per_image` tampered and as many authentic patches of each tampered image (eq. 7's
    patch feature: the mean of its cells in the tapped map), in eval mode at the prediction scale.

    Returns: features (N, C) float32 and labels (N,) int (1 tampered, 0 authentic). Contour patches are left out.
    """
    m = copy.deepcopy(model).float().eval()
    data = ManifestDataset([r for r in records if r.label == 1], None, train=False,
                           transform=build_transforms(train=False, resize=max_side))
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    with torch.no_grad():
        for item in data:
            feature = m(item["image"][None]).pivot_feature  # (1, C, hf, wf)
            hf, wf = feature.shape[-2:]
            codes = patch_categories(item["mask"][None], (hf, wf), patch_size)[0]  # (gh, gw)
            gh, gw = codes.shape
            P = patch_size
            cells = feature[0, :, : gh * P, : gw * P].reshape(feature.shape[1], gh, P, gw, P)
            f_patch = cells.mean((2, 4)).permute(1, 2, 0).reshape(gh * gw, -1)  # (L, C)
            flat = codes.flatten()
            for code, label in ((TAMPERED, 1), (AUTHENTIC, 0)):
                idx = torch.nonzero(flat == code).flatten().numpy()
                if len(idx) > per_image:
                    idx = rng.choice(idx, per_image, replace=False)
                feats.append(f_patch[idx].numpy())
                labels.append(np.full(len(idx), label))
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


def patch_probe(model: nn.Module, fit_records: Sequence, test_records: Sequence, patch_size: int,
                max_side: int | None, l2: float = 1e-3, seed: int = 0) -> float:
    """Patch-level AUC of a logistic regression on the tapped features: fitted on `fit_records`'
    patches (standardised, L2-regularised, full-batch L-BFGS), scored on `test_records`'."""
    x_fit, y_fit = patch_features(model, fit_records, patch_size, max_side, seed=seed)
    x_test, y_test = patch_features(model, test_records, patch_size, max_side, seed=seed)
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-6
    x = torch.from_numpy((x_fit - mean) / std)
    y = torch.from_numpy(y_fit).float()
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")
    # Each class weighs half, so that the probe does not learn the class ratio alone.
    weight = torch.where(y > 0.5, 0.5 / max(float(y.sum()), 1.0), 0.5 / max(float((1 - y).sum()), 1.0))

    def closure():
        opt.zero_grad()
        logits = x @ w + b
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none") * weight).sum()
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        scores = torch.from_numpy((x_test - mean) / std) @ w + b
    return float(pixel_auc(torch.sigmoid(scores).numpy(), y_test.astype(bool)))  # a monotone map: the same ranking
