"""The manifest: one JSON Lines file that lists every sample of a prepared dataset.

One record per line, e.g.::

    {"id": "coverage/1t", "image": "image/1t.tif", "mask": "mask/1forged.tif", "label": 1,
     "dataset": "coverage", "split": "train"}

Paths inside the manifest's folder are stored relative to it (the folder can be moved as a
whole); others are stored absolute. `read_manifest` always returns absolute paths.
"""
from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from ..atomic import write_text_atomic
from .errors import DataError

__all__ = ["Record", "SPLITS", "PROTOCOLS", "write_manifest", "read_manifest", "validate_manifest", "describe_data"]

SPLITS = ("train", "val", "test")
_KEYS = ("image", "mask", "label", "dataset", "split", "id")

# What a record's `protocol` means, per dataset: written into every evaluation report.
PROTOCOLS = {
    ("casia1", "standard"): "CASIA v1.0, every image in test: the test half of the CASIA v2 -> v1 protocol",
    ("casia1", "grouped"): "nclkit's own split of CASIA v1.0, grouped by source photo (no photo in two "
                           "splits), ~70/10/20 of tampered images: a protocol of ours, not the paper's",
}


@dataclass
class Record:
    """One sample: an image, its mask (None when authentic) and where it belongs.

    Attributes:
        image: image path.
        mask: ground-truth mask path, white = manipulated; None for authentic images.
        label: 1 tampered, 0 authentic.
        dataset: source dataset name, e.g. "coverage".
        split: "train", "val" or "test".
        id: unique within its manifest.
        protocol: the evaluation protocol the split belongs to, e.g. "grouped" for nclkit's own
            CASIA v1 split; None where the dataset has one protocol. Written only when set.
    """

    image: str
    mask: str | None
    label: int
    dataset: str
    split: str
    id: str
    protocol: str | None = None


def _relative(path: str | None, base: Path) -> str | None:
    if path is None:
        return None
    p = Path(os.path.abspath(path))
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return str(p)


def _resolve(path: str | None, base: Path) -> str | None:
    if path is None:
        return None
    p = Path(path)
    return str(p if p.is_absolute() else (base / p))


