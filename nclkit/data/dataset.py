"""A torch Dataset over a manifest: decoded image, binary mask, valid map, label."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import DataError
from .io import load_image, load_mask
from .manifest import Record, read_manifest
from .transforms import JointTransform, build_transforms

__all__ = ["ManifestDataset"]


class ManifestDataset(Dataset):
    """Samples of a manifest (or a list of Records), transformed for training or evaluation.

    Args:
        records_or_manifest_path: a list of Records, or the path of a .jsonl manifest.
        cfg: a Config (`crop_size`, `train_max_side`, `scale_min`, `scale_max` are read).
        split: keep only this split ("train", "val", "test"); None keeps all.
        train: random crop to cfg.crop_size + flips when True; full image when False.
        transform: a JointTransform overriding the one built from cfg/train.
        cache: keep every decoded image and mask in memory after its first read (small sets read
            every epoch). With DataLoader workers, call `preload()` first: a worker's own reads die
            with it at the end of each epoch, while a cache filled before the workers start reaches
            every one of them.
    Item:
        dict with image float32 (3, S, S) normalised, mask float32 (1, S, S) in {0, 1},
        valid float32 (1, S, S) (0 on padding), label int64 scalar, index int.
        S = cfg.crop_size when train; the image's own (H, W) otherwise.
    Raises:
        DataError: empty selection; at __getitem__, unreadable files or a mask whose size differs
            from its image (the preparers decide repairs, the dataset never resizes a mask).
    """

    def __init__(
        self,
        records_or_manifest_path: Sequence[Record] | str | os.PathLike,
        cfg: Any,
        split: str | None = None,
        train: bool = True,
        transform: JointTransform | None = None,
        cache: bool = False,
    ) -> None:
        if isinstance(records_or_manifest_path, (str, os.PathLike)):
            source = str(records_or_manifest_path)
            records = read_manifest(Path(records_or_manifest_path), split=split)
        else:
            source = "<records>"
            records = list(records_or_manifest_path)
            if split is not None:
                records = [r for r in records if r.split == split]
        if not records:
            raise DataError(f"{source}: dataset is empty" + (f" for split {split!r}" if split else ""))
        self.records: list[Record] = records
        self.source = source
        self.train = train
        if transform is None:  # the Config is read here, at the edge: the transforms take its values
            transform = build_transforms(train, crop_size=cfg.crop_size, train_max_side=cfg.train_max_side,
                                         scale_range=(cfg.scale_min, cfg.scale_max))
        self.transform = transform
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def labels(self) -> list[int]:
        return [int(r.label) for r in self.records]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Untransformed uint8 image (H, W, 3) and mask (H, W) in {0, 1} of one record."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]  # the transforms never write into their input
        r = self.records[index]
        image = load_image(r.image)
        if r.mask is None:
            if r.label == 1:
                raise DataError(f"{r.image}: tampered record {r.id!r} has no mask")
            mask = np.zeros(image.shape[:2], dtype=np.uint8)
        else:
            mask = load_mask(r.mask, expected_hw=image.shape[:2])
        if self._cache is not None:
            self._cache[index] = (image, mask)
        return image, mask

    def preload(self) -> None:
        """Decode every image and mask into the cache now (a no-op without `cache`).

        Workers are started afresh each epoch, so that epoch e draws the same augmentations whether
        or not a run was resumed before it; a cache filled here, in the main process, is what they
        all inherit.
        """
        if self._cache is not None:
            for index in range(len(self)):
                self.load(index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, mask = self.load(index)
        out = self.transform(image, mask)
        out["label"] = torch.tensor(int(self.records[index].label), dtype=torch.int64)
        out["index"] = int(index)
        return out

    def __repr__(self) -> str:
        n1 = sum(self.labels)
        return (f"ManifestDataset({self.source}, {len(self)} images: {n1} tampered, "
                f"{len(self) - n1} authentic, train={self.train})")
