"""Patch categorisation on hand-drawn masks (paper Fig. 1: tampered, authentic, contour)."""
import pytest
import torch

from nclkit import AUTHENTIC, CONTOUR, TAMPERED, categorize_patches


def test_hand_drawn_square():
    # 8x8 image, 4x4 grid (2x2 px per cell); tampered square covers pixels [2:6, 2:6].
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1
    codes = categorize_patches(mask, (4, 4))
    expected = torch.tensor([[0, 0, 0, 0],
                             [0, 1, 1, 0],
                             [0, 1, 1, 0],
                             [0, 0, 0, 0]])
    assert codes.dtype == torch.long
    assert torch.equal(codes[0], expected)


def test_hand_drawn_contour_cells():
    # The same square shifted by one pixel: every cell it touches partly is a contour cell.
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 1:5, 1:5] = 1
    codes = categorize_patches(mask, (4, 4))[0]
    expected = torch.tensor([[2, 2, 2, 0],
                             [2, 1, 2, 0],
                             [2, 2, 2, 0],
                             [0, 0, 0, 0]])
    assert torch.equal(codes, expected)


def test_patch_size_groups_cells_and_drops_trailing():
    # 10x10 px, 5x5 grid (2 px per cell), P = 2 -> 2x2 patches of 4x4 px; the 5th cell row/column is dropped.
    mask = torch.zeros(2, 1, 10, 10)
    mask[0, :, :5, :5] = 1  # pixels 0-4: patch (0,0) = px 0-3 fully tampered, px 4 spills into patch (0,1)
    codes = categorize_patches(mask, (5, 5), patch_size=2)
    assert codes.shape == (2, 2, 2)
    assert torch.equal(codes[0], torch.tensor([[TAMPERED, CONTOUR], [CONTOUR, CONTOUR]]))
    assert codes[1].eq(AUTHENTIC).all()


def test_tolerance():
    mask = torch.zeros(1, 1, 10, 10)
    mask[..., :, :1] = 1  # 10% of the only patch
    assert categorize_patches(mask, (1, 1))[0, 0, 0] == CONTOUR
    assert categorize_patches(mask, (1, 1), tolerance=0.1)[0, 0, 0] == AUTHENTIC
    mask = 1 - mask  # 90% tampered
    assert categorize_patches(mask, (1, 1), tolerance=0.1)[0, 0, 0] == TAMPERED


def test_all_authentic_and_all_tampered():
    assert categorize_patches(torch.zeros(1, 1, 16, 16), (4, 4)).eq(AUTHENTIC).all()
    assert categorize_patches(torch.ones(1, 1, 16, 16), (4, 4)).eq(TAMPERED).all()


@pytest.mark.parametrize("bad", [dict(patch_size=0), dict(tolerance=0.5)])
def test_bad_parameters(bad):
    with pytest.raises(ValueError):
        categorize_patches(torch.zeros(1, 1, 8, 8), (4, 4), **bad)


def test_bad_mask_shape():
    with pytest.raises(ValueError, match="B, 1, H, W"):
        categorize_patches(torch.zeros(8, 8), (4, 4))


@pytest.mark.parametrize("size, grid, patch", [((128, 128), (64, 64), 2), ((96, 64), (24, 16), 1),
                                               ((40, 60), (10, 15), 3), ((10, 10), (4, 4), 2)])
def test_patch_fraction_is_the_pixel_mean_of_each_patch(size, grid, patch):
    # Divisible sizes take one pooling over whole patches, the others cells first; both must give
    # the tampered fraction of each patch's pixels (10x10 on a 4x4 grid: adaptive cells, checked
    # against the cell fractions instead).
    from nclkit.ncl.categorize import cell_fraction, patch_fraction

    torch.manual_seed(0)
    mask = (torch.rand(2, 1, *size) > 0.6).float()
    frac = patch_fraction(mask, grid, patch)
    gh, gw = grid[0] // patch, grid[1] // patch
    assert frac.shape == (2, gh, gw)
    if size[0] % grid[0] or size[1] % grid[1]:
        cells = cell_fraction(mask, grid)[:, 0]
        want = torch.stack([torch.stack([cells[:, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch].mean((1, 2))
                                         for c in range(gw)], 1) for r in range(gh)], 1)
    else:
        kh, kw = size[0] // grid[0] * patch, size[1] // grid[1] * patch  # pixels per patch side
        want = torch.stack([torch.stack([mask[:, 0, r * kh:(r + 1) * kh, c * kw:(c + 1) * kw].mean((1, 2))
                                         for c in range(gw)], 1) for r in range(gh)], 1)
    torch.testing.assert_close(frac, want)