def write_manifest(records: Iterable[Record], path: str | os.PathLike) -> Path:
    """Write records as JSON Lines, paths relative to the manifest's folder where inside it.

    Args:
        records: the samples; relative record paths are taken relative to the current directory.
        path: the manifest file to write (parent folders are created).
    Returns:
        The manifest path.
    Raises:
        DataError: no records, or a record with a split outside train/val/test.
    """
    path = Path(path)
    base = Path(os.path.abspath(path.parent))
    records = list(records)
    if not records:
        raise DataError(f"{path}: refusing to write an empty manifest (no records)")
    lines = []
    for r in records:
        if r.split not in SPLITS:
            raise DataError(f"{path}: record {r.id!r} has split {r.split!r}; expected one of {SPLITS}")
        d = asdict(r)
        d["image"] = _relative(r.image, base)
        d["mask"] = _relative(r.mask, base)
        d["label"] = int(r.label)
        if d["protocol"] is None:
            del d["protocol"]
        lines.append(json.dumps(d, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, "\n".join(lines) + "\n")  # whole or not at all: a kill never leaves half a manifest


def _parse_line(d: Any, path: Path, lineno: int, base: Path) -> Record:
    """One manifest line -> Record, or a DataError naming the file, the line and the bad value."""
    where = f"{path}: line {lineno}"
    if not isinstance(d, dict):
        raise DataError(f"{where} is not a JSON object")
    missing = [k for k in _KEYS if k not in d]
    if missing:
        raise DataError(f"{where} lacks keys {missing}; a record needs {list(_KEYS)}")
    for key in ("image", "id", "dataset"):
        if not isinstance(d[key], str) or not d[key].strip():
            raise DataError(f"{where}: {key} {d[key]!r}; expected a non-empty string")
    if d["mask"] is not None and (not isinstance(d["mask"], str) or not d["mask"].strip()):
        raise DataError(f"{where}: mask {d['mask']!r}; expected a path, or null for an authentic image")
    label = d["label"]
    if isinstance(label, bool) or label not in (0, 1):  # true/false, "yes", 2 and null are all refused
        raise DataError(f"{where}: label {label!r}; expected 0 (authentic) or 1 (tampered)")
    if d["split"] not in SPLITS:
        raise DataError(f"{where}: split {d['split']!r}; expected one of {list(SPLITS)}")
    if label == 1 and d["mask"] is None:
        raise DataError(f"{where}: tampered record {d['id']!r} has no mask; give its mask, or label 0 if authentic")
    if label == 0 and d["mask"] is not None:
        raise DataError(f"{where}: authentic record {d['id']!r} has a mask {d['mask']!r}; label it 1, or set mask null")
    protocol = d.get("protocol")
    if protocol is not None and (not isinstance(protocol, str) or not protocol.strip()):
        raise DataError(f"{where}: protocol {protocol!r}; expected a name, or no protocol key")
    return Record(image=_resolve(d["image"], base), mask=_resolve(d["mask"], base), label=int(label),
                  dataset=d["dataset"], split=d["split"], id=d["id"], protocol=protocol)


def read_manifest(path: str | os.PathLike, split: str | None = None) -> list[Record]:
    """Read and validate a manifest written by `write_manifest`, paths resolved to absolute.

    Args:
        path: the .jsonl manifest.
        split: keep only this split ("train", "val", "test"); None keeps all.
    Raises:
        DataError naming the file and line: missing file, text that is not UTF-8, bad JSON,
            missing keys, a label other than 0/1, an unknown split, a tampered record without
            a mask or an authentic one with a mask, a repeated id; an empty manifest, or a split
            with no records (the splits present are listed).
    Warns when one image file is listed in two splits (under two ids): the later split is not held out.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest not found")
    base = Path(os.path.abspath(path.parent))
    records: list[Record] = []
    first_line: dict[str, int] = {}
    for lineno, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: line {lineno} is not UTF-8 text ({err.reason} at byte {err.start}); "
                            "save the manifest as UTF-8") from None
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {lineno} is not valid JSON ({err.msg})") from None
        record = _parse_line(d, path, lineno, base)
        if record.id in first_line:
            raise DataError(f"{path}: line {lineno}: id {record.id!r} repeats line {first_line[record.id]}; "
                            "ids must be unique")
        first_line[record.id] = lineno
        records.append(record)
    if not records:
        raise DataError(f"{path}: manifest is empty (no records)")
    _warn_shared_images(records, path)
    if split is not None:
        kept = [r for r in records if r.split == split]
        if not kept:
            present = dict(sorted(Counter(r.split for r in records).items()))
            raise DataError(f"{path}: no records in split {split!r}; splits present: {present}")
        records = kept
    return records


def _warn_shared_images(records: list[Record], path: Path) -> None:
    """One warning naming both ids of every image file listed in two splits (the same file, by its real path)."""
    first: dict[str, Record] = {}
    leaks = []
    for r in records:
        seen = first.setdefault(os.path.realpath(r.image), r)
        if seen.split != r.split:
            leaks.append(f"{seen.id!r} ({seen.split}) and {r.id!r} ({r.split})")
    if leaks:
        shown = "; ".join(leaks[:5]) + (f"; and {len(leaks) - 5} more" if len(leaks) > 5 else "")
        warnings.warn(f"{path}: {len(leaks)} image file(s) listed in two splits, so a score on the later one is not "
                      f"on held-out images: {shown}", stacklevel=3)


def validate_manifest(records: Iterable[Record], check_files: bool = True) -> None:
    """Check the records' consistency; raise DataError listing every problem found.

    Checks: unique ids, label in {0, 1}, split in train/val/test, tampered records have a mask,
    authentic records have none, and (check_files) every referenced file exists.
    """
    problems: list[str] = []
    seen: Counter[str] = Counter()
    for r in records:
        seen[r.id] += 1
        if r.label not in (0, 1):
            problems.append(f"{r.id}: label {r.label!r}; expected 0 or 1")
        if r.split not in SPLITS:
            problems.append(f"{r.id}: split {r.split!r}; expected one of {SPLITS}")
        if r.label == 1 and not r.mask:
            problems.append(f"{r.id}: tampered image {r.image} has no mask")
        if r.label == 0 and r.mask:
            problems.append(f"{r.id}: authentic image {r.image} has a mask {r.mask}")
        if check_files:
            for p in (r.image, r.mask):
                if p and not Path(p).is_file():
                    problems.append(f"{r.id}: file not found: {p}")
    dups = sorted(k for k, n in seen.items() if n > 1)
    if dups:
        problems.append(f"duplicate ids: {dups[:10]}{' ...' if len(dups) > 10 else ''}")
    if not seen:
        problems.append("no records")
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError("manifest is invalid:\n  " + "\n  ".join(shown) + more)


def describe_data(records: Iterable[Record]) -> str:
    """One line naming each dataset and protocol, with tampered + authentic counts per split.

    e.g. "casia1, protocol grouped (nclkit's own split ...): test 184 tampered + 160 authentic"
    """
    counts: Counter[tuple] = Counter()
    for r in records:
        counts[(r.dataset, getattr(r, "protocol", None), r.split, int(r.label))] += 1
    parts = []
    for ds, proto in sorted({k[:2] for k in counts}, key=str):
        name = ds if proto is None else f"{ds}, protocol {proto}"
        if (ds, proto) in PROTOCOLS:
            name += f" ({PROTOCOLS[(ds, proto)]})"
        splits = [s for s in SPLITS if any(k[:3] == (ds, proto, s) for k in counts)]
        parts.append(name + ": " + ", ".join(
            f"{s} {counts[(ds, proto, s, 1)]} tampered + {counts[(ds, proto, s, 0)]} authentic" for s in splits))
    return "; ".join(parts)
