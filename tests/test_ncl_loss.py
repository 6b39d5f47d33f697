"""Eq. 7 (nclkit.ncl.ncl_loss): the three terms against a loop reference, edge cases, and L_NCL on a batch of
random block-1 features (a stand-in for the model's) against a per-image reference."""
import pytest
import torch

from helpers import StandInModel, square_batch
from nclkit import get_config, ncl_terms
from nclkit.ncl import NCLCriterion, ncl_terms_batched
from references import contour_cells_loop, ncl_reference, reference_eq7


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


def test_contour_map_holds_the_contour_cells():
    # The PC loss's contour map comes from CONTOUR cells, neither TAMPERED nor AUTHENTIC ones.
    cfg = get_config("quick", variant="full", patch_size=1)
    model = StandInModel(cfg)
    x, mask = square_batch()
    feature = model(x).features[0].detach()
    _, _, contour_map = NCLCriterion.from_config(cfg).ncl(model.pivot, feature, mask)
    want = contour_cells_loop(mask, tuple(feature.shape[-2:]))
    assert want.any() and torch.equal(contour_map.bool(), want)


def test_ncl_matches_the_per_image_reference():
    cfg = get_config("quick", variant="pivot", max_patches=1024)  # no sampling: every patch is used
    model = StandInModel(cfg)
    with torch.no_grad():
        for br in (model.pivot.plus, model.pivot.minus):
            br.bn.weight.uniform_(0.5, 1.5)
            br.bn.bias.uniform_(-0.5, 0.5)
    x, mask = square_batch(b=3)
    mask[2] = 0  # an authentic image: no term, not in the mean
    feature = model(x).features[0].detach()
    got, _, _ = NCLCriterion.from_config(cfg).ncl(model.pivot, feature, mask)
    want = ncl_reference(model, feature, mask, cfg)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_pivot_samples_at_most_max_patches_contour_patches():
    cfg = get_config("quick", variant="pivot", max_patches=3)
    model = StandInModel(cfg)
    x, mask = square_batch()
    feature = model(x).features[0].detach()
    seen = {}
    model.pivot.register_forward_pre_hook(lambda m, args: seen.update(w=args[1]))
    _, _, contour_map = NCLCriterion.from_config(cfg).ncl(model.pivot, feature, mask)
    assert seen["w"].shape == (2, 3 * cfg.patch_size ** 2)  # rows: the sampled contour cells of each image
    assert seen["w"].sum(1).tolist() == [3 * cfg.patch_size ** 2] * 2
    # the PC loss still sees every contour patch, not only the sampled ones
    assert contour_map.sum() > seen["w"].sum()


@pytest.mark.parametrize("kind", ["contour_only", "all_tampered", "authentic"])
def test_images_with_nothing_to_contrast_do_not_count(kind):
    # An image whose terms are all 0 (only contour and authentic patches, or no authentic patch, or
    # no manipulation) must not enter the batch mean: adding it leaves L_NCL unchanged.
    cfg = get_config("quick", variant="pivot", patch_size=1, max_patches=4096)
    model = StandInModel(cfg).eval()  # running BN statistics: the pivot does not depend on the batch
    x, mask = square_batch(b=2)
    if kind == "contour_only":
        mask[1] = 0
        mask[1, :, 10:50, 13] = 1  # a 1-px line: contour cells only, no tampered cell
    else:
        mask[1] = 1.0 if kind == "all_tampered" else 0.0
    feature = model(x).features[0].detach()
    crit = NCLCriterion.from_config(cfg)
    both, _, _ = crit.ncl(model.pivot, feature, mask)
    alone, _, _ = crit.ncl(model.pivot, feature[:1], mask[:1])
    assert float(alone.detach()) > 0
    torch.testing.assert_close(both, alone)


def test_sampled_negatives_estimate_the_full_sums():
    # With every negative a duplicate of one feature, the weighted sample's denominators equal the
    # full ones exactly: capped and uncapped L_NCL agree; without the weights they do not.
    torch.manual_seed(0)
    B, C = 1, 8
    p = torch.randn(B, 6, C)
    n_one = torch.randn(B, 1, C)
    sp, sm = torch.randn(B, C), torch.randn(B, C)
    has = torch.ones(B, dtype=torch.bool)
    full_n = n_one.expand(B, 400, C)
    ones = lambda t: torch.ones(t.shape[:2], dtype=torch.bool)
    want = ncl_terms_batched(p, ones(p), full_n, ones(full_n), sp, sm, has, 0.1)
    sample = full_n[:, :16]
    scale = torch.full((B,), 400 / 16).log()
    got = ncl_terms_batched(p, ones(p), sample, ones(sample), sp, sm, has, 0.1, scale, None)
    plain = ncl_terms_batched(p, ones(p), sample, ones(sample), sp, sm, has, 0.1)
    for g, w, q in zip(got[:2], want[:2], plain[:2]):  # terms 1 and 2 have authentic negatives
        torch.testing.assert_close(g, w)
        assert not torch.allclose(q, w)


def test_criterion_weights_negatives_by_category_counts():
    # max_patches below the category sizes: with sample_weighting the loss is larger (the sampled
    # negatives stand for all of them), and equal to the unweighted one when nothing is capped.
    torch.manual_seed(0)
    x, mask = square_batch()
    losses = {}
    for weighting in (False, True):
        for cap in (4, 4096):
            cfg = get_config("quick", variant="pivot", patch_size=1, max_patches=cap, sample_weighting=weighting)
            model = StandInModel(cfg)  # the same seed: the same pivot and features in all four
            feature = model(x).features[0].detach()
            g = torch.Generator().manual_seed(0)
            losses[weighting, cap] = float(NCLCriterion.from_config(cfg).ncl(model.pivot, feature, mask, generator=g)[0].detach())
    assert losses[True, 4096] == pytest.approx(losses[False, 4096], rel=1e-6)
    assert losses[True, 4] > losses[False, 4]
