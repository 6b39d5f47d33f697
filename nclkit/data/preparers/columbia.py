"""Columbia Uncompressed Image Splicing Detection Evaluation Dataset (Hsu & Chang 2006).

Reads (the published layout):
    root/4cam_auth/<name>.tif                   authentic
    root/4cam_splc/<name>.tif                   spliced (two cameras' images joined)
    root/4cam_splc/edgemask/<name>_edgemask.jpg colour-coded region map of each spliced image
Writes: root-independent binary masks <out folder>/columbia_derived/<name>.png (0/255).

Quirk: the edge mask paints the two source regions in pure red and pure green (a JPEG, so
only approximately pure). We take the GREEN region as the spliced one, following common
practice: tampered = G > 127.5 and R <= 127.5 (white/yellow boundary pixels are not counted).

Splits (ours; the paper trains and tests on Columbia without naming its split): a deterministic
hash of the file stem: 25 % test, 10 % val, 65 % train. For the cross-dataset protocol
(Columbia as a test set) use every record regardless of split.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import load_image
from ..manifest import Record
from .common import drop_mis_sized, finish, hash_split, list_images, manifest_paths, require_dirs, write_binary_mask

__all__ = ["prepare_columbia", "columbia_mask_from_edgemask"]

_TEST, _VAL = 0.25, 0.10


def columbia_mask_from_edgemask(edgemask_rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) edge mask -> uint8 (H, W) {0,1}: the green (spliced) region."""
    r = edgemask_rgb[:, :, 0].astype(np.float32)
    g = edgemask_rgb[:, :, 1].astype(np.float32)
    return ((g > 127.5) & (r <= 127.5)).astype(np.uint8)


def prepare_columbia(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the Columbia manifest and its derived binary masks; returns the manifest path."""
    root = Path(root)
    require_dirs(root, ["4cam_auth", "4cam_splc", "4cam_splc/edgemask"], "Columbia")
    manifest, derived = manifest_paths(out, "columbia")
    edge = {p.stem: p for p in list_images(root / "4cam_splc" / "edgemask")}
    records, unpaired = [], []
    for img in list_images(root / "4cam_splc"):
        em = edge.get(f"{img.stem}_edgemask")
        if em is None:
            unpaired.append(img.name)
            continue
        mask = columbia_mask_from_edgemask(load_image(em))
        if not mask.any():
            raise DataError(f"{em}: no green (spliced) region found in the edge mask")
        mpath = write_binary_mask(mask, derived / f"{img.stem}.png")
        records.append(Record(image=str(img), mask=mpath, label=1, dataset="columbia",
                              split=hash_split(img.stem, _TEST, _VAL), id=f"columbia/{img.stem}"))
    if unpaired:
        warnings.warn(f"Columbia: excluded {len(unpaired)} spliced image(s) with no "
                      f"edgemask/<name>_edgemask.jpg: {unpaired}", stacklevel=2)
    for img in list_images(root / "4cam_auth"):
        records.append(Record(image=str(img), mask=None, label=0, dataset="columbia",
                              split=hash_split(img.stem, _TEST, _VAL), id=f"columbia/{img.stem}"))
    records = drop_mis_sized(records, "Columbia")
    return finish(records, manifest, "Columbia", root)
