"""Slow references written straight from the paper's equations (loops, boolean indexing), for the loss tests."""
import math

import torch

from nclkit import AUTHENTIC, CONTOUR, TAMPERED, categorize_patches, ncl_terms


def cosine(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def reference_eq7(p, n, sp, sm, tau):
    """Eq. 7 term by term with Python loops; each term negated into a loss; no pairs -> 0."""
    e = lambda a, b: math.exp(cosine(a, b) / tau)  # e_x^y = exp(phi(x, y) / tau)
    M, N = len(p), len(n)
    t1, pairs = 0.0, 0
    for m in range(M):
        for j in range(M):
            if j == m:
                continue
            pos = e(p[m], p[j])
            t1 += -math.log(pos / (pos + sum(e(p[m], n[i]) for i in range(N))))
            pairs += 1
    t1 = t1 / pairs if pairs else 0.0
    t2 = t3 = 0.0
    if sp is not None:
        if M:
            t2 = sum(-math.log(e(sp, p[j]) / (e(sp, p[j]) + sum(e(sp, n[i]) for i in range(N)))) for j in range(M)) / M
        if N:
            t3 = sum(-math.log(e(sm, n[i]) / (e(sm, n[i]) + sum(e(sm, p[j]) for j in range(M)))) for i in range(N)) / N
    return t1, t2, t3


def reference_eq8(logits, mask, contour, mu):
    """Eq. 8 with loops: mu/|t^| sum over contour pixels + (1-mu)/|t| sum over all pixels of BCE."""
    def bce(z, y):
        q = 1 / (1 + math.exp(-z))
        return -(y * math.log(q) + (1 - y) * math.log(1 - q))
    c_sum, c_n, a_sum, a_n = 0.0, 0, 0.0, 0
    for z, y, c in zip(logits.flatten().tolist(), mask.flatten().tolist(), contour.flatten().tolist()):
        a_sum += bce(z, y)
        a_n += 1
        if c:
            c_sum += bce(z, y)
            c_n += 1
    return mu * (c_sum / c_n if c_n else 0.0) + (1 - mu) * a_sum / a_n


def contour_cells_loop(mask, grid_hw):
    """(B, 1, gh, gw) bool: cells whose pixel footprint holds tampered and authentic pixels (patch_size 1)."""
    B, _, H, W = mask.shape
    sh, sw = H // grid_hw[0], W // grid_hw[1]
    out = torch.zeros(B, 1, *grid_hw, dtype=torch.bool)
    for b in range(B):
        for r in range(grid_hw[0]):
            for c in range(grid_hw[1]):
                window = mask[b, 0, r * sh:(r + 1) * sh, c * sw:(c + 1) * sw]
                out[b, 0, r, c] = bool(window.min() == 0 and window.max() == 1)
    return out


def pc_reference(logits, mask, contour, mu):
    """Eq. 8 with boolean indexing: mu x mean BCE over contour pixels + (1 - mu) x mean BCE over all pixels."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), mask, reduction="none")
    first = bce[contour].mean() if contour.any() else bce.new_zeros(())
    return mu * first + (1 - mu) * bce.mean()


def cells_at(cells, size):
    """Cell map -> (B, 1, h, w): nearest when upsampling, "any cell" when downsampling (exact multiples)."""
    gh, h = cells.shape[-2], size[0]
    if h >= gh:
        return cells.repeat_interleave(h // gh, 2).repeat_interleave(size[1] // cells.shape[-1], 3)
    k = gh // h
    return cells.reshape(*cells.shape[:2], h, k, size[1], k).any(5).any(3)


def ncl_reference(model, feature, mask, cfg):
    """L_NCL straight from §3.2 and eq. 7, image by image, when max_patches exceeds every category."""
    P = cfg.patch_size
    codes = categorize_patches(mask, feature.shape[-2:], P)  # (B, gh, gw)
    feats, contour_cells = [], []
    for b in range(feature.shape[0]):
        by_cat = {AUTHENTIC: [], TAMPERED: [], CONTOUR: []}
        cells_b = []
        for r in range(codes.shape[1]):
            for c in range(codes.shape[2]):
                cells = feature[b, :, r * P:(r + 1) * P, c * P:(c + 1) * P].flatten(1).T  # (P*P, C)
                by_cat[int(codes[b, r, c])].append(cells.mean(0))
                if int(codes[b, r, c]) == CONTOUR:
                    cells_b.append(cells)
        feats.append(by_cat)
        contour_cells.append(torch.cat(cells_b) if cells_b else feature.new_zeros(0, feature.shape[1]))
    every = torch.cat(contour_cells)  # BatchNorm statistics: all contour cells of the batch
    se = {}
    for name, branch in (("plus", model.pivot.plus), ("minus", model.pivot.minus)):
        x = every @ branch.conv.weight.T
        mean, var = x.mean(0), x.var(0, unbiased=False)
        y = torch.relu((x - mean) / torch.sqrt(var + branch.bn.eps) * branch.bn.weight + branch.bn.bias)
        se[name] = list(torch.split(y, [len(c) for c in contour_cells]))
    losses = []
    for b, by_cat in enumerate(feats):
        stack = lambda v: torch.stack(v) if v else feature.new_zeros(0, feature.shape[1])
        has = len(contour_cells[b]) > 0
        sp = se["plus"][b].mean(0) if has else None
        sm = se["minus"][b].mean(0) if has else None
        n_t, n_a = len(by_cat[TAMPERED]), len(by_cat[AUTHENTIC])
        if n_a >= 1 and (n_t >= 2 or (has and n_t >= 1)):  # something to contrast
            losses.append(sum(ncl_terms(stack(by_cat[TAMPERED]), stack(by_cat[AUTHENTIC]), sp, sm, cfg.tau)))
    return torch.stack(losses).mean()
