"""A fast pass over every file of a manifest before expensive work: headers only, no pixel decoding.

Training and evaluation call it first, so a missing, empty, unreadable or mis-sized file fails in
seconds with its name, not after an epoch. A file whose header is sound but whose pixels are
truncated is found when it is decoded: `decode=True` does that up front (training uses it for the
validation split, which would otherwise first be decoded after a whole epoch).
"""
from __future__ import annotations

from typing import Iterable

from .errors import DataError
from .io import image_hw, load_image, load_mask
from .manifest import Record

__all__ = ["scan_records"]


def scan_records(records: Iterable[Record], decode: bool = False) -> int:
    """Read the header of every image and mask (all their pixels with `decode`); returns the number of files read.

    Raises:
        DataError: one line naming the first bad file and what is wrong, with a count of the others
            (missing, empty, not an image, or a mask whose size differs from its image's).
    """
    problems: list[str] = []
    n_files = 0
    for r in records:
        try:
            hw = load_image(r.image).shape[:2] if decode else image_hw(r.image)
            n_files += 1
            if r.mask is not None:
                mhw = load_mask(r.mask).shape if decode else image_hw(r.mask)
                n_files += 1
                if mhw != hw:
                    problems.append(f"{r.mask}: mask size {mhw[0]}x{mhw[1]} (HxW) differs from its image's "
                                    f"size {hw[0]}x{hw[1]} ({r.image})")
        except DataError as err:
            problems.append(str(err).splitlines()[0])
    if problems:
        more = f" (and {len(problems) - 1} more bad file(s), e.g. {problems[1]})" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    return n_files
