"""Eq. 9 and the Table 5 variants (nclkit.ncl.total_loss) on random outputs of the model's shapes; two
integration tests on the real quick-preset model check where the gradients go."""
import pytest
import torch

from helpers import StandInModel, square_batch
from nclkit import build_model, get_config
from nclkit.ncl import NCLCriterion
from references import cells_at, contour_cells_loop, ncl_reference, pc_reference

TERMS = {"base": {"bce"}, "pivot": {"bce", "ncl", "ncl_t1", "ncl_t2", "ncl_t3"},
         "full": {"pc", "pc_aux", "ncl", "ncl_t1", "ncl_t2", "ncl_t3"}}


@pytest.mark.parametrize("variant", ["base", "pivot", "full"])
@pytest.mark.parametrize("kind", ["square", "authentic", "single_patch"])
def test_variants_finite_with_gradients_where_they_belong(variant, kind):
    cfg = get_config("quick", variant=variant, aux_before_upsampling=True)
    model = StandInModel(cfg)
    x, mask = square_batch(kind=kind)
    out = model(x)
    res = NCLCriterion.from_config(cfg)(out, mask, pivot=model.pivot)
    assert res.total.dim() == 0 and torch.isfinite(res.total)
    res.total.backward()
    assert set(res.terms) == TERMS[variant]
    assert all(not t.requires_grad for t in res.terms.values())
    tapped = out.features[cfg.pivot_block - 1]
    reached = {"logits": out.logits.grad, "aux": [a.grad for a in out.aux_logits],
               "tapped": tapped.grad, "pivot": [p.grad for p in model.pivot.parameters()]}
    # base: BCE on the output only; pivot: + eq. 7 on the tapped block; full: PC at the output and at every head
    assert reached["logits"] is not None and torch.isfinite(reached["logits"]).all()
    assert all((g is not None) == (variant == "full") for g in reached["aux"])
    assert (reached["tapped"] is not None) == (variant != "base")
    assert all((g is not None) == (variant != "base") for g in reached["pivot"])
    assert all(f.grad is None for f in out.features if f is not tapped)
    for g in [reached["tapped"], *reached["aux"], *reached["pivot"]]:
        assert g is None or torch.isfinite(g).all()
    if variant != "base" and kind == "square":  # contour patches: the pivot and the tapped block learn
        assert reached["tapped"].abs().sum() > 0 and any(g.abs().sum() > 0 for g in reached["pivot"])


@pytest.mark.parametrize("extra_head", [False, True])
def test_total_is_eq9_from_raw_outputs(extra_head):
    # Eq. 9 rebuilt from the outputs (logits, aux logits, block-1 feature) with slow references, not
    # from the criterion's logged terms. mu, omega and aux_weight are set away from their defaults so
    # that a hard-coded constant or swapped arguments change the total.
    cfg = get_config("quick", variant="full", patch_size=1, max_patches=4096, mu=0.7, omega=0.5,
                     aux_weight=0.3, aux_before_upsampling=extra_head)
    model = StandInModel(cfg)
    x, mask = square_batch()
    out = model(x)
    res = NCLCriterion.from_config(cfg)(out, mask, pivot=model.pivot)
    feature = out.features[cfg.pivot_block - 1]
    ncl = ncl_reference(model, feature, mask, cfg)
    cells = contour_cells_loop(mask, tuple(feature.shape[-2:]))  # (B, 1, 32, 32)
    pc = pc_reference(out.logits, mask, cells_at(cells, out.logits.shape[-2:]), cfg.mu)
    aux = 0.0
    for logits in out.aux_logits:
        size = tuple(logits.shape[-2:])
        k = mask.shape[-1] // size[-1]
        small = (torch.nn.functional.avg_pool2d(mask, k) >= 0.5).float()  # the mask shrunk to the head
        aux = aux + pc_reference(logits, small, cells_at(cells, size), cfg.mu)
    assert len(out.aux_logits) == (2 if extra_head else 1)
    want = cfg.omega * ncl + pc + cfg.aux_weight * aux
    torch.testing.assert_close(res.total, want, rtol=1e-4, atol=1e-5)
    assert float(res.terms["ncl_t2"]) > 0 and float(res.terms["ncl_t3"]) > 0  # the squares make contour patches


@pytest.mark.parametrize("block", [1, 2, 3, 4, 5])
def test_criterion_reads_the_pivot_block(block):
    # The stand-in's blocks all differ in channels, so reading the wrong one cannot go unnoticed; the
    # criterion takes the block the model's output names (pivot_feature), never pivot_block itself.
    cfg = get_config("quick", variant="pivot", pivot_block=block, patch_size=1, max_patches=4096)
    model = StandInModel(cfg)
    x, mask = square_batch()
    out = model(x)
    crit = NCLCriterion.from_config(cfg)
    res = crit(out, mask, pivot=model.pivot)
    want, _, _ = crit.ncl(model.pivot, out.features[block - 1], mask)
    torch.testing.assert_close(res.terms["ncl"], want.detach())


