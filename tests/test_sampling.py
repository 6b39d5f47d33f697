"""Which patches eq. 7 contrasts (nclkit.ncl.sampling): categories with padding ignored, uniform sampling, the cell gather."""
import pytest
import torch

from nclkit import AUTHENTIC
from nclkit.ncl import IGNORE, patch_categories, patch_cells, sample_patches
from nclkit.presets import get_config


def test_padding_patches_are_ignored():
    cfg = get_config("quick", patch_size=1)
    mask = torch.zeros(1, 1, 8, 8)
    valid = torch.ones(1, 1, 8, 8)
    valid[..., :, 6:] = 0
    codes = patch_categories(mask, (4, 4), cfg.patch_size, cfg.tolerance, valid)
    assert codes[0, :, 3].eq(IGNORE).all() and codes[0, :, :3].eq(AUTHENTIC).all()


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


def test_patch_cells_gradient_is_the_same_in_both_layouts():
    # The channels_last path picks rows (index_select), the NCHW path gathers; both must send each
    # cell's gradient back to exactly that cell, so the feature's gradient is the same.
    torch.manual_seed(0)
    feature = torch.randn(3, 6, 8, 10)
    idx = torch.tensor([[0, 4, 19], [7, 3, 12], [18, 1, 9]])  # patch grid 4 x 5
    upstream = torch.randn(3, 3, 4, 6)
    grads = []
    for layout in (torch.contiguous_format, torch.channels_last):
        f = feature.detach().contiguous(memory_format=layout).requires_grad_()
        patch_cells(f, idx, grid_w=5, patch_size=2).backward(upstream)
        grads.append(f.grad)
    want = torch.zeros_like(feature)  # written cell by cell
    for b in range(3):
        for j, l in enumerate(idx[b].tolist()):
            r, c = divmod(l, 5)
            for k in range(4):
                want[b, :, 2 * r + k // 2, 2 * c + k % 2] += upstream[b, j, k]
    for g in grads:
        torch.testing.assert_close(g, want)
    assert grads[1].is_contiguous(memory_format=torch.channels_last)  # no layout copy on the way back
