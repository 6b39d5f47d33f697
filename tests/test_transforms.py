"""Joint transforms: shapes, padding marked invalid, image/mask/valid stay aligned, random scaling."""

import numpy as np
import pytest
import torch

from nclkit.data import MEAN, STD, build_transforms, denormalize, to_tensor_image
from nclkit.presets import get_config



def test_to_tensor_image_normalises():
    img = np.full((4, 5, 3), 255, np.uint8)
    t = to_tensor_image(img)
    assert t.shape == (3, 4, 5) and t.dtype == torch.float32
    assert torch.allclose(t[:, 0, 0], (1 - torch.tensor(MEAN)) / torch.tensor(STD))
    np.testing.assert_array_equal(denormalize(t), img)
    with pytest.raises(ValueError):
        to_tensor_image(img[:, :, 0])


def test_train_crop_of_small_image_pads_and_marks_padding():
    torch.manual_seed(0)
    img = np.full((20, 24, 3), 200, np.uint8)
    mask = np.ones((20, 24), np.uint8)
    out = build_transforms(True, crop_size=32)(img, mask)
    assert out["image"].shape == (3, 32, 32) and out["mask"].shape == (1, 32, 32)
    assert out["valid"].sum() == 20 * 24
    # the mask (all ones on the real image) and valid coincide exactly; padding is authentic
    assert torch.equal(out["mask"], out["valid"])
    # padded pixels are zero in uint8 space
    pad = out["valid"][0] == 0
    zero = (0 - torch.tensor(MEAN)) / torch.tensor(STD)
    assert torch.allclose(out["image"][:, pad].T, zero.expand(int(pad.sum()), 3))


def test_geometry_is_joint():
    """Image, mask and valid map receive the same crop and flips: a pixel pattern stays on its mask."""
    rng = np.random.default_rng(0)
    img = np.zeros((48, 40, 3), np.uint8)
    mask = (rng.random((48, 40)) > 0.5).astype(np.uint8)
    img[mask == 1] = 255
    t = build_transforms(True, crop_size=32)
    for seed in range(10):
        torch.manual_seed(seed)
        out = t(img, mask)
        bright = out["image"][0] > 0
        assert torch.equal(bright, out["mask"][0] > 0.5)
        assert out["valid"].min() == 1  # image larger than crop: no padding


def test_eval_keeps_full_size_and_optional_resize():
    img = np.zeros((30, 50, 3), np.uint8)
    mask = np.zeros((30, 50), np.uint8)
    out = build_transforms(False)(img, mask)
    assert out["image"].shape == (3, 30, 50) and out["valid"].min() == 1
    out = build_transforms(False, resize=25)(img, mask)
    assert out["image"].shape == (3, 15, 25) and out["mask"].shape == (1, 15, 25)


def test_random_scale_before_the_crop():
    # Paper preset: the image is scaled by a factor in [0.5, 2] before the 32 px crop. A 20 x 24
    # image then covers between 10 x 12 and 40 x 48 px of the crop; mask and valid follow it.
    cfg = get_config("paper", crop_size=32)
    assert (cfg.scale_min, cfg.scale_max) == (0.5, 2.0)
    assert (get_config("quick").scale_min, get_config("quick").scale_max) == (1.0, 1.0)
    tf = build_transforms(True, crop_size=cfg.crop_size, scale_range=(cfg.scale_min, cfg.scale_max))
    img = np.full((20, 24, 3), 200, np.uint8)
    mask = np.ones((20, 24), np.uint8)
    torch.manual_seed(0)
    areas = []
    for _ in range(60):
        out = tf(img, mask)
        assert out["image"].shape == (3, 32, 32)
        assert torch.equal(out["mask"], out["valid"])  # nearest-resized mask stays on the image
        areas.append(int(out["valid"].sum()))
    assert min(areas) < 0.5 * 20 * 24 and max(areas) == 32 * 32  # shrunk sometimes, filling the crop others
    assert all(a >= 10 * 12 - 30 for a in areas)
    with pytest.raises(ValueError, match="scale_range"):
        type(tf)(crop_size=32, flip=False, scale_range=(2.0, 0.5))
