"""CASIA v1.0 and v2.0 (Dong et al. 2013) with the ground truth of Pham et al. 2019.

CASIA v2 reads:
    root/Tp/<name>.{jpg,tif,bmp}   tampered (Tp_D_* splicing, Tp_S_* copy-move)
    root/Gt/<name>_gt.png          ground truth, white = tampered
    root/Au/<name>.{jpg,...}       authentic (optional)
  Splits: train, with a deterministic 10 % by hash of the file stem -> val (CASIA v2 is the
  training set of the standard cross-dataset protocol; CASIA v1 is its test set).

CASIA v1 reads (tampered and ground-truth folders are searched recursively, so both the flat
Tp/Gt layout and the published "Modified Tp/Tp/{CM,Sp}" + "CASIA 1.0 groundtruth/{CM,Sp}" work):
    root/Tp/ or root/Modified Tp/        tampered
    root/Gt/ or root/CASIA 1.0 groundtruth/ or root/groundtruth/   <name>_gt.png
    root/Au/                             authentic (optional)
  Split: everything test.

Pairing rule: image stem + "_gt" = mask stem (any image extension). Tampered images without a
mask and masks whose size differs from the image (CASIA has both) are excluded with a warning
naming them.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import DataError
from ..manifest import Record
from .common import drop_mis_sized, finish, hash_split, list_images, manifest_paths

__all__ = ["prepare_casia1", "prepare_casia2"]


def _first_dir(root: Path, names: list[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _index(files: list[Path], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise DataError(f"{p}: duplicate {what} name {p.stem!r} (also {out[p.stem]})")
        out[p.stem] = p
    return out


def _prepare_casia(root: Path, out: Path, version: str, tp_dirs: list[str], gt_dirs: list[str],
                   split_of) -> Path:
    name = f"CASIA v{version}"
    if not root.is_dir():
        raise DataError(f"{root}: {name} root folder not found")
    tp, gt = _first_dir(root, tp_dirs), _first_dir(root, gt_dirs)
    if tp is None or gt is None:
        raise DataError(f"{root}: not a {name} layout; expected a tampered folder (one of {tp_dirs}) "
                        f"and a ground-truth folder (one of {gt_dirs})")
    masks = _index(list_images(gt, recursive=True), "mask")
    records, unpaired = [], []
    for img in list_images(tp, recursive=True):
        mask = masks.get(f"{img.stem}_gt")
        if mask is None:
            unpaired.append(img.name)
            continue
        records.append(Record(image=str(img), mask=str(mask), label=1, dataset=f"casia{version}",
                              split=split_of(img.stem), id=f"casia{version}/{img.stem}"))
    if unpaired:
        warnings.warn(f"{name}: excluded {len(unpaired)} tampered image(s) with no {gt.name}/<name>_gt.* "
                      f"mask: {unpaired}", stacklevel=3)
    if not records:
        raise DataError(f"{tp}: no {name} tampered image has a mask in {gt}")
    ids = {r.id for r in records}
    au = root / "Au"
    if au.is_dir():
        for img in list_images(au, recursive=True):
            rid = f"casia{version}/{img.stem}"
            if rid in ids:
                raise DataError(f"{img}: authentic name {img.stem!r} collides with a tampered image")
            records.append(Record(image=str(img), mask=None, label=0, dataset=f"casia{version}",
                                  split=split_of(img.stem), id=rid))
    records = drop_mis_sized(records, name)
    return finish(records, manifest_paths(out, f"casia{version}")[0], name, root)


def prepare_casia2(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the CASIA v2 manifest (train + hashed 10 % val); returns its path."""
    return _prepare_casia(Path(root), Path(out), "2", ["Tp"], ["Gt", "CASIA 2 Groundtruth", "groundtruth"],
                          lambda stem: hash_split(stem, test=0.0, val=0.1))


def prepare_casia1(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the CASIA v1 manifest (all test); returns its path."""
    return _prepare_casia(Path(root), Path(out), "1", ["Tp", "Modified Tp"],
                          ["Gt", "CASIA 1.0 groundtruth", "groundtruth"], lambda stem: "test")
