"""CASIA v1.0 and v2.0 (Dong et al. 2013) with the ground truth of Pham et al. 2019.

CASIA v2 reads:
    root/Tp/<name>.{jpg,tif,bmp}   tampered (Tp_D_* splicing, Tp_S_* copy-move)
    root/Gt/<name>_gt.png          ground truth, white = tampered
    root/Au/<name>.{jpg,...}       authentic (optional)
  Splits: train, with a deterministic 10 % by hash of the file stem -> val (CASIA v2 is the
  training set of the standard cross-dataset protocol; CASIA v1 is its test set).

CASIA v1 reads (tampered and ground-truth folders are searched recursively):
    root/Sp/ (the flat public release), root/Tp/ or root/Modified Tp/      tampered JPEGs
    root/CASIA 1.0 groundtruth/{CM,Sp}/<name>_gt.png (or root/Gt/, root/groundtruth/)
    root/CASIA 1.0 groundtruth/FileNameCorrection.xlsx   the authors' name corrections (optional)
    root/Au/                                                authentic (optional)
  Pairing, in this order, each mask used at most once:
    1. exact: image stem + "_gt" = mask stem;
    2. the correction list: FileNameCorrection.xlsx maps an image name to the name its ground
       truth carries (splicing/copy-move letter fixed, donor id fixed, a "." typo fixed);
    3. donor and target swapped: `Sp_D_NRN_A_ani0013_ani0026_0409` -> mask of
       `Sp_D_NRN_A_ani0026_ani0013_0409` (same category letters and serial number);
    4. same category letters and serial number, where exactly one unused mask has them (a typo in
       a photo id: `Sp_D_NRN_A_ant0063_nat0065_0443` -> `Sp_D_NRN_A_nat0063_nat0065_0443`).
  Protocols (`protocol=`), written into every record:
    "standard": everything test -- CASIA v1 as the test half of the CASIA v2 -> v1 protocol.
    "grouped":  nclkit's own train/val/test split of CASIA v1 (not the paper's protocol), grouped
                by source photo so that no photo appears in two splits (see `casia1_groups`).

Tampered images without a mask and masks whose size differs from the image (CASIA has both)
are excluded, all named in one warning. The two versions name their tampered images apart (v1
`Sp_*`, v2 `Tp_*`): a folder of the other version's images is refused, never labelled as this one.
"""
from __future__ import annotations

import os
import re
import zipfile
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

from ..errors import DataError
from ..manifest import PROTOCOLS, Record
from .common import finish, hash_fraction, hash_split, list_images, manifest_paths, mis_sized, warn_left_out

__all__ = ["prepare_casia1", "prepare_casia2", "read_name_corrections", "casia1_photo_ids",
           "casia1_groups", "grouped_split", "CASIA1_PROTOCOLS"]

CASIA1_PROTOCOLS = {name: text for (ds, name), text in PROTOCOLS.items() if ds == "casia1"}
# Fractions of tampered images that the grouped split aims at (test first, then val).
GROUPED_FRACTIONS = {"test": 0.2, "val": 0.1}

_TAMPERED = re.compile(r"^(Sp_[DS]_[A-Z]{3}_[A-Z])_([a-z]{3}\d{4})_([a-z]{3}\d{4})[_.](\d{4})$")
_AUTHENTIC = re.compile(r"^Au_([a-z]{3})_(\d{4})$")
_XLSX = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


