"""Eq. 9 and the Table 5 variants on a real (quick-preset) model: finite, vectorised, gradients where they belong."""
import pytest
import torch

from nclkit import build_model, get_config
from nclkit import AUTHENTIC, CONTOUR, TAMPERED, categorize_patches, ncl_terms
from nclkit.ncl import NCLCriterion, patch_cells, sample_patches


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


@pytest.mark.parametrize("channels_last", [False, True])
def test_patch_cells_are_the_cells_of_each_patch(channels_last):
    torch.manual_seed(0)
    feature = torch.randn(2, 5, 9, 11)  # trailing row and column do not fill a 2x2 patch
    if channels_last:
        feature = feature.contiguous(memory_format=torch.channels_last)
    idx = torch.tensor([[0, 4, 19], [7, 3, 12]])  # patch grid 4 x 5
    cells = patch_cells(feature, idx, grid_w=5, patch_size=2)
    assert cells.shape == (2, 3, 4, 5)
    for b in range(2):
        for j, l in enumerate(idx[b].tolist()):
            r, c = divmod(l, 5)
            want = feature[b, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2].flatten(1).T  # (4, C), row-major
            torch.testing.assert_close(cells[b, j], want)


def _ncl_reference(model, feature, mask, cfg):
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
        x = every @ branch.conv.weight[:, :, 0, 0].T
        mean, var = x.mean(0), x.var(0, unbiased=False)
        y = torch.relu((x - mean) / torch.sqrt(var + branch.bn.eps) * branch.bn.weight + branch.bn.bias)
        se[name] = list(torch.split(y, [len(c) for c in contour_cells]))
    losses = []
    for b, by_cat in enumerate(feats):
        stack = lambda v: torch.stack(v) if v else feature.new_zeros(0, feature.shape[1])
        has = len(contour_cells[b]) > 0
        sp = se["plus"][b].mean(0) if has else None
        sm = se["minus"][b].mean(0) if has else None
        if by_cat[TAMPERED] or has:
            losses.append(sum(ncl_terms(stack(by_cat[TAMPERED]), stack(by_cat[AUTHENTIC]), sp, sm, cfg.tau)))
    return torch.stack(losses).mean()


def test_ncl_matches_the_per_image_reference():
    torch.manual_seed(0)
    cfg = get_config("quick", variant="pivot", max_patches=1024)  # no sampling: every patch is used
    model = build_model(cfg).train()
    with torch.no_grad():
        for br in (model.pivot.plus, model.pivot.minus):
            br.bn.weight.uniform_(0.5, 1.5)
            br.bn.bias.uniform_(-0.5, 0.5)
    x, mask = _batch(b=3)
    mask[2] = 0  # an authentic image: no term, not in the mean
    feature = model(x).features[0].detach()
    got, _, _ = NCLCriterion(cfg).ncl(model.pivot, feature, mask)
    want = _ncl_reference(model, feature, mask, cfg)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_pivot_samples_at_most_max_patches_contour_patches():
    torch.manual_seed(0)
    cfg = get_config("quick", variant="pivot", max_patches=3)
    model = build_model(cfg).train()
    x, mask = _batch()
    feature = model(x).features[0].detach()
    seen = {}
    model.pivot.register_forward_pre_hook(lambda m, args: seen.update(w=args[1]))
    _, _, contour_map = NCLCriterion(cfg).ncl(model.pivot, feature, mask)
    assert seen["w"].shape == (2, 1, 3 * cfg.patch_size ** 2, 1)
    assert seen["w"].sum((1, 2, 3)).tolist() == [3 * cfg.patch_size ** 2] * 2
    # the PC loss still sees every contour patch, not only the sampled ones
    assert contour_map.sum() > seen["w"].sum()
