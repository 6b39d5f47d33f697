"""Each loss against a slow, loop-based reference written straight from the paper's equation."""
import math

import pytest
import torch
import torch.nn.functional as F

from nclkit import ncl_terms, pc_loss
from nclkit.ncl import bce_loss, ncl_terms_batched


def _cos(a, b):
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def reference_eq7(p, n, sp, sm, tau):
    """Eq. 7 term by term with Python loops; each term negated into a loss; no pairs -> 0."""
    e = lambda a, b: math.exp(_cos(a, b) / tau)  # e_x^y = exp(phi(x, y) / tau)
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


@pytest.mark.parametrize("M,N,D", [(5, 7, 8), (2, 1, 3), (12, 30, 16), (1, 4, 8), (6, 0, 4), (0, 5, 4)])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_ncl_terms_match_reference(M, N, D, tau):
    g = torch.Generator().manual_seed(M * 100 + N)
    p = torch.randn(M, D, generator=g, dtype=torch.float64)
    n = torch.randn(N, D, generator=g, dtype=torch.float64)
    sp, sm = torch.randn(D, generator=g, dtype=torch.float64), torch.randn(D, generator=g, dtype=torch.float64)
    got = ncl_terms(p, n, sp, sm, tau)
    want = reference_eq7(p, n, sp, sm, tau)
    for g_, w_ in zip(got, want):
        assert g_.dim() == 0
        assert float(g_) == pytest.approx(w_, rel=1e-4, abs=1e-5)


def test_ncl_terms_without_contour_give_zero_pivot_terms():
    p, n = torch.randn(4, 8), torch.randn(5, 8)
    t1, t2, t3 = ncl_terms(p, n, None, None, 0.1)
    assert float(t2) == 0.0 and float(t3) == 0.0
    assert float(t1) == pytest.approx(reference_eq7(p.double(), n.double(), None, None, 0.1)[0], rel=1e-4)


@pytest.mark.parametrize("M,N", [(1, 5), (0, 5), (3, 0), (0, 0)])
def test_ncl_edge_cases_finite_with_gradient(M, N):
    p = torch.randn(M, 8, requires_grad=True)
    n = torch.randn(N, 8, requires_grad=True)
    sp = torch.randn(8, requires_grad=True)
    sm = torch.randn(8, requires_grad=True)
    terms = ncl_terms(p, n, sp, sm, 0.1)
    total = sum(terms)
    assert torch.isfinite(total)
    total.backward()
    for t in (p, n, sp, sm):
        assert t.grad is None or torch.isfinite(t.grad).all()
    if M == 1:
        assert float(terms[0].detach()) == 0.0  # a single tampered patch has no positive pair


def test_batched_padding_does_not_change_terms():
    """Padded rows (masked out) must not change an image's terms."""
    g = torch.Generator().manual_seed(0)
    p, n = torch.randn(4, 6, generator=g), torch.randn(3, 6, generator=g)
    sp, sm = torch.randn(6, generator=g), torch.randn(6, generator=g)
    single = ncl_terms(p, n, sp, sm, 0.2)
    pp = torch.cat([p, torch.randn(3, 6, generator=g)]).unsqueeze(0)
    nn_ = torch.cat([n, torch.randn(5, 6, generator=g)]).unsqueeze(0)
    pv = torch.tensor([[1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    nv = torch.tensor([[1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    batched = ncl_terms_batched(pp, pv, nn_, nv, sp[None], sm[None], torch.tensor([True]), 0.2)
    for a, b in zip(single, batched):
        assert float(a) == pytest.approx(float(b[0]), rel=1e-5)


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


@pytest.mark.parametrize("shape", [(1, 1, 4, 4), (2, 1, 9, 7), (3, 1, 16, 16)])
@pytest.mark.parametrize("mu", [0.9, 0.5, 0.0, 1.0])
def test_pc_loss_matches_reference(shape, mu):
    g = torch.Generator().manual_seed(sum(shape))
    logits = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    mask = (torch.rand(shape, generator=g) > 0.6).double()
    contour = torch.rand(shape, generator=g) > 0.7
    assert float(pc_loss(logits, mask, contour, mu)) == pytest.approx(reference_eq8(logits, mask, contour, mu), rel=1e-5)


def test_pc_loss_without_contour_and_authentic_only():
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    mask = torch.zeros(2, 1, 8, 8)
    loss = pc_loss(logits, mask, torch.zeros(2, 1, 8, 8, dtype=torch.bool), 0.9)
    assert torch.isfinite(loss)
    assert float(loss.detach()) == pytest.approx(0.1 * float(F.binary_cross_entropy_with_logits(logits, mask).detach()), rel=1e-5)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_pc_loss_valid_excludes_padding():
    logits, mask = torch.randn(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    contour = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    valid = torch.zeros(1, 1, 4, 4)
    valid[..., :2, :] = 1
    got = pc_loss(logits, mask, contour, 0.9, valid)
    want = reference_eq8(logits[..., :2, :], mask[..., :2, :], contour[..., :2, :], 0.9)
    assert float(got) == pytest.approx(want, rel=1e-5)
    assert float(bce_loss(logits, mask, valid)) == pytest.approx(
        float(F.binary_cross_entropy_with_logits(logits[..., :2, :], mask[..., :2, :])), rel=1e-5)


def test_pc_loss_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        pc_loss(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 5, 4), torch.zeros(1, 1, 4, 4, dtype=torch.bool))