def _first_dir(root: Path, names: list[str]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _index(files: list[Path], what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise DataError(f"{p}: duplicate {what} name {p.stem!r} (also {out[p.stem]})")
        out[p.stem] = p
    return out


def read_name_corrections(xlsx: str | os.PathLike) -> dict[str, str]:
    """The authors' FileNameCorrection.xlsx as {image-release stem: ground-truth stem}.

    An .xlsx is a zip of XML: the sheet's cells in column B hold the name in the image release,
    column C the corrected name; cells of type "s" index the shared-string table.
    """
    xlsx = Path(xlsx)
    try:
        with zipfile.ZipFile(xlsx) as zf:
            names = set(zf.namelist())
            strings = []
            if "xl/sharedStrings.xml" in names:
                for si in ElementTree.fromstring(zf.read("xl/sharedStrings.xml")).iter(f"{_XLSX}si"):
                    strings.append("".join(t.text or "" for t in si.iter(f"{_XLSX}t")))
            sheet = ElementTree.fromstring(zf.read("xl/worksheets/sheet1.xml"))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError) as err:
        raise DataError(f"{xlsx}: cannot read the name-correction workbook ({type(err).__name__}: {err})") from err

    def text(cell) -> str | None:
        kind = cell.get("t")
        if kind == "inlineStr":
            return "".join(t.text or "" for t in cell.iter(f"{_XLSX}t"))
        v = cell.find(f"{_XLSX}v")
        if v is None or v.text is None:
            return None
        return strings[int(v.text)] if kind == "s" else v.text

    out: dict[str, str] = {}
    for row in sheet.iter(f"{_XLSX}row"):
        cols = {re.sub(r"\d+$", "", c.get("r", "")): text(c) for c in row.iter(f"{_XLSX}c")}
        old, new = cols.get("B"), cols.get("C")
        if old and new and old.lower().endswith(".jpg") and new.lower().endswith(".jpg"):
            out[Path(old).stem] = Path(new).stem
    if not out:
        raise DataError(f"{xlsx}: no 'original name -> corrected name' rows found in columns B and C")
    return out


def _swapped(stem: str) -> str | None:
    m = _TAMPERED.match(stem)
    return None if m is None else f"{m[1]}_{m[3]}_{m[2]}_{m[4]}"


def _serial(stem: str) -> tuple[str, str] | None:
    m = _TAMPERED.match(stem)
    return None if m is None else (m[1], m[4])


def _pair_casia1(images: list[Path], masks: dict[str, Path], corrections: dict[str, str]):
    """Pair each tampered image with its mask by the rules of the module docstring, each mask once.

    Returns (pairs [(image, mask)], unpaired images, Counter of pairs per rule).
    """
    free = {stem[: -len("_gt")] for stem in masks if stem.endswith("_gt")}
    pairs, how = [], Counter()

    def by_serial(stem: str) -> str | None:
        key = _serial(stem)
        hits = [] if key is None else [m for m in free if _serial(m) == key]
        return hits[0] if len(hits) == 1 else None

    rules = (("exact", lambda s: s), ("correction list", corrections.get),
             ("donor/target swapped", _swapped), ("category and serial", by_serial))
    for rule, name_of in rules:
        left = []
        for img in images:
            name = name_of(img.stem)
            if name is not None and name in free:
                free.discard(name)
                pairs.append((img, masks[f"{name}_gt"]))
                how[rule] += 1
            else:
                left.append(img)
        images = left
    return pairs, images, how


def casia1_photo_ids(stem: str) -> tuple[str, ...]:
    """The source-photo ids a CASIA v1 name carries: target and donor of Sp_*, the photo of Au_*.

    `Sp_D_NRN_A_nat0013_nat0012_0572` -> ("nat0013", "nat0012"); `Au_ani_0001` -> ("ani0001",);
    a name of another form -> (stem,), its own group.
    """
    m = _TAMPERED.match(stem)
    if m:
        return (m[2], m[3])
    m = _AUTHENTIC.match(stem)
    return (f"{m[1]}{m[2]}",) if m else (stem,)


def casia1_groups(stems: list[str]) -> dict[str, str]:
    """{stem: group key}: images connected through any shared source photo share a group.

    Union-find over photo ids; a group's key is its smallest photo id, so the grouping does not
    depend on listing order.
    """
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for stem in stems:
        ids = casia1_photo_ids(stem)
        for other in ids[1:]:
            a, b = root(ids[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        root(ids[0])
    return {stem: root(casia1_photo_ids(stem)[0]) for stem in stems}


def grouped_split(groups: dict[str, str], tampered: set[str]) -> dict[str, str]:
    """{stem: split}: whole groups, walked in the order of a hash of their key, fill test until it
    holds GROUPED_FRACTIONS["test"] of the tampered images, then val likewise, then train.

    SHA-1 of the key fixes the order: the same on every platform and Python version.
    """
    size = Counter(groups[s] for s in tampered)
    order = sorted(set(groups.values()), key=lambda g: (hash_fraction(g), g))
    total, split_of, filled = len(tampered), {}, Counter()
    targets = [("test", GROUPED_FRACTIONS["test"] * total), ("val", GROUPED_FRACTIONS["val"] * total)]
    for g in order:
        split = next((name for name, want in targets if filled[name] < want), "train")
        split_of[g] = split
        filled[split] += size[g]
    return {stem: split_of[g] for stem, g in groups.items()}


# How each version names its tampered images; the names tell one version's folder from the other's.
_TAMPERED_PREFIX = {"CASIA v1": "Sp_", "CASIA v2": "Tp_"}


def _check_version(images: list[Path], name: str, tp: Path) -> None:
    """Refuse tampered images that all carry the other CASIA version's prefix."""
    (other, prefix), = ((k, v) for k, v in _TAMPERED_PREFIX.items() if k != name)
    theirs = [p.name for p in images if p.name.startswith(prefix)]
    if theirs and not any(p.name.startswith(_TAMPERED_PREFIX[name]) for p in images):
        command = "casia2" if other == "CASIA v2" else "casia1"
        raise DataError(f"{tp}: the tampered images are named {prefix}* (e.g. {theirs[0]}), as {other} names them, "
                        f"not {_TAMPERED_PREFIX[name]}* as {name} does; for {other} use `nclkit prepare {command}`")


def _warn_excluded(name: str, unpaired: list[str], bad_size: list[str], gt: Path) -> None:
    text = f"{len(unpaired)} tampered image(s) with no mask in {gt.name}: {unpaired}" if unpaired else None
    warn_left_out(f"{name}: excluded", text, bad_size, stacklevel=4)


def prepare_casia2(root: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the CASIA v2 manifest (train + hashed 10 % val); returns its path."""
    root, name = Path(root), "CASIA v2"
    tp, gt = _layout(root, name, ["Tp"], ["Gt", "CASIA 2 Groundtruth", "groundtruth"])
    masks = _index(list_images(gt, recursive=True), "mask")
    records, unpaired, images = [], [], list_images(tp, recursive=True)
    _check_version(images, name, tp)
    for img in images:
        mask = masks.get(f"{img.stem}_gt")
        if mask is None:
            unpaired.append(img.name)
            continue
        records.append(Record(image=str(img), mask=str(mask), label=1, dataset="casia2",
                              split=hash_split(img.stem, val=0.1), id=f"casia2/{img.stem}"))
    records += _authentic(root, records, "casia2", lambda stem: hash_split(stem, val=0.1))
    records, bad_size = mis_sized(records)
    _warn_excluded(name, unpaired, bad_size, gt)
    return finish(records, manifest_paths(out, "casia2")[0], name, root)


def prepare_casia1(root: str | os.PathLike, out: str | os.PathLike, protocol: str = "standard") -> Path:
    """Write the CASIA v1 manifest under `protocol` ("standard" or "grouped"); returns its path."""
    root, name = Path(root), "CASIA v1"
    if protocol not in CASIA1_PROTOCOLS:
        raise ValueError(f"protocol={protocol!r}; CASIA v1 has {sorted(CASIA1_PROTOCOLS)}")
    tp, gt = _layout(root, name, ["Sp", "Tp", "Modified Tp"], ["CASIA 1.0 groundtruth", "Gt", "groundtruth"])
    xlsx = next(iter(sorted(gt.rglob("FileNameCorrection.xlsx"))), None)
    corrections = read_name_corrections(xlsx) if xlsx else {}
    masks = _index(list_images(gt, recursive=True), "mask")
    images = list_images(tp, recursive=True)
    _check_version(images, name, tp)
    pairs, unpaired, _ = _pair_casia1(images, masks, corrections)
    records = [Record(image=str(img), mask=str(mask), label=1, dataset="casia1", split="test",
                      id=f"casia1/{img.stem}", protocol=protocol) for img, mask in pairs]
    records += _authentic(root, records, "casia1", lambda stem: "test", protocol)
    records, bad_size = mis_sized(records)
    _warn_excluded(name, sorted(p.name for p in unpaired), bad_size, gt)
    if protocol == "grouped":
        # Photo ids from the ground truth's name where there is one: it carries the corrected ids.
        stem = {r.id: Path(r.mask).stem[: -len("_gt")] if r.mask else Path(r.image).stem for r in records}
        split = grouped_split(casia1_groups(list(stem.values())), {stem[r.id] for r in records if r.label == 1})
        for r in records:
            r.split = split[stem[r.id]]
    return finish(records, manifest_paths(out, "casia1")[0], name, root)


def _layout(root: Path, name: str, tp_dirs: list[str], gt_dirs: list[str]) -> tuple[Path, Path]:
    if not root.is_dir():
        raise DataError(f"{root}: {name} root folder not found")
    tp, gt = _first_dir(root, tp_dirs), _first_dir(root, gt_dirs)
    if tp is None or gt is None:
        raise DataError(f"{root}: not a {name} layout; expected a tampered folder (one of {tp_dirs}) "
                        f"and a ground-truth folder (one of {gt_dirs})")
    return tp, gt


def _authentic(root: Path, tampered: list[Record], dataset: str, split_of, protocol: str | None = None) -> list[Record]:
    au = root / "Au"
    if not au.is_dir():
        return []
    ids, out = {r.id for r in tampered}, []
    for img in list_images(au, recursive=True):
        rid = f"{dataset}/{img.stem}"
        if rid in ids:
            raise DataError(f"{img}: authentic name {img.stem!r} collides with a tampered image")
        out.append(Record(image=str(img), mask=None, label=0, dataset=dataset, split=split_of(img.stem),
                          id=rid, protocol=protocol))
    return out
