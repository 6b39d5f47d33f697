"""Manifest round trip, relative paths, and every documented error."""
import json

import pytest

from nclkit.data import DataError, Record, read_manifest, validate_manifest, write_manifest


def _files(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("a.png", "a_gt.png", "b.png"):
        (tmp_path / "d" / name).write_bytes(b"x")
    return [
        Record(str(tmp_path / "d" / "a.png"), str(tmp_path / "d" / "a_gt.png"), 1, "t", "train", "a"),
        Record(str(tmp_path / "d" / "b.png"), None, 0, "t", "test", "b"),
    ]


def test_roundtrip_relative_paths(tmp_path):
    recs = _files(tmp_path)
    p = write_manifest(recs, tmp_path / "m.jsonl")
    first = json.loads(p.read_text().splitlines()[0])
    assert first["image"] == "d/a.png" and first["mask"] == "d/a_gt.png"
    back = read_manifest(p)
    assert back == recs
    validate_manifest(back)


def test_outside_paths_stay_absolute(tmp_path):
    recs = _files(tmp_path)
    p = write_manifest(recs, tmp_path / "sub" / "m.jsonl")
    assert json.loads(p.read_text().splitlines()[0])["image"] == str(tmp_path / "d" / "a.png")
    assert read_manifest(p) == recs


def test_split_filter_and_missing_split_lists_present(tmp_path):
    p = write_manifest(_files(tmp_path), tmp_path / "m.jsonl")
    assert [r.id for r in read_manifest(p, split="test")] == ["b"]
    with pytest.raises(DataError, match=r"'val'.*'test': 1.*'train': 1"):
        read_manifest(p, split="val")


def test_read_errors(tmp_path):
    with pytest.raises(DataError, match="missing.jsonl"):
        read_manifest(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a", "mask": null, "label": 0, "dataset": "t", "split": "train", "id": "a"}\n{oops\n')
    with pytest.raises(DataError, match="line 2"):
        read_manifest(bad)
    bad.write_text('{"image": "a", "label": 0}\n')
    with pytest.raises(DataError, match=r"line 1 lacks keys \['mask', 'dataset', 'split', 'id'\]"):
        read_manifest(bad)
    bad.write_text("\n")
    with pytest.raises(DataError, match="empty"):
        read_manifest(bad)


def test_validate_catches_each_problem(tmp_path):
    recs = _files(tmp_path)
    cases = [
        (Record(recs[0].image, None, 1, "t", "train", "x"), "has no mask"),
        (Record(recs[1].image, recs[0].mask, 0, "t", "train", "y"), "has a mask"),
        (Record(str(tmp_path / "gone.png"), None, 0, "t", "train", "z"), "gone.png"),
        (Record(recs[1].image, None, 0, "t", "train", "a"), "duplicate ids"),
        (Record(recs[1].image, None, 0, "t", "dev", "w"), "split 'dev'"),
    ]
    for bad, msg in cases:
        with pytest.raises(DataError, match=msg):
            validate_manifest(recs + [bad])
    validate_manifest([Record(str(tmp_path / "gone.png"), None, 0, "t", "train", "z")], check_files=False)


def test_write_rejects_empty_and_bad_split(tmp_path):
    with pytest.raises(DataError, match="empty"):
        write_manifest([], tmp_path / "m.jsonl")
    with pytest.raises(DataError, match="split 'dev'"):
        write_manifest([Record("a", None, 0, "t", "dev", "a")], tmp_path / "m.jsonl")


GOOD = {"image": "a.png", "mask": "a_gt.png", "label": 1, "dataset": "t", "split": "test", "id": "a"}


@pytest.mark.parametrize("line2, message", [
    (dict(GOOD), "line 2: id 'a' repeats line 1"),
    ({**GOOD, "id": "b", "mask": None}, "line 2: tampered record 'b' has no mask"),
    ({**GOOD, "id": "b", "label": 0}, "line 2: authentic record 'b' has a mask"),
    ({**GOOD, "id": "b", "label": 2}, "line 2: label 2; expected 0"),
    ({**GOOD, "id": "b", "label": None}, "line 2: label None; expected 0"),
    ({**GOOD, "id": "b", "label": "yes"}, "line 2: label 'yes'; expected 0"),
    ({**GOOD, "id": "b", "label": True}, "line 2: label True; expected 0"),
    ({**GOOD, "id": "b", "image": None}, "line 2: image None; expected a non-empty string"),
    ({**GOOD, "id": "b", "mask": 5}, "line 2: mask 5; expected a path"),
    ({**GOOD, "id": "b", "split": "dev"}, "line 2: split 'dev'"),
    ({**GOOD, "id": None}, "line 2: id None"),
])
def test_manifest_lines_validated_on_read(line2, message, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(line2) + "\n")
    with pytest.raises(DataError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), str(err.value)


def test_non_utf8_manifest_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    latin1 = json.dumps({**GOOD, "id": "é"}, ensure_ascii=False).encode("latin-1")
    path.write_bytes((json.dumps(GOOD) + "\n").encode() + latin1 + b"\n")
    with pytest.raises(DataError, match=r"latin1.jsonl: line 2 is not UTF-8"):
        read_manifest(path)


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({**GOOD, "mask": None, "label": 0}).encode() + b"\n")
    assert read_manifest(path)[0].id == "a"


def test_one_file_in_two_splits_is_a_leak_warning_naming_both_ids(tmp_path):
    train, test = _files(tmp_path)
    copy = Record(train.image, None, 0, "t", "test", "a_again")  # the training image, listed as a test image
    path = write_manifest([train, test, copy], tmp_path / "m.jsonl")
    with pytest.warns(UserWarning, match=r"1 image file\(s\) listed in two splits.*'a' \(train\) and 'a_again' \(test\)"):
        read_manifest(path, split="test")
