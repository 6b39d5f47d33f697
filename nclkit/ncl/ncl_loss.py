"""Non-mutually exclusive contrastive (NCL) loss, eq. 7 of the paper.

With e_x^y = exp(phi(f(x), f(y)) / tau), phi = cosine similarity, eq. 7 sums three log-probabilities:

  1. (1 / (m x j)) sum_m sum_{j != m} log e_{p_m}^{p_j} / (e_{p_m}^{p_j} + sum_i e_{p_m}^{n_i})
     tampered anchors p_m, tampered positives p_j, authentic negatives n_i;
  2. (1 / j) sum_j log e_{p_j}^{+} / (e_{p_j}^{+} + sum_i e_{n_i}^{+})
     the pivot's hard positive se+ against tampered positives and authentic negatives;
  3. (1 / i) sum_i log e_{n_i}^{-} / (e_{n_i}^{-} + sum_j e_{p_j}^{-})
     the pivot's hard negative se- against authentic positives and tampered negatives.

The paper maximises them; here each is negated into a loss. A term without pairs (fewer than two
tampered patches for term 1, no contour patch for terms 2 and 3, no tampered patch at all) is 0 and
keeps a gradient path, so authentic images and single-patch forgeries never produce NaN. A term
whose negative set is empty is 0 as well (the probability of the positive is 1).

The sums over negatives run over *all* patches of the image. When only a sample of k of the N
negatives is at hand, `n_log_scale` / `p_log_scale` = log(N / k) weight each sampled negative by
N / k, so that every denominator estimates the full sum rather than a k/N fraction of it.

`batch_ncl_loss` is eq. 7 on a batch as training computes it, in steps a benchmark can time one by one:
categorise the patches of the tapped map and sample up to `max_patches` of each category
(`sample_ncl_patches`), gather their cells and run the pivot network on the contour cells
(`patch_features`), then the three terms (`ncl_terms_batched`) averaged over the images that have
something to contrast.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .categorize import AUTHENTIC, CONTOUR, TAMPERED
from .sampling import patch_categories, patch_cells, sample_patches

__all__ = ["ncl_terms", "ncl_terms_batched", "batch_ncl_loss", "contrastive_nll", "SampledPatches",
           "sample_ncl_patches", "patch_features"]

# Masked-out logits. Finite (not -inf) so that a row with no valid entry has a finite
# log-sum-exp *gradient*; exp(-1e4) is exactly 0 in float32, so valid entries are unaffected.
_MASKED = -1.0e4


def _masked_lse(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log sum_i exp(logits_i) over valid entries of the last dim. (..., K), (..., K) -> (...)."""
    return torch.logsumexp(logits.masked_fill(~valid, _MASKED), dim=-1)


def contrastive_nll(pos: torch.Tensor, neg_lse: torch.Tensor) -> torch.Tensor:
    """-log(e^pos / (e^pos + e^neg_lse)), elementwise; stable for any magnitude."""
    return torch.logaddexp(pos, neg_lse) - pos


