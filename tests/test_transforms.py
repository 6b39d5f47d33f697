"""Joint transforms: shapes, padding marked invalid, image/mask/valid stay aligned, dataset items."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nclkit.data import (MEAN, STD, DataError, ManifestDataset, Record, build_transforms, denormalize,
                         to_tensor_image, write_manifest)
from nclkit.presets import get_config

CFG = get_config("quick", crop_size=32)


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
    out = build_transforms(CFG, train=True)(img, mask)
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
    t = build_transforms(CFG, train=True)
    for seed in range(10):
        torch.manual_seed(seed)
        out = t(img, mask)
        bright = out["image"][0] > 0
        assert torch.equal(bright, out["mask"][0] > 0.5)
        assert out["valid"].min() == 1  # image larger than crop: no padding


def test_eval_keeps_full_size_and_optional_resize():
    img = np.zeros((30, 50, 3), np.uint8)
    mask = np.zeros((30, 50), np.uint8)
    out = build_transforms(CFG, train=False)(img, mask)
    assert out["image"].shape == (3, 30, 50) and out["valid"].min() == 1
    out = build_transforms(CFG, train=False, resize=25)(img, mask)
    assert out["image"].shape == (3, 15, 25) and out["mask"].shape == (1, 15, 25)


def _tree(tmp_path, mask_hw=(20, 20)):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "t.png")
    Image.fromarray(np.full(mask_hw, 255, np.uint8)).save(tmp_path / "t_gt.png")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    return [Record(str(tmp_path / "t.png"), str(tmp_path / "t_gt.png"), 1, "x", "train", "t"),
            Record(str(tmp_path / "a.png"), None, 0, "x", "train", "a")]


def test_dataset_items(tmp_path):
    recs = _tree(tmp_path)
    ds = ManifestDataset(write_manifest(recs, tmp_path / "m.jsonl"), CFG, split="train")
    assert len(ds) == 2
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["mask"].shape == (1, 32, 32) and item["valid"].shape == (1, 32, 32)
    assert item["label"].dtype == torch.int64 and item["label"].ndim == 0 and int(item["label"]) == 1
    assert item["index"] == 0
    assert item["mask"].sum() == 400
    assert ds[1]["mask"].sum() == 0 and int(ds[1]["label"]) == 0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["label"].tolist() == [1, 0]


def test_dataset_mis_sized_mask_and_empty(tmp_path):
    ds = ManifestDataset(_tree(tmp_path, mask_hw=(20, 21)), CFG)
    with pytest.raises(DataError, match="t_gt.png"):
        ds[0]
    with pytest.raises(DataError, match="empty"):
        ManifestDataset(_tree(tmp_path), CFG, split="test")


def test_dataset_cache_decodes_once_and_keeps_items_equal(tmp_path):
    recs = _tree(tmp_path)
    plain = ManifestDataset(recs, CFG, split="train", train=False)
    cached = ManifestDataset(recs, CFG, split="train", train=False, cache=True)
    first = [cached[i] for i in range(len(cached))]
    for r in recs:  # every later read must come from memory
        Path(r.image).unlink()
        if r.mask is not None:
            Path(r.mask).unlink()
    for i in range(len(cached)):
        again, want = cached[i], first[i]
        for key in ("image", "mask", "valid"):
            torch.testing.assert_close(again[key], want[key])
    with pytest.raises(DataError):
        plain[0]  # the uncached dataset reads the (now missing) file


def test_random_scale_before_the_crop():
    # Paper preset: the image is scaled by a factor in [0.5, 2] before the 32 px crop. A 20 x 24
    # image then covers between 10 x 12 and 40 x 48 px of the crop; mask and valid follow it.
    cfg = get_config("paper", crop_size=32)
    assert (cfg.scale_min, cfg.scale_max) == (0.5, 2.0)
    assert (get_config("quick").scale_min, get_config("quick").scale_max) == (1.0, 1.0)
    tf = build_transforms(cfg, train=True)
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
