"""ManifestDataset (nclkit.data.dataset): items, batches, mis-sized masks, the decoded-image cache."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nclkit.data import DataError, ManifestDataset, Record, write_manifest
from nclkit.presets import get_config

CFG = get_config("quick", crop_size=32)


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


def test_preloaded_cache_reaches_fresh_loader_workers(tmp_path):
    recs = _tree(tmp_path)
    dataset = ManifestDataset(recs, CFG, split="train", train=False, cache=True)
    dataset.preload()  # what the trainer does before its workers start
    for r in recs:  # a worker that read files itself would fail now
        Path(r.image).unlink()
        if r.mask is not None:
            Path(r.mask).unlink()
    for _epoch in range(2):  # workers start afresh each epoch
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=1)
        assert [int(b["label"].sum()) for b in loader] == [1]
