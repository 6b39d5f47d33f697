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


def _mask_file(folder: Path, name: str, array: np.ndarray) -> Record:
    """A 40x48 image whose mask file holds `array` exactly (any dtype, any channels)."""
    rec = make_pair(folder, name)
    Image.fromarray(array).save(rec.mask)
    return rec


def test_masks_likely_misread_are_named_in_one_warning_with_the_rule(tmp_path):
    region = np.zeros((40, 48), np.uint8)
    region[5:10, 5:10] = 255
    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[5:10, 5:10, 3] = 255  # drawn in alpha only: the colour is black everywhere
    recs = [
        _mask_file(tmp_path, "sixteen", region.astype(np.uint16)),  # 16-bit PNG holding 0/255: reads empty
        _mask_file(tmp_path, "inverted", 255 - region),
        _mask_file(tmp_path, "alpha", rgba),
        _mask_file(tmp_path, "empty", np.zeros((40, 48), np.uint8)),
        _mask_file(tmp_path, "full", np.full((40, 48), 255, np.uint8)),
        *[_mask_file(tmp_path, f"fine{i}", region) for i in range(3)],
    ]
    with pytest.warns(UserWarning) as caught:
        scan_records(recs)
    assert len(caught) == 1
    text = str(caught[0].message)
    assert text.startswith("5 of 8 masks may be misread") and "Rule applied: white = tampered" in text
    for name, why in [("sixteen", "16-bit holding only 0 and 255"), ("inverted", "99% tampered"),
                      ("alpha", "drawn in the alpha channel only"), ("empty", "no tampered pixel"), ("full", "every pixel")]:
        assert f"{name}_gt.png ({why}" in text, name


def test_sound_masks_raise_no_warning(tmp_path, recwarn):
    scan_records([make_pair(tmp_path, f"im{i}") for i in range(3)])
    assert not recwarn.list
