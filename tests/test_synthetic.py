"""The synthetic forgery generator: deterministic, split counts, binary non-empty masks."""
import json
from collections import Counter

import numpy as np
import pytest

from nclkit.data import load_image, load_mask, read_manifest, validate_manifest
from nclkit.data.synthetic import make_synthetic, random_region


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("syn"), num=60, seed=3, size=64)


def test_counts_per_split_and_labels(syn):
    recs = read_manifest(syn)
    validate_manifest(recs)
    assert Counter(r.split for r in recs) == {"train": 48, "val": 6, "test": 6}
    by_split = Counter((r.split, r.label) for r in recs)
    assert by_split[("train", 0)] == round(48 * 0.15) and by_split[("val", 0)] == round(6 * 0.15)
    assert len({r.id for r in recs}) == 60


def test_images_and_masks(syn):
    kinds = json.loads((syn.parent / "synthetic.json").read_text())["kinds"]
    assert set(kinds.values()) <= {"splice", "copy_move", "removal", "authentic"}
    for r in read_manifest(syn):
        img = load_image(r.image)
        assert img.shape == (64, 64, 3)
        if r.label == 1:
            m = load_mask(r.mask, expected_hw=(64, 64))
            assert set(np.unique(m)) == {0, 1}
            assert 0.015 < m.mean() < 0.45
        else:
            assert r.mask is None and kinds[r.id] == "authentic"


def test_deterministic_by_seed(tmp_path, syn):
    again = make_synthetic(tmp_path / "a", num=60, seed=3, size=64)
    other = make_synthetic(tmp_path / "b", num=60, seed=4, size=64)
    r0, r1, r2 = read_manifest(syn), read_manifest(again), read_manifest(other)
    for a, b in zip(r0, r1):
        np.testing.assert_array_equal(load_image(a.image), load_image(b.image))
        assert a.label == b.label
    assert any(not np.array_equal(load_image(a.image), load_image(c.image)) for a, c in zip(r0, r2))


def test_reuse_when_parameters_match(syn):
    stamp = syn.stat().st_mtime_ns
    assert make_synthetic(syn.parent, num=60, seed=3, size=64) == syn
    assert syn.stat().st_mtime_ns == stamp


def test_region_area_range():
    rng = np.random.default_rng(0)
    fr = [random_region(rng, 128).mean() for _ in range(200)]
    assert min(fr) > 0.015 and max(fr) < 0.45 and np.median(fr) > 0.08


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="splits"):
        make_synthetic(tmp_path, num=10, splits=(0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="num"):
        make_synthetic(tmp_path, num=0)


@pytest.mark.slow
def test_thousand_images_fast(tmp_path):
    import time

    t = time.perf_counter()
    make_synthetic(tmp_path, num=1000, seed=0, size=128)
    assert time.perf_counter() - t < 40
