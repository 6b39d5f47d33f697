"""COVERAGE (Wen et al., ICIP 2016): copy-move forgeries with their originals.

Reads (the published layout):
    root/image/N.tif        authentic original, N = 1..100
    root/image/Nt.tif       tampered (copy-move) version of N
    root/mask/Nforged.tif   ground truth of the forged (pasted) region; Ncopy/Npaste are not used
Writes: the manifest only (masks are used in place).

Splits (paper §4, "75 samples are for training and the rest for testing"): N 1-75 train,
76-100 test; validation is carved out of train deterministically: N = 10, 20, ..., 70 -> val.
Each original N.tif gets the split of its N, label 0.

Known defect: for N in 41, 48, 55, 56, 57, 58, 59, 61, 95 the mask's size differs from the
image's (several are rescaled, not cropped, so no pure crop/pad repair exists). Those tampered
images are excluded with a warning naming them; their authentic originals are kept.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import DataError
from ..manifest import Record
from .common import drop_mis_sized, finish, list_images, manifest_paths, require_dirs

__all__ = ["prepare_coverage", "coverage_split"]

_NAME = re.compile(r"^(\d+)(t?)$")


def coverage_split(n: int) -> str:
    """The paper's split of image number n (1-75 train, 76-100 test), val = every 10th train number."""
    if n > 75:
        return "test"
    return "val" if n % 10 == 0 else "train"


def prepare_coverage(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the COVERAGE manifest; returns its path. See the module docstring for the layout."""
    root = Path(root)
    require_dirs(root, ["image", "mask"], "COVERAGE")
    records: list[Record] = []
    missing: list[str] = []
    for img in list_images(root / "image"):
        m = _NAME.match(img.stem)
        if m is None:
            continue
        n, tampered = int(m.group(1)), m.group(2) == "t"
        mask = None
        if tampered:
            candidates = [p for p in (root / "mask").glob(f"{n}forged.*") if p.is_file()]
            if not candidates:
                missing.append(f"{img.name} (expected mask/{n}forged.tif)")
                continue
            mask = str(candidates[0])
        records.append(Record(image=str(img), mask=mask, label=int(tampered), dataset="coverage",
                              split=coverage_split(n), id=f"coverage/{img.stem}"))
    if missing:
        raise DataError(f"{root}: COVERAGE tampered images without a ground-truth mask: {missing}")
    if not records:
        raise DataError(f"{root / 'image'}: no COVERAGE images named N.tif / Nt.tif found")
    records = drop_mis_sized(records, "COVERAGE")
    return finish(records, manifest_paths(out, "coverage")[0], "COVERAGE", root)
