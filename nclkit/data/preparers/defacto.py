"""DEFACTO (Mahfoudi et al., EUSIPCO 2019): automatically generated manipulations of MS-COCO.

Reads the published per-category layout (any number of categories):
    root/<category>_img/img/<name>.{tif,jpg,png}              manipulated image
    root/<category>_annotations/probe_mask/<name>.{jpg,tif,png} ground truth, white = manipulated
e.g. copymove_img/img + copymove_annotations/probe_mask, splicing_1_img/img +
splicing_1_annotations/probe_mask, inpainting_img/img + inpainting_annotations/probe_mask.
Pairing rule: same category, same file stem. Images without a mask are excluded with a warning.

Splits: the paper trains on "Defacto-84K" and tests on "Defacto-12K" (MVSS-Net++'s selection,
not distributed as a list). We reproduce the proportions with a deterministic hash of
"<category>/<stem>": 12.5 % test (12K of 96K), 5 % val, the rest train. DEFACTO has no authentic
images of its own (its sources are MS-COCO), so every record is tampered.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import DataError
from ..manifest import Record
from .common import drop_mis_sized, finish, hash_split, list_images, manifest_paths

__all__ = ["prepare_defacto"]

_TEST, _VAL = 0.125, 0.05


def prepare_defacto(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the DEFACTO manifest; returns its path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: DEFACTO root folder not found")
    cats = sorted(p.name[: -len("_img")] for p in root.iterdir() if p.is_dir() and p.name.endswith("_img"))
    cats = [c for c in cats if (root / f"{c}_img" / "img").is_dir()
            and (root / f"{c}_annotations" / "probe_mask").is_dir()]
    if not cats:
        raise DataError(f"{root}: not a DEFACTO layout; expected <category>_img/img/ with "
                        "<category>_annotations/probe_mask/ (e.g. copymove_img/img, copymove_annotations/probe_mask)")
    records, unpaired = [], []
    for cat in cats:
        masks = {p.stem: p for p in list_images(root / f"{cat}_annotations" / "probe_mask")}
        for img in list_images(root / f"{cat}_img" / "img"):
            mask = masks.get(img.stem)
            if mask is None:
                unpaired.append(f"{cat}/{img.name}")
                continue
            key = f"{cat}/{img.stem}"
            records.append(Record(str(img), str(mask), 1, "defacto", hash_split(key, _TEST, _VAL), f"defacto/{key}"))
    if unpaired:
        warnings.warn(f"DEFACTO: excluded {len(unpaired)} image(s) with no probe_mask: {unpaired[:50]}", stacklevel=2)
    records = drop_mis_sized(records, "DEFACTO")
    return finish(records, manifest_paths(out, "defacto")[0], "DEFACTO", root)
