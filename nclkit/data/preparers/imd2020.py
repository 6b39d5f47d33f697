"""IMD2020 (Novozamsky et al., WACV-W 2020), the real-life manipulated images subset.

Reads the published layout: one folder per source photo,
    root/<folder>/<id>_orig.<ext>        the authentic original
    root/<folder>/<name>.<ext>           a manipulated version (jpg/png)
    root/<folder>/<name>_mask.png        its ground truth, white = manipulated
Pairing rule: a manipulated image <name>.<ext> pairs with <name>_mask.* in the same folder.
Manipulated images without a mask are excluded with a warning naming them.

Split: everything test (IMD2020 is a test set of the cross-dataset protocol).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import DataError
from ..manifest import Record
from .common import drop_mis_sized, finish, list_images, manifest_paths

__all__ = ["prepare_imd2020"]


def prepare_imd2020(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the IMD2020 manifest; returns its path."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: IMD2020 root folder not found")
    files = list_images(root, recursive=True)
    if not any(p.stem.endswith("_orig") for p in files):
        raise DataError(f"{root}: not an IMD2020 layout; expected <folder>/<id>_orig.<ext> originals "
                        "with <name>.<ext> + <name>_mask.png manipulated pairs")
    masks = {(p.parent, p.stem[: -len("_mask")]): p for p in files if p.stem.endswith("_mask")}
    records, unpaired = [], []
    for p in files:
        if p.stem.endswith("_mask"):
            continue
        rid = f"imd2020/{p.parent.relative_to(root).as_posix()}/{p.stem}"
        if p.stem.endswith("_orig"):
            records.append(Record(str(p), None, 0, "imd2020", "test", rid))
            continue
        mask = masks.get((p.parent, p.stem))
        if mask is None:
            unpaired.append(str(p.relative_to(root)))
            continue
        records.append(Record(str(p), str(mask), 1, "imd2020", "test", rid))
    if unpaired:
        warnings.warn(f"IMD2020: excluded {len(unpaired)} image(s) with no <name>_mask file: {unpaired[:50]}",
                      stacklevel=2)
    records = drop_mis_sized(records, "IMD2020")
    return finish(records, manifest_paths(out, "imd2020")[0], "IMD2020", root)
