"""Eq. 9 and the Table 5 variants on a real (quick-preset) model: finite, vectorised, gradients where they belong."""
import pytest
import torch

from nclkit import build_model, get_config
from nclkit.ncl import NCLCriterion, sample_patches


def _batch(b=2, size=64, kind="square"):
    mask = torch.zeros(b, 1, size, size)
    if kind == "square":
        mask[0, :, 10:40, 12:44] = 1
        if b > 1:
            mask[1, :, 30:60, 5:25] = 1
    elif kind == "single_patch":  # exactly one tampered 8x8 patch (P=2 at stride 4), aligned: no contour
        mask[0, :, 8:16, 8:16] = 1
    return torch.randn(b, 3, size, size), mask


@pytest.mark.parametrize("variant", ["base", "pivot", "full"])
@pytest.mark.parametrize("kind", ["square", "authentic", "single_patch"])
def test_variants_finite_with_gradients(variant, kind):
    torch.manual_seed(0)
    cfg = get_config("quick", variant=variant)
    model = build_model(cfg).train()
    x, mask = _batch(kind=kind)
    out = model(x)
    res = NCLCriterion(cfg)(model, out, mask)
    assert res.total.dim() == 0 and torch.isfinite(res.total)
    res.total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    expected = {"base": {"bce"}, "pivot": {"bce", "ncl", "ncl_t1", "ncl_t2", "ncl_t3"},
                "full": {"pc", "pc_aux", "ncl", "ncl_t1", "ncl_t2", "ncl_t3"}}[variant]
    assert set(res.terms) == expected
    assert all(not t.requires_grad for t in res.terms.values())


def test_total_is_eq9():
    torch.manual_seed(0)
    cfg = get_config("quick", variant="full")
    model = build_model(cfg).train()
    x, mask = _batch()
    res = NCLCriterion(cfg)(model, model(x), mask)
    t = res.terms
    want = cfg.omega * t["ncl"] + t["pc"] + cfg.aux_weight * t["pc_aux"]
    assert float(res.total.detach()) == pytest.approx(float(want), rel=1e-5)
    assert float(t["ncl"]) == pytest.approx(float(t["ncl_t1"] + t["ncl_t2"] + t["ncl_t3"]), rel=1e-5)
    assert float(t["ncl_t2"]) > 0 and float(t["ncl_t3"]) > 0  # the squares make contour patches


@pytest.mark.parametrize("block", [2, 3])
def test_ncl_gradient_reaches_blocks_before_the_tap_only(block):
    torch.manual_seed(0)
    cfg = get_config("quick", variant="pivot", pivot_block=block, patch_size=1)
    model = build_model(cfg).train()
    x, mask = _batch()
    out = model(x)
    ncl, _, _ = NCLCriterion(cfg).ncl(model.pivot, out.features[block - 1], mask)
    ncl.backward()
    named = dict(model.named_parameters())
    first_conv = next(p for n, p in named.items() if n.startswith("encoder") and p.dim() == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in named.items() if n.split(".")[0] in ("decoder", "aspp", "classifier", "aux_heads"))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in named.items() if n.startswith("pivot"))


def test_sampling_caps_and_stays_in_category():
    sel = torch.zeros(3, 50, dtype=torch.bool)
    sel[0, :10] = True
    sel[1, 5:45] = True
    idx, valid = sample_patches(sel, 16)
    assert idx.shape == (3, 16)
    assert valid.sum(1).tolist() == [10, 16, 0]
    assert sel.gather(1, idx)[valid].all()
    assert len(set(idx[1].tolist())) == 16  # without replacement


def test_padding_is_excluded():
    torch.manual_seed(0)
    cfg = get_config("quick", variant="full")
    model = build_model(cfg).train()
    x, mask = _batch()
    valid = torch.ones_like(mask)
    valid[..., :, 48:] = 0
    res = NCLCriterion(cfg)(model, model(x), mask, valid)
    assert torch.isfinite(res.total)
