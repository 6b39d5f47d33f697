"""Preparers on the real COVERAGE / CASIA2 sample and on small fake trees of the other layouts."""
import os
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import one_line_error
from nclkit.cli import main
from nclkit.data import DataError, image_hw, load_mask, read_manifest, validate_manifest
from nclkit.data.preparers import PREPARERS, columbia_mask_from_edgemask, prepare_nist16
from nclkit.data.preparers.common import manifest_paths

REPO = Path(__file__).resolve().parents[1]

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# The COVERAGE images whose mask has another size than the image (left out by the preparer).
COVERAGE_MIS_SIZED = (41, 48, 55, 56, 57, 58, 59, 61, 95)


def _need(name):
    if not (SHARED / name).is_dir():
        pytest.skip(f"real data {name} not found at {SHARED}")
    return SHARED / name


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _img(h=16, w=20, v=100):
    return np.full((h, w, 3), v, np.uint8)


def _mask(h=16, w=20, white=True):
    m = np.zeros((h, w), np.uint8)
    m[4:10, 5:12] = 255
    return m if white else 255 - m


def _assert_aligned_binary(manifest):
    recs = read_manifest(manifest)
    validate_manifest(recs)
    for r in recs:
        if r.mask:
            m = load_mask(r.mask, expected_hw=image_hw(r.image))
            assert set(np.unique(m)) <= {0, 1} and m.any(), r.id
    return recs



@pytest.mark.data
def test_coverage_real(tmp_path):
    root = _need("COVERAGE")
    with pytest.warns(UserWarning) as rec:
        m = PREPARERS["coverage"](root, tmp_path / "cov.jsonl")
    msg = " ".join(str(w.message) for w in rec)
    for n in COVERAGE_MIS_SIZED:
        assert f"{n}t.tif" in msg
    recs = _assert_aligned_binary(m)
    ids = {r.id for r in recs}
    assert sum(r.label == 0 for r in recs) == 100
    assert sum(r.label == 1 for r in recs) == 100 - len(COVERAGE_MIS_SIZED)
    assert not any(f"coverage/{n}t" in ids for n in COVERAGE_MIS_SIZED)
    tampered = Counter(r.split for r in recs if r.label == 1)
    assert tampered == {"train": 60, "val": 7, "test": 24}  # 67 train+val / 24 test tampered images
    assert all(int(r.id.split("/")[1].rstrip("t")) > 75 for r in recs if r.split == "test")


@pytest.mark.data
def test_casia2_sample_real(tmp_path):
    root = _need("CASIA2-sample")
    recs = _assert_aligned_binary(PREPARERS["casia2"](root, tmp_path))
    assert len(recs) == 17 and all(r.label == 1 for r in recs)
    for r in recs:  # pairing by name, not by order
        assert Path(r.mask).name == Path(r.image).stem + "_gt.png"
    assert {r.split for r in recs} <= {"train", "val"}


def test_casia2_missing_mask_and_mis_sized_warned(tmp_path):
    root = tmp_path / "c2"
    _save(root / "Tp" / "Tp_D_a.jpg", _img())
    _save(root / "Gt" / "Tp_D_a_gt.png", _mask())
    _save(root / "Tp" / "Tp_S_nomask.tif", _img())
    _save(root / "Tp" / "Tp_S_big.png", _img())
    _save(root / "Gt" / "Tp_S_big_gt.png", _mask(20, 16))
    _save(root / "Au" / "Au_ani_1.jpg", _img())
    with pytest.warns(UserWarning) as rec:
        recs = read_manifest(PREPARERS["casia2"](root, tmp_path / "m.jsonl"))
    msg = " ".join(str(w.message) for w in rec)
    assert "Tp_S_nomask.tif" in msg and "Tp_S_big.png" in msg and "16x20" in msg and "20x16" in msg
    assert sorted(r.id for r in recs) == ["casia2/Au_ani_1", "casia2/Tp_D_a"]


def test_casia1_published_nested_layout(tmp_path):
    root = tmp_path / "c1"
    _save(root / "Modified Tp" / "Tp" / "Sp" / "Sp_D_x.jpg", _img())
    _save(root / "Modified Tp" / "Tp" / "CM" / "Sp_S_y.jpg", _img())
    _save(root / "CASIA 1.0 groundtruth" / "Sp" / "Sp_D_x_gt.png", _mask())
    _save(root / "CASIA 1.0 groundtruth" / "CM" / "Sp_S_y_gt.png", _mask())
    _save(root / "Au" / "Au_ani_0001.jpg", _img())
    recs = _assert_aligned_binary(PREPARERS["casia1"](root, tmp_path / "m.jsonl"))
    assert {r.split for r in recs} == {"test"} and Counter(r.label for r in recs) == {1: 2, 0: 1}


