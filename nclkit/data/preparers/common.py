"""Helpers shared by the dataset preparers: output paths, splits, pairing checks, archives."""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from ..errors import DataError
from ..io import IMAGE_SUFFIXES, image_hw
from ..manifest import Record, validate_manifest, write_manifest

__all__ = ["manifest_paths", "hash_fraction", "hash_split", "list_images", "require_dirs",
           "mis_sized", "warn_left_out", "drop_mis_sized", "write_binary_mask", "finish"]


def manifest_paths(out: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """`out` is the manifest file (*.jsonl) or a folder that receives manifest.jsonl.

    Returns (manifest path, folder for files the preparer derives, e.g. converted masks).
    """
    out = Path(out)
    if out.suffix and out.suffix != ".jsonl" and not out.is_dir():
        # e.g. `--out x.json`: a file was meant, and a folder named x.json would surprise.
        raise DataError(f"{out}: a manifest file must end in .jsonl; or name a folder for manifest.jsonl "
                        "(create it first if its name has a dot)")
    manifest = out if out.suffix == ".jsonl" else out / "manifest.jsonl"
    return manifest, manifest.parent / f"{name}_derived"


def hash_fraction(name: str) -> float:
    """A number in [0, 1) fixed by `name` alone: splits that do not depend on listing order."""
    return int(hashlib.sha1(name.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)


def hash_split(name: str, test: float = 0.0, val: float = 0.0) -> str:
    """'test' for the first `test` fraction of hash space, then 'val' for the next `val`, else 'train'."""
    h = hash_fraction(name)
    if h < test:
        return "test"
    return "val" if h < test + val else "train"


def list_images(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in a folder (sorted), skipping hidden files and OS litter such as Thumbs.db."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def require_dirs(root: Path, names: Iterable[str], dataset: str) -> None:
    """Raise DataError naming every expected sub-folder of root that is missing."""
    if not root.is_dir():
        raise DataError(f"{root}: {dataset} root folder not found")
    missing = [n for n in names if not (root / n).is_dir()]
    if missing:
        raise DataError(f"{root}: not a {dataset} layout; expected folders {list(names)}, missing {missing}")


def mis_sized(records: list[Record]) -> tuple[list[Record], list[str]]:
    """Split off tampered records whose mask size differs from the image's: (kept, descriptions)."""
    kept, bad = [], []
    for r in records:
        if r.mask is not None:
            hw_i, hw_m = image_hw(r.image), image_hw(r.mask)
            if hw_i != hw_m:
                bad.append(f"{Path(r.image).name} (image {hw_i[0]}x{hw_i[1]}, mask {Path(r.mask).name} "
                           f"{hw_m[0]}x{hw_m[1]})")
                continue
        kept.append(r)
    return kept, bad


def warn_left_out(prefix: str, unpaired: str | None, bad_size: list[str], stacklevel: int = 3) -> None:
    """One warning naming every file left out: `unpaired` describes the images without a mask
    (None if there are none), `bad_size` lists those whose mask size differs (from `mis_sized`)."""
    parts = [unpaired] if unpaired else []
    if bad_size:
        parts.append(f"{len(bad_size)} whose mask size differs from the image (HxW): " + "; ".join(bad_size))
    if parts:
        warnings.warn(f"{prefix} " + "; and ".join(parts), stacklevel=stacklevel + 1)


def drop_mis_sized(records: list[Record], dataset: str) -> list[Record]:
    """Exclude tampered records whose mask size differs from the image's, with one warning naming them."""
    kept, bad = mis_sized(records)
    if bad:
        warnings.warn(f"{dataset}: excluded {len(bad)} tampered image(s) whose mask size differs from "
                      f"the image (HxW): " + "; ".join(bad), stacklevel=3)
    return kept


def write_binary_mask(mask: np.ndarray, path: Path) -> str:
    """Save a {0,1} (H, W) mask as a 0/255 PNG; returns the path as a string."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), (mask > 0).astype(np.uint8) * 255):
        raise DataError(f"{path}: could not write mask")
    return str(path)


def finish(records: list[Record], manifest: Path, dataset: str, root: Path) -> Path:
    """Validate and write; an empty result is an error naming the root."""
    if not records:
        raise DataError(f"{root}: no usable {dataset} image/mask pairs found")
    validate_manifest(records, check_files=True)
    return write_manifest(records, manifest)
