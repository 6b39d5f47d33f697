"""Eq. 8 (nclkit.ncl.pc_loss) and the Base model's BCE against a loop reference; padding and shape checks."""
import pytest
import torch
import torch.nn.functional as F

from nclkit import pc_loss
from nclkit.ncl import bce_loss
from references import reference_eq8


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


@pytest.mark.parametrize("src, dst", [((16, 16), (4, 4)), ((12, 8), (3, 2)), ((10, 10), (4, 4)), ((4, 4), (16, 16)),
                                      ((3, 2), (12, 8)), ((4, 4), (10, 10)), ((8, 8), (8, 8))])
def test_resizing_matches_the_general_interpolation(src, dst):
    # Whole-number factors take pooling or repetition; every size must give what the general
    # interpolation gives (area for masks, max-pool down / nearest up for the contour flags).
    from nclkit.ncl import resize_bool, shrink_mask

    g = torch.Generator().manual_seed(src[0] * 100 + dst[0])
    mask = (torch.rand(2, 1, *src, generator=g) > 0.5).float()
    flags = torch.rand(2, 1, *src, generator=g) > 0.8
    if src == dst:
        want_mask, want_flags = mask, flags
    else:
        want_mask = (F.interpolate(mask, size=dst, mode="area") >= 0.5).float()
        want_flags = (F.adaptive_max_pool2d(flags.float(), dst) if src[0] >= dst[0]
                      else F.interpolate(flags.float(), size=dst, mode="nearest")) > 0.5
    if src[0] >= dst[0]:
        torch.testing.assert_close(shrink_mask(mask, dst), want_mask)
    got = resize_bool(flags, dst)
    assert got.dtype == torch.bool and torch.equal(got, want_flags)
