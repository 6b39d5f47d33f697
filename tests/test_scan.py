"""The header pass (nclkit.data.scan): every bad file is named, in one line, before any work starts."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import make_pair
from nclkit.data import DataError, Record, scan_records


def _bad_file(kind: str, folder: Path, rec: Record) -> Record:
    if kind == "missing image":
        Path(rec.image).unlink()
    elif kind == "corrupt image":
        Path(rec.image).write_bytes(b"\x89PNG but not really")
    elif kind == "empty mask":
        Path(rec.mask).write_bytes(b"")
    elif kind == "mis-sized mask":
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(rec.mask)
    return rec


@pytest.mark.parametrize("kind, message", [
    ("missing image", "file not found"), ("corrupt image", "cannot decode"), ("empty mask", "empty"),
    ("mis-sized mask", "mask size 10x10"),
])
def test_header_pass_finds_bad_files_before_any_work(kind, message, tmp_path):
    recs = [make_pair(tmp_path, f"im{i}") for i in range(3)]
    bad = _bad_file(kind, tmp_path, recs[1])
    with pytest.raises(DataError) as err:
        scan_records(recs)
    name = Path(bad.mask if "mask" in kind else bad.image).name
    assert name in str(err.value) and message in str(err.value) and "\n" not in str(err.value)