def test_full_criterion_on_the_real_model_trains_every_part():
    # Integration: the real model's output through eq. 9 reaches the encoder, ASPP, decoder, every
    # classifier and the pivot network, with finite gradients.
    torch.manual_seed(0)
    cfg = get_config("quick", variant="full")
    model = build_model(cfg).train()
    x, mask = square_batch()
    res = NCLCriterion.from_config(cfg)(model(x), mask, pivot=model.pivot)
    assert torch.isfinite(res.total) and set(res.terms) == TERMS["full"]
    res.total.backward()
    parts = {}
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        parts[name.split(".")[0]] = parts.get(name.split(".")[0], 0.0) + float(p.grad.abs().sum())
    assert set(parts) >= {"encoder", "aspp", "decoder", "classifier", "aux_heads", "pivot"}
    assert all(v > 0 for v in parts.values()), parts


@pytest.mark.parametrize("block", [2, 3])
def test_ncl_gradient_reaches_blocks_before_the_tap_only(block):
    torch.manual_seed(0)
    cfg = get_config("quick", variant="pivot", pivot_block=block, patch_size=1)
    model = build_model(cfg).train()
    x, mask = square_batch()
    out = model(x)
    ncl, _, _ = NCLCriterion.from_config(cfg).ncl(model.pivot, out.features[block - 1], mask)
    ncl.backward()
    named = dict(model.named_parameters())
    first_conv = next(p for n, p in named.items() if n.startswith("encoder") and p.dim() == 4)
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in named.items() if n.split(".")[0] in ("decoder", "aspp", "classifier", "aux_heads"))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in named.items() if n.startswith("pivot"))


@pytest.mark.parametrize("patch_size", [1, 2])
def test_padding_is_excluded(patch_size, monkeypatch):
    # Crop padding (valid = 0) must change nothing: whatever the mask says under it, the total is
    # the same, and no patch reaching into it is ever sampled for eq. 7.
    import nclkit.ncl.ncl_loss as ncl_loss_module

    cfg = get_config("quick", variant="full", patch_size=patch_size)
    model = StandInModel(cfg)
    x, mask = square_batch()
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
    crit = NCLCriterion.from_config(cfg)
    a = crit(out, mask, valid, model.pivot, generator=torch.Generator().manual_seed(1)).total
    other = mask.clone()
    other[..., :, 48:] = 1 - other[..., :, 48:]  # different labels under the padding only
    b = crit(out, other, valid, model.pivot, generator=torch.Generator().manual_seed(1)).total
    torch.testing.assert_close(a, b)
    # every drawn patch lies wholly inside the valid region
    grid_w = out.features[0].shape[-1] // patch_size
    first_padded_col = 48 // (64 // out.features[0].shape[-1]) // patch_size
    cols = torch.cat(drawn) % grid_w
    assert len(cols) > 0 and cols.max() < first_padded_col


def test_criterion_takes_plain_values_and_a_config_once():
    from nclkit.ncl import LOSS_VARIANTS
    from nclkit.presets import VARIANTS

    cfg = get_config("quick", variant="pivot", tau=0.3, omega=0.2, mu=0.6, aux_weight=0.4, tolerance=0.1,
                     max_patches=7, sample_weighting=False)
    crit = NCLCriterion.from_config(cfg)
    assert crit == NCLCriterion("pivot", tau=0.3, omega=0.2, mu=0.6, aux_weight=0.4, patch_size=cfg.patch_size,
                                tolerance=0.1, max_patches=7, sample_weighting=False)
    assert NCLCriterion() == NCLCriterion.from_config(get_config("paper")), "defaults: the paper preset's"
    assert LOSS_VARIANTS == VARIANTS
    with pytest.raises(TypeError, match="from_config"):
        NCLCriterion(cfg)
    with pytest.raises(ValueError, match="variant='pc'"):
        NCLCriterion("pc")


def test_criterion_says_which_variants_leave_parameters_unused():
    # DDP must search for parameters without a gradient exactly where the loss leaves some out.
    assert [NCLCriterion(v).find_unused_parameters for v in ("base", "pivot", "full")] == [True, True, False]


def test_variants_with_eq7_need_the_pivot():
    cfg = get_config("quick", variant="full")
    model = StandInModel(cfg)
    x, mask = square_batch()
    out = model(x)
    with pytest.raises(ValueError, match="pivot=model.pivot"):
        NCLCriterion.from_config(cfg)(out, mask)
    assert torch.isfinite(NCLCriterion("base")(out, mask).total)  # BCE alone needs no pivot
