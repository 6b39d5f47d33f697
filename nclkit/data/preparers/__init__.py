"""One preparer per public benchmark: published layout -> nclkit manifest (docs/data.md).

Each `prepare_X(root, out) -> Path` reads the dataset folder `root`, writes the manifest `out`
(a .jsonl file, or a folder that receives manifest.jsonl) and returns the manifest's path.
`nclkit prepare NAME` runs one from the command line.
"""
from __future__ import annotations

from typing import Callable

from .casia import prepare_casia1, prepare_casia2
from .columbia import columbia_mask_from_edgemask, prepare_columbia
from .coverage import coverage_split, prepare_coverage
from .defacto import prepare_defacto
from .folder import MASK_TAGS, folder_records
from .imd2020 import prepare_imd2020
from .nist16 import prepare_nist16

__all__ = ["PREPARERS", "prepare_coverage", "prepare_casia1",
           "prepare_casia2", "prepare_columbia", "prepare_nist16", "prepare_defacto", "prepare_imd2020",
           "coverage_split", "columbia_mask_from_edgemask", "folder_records", "MASK_TAGS"]

PREPARERS: dict[str, Callable] = {
    "coverage": prepare_coverage,
    "casia1": prepare_casia1,
    "casia2": prepare_casia2,
    "columbia": prepare_columbia,
    "nist16": prepare_nist16,
    "defacto": prepare_defacto,
    "imd2020": prepare_imd2020,
}
