"""Eq. 7 against a maintained library: each term is a supervised InfoNCE over chosen pairs, which
pytorch-metric-learning's NTXentLoss computes from an explicit list of (anchor, positive) and
(anchor, negative) pairs: -log(e^pos / (e^pos + sum of the anchor's e^neg)), cosine similarity over
a temperature, averaged over the positive pairs. nclkit's value must equal the library's on the same
embeddings, with and without the N/k weighting of sampled negatives (a negative listed r times in
the library's pairs counts as nclkit's log-weight log r). nclkit computes in float32 (the library here
in float64): the tolerances are float32's."""
import math

import pytest
import torch

pml_losses = pytest.importorskip("pytorch_metric_learning.losses", reason="pytorch-metric-learning (test extra)")

from nclkit.ncl import ncl_terms_batched  # noqa: E402


def _pairs(anchor: int, positives, negatives, repeat: int = 1):
    """(a1, p, a2, n) index tensors: one anchor, each positive once, each negative `repeat` times."""
    positives, negatives = list(positives), [n for n in negatives for _ in range(repeat)]
    return (torch.full((len(positives),), anchor), torch.tensor(positives, dtype=torch.long),
            torch.full((len(negatives),), anchor), torch.tensor(negatives, dtype=torch.long))


def _cat(*tuples):
    return tuple(torch.cat(parts) for parts in zip(*tuples))


def library_eq7(p, n, sp, sm, tau, n_repeat=1, p_repeat=1):
    """The three terms as NTXentLoss gives them, from pairs over [p; n; se+; se-]."""
    M, N = len(p), len(n)
    emb = torch.cat([p, n, sp[None], sm[None]])
    labels = torch.arange(len(emb))  # unused: the pairs are given
    loss = pml_losses.NTXentLoss(temperature=tau)
    tampered, authentic, plus, minus = range(M), range(M, M + N), M + N, M + N + 1
    t1_pairs = _cat(*(_pairs(m, [j for j in tampered if j != m], authentic, n_repeat) for m in tampered))
    t1 = loss(emb, labels, indices_tuple=t1_pairs)
    t2 = loss(emb, labels, indices_tuple=_pairs(plus, tampered, authentic, n_repeat))
    t3 = loss(emb, labels, indices_tuple=_pairs(minus, authentic, tampered, p_repeat))
    return float(t1), float(t2), float(t3)


def nclkit_eq7(p, n, sp, sm, tau, n_repeat=1, p_repeat=1):
    scale = lambda r: torch.tensor([math.log(r)], dtype=p.dtype)  # noqa: E731
    terms = ncl_terms_batched(p[None], torch.ones(1, len(p), dtype=torch.bool), n[None],
                              torch.ones(1, len(n), dtype=torch.bool), sp[None], sm[None], torch.tensor([True]), tau,
                              scale(n_repeat), scale(p_repeat))
    return tuple(float(t[0]) for t in terms)


@pytest.mark.parametrize("M,N,D", [(2, 1, 4), (5, 7, 8), (12, 30, 16), (40, 25, 64)])
@pytest.mark.parametrize("tau", [0.05, 0.1, 0.5])
def test_eq7_equals_library_infonce(M, N, D, tau):
    g = torch.Generator().manual_seed(1000 * M + N)
    p, n = torch.randn(M, D, generator=g, dtype=torch.float64), torch.randn(N, D, generator=g, dtype=torch.float64)
    sp, sm = torch.randn(D, generator=g, dtype=torch.float64), torch.randn(D, generator=g, dtype=torch.float64)
    got, want = nclkit_eq7(p, n, sp, sm, tau), library_eq7(p, n, sp, sm, tau)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("n_repeat,p_repeat", [(3, 1), (1, 4), (5, 2)])
def test_sample_weighting_equals_repeated_negatives(n_repeat, p_repeat):
    """log(N/k) added to a sampled negative's log-sum-exp = that negative counted N/k times."""
    g = torch.Generator().manual_seed(7)
    p, n = torch.randn(6, 16, generator=g, dtype=torch.float64), torch.randn(9, 16, generator=g, dtype=torch.float64)
    sp, sm = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    got = nclkit_eq7(p, n, sp, sm, 0.1, n_repeat, p_repeat)
    want = library_eq7(p, n, sp, sm, 0.1, n_repeat, p_repeat)
    assert got == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert got != pytest.approx(nclkit_eq7(p, n, sp, sm, 0.1))  # the weighting changes the value


def test_gradients_equal_library():
    """The same gradient reaches the features from both."""
    g = torch.Generator().manual_seed(3)
    base = [torch.randn(*s, generator=g, dtype=torch.float64) for s in ((5, 8), (6, 8), (8,), (8,))]
    ours = [t.clone().requires_grad_() for t in base]
    lib = [t.clone().requires_grad_() for t in base]
    terms = ncl_terms_batched(ours[0][None], torch.ones(1, 5, dtype=torch.bool), ours[1][None],
                              torch.ones(1, 6, dtype=torch.bool), ours[2][None], ours[3][None], torch.tensor([True]), 0.1)
    sum(t[0] for t in terms).backward()
    emb = torch.cat([lib[0], lib[1], lib[2][None], lib[3][None]])
    loss = pml_losses.NTXentLoss(temperature=0.1)
    pairs = [_cat(*(_pairs(m, [j for j in range(5) if j != m], range(5, 11)) for m in range(5))),
             _pairs(11, range(5), range(5, 11)), _pairs(12, range(5, 11), range(5))]
    sum(loss(emb, torch.arange(13), indices_tuple=pr) for pr in pairs).backward()
    for a, b in zip(ours, lib):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)
