"""Forgeries made from real photos: exact masks, determinism, no photo from outside the split used."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from nclkit.data import read_manifest, write_manifest, Record, load_image, load_mask
from nclkit.data import forge as F
from nclkit.data.tampering import KINDS
from nclkit.data.preparers.casia import casia1_photo_ids
from nclkit.data.synthetic import source_photos

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _photo(i: int, hw=(96, 128)) -> np.ndarray:
    """A textured real photo crop (scikit-image's samples), different for each i."""
    src = source_photos()[i % 4]
    h, w = hw
    y, x = 7 * i, 11 * i
    return np.ascontiguousarray(cv2.resize(src[y:y + 3 * h, x:x + 3 * w], (w, h), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(10):
        cv2.imwrite(str(folder / f"p{i}.jpg"), _photo(i)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    return folder


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_shape", [False, True])
def test_the_mask_is_exactly_what_changed(kind, with_shape):
    target, donor = _photo(1), _photo(2)
    shape = np.zeros((60, 50), np.uint8)
    cv2.ellipse(shape, (25, 30), (14, 22), 20, 0, 360, 1, -1)
    for seed in range(12):
        out, mask, traces = F.forge_one(np.random.default_rng(seed), target, donor, kind, shape if with_shape else None)
        assert out.shape == target.shape and out.dtype == np.uint8
        assert mask.shape == target.shape[:2] and set(np.unique(mask)) == {0, 1}
        outside = mask == 0
        assert np.array_equal(out[outside], target[outside]), (kind, seed, traces)  # nothing changed outside
        changed = np.any(out != target, axis=2)[mask == 1].mean()
        assert changed > 0.6, (kind, seed, changed, traces)  # and the region did change
        area = mask.mean()
        assert 0.001 < area <= (0.12 if kind == "removal" else 0.45) + 0.02, (kind, seed, area)


def test_a_real_shape_is_kept_rescaled():
    shape = np.zeros((100, 100), np.uint8)
    shape[20:60, 30:50] = 1  # a 40 x 20 bar
    for seed in range(10):
        region, canvas = F.place_shape(np.random.default_rng(seed), shape, (96, 128))
        assert canvas is None
        ys, xs = np.nonzero(region)
        h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
        assert region.sum() == h * w  # still a filled rectangle
        assert 0.6 * 40 - 1 <= max(h, w) <= 1.5 * 40 + 1 and 1.5 < max(h, w) / min(h, w) < 2.6


def test_deterministic_by_seed(tmp_path, photo_dir):
    photos = [(p.stem, str(p)) for p in sorted(photo_dir.glob("*.jpg"))]
    a = F.forge(photos, tmp_path / "a", 12, seed=5)
    b = F.forge(photos, tmp_path / "b", 12, seed=5)
    c = F.forge(photos, tmp_path / "c", 12, seed=6)
    files = lambda m: [(Path(r.image).read_bytes(), Path(r.mask).read_bytes()) for r in read_manifest(m)]  # noqa: E731
    assert files(a) == files(b)
    assert files(a) != files(c)
    info = json.loads((tmp_path / "a" / "forged.json").read_text())["forgeries"]
    assert {v["kind"] for v in info.values()} <= set(KINDS)
    assert all(v["donor"] != v["target"] for v in info.values())
    mtime = (tmp_path / "a" / "manifest.jsonl").stat().st_mtime_ns
    F.forge(photos, tmp_path / "a", 12, seed=5)  # same arguments: reused, not rewritten
    assert (tmp_path / "a" / "manifest.jsonl").stat().st_mtime_ns == mtime


def test_forgeries_are_valid_training_records(tmp_path, photo_dir):
    photos = [(p.stem, str(p)) for p in sorted(photo_dir.glob("*.jpg"))]
    for r in read_manifest(F.forge(photos, tmp_path, 20, seed=0)):
        image, mask = load_image(r.image), load_mask(r.mask)
        assert image.shape[:2] == mask.shape and mask.any() and r.label == 1 and r.split == "train"


def _manifest_with_splits(tmp_path, photo_dir) -> Path:
    """10 authentic photos and 6 tampered ones over train/val/test; the val/test ones must never be read."""
    recs = []
    for i, p in enumerate(sorted(photo_dir.glob("*.jpg"))):
        recs.append(Record(str(p), None, 0, "t", ("train", "train", "train", "train", "val", "test")[i % 6], f"au{i}"))
    for i in range(6):
        m = np.zeros((96, 128), np.uint8)
        m[10 + 5 * i:40 + 5 * i, 20:60] = 255
        mp = tmp_path / f"m{i}.png"
        cv2.imwrite(str(mp), m)
        recs.append(Record(str(photo_dir / f"p{i}.jpg"), str(mp), 1, "t", ("train", "val", "test")[i % 3], f"tp{i}"))
    return write_manifest(recs, tmp_path / "m.jsonl")


def test_only_the_training_split_reaches_the_forgeries(tmp_path, photo_dir, monkeypatch):
    manifest = _manifest_with_splits(tmp_path, photo_dir)
    records = read_manifest(manifest)
    train_files = {r.image for r in records if r.split == "train"} | {r.mask for r in records if r.split == "train"}
    read = []
    for name in ("load_image", "load_mask"):
        real = getattr(F, name)
        monkeypatch.setattr(F, name, lambda path, *a, _real=real, **k: (read.append(str(path)), _real(path, *a, **k))[1])
    out = F.forge_from_manifest(manifest, tmp_path / "forged", 30, seed=1)
    assert read and set(read) <= train_files, sorted(set(read) - train_files)  # no val/test file was even opened
    train_ids = {r.id for r in records if r.split == "train"}
    info = json.loads((out.parent / "forged.json").read_text())["forgeries"]
    used = {v[k] for v in info.values() for k in ("target", "donor", "shape") if v[k] is not None}
    assert used <= train_ids
    assert {r.split for r in read_manifest(out)} == {"train"}


def test_too_few_authentic_photos_is_clear(tmp_path, photo_dir):
    manifest = write_manifest([Record(str(photo_dir / "p0.jpg"), None, 0, "t", "train", "a")], tmp_path / "m.jsonl")
    with pytest.raises(F.DataError, match="at least 2 authentic photos in split 'train'"):
        F.forge_from_manifest(manifest, tmp_path / "out", 5)


def test_from_photos_keeps_each_photo_in_one_split(tmp_path, photo_dir):
    manifest = F.forge_from_photos(photo_dir, tmp_path / "set", 30, seed=0, splits=(0.6, 0.2, 0.2))
    records = read_manifest(manifest)
    photo_split = {r.id: r.split for r in records if r.label == 0}
    assert {r.split for r in records} == {"train", "val", "test"}
    assert len(photo_split) == 10 and sum(r.label for r in records) >= 27
    for split in ("train", "val", "test"):
        info = json.loads((tmp_path / "set" / split / "forged.json").read_text())["forgeries"]
        for v in info.values():
            assert photo_split[v["target"]] == split and (v["donor"] is None or photo_split[v["donor"]] == split)


@pytest.mark.data
def test_casia1_grouped_forgeries_use_no_val_or_test_photo(tmp_path):
    from nclkit.data.preparers import PREPARERS

    if not (SHARED / "CASIA1").is_dir():
        pytest.skip(f"real data CASIA1 not found at {SHARED}")
    with pytest.warns(UserWarning):
        manifest = PREPARERS["casia1"](SHARED / "CASIA1", tmp_path / "casia1.jsonl", protocol="grouped")
    records = read_manifest(manifest)
    held_out = {pid for r in records if r.split != "train" for pid in casia1_photo_ids(r.id.split("/", 1)[1])}
    out = F.forge_from_manifest(manifest, tmp_path / "forged", 60, seed=0)
    info = json.loads((out.parent / "forged.json").read_text())["forgeries"]
    split_of = {r.id: r.split for r in records}
    for v in info.values():
        for key in ("target", "donor", "shape"):
            if v[key] is None:
                continue
            assert split_of[v[key]] == "train"
            assert not set(casia1_photo_ids(v[key].split("/", 1)[1])) & held_out, v


def test_cli_synth_from_photos(tmp_path, photo_dir, capsys):
    from helpers import one_line_error
    from nclkit.cli import main

    shapes = _manifest_with_splits(tmp_path, photo_dir)
    assert main(["synth", "--from-photos", str(photo_dir), "--shapes", str(shapes), "--out", str(tmp_path / "s"),
                 "--num", "20"]) == 0
    assert "forged" in capsys.readouterr().out
    records = read_manifest(tmp_path / "s" / "manifest.jsonl")
    assert sum(r.label for r in records) >= 18 and {r.split for r in records} == {"train", "val", "test"}
    assert main(["synth", "--shapes", str(shapes), "--out", str(tmp_path / "t")]) == 2
    one_line_error(capsys, "--from-photos")
    (tmp_path / "empty").mkdir()
    assert main(["synth", "--from-photos", str(tmp_path / "empty"), "--out", str(tmp_path / "u")]) == 2
    one_line_error(capsys, "empty", "found 0 photos")


def test_an_object_splice_pastes_the_forgers_own_object():
    target = _photo(1)
    shape = np.zeros((96, 128), np.uint8)
    shape[30:60, 40:80] = 1
    pixels = _photo(3)
    pixels[30:60, 40:80] = (250, 10, 10)  # the pasted object: plain red
    for seed in range(8):
        out, mask, traces = F.forge_one(np.random.default_rng(seed), target, None, "splice", shape, pixels)
        assert "object" in traces and np.array_equal(out[mask == 0], target[mask == 0])
        core = cv2.erode(mask, np.ones((7, 7), np.uint8)).astype(bool)  # away from a feathered edge
        assert core.any()
        red = out[core].astype(int)
        # the object's own pixels (maybe colour-matched, JPEG'd, blurred or noised, but from the object)
        assert "colour_matched" in traces or (red[:, 0] - red[:, 1]).mean() > 150
    with pytest.raises(ValueError, match="same height and width"):
        F.forge_one(np.random.default_rng(0), target, None, "splice", shape, pixels[:50])


def test_training_adds_the_forgeries_of_its_own_train_split(tiny_manifest, tiny_cfg, tmp_path):
    from nclkit.engine import train

    n_train = len(read_manifest(tiny_manifest, split="train"))
    cfg = tiny_cfg.replace(forged=8, epochs=1)
    summary = train(cfg, tiny_manifest, tmp_path, progress=False)
    forged = read_manifest(tmp_path / "forged" / "manifest.jsonl")
    assert len(forged) == 8 and all(r.split == "train" and r.label == 1 for r in forged)
    assert summary["steps"] == (n_train + 8) // cfg.batch_size  # the epoch held the forgeries too
    train_ids = {r.id for r in read_manifest(tiny_manifest, split="train")}
    info = json.loads((tmp_path / "forged" / "forged.json").read_text())["forgeries"]
    assert {v[k] for v in info.values() for k in ("target", "donor", "shape") if v[k]} <= train_ids
    train(cfg, tiny_manifest, tmp_path, progress=False, overwrite=True)  # a new run makes them anew
    assert len(read_manifest(tmp_path / "forged" / "manifest.jsonl")) == 8
    with pytest.raises(ValueError, match="forged=-1"):
        tiny_cfg.replace(forged=-1)
