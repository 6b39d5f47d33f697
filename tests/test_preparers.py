"""Preparers on the real COVERAGE / CASIA2 sample and on small fake trees of the other layouts."""
import io
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nclkit.data import DataError, image_hw, load_mask, read_manifest, validate_manifest
from nclkit.data.preparers import COVERAGE_MIS_SIZED, PREPARERS, columbia_mask_from_edgemask, extract_archive

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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


def test_registry_names():
    assert set(PREPARERS) == {"coverage", "casia1", "casia2", "columbia", "nist16", "defacto", "imd2020"}


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
    assert tampered == {"train": 60, "val": 7, "test": 24}  # 67 train+val / 24 test, as in ANCHORS.md
    assert all(int(r.id.split("/")[1].rstrip("t")) > 75 for r in recs if r.split == "test")


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


def test_extract_archive_safe_and_escaping(tmp_path):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("data/a.txt", "hi")
    extract_archive(good, tmp_path / "out")
    assert (tmp_path / "out" / "data" / "a.txt").read_text() == "hi"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(DataError, match=r"bad.zip.*\.\./evil.txt"):
        extract_archive(bad, tmp_path / "out2")
    assert not (tmp_path / "evil.txt").exists()
    for arcname in ("/abs/f.txt", "a/../../f.txt"):
        t = tmp_path / "bad.tar.gz"
        with tarfile.open(t, "w:gz") as tf:
            info = tarfile.TarInfo(arcname)  # built by hand: tf.add() would strip a leading "/"
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(DataError, match="bad.tar.gz"):
            extract_archive(t, tmp_path / "out3")
    t = tmp_path / "link.tar"
    with tarfile.open(t, "w") as tf:
        info = tarfile.TarInfo("innocent")
        info.type, info.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="points outside"):
        extract_archive(t, tmp_path / "out4")
    notarc = tmp_path / "x.zip"
    notarc.write_text("plain text")
    with pytest.raises(DataError, match="x.zip"):
        extract_archive(notarc, tmp_path / "out5")
