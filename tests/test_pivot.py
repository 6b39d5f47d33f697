"""The pivot network: variable k in, one se+ and se- out per image, equal to running the branch on the contour cells only."""
import pytest
import torch
import torch.nn.functional as F

from nclkit import PivotNetwork


def _reference(net, feature, is_contour):
    """Loop version: gather each image's contour cells, BN statistics from all selected cells of the batch."""
    cells = [feature[b].flatten(1).T[is_contour[b, 0].flatten()] for b in range(feature.shape[0])]  # k_b x C
    outs = []
    for branch in (net.plus, net.minus):
        x = torch.cat(cells) @ branch.conv.weight[:, :, 0, 0].T  # 1x1 conv on cells
        mean, var = x.mean(0), x.var(0, unbiased=False)
        y = F.relu((x - mean) / torch.sqrt(var + branch.bn.eps) * branch.bn.weight + branch.bn.bias)
        per_image, start = [], 0
        for c in cells:
            per_image.append(y[start:start + len(c)].mean(0))
            start += len(c)
        outs.append(torch.stack(per_image))
    return outs


def test_matches_loop_reference_with_variable_k():
    torch.manual_seed(0)
    net = PivotNetwork(8).train()
    with torch.no_grad():
        for br in (net.plus, net.minus):
            br.bn.weight.uniform_(0.5, 1.5)
            br.bn.bias.uniform_(-0.5, 0.5)
    feature = torch.randn(3, 8, 6, 6)
    is_contour = torch.zeros(3, 1, 6, 6, dtype=torch.bool)
    is_contour[0, 0, 1, 1:4] = True  # k = 3 cells
    is_contour[1, 0, 2:5, 2:5] = True  # k = 9 cells
    is_contour[2, 0, 0, 0] = True  # k = 1 cell
    se_plus, se_minus, has = net(feature, is_contour)
    ref_plus, ref_minus = _reference(net, feature, is_contour)
    assert se_plus.shape == se_minus.shape == (3, 8)
    assert has.tolist() == [True, True, True]
    torch.testing.assert_close(se_plus, ref_plus, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(se_minus, ref_minus, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(se_plus, se_minus)  # two branches, separate weights


def test_permutation_invariant():
    torch.manual_seed(1)
    net = PivotNetwork(4).eval()
    feature = torch.randn(1, 4, 5, 5)
    is_contour = torch.rand(1, 1, 5, 5) > 0.5
    perm = torch.randperm(25)
    f2 = feature.flatten(2)[:, :, perm].reshape(1, 4, 5, 5)
    c2 = is_contour.flatten(2)[:, :, perm].reshape(1, 1, 5, 5)
    torch.testing.assert_close(net(feature, is_contour)[0], net(f2, c2)[0])


def test_no_contour_and_single_cell_are_finite():
    net = PivotNetwork(4).train()
    feature = torch.randn(2, 4, 3, 3, requires_grad=True)
    is_contour = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    is_contour[1, 0, 1, 1] = True  # one cell in the whole batch: running statistics
    se_plus, se_minus, has = net(feature, is_contour)
    assert has.tolist() == [False, True]
    assert torch.equal(se_plus[0], torch.zeros(4))
    (se_plus.sum() + se_minus.sum()).backward()
    assert torch.isfinite(feature.grad).all()


def test_bad_shape():
    with pytest.raises(ValueError, match="is_contour"):
        PivotNetwork(4)(torch.randn(1, 4, 3, 3), torch.zeros(1, 3, 3, dtype=torch.bool))
