"""Total loss, eq. 9 (L_total = omega * L_NCL + L_PC), and the three variants of Table 5.

- base:  plain pixel BCE on the output (the Base model).
- pivot: BCE + omega * L_NCL (Base+Pivot).
- full:  omega * L_NCL + L_PC, with L_PC at the output and at every auxiliary classifier
         (Base+Pivot+PC, the full NCL model).

The criterion takes plain values (variant, tau, omega, mu, ...), as the field's losses do (lightly's
`NTXentLoss(temperature=...)`, smp's `DiceLoss(mode, ...)`); `NCLCriterion.from_config(cfg)` reads
them from a Config, by the fields' own names, once at the edge. It is called with what it reads: the
model's output (whose `pivot_feature` is the map eq. 7 contrasts, so only the model knows
`pivot_block`), the mask, the validity map and the pivot network.

The pivot is a layer of the model (nclkit.models.pivot says why), so the criterion holds no weights
and only says what DDP must know about it (`find_unused_parameters`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from .ncl_loss import batch_ncl_loss
from .pc_loss import balanced_bce_loss, bce_loss, pc_loss, resize_bool, shrink_mask

__all__ = ["LossOutput", "NCLCriterion", "LOSS_VARIANTS"]

# Table 5's rows, as nclkit.presets.VARIANTS names them (the presets sit below this package).
LOSS_VARIANTS = ("base", "pivot", "full")


@dataclass
class LossOutput:
    total: torch.Tensor               # 0-dim, to back-propagate
    terms: dict[str, torch.Tensor]    # detached 0-dim tensors for logging (no host sync here)


@dataclass(frozen=True)
class NCLCriterion:
    """Eq. 9 (or a Table 5 variant) from a model's output.

    Args:
        variant: "base", "pivot" or "full" (Table 5).
        tau: temperature of eq. 7's cosine similarity; omega: weight of L_NCL in eq. 9; mu: weight
            of contour pixels in eq. 8; aux_weight: weight of the auxiliary PC losses.
        patch_size, tolerance, max_patches, sample_weighting: how eq. 7's patches are cut, categorised
            and sampled (nclkit.ncl.batch_ncl_loss).
        balanced_bce: base and pivot only: the class-balanced BCE (pc_loss.balanced_bce_loss) in place
            of the plain one (not in the paper; a control for eq. 8's weighting).
        The defaults are the paper preset's; `from_config` takes a Config's.

    Call:
        criterion(out, mask, valid=None, pivot=None) -> LossOutput; `out` is the model's output
        (logits, aux_logits, pivot_feature), `pivot` its pivot network (needed by pivot and full);
        mask, valid (B, 1, H, W).
    """

    variant: str = "full"
    tau: float = 0.1
    omega: float = 0.01
    mu: float = 0.9
    aux_weight: float = 1.0
    patch_size: int = 1
    tolerance: float = 0.0
    max_patches: int = 128
    sample_weighting: bool = True
    balanced_bce: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.variant, str):
            raise TypeError(f"NCLCriterion takes plain values, not a {type(self.variant).__name__}; "
                            "build one from a Config with NCLCriterion.from_config(cfg)")
        if self.variant not in LOSS_VARIANTS:
            raise ValueError(f"variant={self.variant!r}; expected one of {LOSS_VARIANTS}")

    @classmethod
    def from_config(cls, cfg: Any) -> "NCLCriterion":
        """The criterion a Config (or any object with these fields) describes."""
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})

    @property
    def find_unused_parameters(self) -> bool:
        """Whether some model parameters get no gradient from this loss, so DDP must look for them:
        Base leaves the pivot and the auxiliary heads out, Base+Pivot the auxiliary heads."""
        return self.variant != "full"

    def ncl(self, pivot: nn.Module, feature: torch.Tensor, mask: torch.Tensor, valid=None, generator=None):
        """L_NCL (eq. 7) with this criterion's settings: see nclkit.ncl.batch_ncl_loss."""
        return batch_ncl_loss(pivot, feature, mask, valid, generator, tau=self.tau, patch_size=self.patch_size,
                              tolerance=self.tolerance, max_patches=self.max_patches,
                              sample_weighting=self.sample_weighting)

    def __call__(self, out, mask: torch.Tensor, valid: torch.Tensor | None = None, pivot: nn.Module | None = None,
                 generator=None) -> LossOutput:
        mask = mask.float()
        bce_of = balanced_bce_loss if self.balanced_bce else bce_loss
        if self.variant == "base":
            bce = bce_of(out.logits, mask, valid)
            return LossOutput(bce, {"bce": bce.detach()})
        if pivot is None:
            raise ValueError(f"the {self.variant!r} variant needs the pivot network: criterion(out, mask, valid, "
                             "pivot=model.pivot)")

        ncl, terms, contour_map = self.ncl(pivot, out.pivot_feature, mask, valid, generator)
        terms = {k: v.detach() for k, v in terms.items()}
        terms["ncl"] = ncl.detach()
        if self.variant == "pivot":
            bce = bce_of(out.logits, mask, valid)
            terms["bce"] = bce.detach()
            return LossOutput(bce + self.omega * ncl, terms)

        # full: L_PC at the output and, through auxiliary classifiers, after each upsampling (§3.3).
        pc = pc_loss(out.logits, mask, resize_bool(contour_map, out.logits.shape[-2:]), self.mu, valid)
        aux_total = pc.new_zeros(())
        for aux in out.aux_logits:
            size = tuple(aux.shape[-2:])
            aux_valid = None if valid is None else shrink_mask(valid, size)
            aux_total = aux_total + pc_loss(aux, shrink_mask(mask, size), resize_bool(contour_map, size), self.mu,
                                            aux_valid)
        terms["pc"] = pc.detach()
        terms["pc_aux"] = aux_total.detach()
        total = self.omega * ncl + pc + self.aux_weight * aux_total
        return LossOutput(total, terms)
