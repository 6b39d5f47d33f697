"""Total loss, eq. 9 (L_total = omega * L_NCL + L_PC), and the three variants of Table 5.

- base:  plain pixel BCE on the output (the Base model).
- pivot: BCE + omega * L_NCL (Base+Pivot).
- full:  omega * L_NCL + L_PC, with L_PC at the output and at every auxiliary classifier
         (Base+Pivot+PC, the full NCL model).

Everything is vectorised over the batch and stays on the device: patches are sampled with
`topk` over random scores, the pivot runs on all cells with a contour weight, no `.item()`.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..presets import Config
from .categorize import CONTOUR, IGNORE, TAMPERED, AUTHENTIC, categorize_patches, patch_fraction
from .ncl_loss import ncl_terms_batched
from .pc_loss import bce_loss, pc_loss, resize_bool, shrink_mask

__all__ = ["LossOutput", "NCLCriterion", "sample_patches", "patch_categories"]


@dataclass
class LossOutput:
    total: torch.Tensor               # 0-dim, to back-propagate
    terms: dict[str, torch.Tensor]    # detached 0-dim tensors for logging (no host sync here)


def sample_patches(selected: torch.Tensor, k: int, generator: torch.Generator | None = None):
    """Up to k uniformly random patches per image among `selected`, without replacement.

    Shape: selected (B, L) bool -> idx (B, k') long, valid (B, k') bool with k' = min(k, L).
    """
    scores = torch.rand(selected.shape, device=selected.device, generator=generator)  # (B, L) in [0, 1)
    scores = scores.masked_fill(~selected, -1.0)
    top, idx = scores.topk(min(k, selected.shape[1]), dim=1)  # (B, k')
    return idx, top >= 0


def patch_categories(mask, grid_hw, cfg: Config, valid=None) -> torch.Tensor:
    """Category codes (B, gh, gw); patches reaching into crop padding are IGNORE."""
    codes = categorize_patches(mask, grid_hw, cfg.patch_size, cfg.tolerance)
    if valid is not None:
        inside = patch_fraction(valid, grid_hw, cfg.patch_size) >= 1.0 - 1e-6  # (B, gh, gw)
        codes = codes.masked_fill(~inside, IGNORE)
    return codes


def _gather(patches: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, C, L), (B, k) -> (B, k, C); gathers along L so the big tensor is never transposed."""
    return patches.gather(2, idx.unsqueeze(1).expand(-1, patches.shape[1], -1)).transpose(1, 2)


class NCLCriterion:
    """Callable computing eq. 9 (or a Table 5 variant) from a model's output.

    Args:
        cfg: the Config (variant, pivot_block, patch_size, tolerance, tau, omega, mu, aux_weight, max_patches).

    Call:
        criterion(model, out, mask, valid=None) -> LossOutput; `model.pivot` is the pivot network,
        `out` the model's output (logits, features, aux_logits); mask, valid (B, 1, H, W).
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def ncl(self, pivot, feature: torch.Tensor, mask: torch.Tensor, valid=None, generator=None):
        """L_NCL (eq. 7) averaged over images that have tampered or contour patches, its terms, contour cells."""
        cfg = self.cfg
        P = cfg.patch_size
        hf, wf = feature.shape[-2:]
        codes = patch_categories(mask, (hf, wf), cfg, valid)  # (B, gh, gw)
        gh, gw = codes.shape[1:]
        cells = feature[:, :, : gh * P, : gw * P]  # (B, C, gh*P, gw*P); its own dtype and memory layout
        patches = F.avg_pool2d(cells, P).flatten(2)  # (B, C, L): f(p) per patch, the mean of its cells
        flat = codes.flatten(1)  # (B, L)

        t_idx, t_valid = sample_patches(flat == TAMPERED, cfg.max_patches, generator)
        a_idx, a_valid = sample_patches(flat == AUTHENTIC, cfg.max_patches, generator)

        contour_cells = (codes == CONTOUR).repeat_interleave(P, 1).repeat_interleave(P, 2).unsqueeze(1)  # (B, 1, gh*P, gw*P)
        se_plus, se_minus, has_contour = pivot(cells, contour_cells)

        t1, t2, t3 = ncl_terms_batched(
            _gather(patches, t_idx), t_valid, _gather(patches, a_idx), a_valid,
            se_plus, se_minus, has_contour, cfg.tau,
        )
        active = (t_valid.any(1) | has_contour).float()  # (B,) images that hold a manipulation
        denom = active.sum().clamp(min=1)
        per_image = t1 + t2 + t3
        loss = (per_image * active).sum() / denom
        terms = {
            "ncl_t1": (t1 * active).sum() / denom,
            "ncl_t2": (t2 * active).sum() / denom,
            "ncl_t3": (t3 * active).sum() / denom,
        }
        contour_map = F.pad(contour_cells, (0, wf - gw * P, 0, hf - gh * P))  # (B, 1, hf, wf)
        return loss, terms, contour_map

    def __call__(self, model, out, mask: torch.Tensor, valid: torch.Tensor | None = None, generator=None) -> LossOutput:
        cfg = self.cfg
        mask = mask.float()
        if cfg.variant == "base":
            bce = bce_loss(out.logits, mask, valid)
            return LossOutput(bce, {"bce": bce.detach()})

        feature = out.features[cfg.pivot_block - 1]
        ncl, terms, contour_map = self.ncl(model.pivot, feature, mask, valid, generator)
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
