"""Your own images: a folder of tampered images and a folder of their masks, paired by name.

Reads:
    images/<stem>.<ext>                 tampered images (any image extension, searched recursively)
    masks/<stem>[<sep><tag>].<ext>      their masks, white = tampered; <sep> is "_", "-" or "." and
                                        <tag> one of MASK_TAGS (case-insensitive), or no tag at all
    authentic/<name>.<ext>              optional authentic images (image-level metrics only)
Writes: nothing; `folder_records` returns manifest records (split "test", dataset "folder")
for `nclkit eval --images DIR --masks DIR`.

Pairing is by name only, never by sort order. Images without a mask and masks whose size differs
from the image are named in one warning and left out; a mask that fits two images (two masks for
one image, or one mask for two images of one name in two sub-folders) is an error, as is a set
where no pair is left.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import DataError
from ..manifest import Record, validate_manifest
from .common import list_images, mis_sized, warn_left_out

__all__ = ["folder_records", "MASK_TAGS"]

MASK_TAGS = ("gt", "mask", "groundtruth", "ground_truth", "forged", "label", "fake")
_TAG = re.compile(r"^(.*?)(?:[_.-](?:" + "|".join(MASK_TAGS) + r"))?$", re.IGNORECASE)


def _mask_key(stem: str) -> str:
    return _TAG.match(stem)[1]


def folder_records(images: str | os.PathLike, masks: str | os.PathLike,
                   authentic: str | os.PathLike | None = None, dataset: str = "folder") -> list[Record]:
    """Pair every image in `images` with its mask in `masks` (see the module docstring).

    Raises:
        DataError: a folder is missing, two masks claim one image, or no image has a mask.
    """
    images, masks = Path(images), Path(masks)
    for folder, what in ((images, "--images"), (masks, "--masks")):
        if not folder.is_dir():
            raise DataError(f"{folder}: {what} folder not found")
    by_key: dict[str, Path] = {}
    for m in list_images(masks, recursive=True):
        key = _mask_key(m.stem)
        if key in by_key:
            raise DataError(f"{m}: mask name fits the same image as {by_key[key]}; keep one mask per image")
        by_key[key] = m
    records, unpaired, claimed = [], [], {}
    for img in list_images(images, recursive=True):
        mask = by_key.get(img.stem)
        if mask is None or mask.resolve() == img.resolve():
            unpaired.append(img.name)
            continue
        if mask in claimed:
            raise DataError(f"{mask}: one mask fits two images, {claimed[mask]} and {img}; give each image "
                            "its own mask (or evaluate the sub-folders one at a time)")
        claimed[mask] = img
        records.append(Record(image=str(img), mask=str(mask), label=1, dataset=dataset, split="test",
                              id=f"{dataset}/{img.relative_to(images).with_suffix('').as_posix()}"))
    if not records:
        raise DataError(f"{images}: no image has a mask in {masks} (a mask is named like its image, "
                        f"optionally followed by _gt, _mask, ... ; see `nclkit eval --help`)")
    if authentic is not None:
        authentic = Path(authentic)
        if not authentic.is_dir():
            raise DataError(f"{authentic}: --authentic folder not found")
        records += [Record(image=str(p), mask=None, label=0, dataset=dataset, split="test",
                           id=f"{dataset}/authentic/{p.relative_to(authentic).with_suffix('').as_posix()}")
                    for p in list_images(authentic, recursive=True)]
    records, bad_size = mis_sized(records)
    if not any(r.label == 1 for r in records):
        raise DataError(f"{images}: no usable image/mask pair: every mask's size differs from its image's (HxW): "
                        + "; ".join(bad_size[:5]) + (f"; and {len(bad_size) - 5} more" if len(bad_size) > 5 else ""))
    text = f"{len(unpaired)} image(s) without a mask in {masks}: {unpaired}" if unpaired else None
    warn_left_out(f"{images}: left out", text, bad_size, stacklevel=2)
    validate_manifest(records, check_files=False)
    return records
