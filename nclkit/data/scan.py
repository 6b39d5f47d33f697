"""A fast pass over every file of a manifest before expensive work: image headers, and the masks.

Training and evaluation call it first, so a missing, empty, unreadable or mis-sized file fails in
seconds with its name, not after an epoch. A file whose header is sound but whose pixels are
truncated is found when it is decoded: `decode=True` does that up front (training uses it for the
validation split, which would otherwise first be decoded after a whole epoch).

Masks are decoded (they are small) so that those the rule likely misreads (`io.mask_doubt`: empty,
full, mostly tampered, 16-bit 0/255, alpha only) are named in one warning with the rule applied.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Iterable

from .errors import DataError
from .io import MASK_RULE, image_hw, inspect_mask, load_image, load_mask
from .manifest import Record

# How many doubtful masks a warning names (the count says how many there are in all).
_SHOWN = 5

__all__ = ["scan_records"]


def scan_records(records: Iterable[Record], decode: bool = False, check_masks: bool = True) -> int:
    """Read the header of every image (all its pixels with `decode`) and every mask; returns the number of files read.

    With `check_masks`, every mask is decoded and those likely misread are named in one warning;
    without it, masks are read as images are (headers, or all pixels with `decode`).

    Raises:
        DataError: one line naming the first bad file and what is wrong, with a count of the others
            (missing, empty, not an image, or a mask whose size differs from its image's).
    """
    problems: list[str] = []
    doubts: list[str] = []
    n_files = n_masks = 0
    for r in records:
        try:
            hw = load_image(r.image).shape[:2] if decode else image_hw(r.image)
            n_files += 1
            if r.mask is not None:
                mhw = _mask_hw(r.mask, decode, check_masks, doubts)
                n_files, n_masks = n_files + 1, n_masks + 1
                if mhw != hw:
                    problems.append(f"{r.mask}: mask size {mhw[0]}x{mhw[1]} (HxW) differs from its image's "
                                    f"size {hw[0]}x{hw[1]} ({r.image})")
        except DataError as err:
            problems.append(str(err).splitlines()[0])
    if problems:
        more = f" (and {len(problems) - 1} more bad file(s), e.g. {problems[1]})" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    if doubts:
        shown = "; ".join(doubts[:_SHOWN]) + (f"; and {len(doubts) - _SHOWN} more" if len(doubts) > _SHOWN else "")
        warnings.warn(f"{len(doubts)} of {n_masks} masks may be misread: {shown}. Rule applied: {MASK_RULE}; "
                      "fix such masks, or leave their images out", stacklevel=2)
    return n_files


def _mask_hw(path: str, decode: bool, check: bool, doubts: list[str]) -> tuple[int, int]:
    """(H, W) of a mask; with `check`, decoded and any doubt about its reading added to `doubts`."""
    if not check:
        return load_mask(path).shape if decode else image_hw(path)
    mask, doubt = inspect_mask(path)
    if doubt is not None:
        doubts.append(f"{Path(path).name} ({doubt})")
    return mask.shape
