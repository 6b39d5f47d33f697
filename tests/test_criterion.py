"""Eq. 9 and the Table 5 variants on a real (quick-preset) model: finite, vectorised, gradients where they belong."""
import pytest
import torch

from nclkit import build_model, get_config
from nclkit import AUTHENTIC, CONTOUR, TAMPERED, categorize_patches, ncl_terms
from nclkit.ncl import NCLCriterion, ncl_terms_batched, patch_cells, sample_patches


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


def _contour_cells_loop(mask, grid_hw):
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


def _pc_reference(logits, mask, contour, mu):
    """Eq. 8 with boolean indexing: mu x mean BCE over contour pixels + (1 - mu) x mean BCE over all pixels."""
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), mask, reduction="none")
    first = bce[contour].mean() if contour.any() else bce.new_zeros(())
    return mu * first + (1 - mu) * bce.mean()


def _at(cells, size):
    """Cell map -> (B, 1, h, w): nearest when upsampling, "any cell" when downsampling (exact multiples)."""
    gh, h = cells.shape[-2], size[0]
    if h >= gh:
        return cells.repeat_interleave(h // gh, 2).repeat_interleave(size[1] // cells.shape[-1], 3)
    k = gh // h
    return cells.reshape(*cells.shape[:2], h, k, size[1], k).any(5).any(3)


@pytest.mark.parametrize("extra_head", [False, True])
def test_total_is_eq9_from_raw_outputs(extra_head):
    # Eq. 9 rebuilt from the model's raw outputs (logits, aux logits, block-1 feature) with slow
    # references, not from the criterion's logged terms. mu, omega and aux_weight are set away from
    # their defaults so that a hard-coded constant or swapped arguments change the total.
    torch.manual_seed(0)
    cfg = get_config("quick", variant="full", patch_size=1, max_patches=4096, mu=0.7, omega=0.5,
                     aux_weight=0.3, aux_before_upsampling=extra_head)
    model = build_model(cfg).train()
    with torch.no_grad():  # spread the logits so that contour and other pixels have unlike BCE
        for head in (model.classifier, *model.aux_heads):
            head[0].weight.normal_(0, 0.5)
            head[0].bias.fill_(1.0)
    x, mask = _batch()
    out = model(x)
    res = NCLCriterion(cfg)(model, out, mask)
    feature = out.features[cfg.pivot_block - 1]
    ncl = _ncl_reference(model, feature, mask, cfg)
    cells = _contour_cells_loop(mask, tuple(feature.shape[-2:]))  # (B, 1, 32, 32)
    pc = _pc_reference(out.logits, mask, _at(cells, out.logits.shape[-2:]), cfg.mu)
    aux = 0.0
    for logits in out.aux_logits:
        size = tuple(logits.shape[-2:])
        k = mask.shape[-1] // size[-1]
        small = (torch.nn.functional.avg_pool2d(mask, k) >= 0.5).float()  # the mask shrunk to the head
        aux = aux + _pc_reference(logits, small, _at(cells, size), cfg.mu)
    assert len(out.aux_logits) == (2 if extra_head else 1)
    want = cfg.omega * ncl + pc + cfg.aux_weight * aux
    torch.testing.assert_close(res.total, want, rtol=1e-4, atol=1e-5)
    assert float(res.terms["ncl_t2"]) > 0 and float(res.terms["ncl_t3"]) > 0  # the squares make contour patches


def test_contour_map_holds_the_contour_cells():
    # The PC loss's contour map comes from CONTOUR cells, neither TAMPERED nor AUTHENTIC ones.
    torch.manual_seed(0)
    cfg = get_config("quick", variant="full", patch_size=1)
    model = build_model(cfg).train()
    x, mask = _batch()
    feature = model(x).features[0].detach()
    _, _, contour_map = NCLCriterion(cfg).ncl(model.pivot, feature, mask)
    want = _contour_cells_loop(mask, tuple(feature.shape[-2:]))
    assert want.any() and torch.equal(contour_map.bool(), want)


class _StubModel:
    """Five blocks of different shapes, so that reading the wrong block cannot go unnoticed."""

    channels = (3, 5, 6, 7, 9)
    sizes = (32, 16, 8, 4, 4)

    def __init__(self, block):
        from nclkit.ncl import PivotNetwork

        torch.manual_seed(0)
        self.pivot = PivotNetwork(self.channels[block - 1]).train()
        self.features = [torch.randn(2, c, s, s) for c, s in zip(self.channels, self.sizes)]


@pytest.mark.parametrize("block", [1, 2, 3, 4, 5])
def test_criterion_reads_the_pivot_block(block):
    from nclkit.models import ModelOutput

    cfg = get_config("quick", variant="pivot", pivot_block=block, patch_size=1, max_patches=4096)
    stub = _StubModel(block)
    _, mask = _batch()
    out = ModelOutput(logits=torch.zeros(2, 1, 64, 64), features=stub.features, aux_logits=[])
    crit = NCLCriterion(cfg)
    res = crit(stub, out, mask)
    want, _, _ = crit.ncl(stub.pivot, stub.features[block - 1], mask)
    torch.testing.assert_close(res.terms["ncl"], want.detach())
    # and the real model's pivot network is sized for that block
    model = build_model("quick", pivot_block=block)
    assert model.pivot.channels == model.encoder.channels[block - 1]


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


def test_sampling_is_uniform_not_the_first_k():
    # 40 selected of 60, 10 drawn per row: each selected patch should appear 1/4 of the time.
    sel = torch.zeros(1, 60, dtype=torch.bool)
    sel[0, 20:] = True
    g = torch.Generator().manual_seed(0)
    hits = torch.zeros(60)
    draws = 2000
    for _ in range(draws):
        idx, valid = sample_patches(sel, 10, g)
        hits.index_add_(0, idx[valid], torch.ones(int(valid.sum())))
    freq = hits / draws
    assert freq[:20].eq(0).all()
    assert (freq[20:] - 0.25).abs().max() < 0.05  # binomial sd ~0.01
    assert abs(freq[20:30].mean() - freq[50:60].mean()) < 0.03


@pytest.mark.parametrize("patch_size", [1, 2])
def test_padding_is_excluded(patch_size, monkeypatch):
    # Crop padding (valid = 0) must change nothing: whatever the mask says under it, the total is
    # the same, and no patch reaching into it is ever sampled for eq. 7.
    import nclkit.ncl.ncl_loss as ncl_loss_module

    torch.manual_seed(0)
    cfg = get_config("quick", variant="full", patch_size=patch_size)
    model = build_model(cfg).train()
    x, mask = _batch()
    valid = torch.ones_like(mask)
    valid[..., :, 48:] = 0  # a multiple of every stride: no head straddles the border
    out = model(x)
    drawn = []
    real = ncl_loss_module.sample_patches

    def spy(selected, k, generator=None):
        idx, ok = real(selected, k, generator)
        drawn.append(idx[ok])
        return idx, ok

    monkeypatch.setattr(ncl_loss_module, "sample_patches", spy)
    crit = NCLCriterion(cfg)
    a = crit(model, out, mask, valid, generator=torch.Generator().manual_seed(1)).total
    other = mask.clone()
    other[..., :, 48:] = 1 - other[..., :, 48:]  # different labels under the padding only
    b = crit(model, out, other, valid, generator=torch.Generator().manual_seed(1)).total
    torch.testing.assert_close(a, b)
    # every drawn patch lies wholly inside the valid region
    grid_w = out.features[0].shape[-1] // patch_size
    first_padded_col = 48 // (64 // out.features[0].shape[-1]) // patch_size
    cols = torch.cat(drawn) % grid_w
    assert len(cols) > 0 and cols.max() < first_padded_col


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
    assert seen["w"].shape == (2, 3 * cfg.patch_size ** 2)  # rows: the sampled contour cells of each image
    assert seen["w"].sum(1).tolist() == [3 * cfg.patch_size ** 2] * 2
    # the PC loss still sees every contour patch, not only the sampled ones
    assert contour_map.sum() > seen["w"].sum()


@pytest.mark.parametrize("kind", ["contour_only", "all_tampered", "authentic"])
def test_images_with_nothing_to_contrast_do_not_count(kind):
    # An image whose terms are all 0 (only contour and authentic patches, or no authentic patch, or
    # no manipulation) must not enter the batch mean: adding it leaves L_NCL unchanged.
    torch.manual_seed(0)
    cfg = get_config("quick", variant="pivot", patch_size=1, max_patches=4096)
    model = build_model(cfg).eval()  # running BN statistics: the pivot does not depend on the batch
    x, mask = _batch(b=2)
    if kind == "contour_only":
        mask[1] = 0
        mask[1, :, 10:50, 13] = 1  # a 1-px line: contour cells only, no tampered cell
    else:
        mask[1] = 1.0 if kind == "all_tampered" else 0.0
    feature = model(x).features[0].detach()
    crit = NCLCriterion(cfg)
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
    x, mask = _batch()
    losses = {}
    for weighting in (False, True):
        for cap in (4, 4096):
            cfg = get_config("quick", variant="pivot", patch_size=1, max_patches=cap, sample_weighting=weighting)
            torch.manual_seed(0)
            model = build_model(cfg).train()
            feature = model(x).features[0].detach()
            g = torch.Generator().manual_seed(0)
            losses[weighting, cap] = float(NCLCriterion(cfg).ncl(model.pivot, feature, mask, generator=g)[0])
    assert losses[True, 4096] == pytest.approx(losses[False, 4096], rel=1e-6)
    assert losses[True, 4] > losses[False, 4]
