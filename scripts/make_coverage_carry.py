"""A compact, lossless copy of COVERAGE for the GPU machine (its code travels with <= 64 MiB of data).

    python scripts/make_coverage_carry.py --root ../shared/data/COVERAGE --out carry/COVERAGE

Writes the same published layout (image/N.png, image/Nt.png, mask/Nforged.png) as PNG with maximum
compression: every pixel identical to the TIFFs (checked here), so `nclkit prepare coverage` reads
the copy exactly as it reads the original. `carry/` is ignored by git.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from nclkit.data import load_image


def copy_png(src: Path, dst: Path) -> int:
    arr = np.asarray(Image.open(src))
    Image.fromarray(arr).save(dst, optimize=True, compress_level=9)
    back = np.asarray(Image.open(dst))
    if back.shape != arr.shape or not np.array_equal(back, arr):
        raise ValueError(f"{dst}: the PNG copy of {src} is not pixel-identical")
    return dst.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    root, out = Path(args.root), Path(args.out)
    (out / "image").mkdir(parents=True, exist_ok=True)
    (out / "mask").mkdir(parents=True, exist_ok=True)
    total = 0
    for src in sorted((root / "image").glob("*.tif")):
        total += copy_png(src, out / "image" / (src.stem + ".png"))
    for src in sorted((root / "mask").glob("*forged.tif")):
        total += copy_png(src, out / "mask" / (src.stem + ".png"))
    load_image(next((out / "image").glob("*.png")))  # the loader reads the copy
    print(f"wrote {out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
