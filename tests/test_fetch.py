"""`nclkit fetch casia1`: offline, against archives built here from the copy in ../shared/data."""
import hashlib
import zipfile
from pathlib import Path

import pytest

from nclkit.cli import main
from nclkit.data import DataError
from nclkit.data.fetch import SOURCES, Source, fetch, read_sums

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASIA1 = SHARED / "CASIA1"
GT = "CASIA 1.0 groundtruth"
# Inside the images archive, as GitHub builds it: the repository at a commit, data/CASIA1/{Sp,Au}.
IMAGES_PREFIX = "Image-Forgery-Detection-CNN-11f2a29a50a4a34a1f1dcb30518671e813629091/data/CASIA1/"

pytestmark = pytest.mark.data


@pytest.fixture(autouse=True)
def _needs_casia1():
    if not CASIA1.is_dir():
        pytest.skip(f"real data CASIA1 not found at {CASIA1}")


def _subset() -> list[str]:
    """A few files of each kind (relative paths in the published layout)."""
    picks = []
    for folder, pattern in (("Sp", "*.jpg"), ("Au", "*.jpg"), ("Au", "*.JPG"), (f"{GT}/CM", "*.png"),
                            (f"{GT}/Sp", "*.png")):
        picks += sorted(p.relative_to(CASIA1).as_posix() for p in (CASIA1 / folder).glob(pattern))[:3]
    return picks + [f"{GT}/FileNameCorrection.xlsx", f"{GT}/Splicing_groundtruth_list.txt"]


def _sums(rels):
    return {rel: hashlib.sha256((CASIA1 / rel).read_bytes()).hexdigest() for rel in rels}


def _archives(tmp_path, rels, change=None, drop=None):
    """The two source archives as published (with their own wrapping folders and extra files)."""
    images, gt = tmp_path / "images.zip", tmp_path / "gt.zip"
    with zipfile.ZipFile(images, "w") as zi, zipfile.ZipFile(gt, "w") as zg:
        zi.writestr(IMAGES_PREFIX.split("/")[0] + "/README.md", "not part of the dataset")
        for rel in rels:
            if rel == drop:
                continue
            data = (CASIA1 / rel).read_bytes()
            if rel == change:
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]  # one bit of one byte
            if rel.startswith(GT):
                zg.writestr(rel, data)
            else:
                zi.writestr(IMAGES_PREFIX + rel, data)
        zg.writestr("__MACOSX/" + GT + "/._CM", b"resource fork")
    return {"images": images, "groundtruth": gt}


def _url_sources(archives):
    """The real sources, pointed at local files through file:// URLs."""
    return [Source(s.name, archives[s.name].resolve().as_uri(), s.folder) for s in SOURCES["casia1"]]


def test_subset_is_laid_out_as_published_and_verified(tmp_path):
    rels = _subset()
    archives = _archives(tmp_path, rels)
    out = fetch("casia1", tmp_path / "CASIA1", sources=_url_sources(archives), sums=_sums(rels))
    got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert got == sorted(rels)
    assert all((out / rel).read_bytes() == (CASIA1 / rel).read_bytes() for rel in rels)
    assert not (tmp_path / "CASIA1.partial").exists()
    # Again: a verified copy is left as it is.
    assert fetch("casia1", out, sources=_url_sources(archives), sums=_sums(rels)) == out


@pytest.mark.parametrize("how", ["change", "drop"])
def test_a_changed_or_missing_file_is_refused_and_nothing_is_left(tmp_path, how):
    rels = _subset()
    victim = rels[1] if how == "change" else rels[-4]
    archives = _archives(tmp_path, rels, **{how: victim})
    with pytest.raises(DataError, match=victim.split("/")[-1]):
        fetch("casia1", tmp_path / "CASIA1", archives=archives, sums=_sums(rels))
    assert not (tmp_path / "CASIA1").exists() and not (tmp_path / "CASIA1.partial").exists()


def test_a_folder_that_is_not_a_verified_copy_is_refused(tmp_path):
    rels = _subset()
    out = tmp_path / "CASIA1"
    (out / "Sp").mkdir(parents=True)
    (out / "Sp" / "something.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="not a complete, verified copy"):
        fetch("casia1", out, archives=_archives(tmp_path, rels), sums=_sums(rels))
    assert sorted(p.name for p in out.rglob("*")) == ["Sp", "something.jpg"]  # left untouched


def test_a_failed_download_says_what_to_do(tmp_path):
    def offline(url, dest):
        raise OSError("no network")

    rels = _subset()
    with pytest.raises(DataError, match="--archive images=PATH"):
        fetch("casia1", tmp_path / "CASIA1", sums=_sums(rels), downloader=offline)
    assert not (tmp_path / "CASIA1").exists() and not (tmp_path / "CASIA1.partial").exists()


def test_shipped_sums_cover_every_published_file():
    sums = read_sums("casia1")
    published = {p.relative_to(CASIA1).as_posix() for sub in ("Sp", "Au", GT) for p in (CASIA1 / sub).rglob("*")
                 if p.is_file()}
    assert set(sums) == published
    assert sum(rel.startswith("Sp/") for rel in sums) == 921 and sum(rel.startswith("Au/") for rel in sums) == 800


def test_full_set_through_the_command_line(tmp_path, capsys):
    """Every file, with the sums nclkit ships (a few seconds)."""
    rels = sorted(read_sums("casia1"))
    archives = _archives(tmp_path, rels)
    out = tmp_path / "data" / "CASIA1"
    assert main(["fetch", "casia1", "--out", str(out), "--archive", f"images={archives['images']}",
                 "--archive", f"groundtruth={archives['groundtruth']}"]) == 0
    assert "2644 files verified" in capsys.readouterr().out
    assert main(["fetch", "casia1", "--out", str(tmp_path / "other"), "--archive", "images"]) == 2
    assert "SOURCE=ZIP" in capsys.readouterr().err