def _masked_mean(values: torch.Tensor, valid: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """Mean over valid entries of `dims`; 0 (with a gradient path) where nothing is valid."""
    total = (values * valid).sum(dim=dims)
    count = valid.sum(dim=dims).clamp(min=1)
    return total / count


def ncl_terms_batched(
    p: torch.Tensor,
    p_valid: torch.Tensor,
    n: torch.Tensor,
    n_valid: torch.Tensor,
    se_plus: torch.Tensor,
    se_minus: torch.Tensor,
    has_contour: torch.Tensor,
    tau: float,
    n_log_scale: torch.Tensor | None = None,
    p_log_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three terms of eq. 7 for every image of a batch, as losses (negated log-probabilities).

    Args:
        p: (B, M, D) tampered patch features, padded; p_valid (B, M) bool marks real ones.
        n: (B, N, D) authentic patch features, padded; n_valid (B, N) bool.
        se_plus, se_minus: (B, D) pivot outputs; has_contour (B,) bool says where they exist.
        tau: temperature of the cosine similarity.
        n_log_scale: optional (B,) log-weight of every authentic negative (terms 1 and 2), e.g.
            log(N_all / N_sampled); p_log_scale: the same for the tampered negatives of term 3.

    Returns:
        term1, term2, term3: (B,) each, 0 where the image has no pairs for that term.
    """
    p = F.normalize(p.float(), dim=-1)  # (B, M, D); cosine similarity = dot product of unit vectors
    n = F.normalize(n.float(), dim=-1)  # (B, N, D)
    sp = F.normalize(se_plus.float(), dim=-1).unsqueeze(1)  # (B, 1, D)
    sm = F.normalize(se_minus.float(), dim=-1).unsqueeze(1)  # (B, 1, D)

    # Term 1: anchor p_m, positive p_j (j != m), negatives n_i.
    s_pp = torch.bmm(p, p.transpose(1, 2)) / tau  # (B, M, M)
    s_pn = torch.bmm(p, n.transpose(1, 2)) / tau  # (B, M, N)
    zero = p.new_zeros(p.shape[0])
    n_shift = zero if n_log_scale is None else n_log_scale.float()  # (B,): log N/k of the authentic negatives
    p_shift = zero if p_log_scale is None else p_log_scale.float()  # (B,): the same for the tampered ones
    neg1 = _masked_lse(s_pn, n_valid.unsqueeze(1)) + n_shift.unsqueeze(1)  # (B, M): one negative sum per anchor
    eye = torch.eye(p.shape[1], dtype=torch.bool, device=p.device)
    pairs = p_valid.unsqueeze(2) & p_valid.unsqueeze(1) & ~eye  # (B, M, M) ordered pairs, j != m
    term1 = _masked_mean(contrastive_nll(s_pp, neg1.unsqueeze(2)), pairs, dims=(1, 2))  # (B,)

    # Term 2: anchor se+, positives p_j, negatives n_i.
    e_plus_p = (sp * p).sum(-1) / tau  # (B, M)
    e_plus_n = (sp * n).sum(-1) / tau  # (B, N)
    neg2 = _masked_lse(e_plus_n, n_valid) + n_shift  # (B,)
    term2 = _masked_mean(contrastive_nll(e_plus_p, neg2.unsqueeze(1)), p_valid & has_contour.unsqueeze(1), dims=(1,))

    # Term 3: anchor se-, positives n_i, negatives p_j.
    e_minus_n = (sm * n).sum(-1) / tau  # (B, N)
    e_minus_p = (sm * p).sum(-1) / tau  # (B, M)
    neg3 = _masked_lse(e_minus_p, p_valid) + p_shift  # (B,)
    term3 = _masked_mean(contrastive_nll(e_minus_n, neg3.unsqueeze(1)), n_valid & has_contour.unsqueeze(1), dims=(1,))
    return term1, term2, term3


def ncl_terms(
    p: torch.Tensor,
    n: torch.Tensor,
    se_plus: torch.Tensor | None,
    se_minus: torch.Tensor | None,
    tau: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three terms of eq. 7 for ONE image, each a 0-dim loss (negated log-probability).

    Args:
        p: (M, D) tampered patch features; n: (N, D) authentic patch features (M, N may be 0).
        se_plus, se_minus: (D,) pivot outputs, or None when the image has no contour patch.
        tau: temperature; similarity = cosine / tau.

    Returns:
        (term1, term2, term3): term 1 averages over ordered pairs (m, j), j != m; term 2 over the M
        tampered positives; term 3 over the N authentic positives. A term with no pairs is 0.
    """
    if p.dim() != 2 or n.dim() != 2 or p.shape[1] != n.shape[1]:
        raise ValueError(f"p and n must be (M, D) and (N, D) with the same D, got {tuple(p.shape)}, {tuple(n.shape)}")
    dim = p.shape[1]
    has_contour = se_plus is not None and se_minus is not None
    if not has_contour:
        se_plus = se_minus = p.new_zeros(dim)
    # Pad empty sets with one masked-out row so every tensor op has a non-empty dimension.
    p_valid = torch.ones(1, max(p.shape[0], 1), dtype=torch.bool, device=p.device)
    n_valid = torch.ones(1, max(n.shape[0], 1), dtype=torch.bool, device=p.device)
    if p.shape[0] == 0:
        p, p_valid = p.new_zeros(1, dim), ~p_valid
    if n.shape[0] == 0:
        n, n_valid = n.new_zeros(1, dim), ~n_valid
    t1, t2, t3 = ncl_terms_batched(
        p.unsqueeze(0), p_valid, n.unsqueeze(0), n_valid,
        se_plus.reshape(1, dim), se_minus.reshape(1, dim),
        torch.tensor([has_contour], device=p.device), tau,
    )
    return t1[0], t2[0], t3[0]


class SampledPatches(NamedTuple):
    """The patches eq. 7 contrasts in a batch: categories of the whole grid, and a sample of each kind."""
    codes: torch.Tensor    # (B, gh, gw) category of every patch
    idx: torch.Tensor      # (B, k_t + k_a + k_c) sampled patch indices: tampered, then authentic, then contour
    t_valid: torch.Tensor  # (B, k_t) bool: a real tampered patch (not padding)
    a_valid: torch.Tensor  # (B, k_a) bool
    c_valid: torch.Tensor  # (B, k_c) bool


def sample_ncl_patches(mask: torch.Tensor, grid_hw: tuple[int, int], valid=None, generator=None, *,
                       patch_size: int, tolerance: float, max_patches: int) -> SampledPatches:
    """Categorise the patches of a (gh, gw) grid and draw up to `max_patches` of each category per image,
    uniformly without replacement (tampered, authentic, contour: in that order from `generator`)."""
    codes = patch_categories(mask, grid_hw, patch_size, tolerance, valid)  # (B, gh, gw)
    flat = codes.flatten(1)  # (B, L)
    t_idx, t_valid = sample_patches(flat == TAMPERED, max_patches, generator)
    a_idx, a_valid = sample_patches(flat == AUTHENTIC, max_patches, generator)
    c_idx, c_valid = sample_patches(flat == CONTOUR, max_patches, generator)
    return SampledPatches(codes, torch.cat([t_idx, a_idx, c_idx], 1), t_valid, a_valid, c_valid)


def patch_features(pivot: nn.Module, feature: torch.Tensor, sampled: SampledPatches, patch_size: int):
    """What eq. 7 reads of the feature map: f(p) of the sampled tampered and authentic patches (the
    mean of their cells) and the pivot's se+, se- from the sampled contour patches' cells.

    Shape: feature (B, C, hf, wf) -> p (B, k_t, C), n (B, k_a, C), se_plus, se_minus (B, C), has_contour (B,).
    """
    P = patch_size
    k_t, k_a = sampled.t_valid.shape[1], sampled.a_valid.shape[1]
    cells = patch_cells(feature, sampled.idx, sampled.codes.shape[2], P)  # (B, k_t+k_a+k_c, P*P, C): one gather
    f_patch = cells[:, : k_t + k_a].mean(2)  # (B, k_t+k_a, C): f(p), the mean of its cells
    # The pivot reads the sampled contour patches' cells as rows (B, k_c*P*P, C).
    se_plus, se_minus, has_contour = pivot(cells[:, k_t + k_a:].flatten(1, 2),
                                           sampled.c_valid.repeat_interleave(P * P, 1))
    return f_patch[:, :k_t], f_patch[:, k_t:], se_plus, se_minus, has_contour


def batch_ncl_loss(pivot: nn.Module, feature: torch.Tensor, mask: torch.Tensor, valid=None, generator=None, *,
                   tau: float, patch_size: int, tolerance: float, max_patches: int, sample_weighting: bool):
    """L_NCL (eq. 7) averaged over the images with something to contrast, its terms, and the contour map.

    Args:
        pivot: the pivot network (the model's `pivot`).
        feature: (B, C, hf, wf) the encoder feature the pivot reads (the model output's `pivot_feature`).
        mask, valid: (B, 1, H, W) ground truth and crop-validity maps (valid may be None).
        tau, patch_size, tolerance, max_patches, sample_weighting: as the Config fields of these names;
            `NCLCriterion.ncl` passes its own.
    Returns:
        loss (0-dim), terms {"ncl_t1", "ncl_t2", "ncl_t3"} (0-dim, not detached) and the contour
        map (B, 1, hf, wf) bool: every contour patch's cells, for the PC loss (eq. 8).
    """
    P = patch_size
    hf, wf = feature.shape[-2:]
    sampled = sample_ncl_patches(mask, (hf, wf), valid, generator, patch_size=P, tolerance=tolerance,
                                 max_patches=max_patches)
    codes, t_valid, a_valid = sampled.codes, sampled.t_valid, sampled.a_valid
    gh, gw = codes.shape[1:]
    flat = codes.flatten(1)  # (B, L)
    p, n, se_plus, se_minus, has_contour = patch_features(pivot, feature, sampled, P)

    # Eq. 7's denominators sum over every negative of the image; a sample of k of N estimates
    # the sum when each sampled negative counts N / k times (log N/k added to its log-sum-exp).
    n_t, n_a = t_valid.sum(1), a_valid.sum(1)  # (B,) sampled counts
    a_scale = t_scale = None
    if sample_weighting:
        a_scale = ((flat == AUTHENTIC).sum(1).clamp(min=1) / n_a.clamp(min=1)).log()  # (B,)
        t_scale = ((flat == TAMPERED).sum(1).clamp(min=1) / n_t.clamp(min=1)).log()  # (B,)
    t1, t2, t3 = ncl_terms_batched(p, t_valid, n, a_valid, se_plus, se_minus, has_contour, tau, a_scale, t_scale)
    # An image counts in the batch mean only if one of its terms contrasts a positive with a
    # negative: term 1 needs two tampered patches and an authentic one, terms 2 and 3 a contour
    # patch, a tampered and an authentic one. Any other image's terms are 0 and would only
    # dilute the mean (e.g. an image whose patches are all contour or all tampered).
    active = ((n_a >= 1) & ((n_t >= 2) | (has_contour & (n_t >= 1)))).float()  # (B,)
    denom = active.sum().clamp(min=1)
    loss = ((t1 + t2 + t3) * active).sum() / denom
    terms = {
        "ncl_t1": (t1 * active).sum() / denom,
        "ncl_t2": (t2 * active).sum() / denom,
        "ncl_t3": (t3 * active).sum() / denom,
    }
    # Every contour patch (sampled for the pivot or not) is contour for the PC loss, eq. 8.
    contour_cells = (codes == CONTOUR).repeat_interleave(P, 1).repeat_interleave(P, 2).unsqueeze(1)  # (B, 1, gh*P, gw*P)
    contour_map = F.pad(contour_cells, (0, wf - gw * P, 0, hf - gh * P))  # (B, 1, hf, wf)
    return loss, terms, contour_map
