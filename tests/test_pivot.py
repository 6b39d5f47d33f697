"""The pivot network: variable k in, one se+ and se- out per image, equal to running the branch on the contour cells only."""
import pytest
import torch
import torch.nn.functional as F

from nclkit import PivotNetwork


def _reference(net, cells, weight):
    """Loop version: gather each image's contour rows, BN statistics from all selected rows of the batch."""
    picked = [cells[b][weight[b]] for b in range(cells.shape[0])]  # k_b x C
    outs = []
    for branch in (net.plus, net.minus):
        x = torch.cat(picked) @ branch.conv.weight.T  # the 1x1 conv on rows
        mean, var = x.mean(0), x.var(0, unbiased=False)
        y = F.relu((x - mean) / torch.sqrt(var + branch.bn.eps) * branch.bn.weight + branch.bn.bias)
        per_image, start = [], 0
        for c in picked:
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
    cells = torch.randn(3, 12, 8)  # 3 images, up to 12 cells each
    weight = torch.zeros(3, 12, dtype=torch.bool)
    weight[0, :3] = True  # k = 3 cells
    weight[1, 2:11] = True  # k = 9 cells
    weight[2, 5] = True  # k = 1 cell
    se_plus, se_minus, has = net(cells, weight)
    ref_plus, ref_minus = _reference(net, cells, weight)
    assert se_plus.shape == se_minus.shape == (3, 8)
    assert has.tolist() == [True, True, True]
    torch.testing.assert_close(se_plus, ref_plus, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(se_minus, ref_minus, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(se_plus, se_minus)  # two branches, separate weights


def test_permutation_invariant():
    torch.manual_seed(1)
    net = PivotNetwork(4).eval()
    cells = torch.randn(1, 25, 4)
    weight = torch.rand(1, 25) > 0.5
    perm = torch.randperm(25)
    torch.testing.assert_close(net(cells, weight)[0], net(cells[:, perm], weight[:, perm])[0])


def test_no_contour_and_single_cell_are_finite():
    net = PivotNetwork(4).train()
    cells = torch.randn(2, 9, 4, requires_grad=True)
    weight = torch.zeros(2, 9, dtype=torch.bool)
    weight[1, 4] = True  # one cell in the whole batch: running statistics
    se_plus, se_minus, has = net(cells, weight)
    assert has.tolist() == [False, True]
    assert torch.equal(se_plus[0], torch.zeros(4))
    (se_plus.sum() + se_minus.sum()).backward()
    assert torch.isfinite(cells.grad).all()


def test_bad_shape():
    with pytest.raises(ValueError, match="cells"):
        PivotNetwork(4)(torch.randn(1, 4, 3, 3), torch.zeros(1, 3, 3, dtype=torch.bool))
