"""Download a real benchmark from its public copies, check every file, lay it out as published.

`fetch("casia1", out)` makes `out/` hold CASIA v1.0 exactly as it circulates: the tampered JPEGs in
`Sp/`, the authentic ones in `Au/`, and Pham et al.'s ground truth in `CASIA 1.0 groundtruth/`.
Every file is checked against the SHA-256 sums shipped with nclkit (`checksums/<name>.sha256`, in
`sha256sum` format); one that differs or is missing stops the fetch with its name. The files are
gathered in a sibling folder and moved into place only once all of them check, so `out/` either
holds the complete, verified set or does not exist.

Only the named archives are read and only the listed files are written (never an archive's own
paths), so a malicious or changed archive cannot put anything else on disk.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import DataError

__all__ = ["Source", "SOURCES", "fetch", "read_sums", "verify", "download"]

CHECKSUMS = Path(__file__).parent / "checksums"


@dataclass(frozen=True)
class Source:
    name: str     # how --archive NAME=PATH refers to it
    url: str
    folder: str   # the dataset folder its files go to ("" = the top); files are found in the archive below any prefix


# The public copies of each benchmark (byte-identical to the published files; the sums decide).
SOURCES: dict[str, list[Source]] = {
    "casia1": [
        # The images were removed from this repository later: the archive must name this commit.
        Source("images", "https://github.com/kPsarakis/Image-Forgery-Detection-CNN/archive/"
                         "11f2a29a50a4a34a1f1dcb30518671e813629091.zip", ""),
        Source("groundtruth", "https://github.com/namtpham/casia1groundtruth/raw/master/"
                              "CASIA%201.0%20groundtruth.zip", "CASIA 1.0 groundtruth"),
    ],
}


def read_sums(name_or_path: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} from a `sha256sum` file, or from the one nclkit ships for a dataset name."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CHECKSUMS / f"{name_or_path}.sha256"
    if not path.is_file():
        raise DataError(f"no checksums for {name_or_path!r} (known: {', '.join(sorted(SOURCES))})")
    sums = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, rel = line.split("  ", 1)  # paths may hold spaces: split at the first two-space gap only
            sums[rel] = digest
    return sums


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(root: str | os.PathLike, sums: dict[str, str]) -> None:
    """Raise DataError naming the first file under root that is missing or differs from its sum."""
    root = Path(root)
    for rel, digest in sums.items():
        path = root / rel
        if not path.is_file():
            raise DataError(f"{path}: missing")
        if _sha256(path) != digest:
            raise DataError(f"{path}: SHA-256 differs from the published file's; refusing it")


def download(url: str, dest: Path) -> None:
    """Stream url (https:// or file://) to dest, printing the size as it goes."""
    print(f"downloading {url} ...", flush=True)
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as f:
        shutil.copyfileobj(response, f, 1 << 20)
    print(f"  {dest.stat().st_size / 2**20:.1f} MiB", flush=True)


def _extract_listed(archive: Path, source: Source, wanted: dict[str, str], staging: Path) -> set[str]:
    """Write the archive's members that are listed in `wanted` (below source.folder) into staging."""
    prefix = f"{source.folder}/" if source.folder else ""
    found: set[str] = set()
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                parts = info.filename.replace("\\", "/").split("/")
                if info.is_dir() or "__MACOSX" in parts:
                    continue
                # The archive may wrap the files in folders of its own (GitHub adds "<repo>-<commit>/"):
                # drop leading folders until what is left is a listed file.
                rel = next((prefix + "/".join(parts[i:]) for i in range(len(parts))
                            if prefix + "/".join(parts[i:]) in wanted), None)
                if rel is None or rel in found:
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                found.add(rel)
    except zipfile.BadZipFile as err:
        raise DataError(f"{archive}: not a readable zip archive ({err})") from None
    return found


def _holds_verified_copy(out: Path, name: str, sums: dict[str, str]) -> bool:
    """True when `out` already holds every file of `name` as its sums say; False when it is absent or
    empty. Anything else in it raises: fetch never mixes a new copy into an old folder."""
    if not (out.exists() and any(out.iterdir())):
        return False
    try:
        verify(out, sums)
    except DataError as err:
        raise DataError(f"{out} exists and is not a complete, verified copy of {name} ({err}); "
                        "remove it or choose another folder") from None
    print(f"{out} already holds {name}: all {len(sums)} files verified")
    return True


def _archive(source: Source, given: Path | None, staging: Path, downloader: Callable[[str, Path], None]) -> Path:
    """The zip of one source: the one given (--archive), or a download into the staging folder."""
    if given is not None:
        if not given.is_file():
            raise DataError(f"{given}: archive not found")
        return given
    archive = staging / f".{source.name}.zip"
    try:
        downloader(source.url, archive)
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"could not download {source.name} from {source.url} ({err}); download it "
                        f"yourself and pass --archive {source.name}=PATH") from None
    return archive


def fetch(
    name: str,
    out: str | os.PathLike,
    archives: dict[str, str | os.PathLike] | None = None,
    sources: list[Source] | None = None,
    sums: dict[str, str] | None = None,
    downloader: Callable[[str, Path], None] = download,
) -> Path:
    """Download (or take from `archives`), check and lay out benchmark `name` in `out`.

    Args:
        name: a key of SOURCES ("casia1").
        out: the dataset folder to create. If it already holds a verified copy, nothing is done.
        archives: {source name: local zip} for sources already downloaded (e.g. by hand in a browser).
        sources, sums: replace the built-in addresses and the shipped checksums (tests, mirrors).
        downloader: downloader(url, dest_path); the default streams with urllib.
    Returns:
        out.
    Raises:
        DataError: a file missing from the sources or differing from its sum (named), a bad archive,
            a failed download, or an `out` that holds something other than a verified copy.
    """
    if name not in SOURCES and sources is None:
        raise DataError(f"unknown dataset {name!r}; nclkit can fetch: {', '.join(sorted(SOURCES))}")
    sources = SOURCES[name] if sources is None else sources
    sums = read_sums(name) if sums is None else sums
    archives = {k: Path(v) for k, v in (archives or {}).items()}
    unknown = set(archives) - {s.name for s in sources}
    if unknown:
        raise DataError(f"--archive {sorted(unknown)}: {name}'s sources are {[s.name for s in sources]}")
    out = Path(out)
    if _holds_verified_copy(out, name, sums):
        return out

    staging = out.with_name(out.name + ".partial")  # same file system as out: the final move is one rename
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        found: set[str] = set()
        for source in sources:
            archive = _archive(source, archives.get(source.name), staging, downloader)
            found |= _extract_listed(archive, source, sums, staging)
            if archive.parent == staging:
                archive.unlink()
        missing = sorted(set(sums) - found)
        if missing:
            raise DataError(f"{len(missing)} file(s) of {name} are not in its sources, e.g. {missing[0]!r}; refusing "
                            "an incomplete copy")
        verify(staging, sums)
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"{name}: {len(sums)} files verified against their SHA-256 sums, in {out}")
    return out
