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

__all__ = ["LossOutput", "NCLCriterion", "sample_patches", "patch_categories", "patch_cells"]


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


def patch_cells(feature: torch.Tensor, idx: torch.Tensor, grid_w: int, patch_size: int) -> torch.Tensor:
    """The cells of chosen patches, gathered straight from the feature map.

    Patch l of the (gh, gw) patch grid covers cells (r*P + i, c*P + j), r, c = divmod(l, gw), 0 <= i, j < P.
    Gathering only the sampled patches' cells keeps every later op (and the backward scatter) as
    small as the sample, whatever the map size. The gather follows the map's memory layout, so its
    gradient comes back in that layout (a channels_last gradient meeting an NCHW one costs copies).

    Shape: feature (B, C, H, W), idx (B, k) long -> (B, k, P*P, C).
    """
    P = patch_size
    B, C, _, W = feature.shape
    r, c = idx // grid_w, idx % grid_w  # (B, k)
    off = torch.arange(P, device=idx.device)
    di, dj = off.repeat_interleave(P), off.repeat(P)  # (P*P,): row-major offsets inside a patch
    flat = (((r * P).unsqueeze(2) + di) * W + (c * P).unsqueeze(2) + dj).flatten(1)  # (B, k*P*P) indices into H*W
    if feature.is_contiguous(memory_format=torch.channels_last):
        rows = feature.permute(0, 2, 3, 1).flatten(1, 2)  # (B, H*W, C), a view of NHWC memory
        cells = rows.gather(1, flat.unsqueeze(2).expand(-1, -1, C))  # (B, k*P*P, C)
    else:
        cells = feature.flatten(2).gather(2, flat.unsqueeze(1).expand(-1, C, -1)).transpose(1, 2)  # (B, k*P*P, C)
    return cells.reshape(B, idx.shape[1], P * P, C)  # a view on the channels_last path


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
        """L_NCL (eq. 7) averaged over the images with something to contrast, its terms, contour cells."""
        cfg = self.cfg
        P = cfg.patch_size
        hf, wf = feature.shape[-2:]
        codes = patch_categories(mask, (hf, wf), cfg, valid)  # (B, gh, gw)
        gh, gw = codes.shape[1:]
        flat = codes.flatten(1)  # (B, L)

        # Up to max_patches patches of each category per image, uniformly without replacement;
        # one gather fetches all their cells (eq. 7 needs nothing else from the map).
        t_idx, t_valid = sample_patches(flat == TAMPERED, cfg.max_patches, generator)
        a_idx, a_valid = sample_patches(flat == AUTHENTIC, cfg.max_patches, generator)
        c_idx, c_valid = sample_patches(flat == CONTOUR, cfg.max_patches, generator)
        k_t, k_a = t_idx.shape[1], a_idx.shape[1]
        cells = patch_cells(feature, torch.cat([t_idx, a_idx, c_idx], 1), gw, P)  # (B, k_t+k_a+k_c, P*P, C)
        f_patch = cells[:, : k_t + k_a].mean(2)  # (B, k_t+k_a, C): f(p), the mean of its cells

        # The pivot sees the sampled contour patches' cells as a (B, C, k_c*P*P, 1) map (§3 of the reading).
        contour = cells[:, k_t + k_a:].flatten(1, 2).transpose(1, 2).unsqueeze(3)
        contour_w = c_valid.repeat_interleave(P * P, 1)[:, None, :, None]  # (B, 1, k_c*P*P, 1)
        se_plus, se_minus, has_contour = pivot(contour, contour_w)

        # Eq. 7's denominators sum over every negative of the image; a sample of k of N estimates
        # the sum when each sampled negative counts N / k times (log N/k added to its log-sum-exp).
        n_t, n_a = t_valid.sum(1), a_valid.sum(1)  # (B,) sampled counts
        a_scale = t_scale = None
        if cfg.sample_weighting:
            a_scale = ((flat == AUTHENTIC).sum(1).clamp(min=1) / n_a.clamp(min=1)).log()  # (B,)
            t_scale = ((flat == TAMPERED).sum(1).clamp(min=1) / n_t.clamp(min=1)).log()  # (B,)
        t1, t2, t3 = ncl_terms_batched(
            f_patch[:, :k_t], t_valid, f_patch[:, k_t:], a_valid,
            se_plus, se_minus, has_contour, cfg.tau, a_scale, t_scale,
        )
        # An image counts in the batch mean only if one of its terms contrasts a positive with a
        # negative: term 1 needs two tampered patches and an authentic one, terms 2 and 3 a contour
        # patch, a tampered and an authentic one. Any other image's terms are 0 and would only
        # dilute the mean (e.g. an image whose patches are all contour or all tampered).
        active = ((n_a >= 1) & ((n_t >= 2) | (has_contour & (n_t >= 1)))).float()  # (B,)
        denom = active.sum().clamp(min=1)
        per_image = t1 + t2 + t3
        loss = (per_image * active).sum() / denom
        terms = {
            "ncl_t1": (t1 * active).sum() / denom,
            "ncl_t2": (t2 * active).sum() / denom,
            "ncl_t3": (t3 * active).sum() / denom,
        }
        # Every contour patch (sampled by the pivot or not) is contour for the PC loss, eq. 8.
        contour_cells = (codes == CONTOUR).repeat_interleave(P, 1).repeat_interleave(P, 2).unsqueeze(1)  # (B, 1, gh*P, gw*P)
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
