"""Total loss, eq. 9 (L_total = omega * L_NCL + L_PC), and the three variants of Table 5.

- base:  plain pixel BCE on the output (the Base model).
- pivot: BCE + omega * L_NCL (Base+Pivot).
- full:  omega * L_NCL + L_PC, with L_PC at the output and at every auxiliary classifier
         (Base+Pivot+PC, the full NCL model).

The criterion holds no weights: the pivot network, eq. 7's only learnable part, is a layer of the
model (nclkit.models.pivot says why) and is read from `model.pivot`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..presets import Config
from .ncl_loss import batch_ncl_loss
from .pc_loss import bce_loss, pc_loss, resize_bool, shrink_mask

__all__ = ["LossOutput", "NCLCriterion"]


@dataclass
class LossOutput:
    total: torch.Tensor               # 0-dim, to back-propagate
    terms: dict[str, torch.Tensor]    # detached 0-dim tensors for logging (no host sync here)


class NCLCriterion:
    """Eq. 9 (or a Table 5 variant) from a model's output.

    Args:
        cfg: the Config (variant, pivot_block, patch_size, tolerance, tau, omega, mu, aux_weight, max_patches).

    Call:
        criterion(model, out, mask, valid=None) -> LossOutput; `out` is the model's output (logits,
        features, aux_logits), `model.pivot` its pivot network; mask, valid (B, 1, H, W).
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def ncl(self, pivot: nn.Module, feature: torch.Tensor, mask: torch.Tensor, valid=None, generator=None):
        """L_NCL (eq. 7) with this criterion's settings: see nclkit.ncl.batch_ncl_loss."""
        return batch_ncl_loss(pivot, feature, mask, self.cfg, valid, generator)

    def __call__(self, model, out, mask: torch.Tensor, valid: torch.Tensor | None = None, generator=None) -> LossOutput:
        cfg = self.cfg
        mask = mask.float()
        if cfg.variant == "base":
            bce = bce_loss(out.logits, mask, valid)
            return LossOutput(bce, {"bce": bce.detach()})

        feature = out.features[cfg.pivot_block - 1]
        ncl, terms, contour_map = batch_ncl_loss(model.pivot, feature, mask, cfg, valid, generator)
        terms = {k: v.detach() for k, v in terms.items()}
        terms["ncl"] = ncl.detach()
        if cfg.variant == "pivot":
            bce = bce_loss(out.logits, mask, valid)
            terms["bce"] = bce.detach()
            return LossOutput(bce + cfg.omega * ncl, terms)

        # full: L_PC at the output and, through auxiliary classifiers, after each upsampling (§3.3).
        pc = pc_loss(out.logits, mask, resize_bool(contour_map, out.logits.shape[-2:]), cfg.mu, valid)
        aux_total = pc.new_zeros(())
        for aux in out.aux_logits:
            size = tuple(aux.shape[-2:])
            aux_valid = None if valid is None else shrink_mask(valid, size)
            aux_total = aux_total + pc_loss(aux, shrink_mask(mask, size), resize_bool(contour_map, size), cfg.mu, aux_valid)
        terms["pc"] = pc.detach()
        terms["pc_aux"] = aux_total.detach()
        total = cfg.omega * ncl + pc + cfg.aux_weight * aux_total
        return LossOutput(total, terms)
