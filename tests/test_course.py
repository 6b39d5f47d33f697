"""The course helpers: which data the notebooks train on, and where they find it."""
from pathlib import Path

import pytest

from nclkit import course

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def no_real_data(monkeypatch, tmp_path):
    """A working directory with no shared/ above it, and no dataset variables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NCLKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NCLKIT_CASIA1", raising=False)
    monkeypatch.delenv("NCLKIT_COVERAGE", raising=False)
    return tmp_path


def test_no_real_data_means_synthetic(no_real_data, monkeypatch):
    monkeypatch.setattr(course, "synthetic_manifest", lambda: Path("synthetic/manifest.jsonl"))
    profile = course.device_profile()
    manifest, preset, about = course.course_data(profile)
    assert manifest == Path("synthetic/manifest.jsonl") and preset == profile.preset and "synthetic" in about
    assert course.casia1_root() is None and course.casia1_manifest() is None


@pytest.mark.data
def test_casia1_found_through_the_environment(no_real_data, monkeypatch):
    if not (SHARED / "CASIA1").is_dir():
        pytest.skip(f"real data CASIA1 not found at {SHARED}")
    monkeypatch.setenv("NCLKIT_CASIA1", str(SHARED / "CASIA1"))
    monkeypatch.setenv("NCLKIT_QUICK", "1")
    manifest, preset, about = course.course_data()
    assert preset == "real" and "CASIA v1.0" in about and "grouped" in about
    from nclkit.data import read_manifest

    records = read_manifest(manifest)
    assert {r.protocol for r in records} == {"grouped"} and {r.split for r in records} == {"train", "val", "test"}
    assert course.casia1_manifest() == manifest  # prepared once, then reused from the cache
