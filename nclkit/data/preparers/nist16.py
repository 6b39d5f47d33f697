"""NIST Nimble 2016 (NC2016_Test) manipulation task.

Reads:
    root/reference/manipulation/NC2016-manipulation-ref.csv   pipe-separated ('|') with at least
        ProbeFileName (e.g. probe/NC2016_1234.jpg), ProbeMaskFileName
        (e.g. reference/manipulation/mask/NC2016_1234.png, empty for non-targets), IsTarget (Y/N);
        paths relative to root.
Writes: <out folder>/nist16_derived/<probe stem>.png, masks inverted to nclkit's convention.

Quirk: NIST masks are inverted, BLACK = manipulated. The preparer converts them
(manipulated = mean over channels <= 127.5) and writes 0/255 masks with white = manipulated.
Probes whose mask size differs from the probe are excluded with a warning naming them.
IsTarget = N probes are authentic (label 0, no mask).

Splits: the 404/160 train/test list of RGB-N / ManTra-Net is not distributed with NIST16, so
the split here is a deterministic hash of the probe stem with the same proportions:
28.4 % test (160/564), 10 % val, the rest train. Documented in docs/data.md.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import DataError
from ..io import load_image
from ..manifest import Record
from .common import drop_mis_sized, finish, hash_split, manifest_paths, write_binary_mask

__all__ = ["prepare_nist16", "NIST16_REF"]

NIST16_REF = "reference/manipulation/NC2016-manipulation-ref.csv"
_TEST, _VAL = 160 / 564, 0.10
_COLUMNS = ("ProbeFileName", "ProbeMaskFileName", "IsTarget")


def prepare_nist16(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the NIST16 manifest and its converted masks; returns the manifest path."""
    root = Path(root)
    ref = root / NIST16_REF
    if not ref.is_file():
        raise DataError(f"{root}: not a NIST16 layout; expected the reference file {NIST16_REF}")
    manifest, derived = manifest_paths(out, "nist16")
    with ref.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="|")
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{ref}: missing columns {missing}; found {reader.fieldnames}")
        rows = list(reader)
    records, seen = [], set()
    for lineno, row in enumerate(rows, start=2):
        if any(row.get(c) is None for c in _COLUMNS):  # csv leaves the fields of a short row as None
            n = sum(v is not None for k, v in row.items() if k is not None)
            raise DataError(f"{ref}: line {lineno} has {n} fields, expected {len(reader.fieldnames)}; "
                            "is the row cut short?")
        probe = row["ProbeFileName"].strip()
        if not probe or probe in seen:
            continue
        seen.add(probe)
        image = root / probe
        stem = Path(probe).stem
        target = row["IsTarget"].strip().upper()
        if target not in ("Y", "N"):
            raise DataError(f"{ref}: line {lineno}: IsTarget={row['IsTarget']!r}; expected Y or N")
        split = hash_split(stem, _TEST, _VAL)
        if target == "N":
            records.append(Record(str(image), None, 0, "nist16", split, f"nist16/{stem}"))
            continue
        mask_name = (row["ProbeMaskFileName"] or "").strip()
        if not mask_name:
            raise DataError(f"{ref}: line {lineno}: target probe {probe} has no ProbeMaskFileName")
        raw = load_image(root / mask_name)  # raises DataError naming a missing/corrupt mask
        manipulated = (raw.astype("float32").mean(axis=2) <= 127.5).astype("uint8")  # black = manipulated
        mpath = write_binary_mask(manipulated, derived / f"{stem}.png")
        records.append(Record(str(image), mpath, 1, "nist16", split, f"nist16/{stem}"))
    records = drop_mis_sized(records, "NIST16")
    return finish(records, manifest, "NIST16", root)
