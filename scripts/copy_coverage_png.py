"""Copy COVERAGE into a folder as compact, lossless PNGs (53 MiB instead of the TIFFs' size).

    python scripts/copy_coverage_png.py --root path/to/COVERAGE --out path/to/COVERAGE_png

Writes the same published layout (image/N.png, image/Nt.png, mask/Nforged.png) as PNG with maximum
compression: every pixel identical to the TIFFs (checked here), so `nclkit prepare coverage` reads
the copy exactly as it reads the original. Handy for moving the dataset to another machine.
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
    ap.add_argument("--root", required=True, help="COVERAGE as published (image/ and mask/ of TIFFs)")
    ap.add_argument("--out", required=True, help="folder to write the PNG copy to")
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