def _casia1_records(tmp_path, protocol):
    import warnings

    root = _need("CASIA1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = PREPARERS["casia1"](root, tmp_path / f"{protocol}.jsonl", protocol=protocol)
    return read_manifest(manifest), [str(w.message) for w in caught]


@pytest.mark.data
def test_casia1_real_published_layout(tmp_path):
    recs, warned = _casia1_records(tmp_path, "standard")
    tampered = [r for r in recs if r.label == 1]
    assert len(tampered) >= 918 and sum(r.label == 0 for r in recs) == 800
    assert {r.split for r in recs} == {"test"} and {r.protocol for r in recs} == {"standard"}
    masks = [r.mask for r in tampered]
    assert len(set(masks)) == len(masks), "a mask is used twice"
    for r in tampered:  # every pair has equal sizes (headers only: fast)
        assert image_hw(r.image) == image_hw(r.mask), r.id
    pairs = {Path(r.image).stem: Path(r.mask).stem for r in tampered}
    # The authors' correction list: a copy-move image released under a splicing name ...
    assert pairs["Sp_D_NND_A_nat0054_nat0054_0189"] == "Sp_S_NND_A_nat0054_nat0054_0189_gt"
    # ... a "." typo, and a donor id corrected; donor and target swapped in the ground truth's name.
    assert pairs["Sp_S_NRD_A_ani0040_ani0054.0257"] == "Sp_D_NRD_A_ani0040_ani0054_0257_gt"
    assert pairs["Sp_D_NNN_A_sec0049_sec0049_0117"] == "Sp_D_NNN_A_sec0049_sec0050_0117_gt"
    assert pairs["Sp_D_NRN_A_ani0013_ani0026_0409"] == "Sp_D_NRN_A_ani0026_ani0013_0409_gt"
    # One warning names the image without ground truth and the one whose mask is transposed.
    assert len(warned) == 1
    assert "Sp_D_NRN_A_sce0011_cha0011_0542.jpg" in warned[0] and "Sp_D_CNN_A_sec0012_ani0007_0275.jpg" in warned[0]


@pytest.mark.data
def test_casia1_grouped_split_keeps_each_photo_in_one_split(tmp_path):
    from nclkit.data.preparers.casia import casia1_photo_ids

    recs, _ = _casia1_records(tmp_path, "grouped")
    split_of_photo: dict[str, set] = {}
    for r in recs:
        stem = Path(r.mask).stem[: -len("_gt")] if r.mask else Path(r.image).stem
        for photo in casia1_photo_ids(stem):
            split_of_photo.setdefault(photo, set()).add(r.split)
    assert all(len(s) == 1 for s in split_of_photo.values())
    counts = Counter(r.split for r in recs if r.label == 1)
    assert counts == {"train": 643, "val": 92, "test": 184}  # fixed by SHA-1, the same on every platform
    assert {r.protocol for r in recs} == {"grouped"}


def test_casia1_pairing_rules_on_a_fake_tree(tmp_path):
    """Exact names, the correction workbook, swapped ids and a unique serial; never sort order."""
    root = tmp_path / "c1"
    names = {  # image name -> ground-truth name
        "Sp_D_NNN_A_abc0001_abc0002_0001": "Sp_D_NNN_A_abc0001_abc0002_0001",   # exact
        "Sp_D_NNN_A_abc0003_abc0003_0002": "Sp_S_NNN_A_abc0003_abc0003_0002",   # correction list
        "Sp_D_NRN_A_abc0004_abc0005_0003": "Sp_D_NRN_A_abc0005_abc0004_0003",   # swapped
        "Sp_D_NRN_A_xyz0006_abc0007_0004": "Sp_D_NRN_A_abc0006_abc0007_0004",   # typo, unique serial
    }
    for i, (img, gt) in enumerate(names.items()):
        _save(root / "Sp" / f"{img}.jpg", _img(h=16 + i))
        _save(root / "CASIA 1.0 groundtruth" / "Sp" / f"{gt}_gt.png", _mask(h=16 + i))
    _save(root / "Sp" / "Sp_D_NNN_A_abc0009_abc0008_0005.jpg", _img())  # no ground truth
    _write_xlsx(root / "CASIA 1.0 groundtruth" / "FileNameCorrection.xlsx",
                [("Original file name", "Corrected file name"),
                 ("Sp_D_NNN_A_abc0003_abc0003_0002.jpg", "Sp_S_NNN_A_abc0003_abc0003_0002.jpg")])
    with pytest.warns(UserWarning, match="Sp_D_NNN_A_abc0009_abc0008_0005.jpg"):
        recs = read_manifest(PREPARERS["casia1"](root, tmp_path / "m.jsonl"))
    got = {Path(r.image).stem: Path(r.mask).stem[: -len("_gt")] for r in recs}
    assert got == names  # the sizes differ per pair, so a wrong pairing would also fail the size check


def _write_xlsx(path, rows):
    """A minimal workbook: shared strings in column B and C, as the authors' file has them."""
    strings = [s for row in rows for s in row]
    sst = "".join(f"<si><t>{s}</t></si>" for s in strings)
    cells = "".join(f'<row r="{i + 1}"><c r="B{i + 1}" t="s"><v>{2 * i}</v></c><c r="C{i + 1}" t="s"><v>{2 * i + 1}</v></c></row>'
                    for i in range(len(rows)))
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("xl/sharedStrings.xml", f"<sst {ns}>{sst}</sst>")
        zf.writestr("xl/worksheets/sheet1.xml", f"<worksheet {ns}><sheetData>{cells}</sheetData></worksheet>")


def test_casia1_bad_correction_workbook_names_the_file(tmp_path):
    from nclkit.data.preparers.casia import read_name_corrections

    bad = tmp_path / "FileNameCorrection.xlsx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="FileNameCorrection.xlsx"):
        read_name_corrections(bad)


def test_grouped_split_never_splits_a_group():
    from nclkit.data.preparers.casia import casia1_groups, grouped_split

    links = [(1, 2), (2, 3), (4, 4), (5, 6), (6, 7), (8, 8), (9, 1), (10, 10), (11, 12), (13, 13)]
    stems = [f"Sp_D_NNN_A_abc{a:04d}_abc{b:04d}_{i:04d}" for i, (a, b) in enumerate(links)]
    groups = casia1_groups(stems + ["Au_abc_0001"])
    # 1-2-3 and 9-1 are one group, reached through shared photos, with the authentic photo 1.
    assert groups["Au_abc_0001"] == groups[stems[0]] == groups[stems[1]] == groups[stems[6]] == "abc0001"
    assert len(set(groups.values())) == 7
    split = grouped_split(groups, set(stems))
    assert all(split[a] == split[b] for a in groups for b in groups if groups[a] == groups[b])
    assert split == grouped_split(dict(reversed(list(groups.items()))), set(stems))  # order-free


def test_folder_records_pair_by_name_with_tags(tmp_path):
    from nclkit.data.preparers import folder_records

    for stem, mask_name in [("a", "a.png"), ("b", "b_gt.png"), ("c", "c-mask.PNG"), ("d", "d.forged.tif")]:
        _save(tmp_path / "img" / f"{stem}.jpg", _img())
        _save(tmp_path / "gt" / mask_name, _mask())
    _save(tmp_path / "img" / "e.jpg", _img())            # no mask
    _save(tmp_path / "img" / "f.jpg", _img())
    _save(tmp_path / "gt" / "f_gt.png", _mask(h=8))      # mask of another size
    _save(tmp_path / "au" / "x.jpg", _img())
    with pytest.warns(UserWarning) as rec:
        recs = folder_records(tmp_path / "img", tmp_path / "gt", authentic=tmp_path / "au")
    msg = " ".join(str(w.message) for w in rec)
    assert "e.jpg" in msg and "f.jpg" in msg and "8x20" in msg
    got = {Path(r.image).stem: Path(r.mask).name for r in recs if r.label == 1}
    assert got == {"a": "a.png", "b": "b_gt.png", "c": "c-mask.PNG", "d": "d.forged.tif"}
    assert [r.id for r in recs if r.label == 0] == ["folder/authentic/x"]


def test_folder_records_refuse_ambiguous_or_empty(tmp_path):
    from nclkit.data.preparers import folder_records

    _save(tmp_path / "img" / "a.jpg", _img())
    _save(tmp_path / "gt" / "a.png", _mask())
    _save(tmp_path / "gt" / "a_gt.png", _mask())
    with pytest.raises(DataError, match="same image"):
        folder_records(tmp_path / "img", tmp_path / "gt")
    _save(tmp_path / "other" / "zzz.png", _mask())
    with pytest.raises(DataError, match="no image has a mask"):
        folder_records(tmp_path / "img", tmp_path / "other")
    with pytest.raises(DataError, match="--masks folder not found"):
        folder_records(tmp_path / "img", tmp_path / "missing")


def test_columbia_green_channel(tmp_path):
    root = tmp_path / "col"
    _save(root / "4cam_auth" / "canong3_02_sub_01.tif", _img())
    _save(root / "4cam_splc" / "canong3_canonxt_sub_01.tif", _img())
    edge = np.zeros((16, 20, 3), np.uint8)
    edge[:, :10] = (255, 0, 0)  # red: the host camera's region
    edge[:, 10:] = (0, 255, 0)  # green: the spliced region
    _save(root / "4cam_splc" / "edgemask" / "canong3_canonxt_sub_01_edgemask.jpg", edge)
    recs = _assert_aligned_binary(PREPARERS["columbia"](root, tmp_path / "out"))
    t = next(r for r in recs if r.label == 1)
    m = load_mask(t.mask)
    assert m[:, 11:].all() and not m[:, :9].any()
    assert Counter(r.label for r in recs) == {1: 1, 0: 1}
    np.testing.assert_array_equal(columbia_mask_from_edgemask(edge)[0], [0] * 10 + [1] * 10)


def test_nist16_masks_inverted(tmp_path):
    root = tmp_path / "nist"
    _save(root / "probe" / "NC2016_0001.jpg", _img())
    _save(root / "probe" / "NC2016_0002.jpg", _img())
    _save(root / "reference" / "manipulation" / "mask" / "NC2016_0001.png", _mask(white=False))
    ref = root / "reference" / "manipulation" / "NC2016-manipulation-ref.csv"
    ref.write_text("TaskID|ProbeFileID|ProbeFileName|ProbeMaskFileName|IsTarget\n"
                   "manipulation|NC2016_0001|probe/NC2016_0001.jpg|reference/manipulation/mask/NC2016_0001.png|Y\n"
                   "manipulation|NC2016_0002|probe/NC2016_0002.jpg||N\n")
    recs = _assert_aligned_binary(PREPARERS["nist16"](root, tmp_path / "m.jsonl"))
    t = next(r for r in recs if r.label == 1)
    np.testing.assert_array_equal(load_mask(t.mask), _mask() // 255)  # black in NIST -> 1 here
    assert next(r for r in recs if r.label == 0).mask is None


def test_nist16_bad_reference(tmp_path):
    root = tmp_path / "nist"
    (root / "reference" / "manipulation").mkdir(parents=True)
    (root / "reference" / "manipulation" / "NC2016-manipulation-ref.csv").write_text("A|B\n1|2\n")
    with pytest.raises(DataError, match="ProbeFileName"):
        PREPARERS["nist16"](root, tmp_path / "m.jsonl")


def test_defacto_layout(tmp_path):
    root = tmp_path / "defacto"
    for cat in ("copymove", "splicing_1"):
        for i in range(3):
            _save(root / f"{cat}_img" / "img" / f"{i}_{cat}.tif", _img())
            _save(root / f"{cat}_annotations" / "probe_mask" / f"{i}_{cat}.jpg", _mask())
    _save(root / "copymove_img" / "img" / "orphan.tif", _img())
    with pytest.warns(UserWarning, match="orphan.tif"):
        recs = _assert_aligned_binary(PREPARERS["defacto"](root, tmp_path / "m.jsonl"))
    assert len(recs) == 6 and all(r.label == 1 for r in recs)


def test_imd2020_layout(tmp_path):
    root = tmp_path / "imd"
    _save(root / "1a1ogs" / "1a1ogs_orig.jpg", _img())
    _save(root / "1a1ogs" / "c8tt7fg_0.png", _img())
    _save(root / "1a1ogs" / "c8tt7fg_0_mask.png", _mask())
    _save(root / "1a2b" / "1a2b_orig.jpg", _img())
    recs = _assert_aligned_binary(PREPARERS["imd2020"](root, tmp_path / "m.jsonl"))
    assert Counter(r.label for r in recs) == {0: 2, 1: 1} and {r.split for r in recs} == {"test"}


@pytest.mark.parametrize("name", sorted(PREPARERS))
def test_unknown_layout_and_empty_folder(tmp_path, name):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        PREPARERS[name](tmp_path / "empty", tmp_path / "m.jsonl")
    with pytest.raises(DataError, match="nowhere"):
        PREPARERS[name](tmp_path / "nowhere", tmp_path / "m.jsonl")


def test_coverage_missing_mask_and_corrupt_image(tmp_path):
    root = tmp_path / "cov"
    _save(root / "image" / "1.tif", _img())
    _save(root / "image" / "1t.tif", _img())
    (root / "mask").mkdir()
    with pytest.raises(DataError, match="1t.tif"):
        PREPARERS["coverage"](root, tmp_path / "m.jsonl")
    _save(root / "mask" / "1forged.tif", _mask())
    (root / "image" / "1t.tif").write_bytes(b"not a tiff")
    with pytest.raises(DataError, match="1t.tif"):
        PREPARERS["coverage"](root, tmp_path / "m.jsonl")


def test_nist16_short_row_is_one_line(tmp_path, capsys):
    ref = tmp_path / "reference" / "manipulation" / "NC2016-manipulation-ref.csv"
    ref.parent.mkdir(parents=True)
    ref.write_text("ProbeFileName|ProbeMaskFileName|IsTarget\nprobe/b.jpg\nprobe/a.jpg|mask/a.png|Y\n")
    with pytest.raises(DataError, match=r"line 2 has 1 fields, expected 3"):
        prepare_nist16(tmp_path, tmp_path / "m.jsonl")
    assert main(["prepare", "nist16", "--root", str(tmp_path), "--out", str(tmp_path / "m.jsonl")]) == 2
    one_line_error(capsys, "NC2016-manipulation-ref.csv", "line 2")


@pytest.mark.parametrize("out", ["x.json", "x.txt"])
def test_prepare_out_with_a_non_jsonl_suffix_is_refused(out, tmp_path, capsys):
    with pytest.raises(DataError, match=r"must end in \.jsonl"):
        manifest_paths(tmp_path / out, "coverage")
    assert main(["prepare", "coverage", "--root", str(tmp_path), "--out", str(tmp_path / out)]) == 2
    one_line_error(capsys, out, ".jsonl")
    assert not (tmp_path / out).exists()


@pytest.mark.slow
def test_prepare_scripts_print_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "data_scripts" / "prepare_coverage.py"), "--root",
                           str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.jsonl")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "nowhere" in proc.stderr


@pytest.mark.parametrize("name, folder, prefix, other", [("casia1", "Tp", "Tp_", "casia2"), ("casia2", "Tp", "Sp_", "casia1")])
def test_casia_refuses_the_other_versions_images(name, folder, prefix, other, tmp_path):
    # A CASIA v2 folder (Tp/ + Gt/) given as CASIA v1 would label its images as the v1 test set, and back.
    root = tmp_path / "c"
    for stem in (f"{prefix}D_a", f"{prefix}S_b"):
        _save(root / folder / f"{stem}.jpg", _img())
        _save(root / "Gt" / f"{stem}_gt.png", _mask())
    with pytest.raises(DataError, match=f"named {prefix}\\* .*use `nclkit prepare {other}`"):
        PREPARERS[name](root, tmp_path / "m.jsonl")
    assert not (tmp_path / "m.jsonl").exists()


def test_folder_pairing_refuses_one_mask_for_two_images(tmp_path):
    from nclkit.data.preparers import folder_records

    _save(tmp_path / "img" / "a" / "x.png", _img())
    _save(tmp_path / "img" / "b" / "x.png", _img(v=50))
    _save(tmp_path / "gt" / "x.png", _mask())
    with pytest.raises(DataError, match="one mask fits two images, .*a/x.png and .*b/x.png"):
        folder_records(tmp_path / "img", tmp_path / "gt")


def test_folder_pairing_names_the_size_when_no_pair_is_left(tmp_path):
    from nclkit.data.preparers import folder_records

    _save(tmp_path / "img" / "x.png", _img())
    _save(tmp_path / "gt" / "x.png", _mask(20, 16))  # transposed
    with pytest.raises(DataError, match="no usable image/mask pair: every mask's size differs .*16x20.*20x16"):
        folder_records(tmp_path / "img", tmp_path / "gt")


@pytest.mark.slow
def test_prepare_scripts_are_the_cli(tmp_path):
    # The scripts run `nclkit prepare`: casia1's takes --protocol, another dataset's refuses it in one line.
    def script(name, *argv):
        return subprocess.run([sys.executable, str(REPO / "data_scripts" / f"prepare_{name}.py"), "--root",
                               str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.jsonl"), *argv],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})

    casia = script("casia1", "--protocol", "grouped")
    assert casia.returncode == 2 and casia.stderr.startswith("nclkit prepare: error:") and "nowhere" in casia.stderr
    other = script("coverage", "--protocol", "grouped")
    assert other.returncode == 2 and "only casia1 takes --protocol" in other.stderr
