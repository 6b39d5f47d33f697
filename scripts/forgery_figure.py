"""A figure of forgeries made from real photos, each beside its mask (nclkit.data.forge).

    python scripts/forgery_figure.py --out docs/reproduction/forgeries.png               # scikit-image's photos
    python scripts/forgery_figure.py --data data/casia1_grouped.jsonl --out forgeries_casia1.png   # a train split

With --data, the forgeries are made from that manifest's training split (its authentic photos, its masks as
shapes), exactly as `Config.forged` makes them for training; without it, from scikit-image's sample photos
with random object-like shapes.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a manifest: forge its training split (default: scikit-image's photos)")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--num", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nclkit.data import load_image, load_mask, read_manifest
    from nclkit.data.forge import forge, forge_from_manifest
    from nclkit.data.synthetic import source_photos

    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            manifest = forge_from_manifest(args.data, Path(tmp) / "forged", args.num, seed=args.seed)
        else:
            photos = []
            for i, img in enumerate(source_photos()[:9]):  # the colour photos
                path = Path(tmp) / f"photo{i}.jpg"
                h, w = img.shape[:2]
                s = 384 / max(h, w)
                small = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(path), small[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
                photos.append((f"photo{i}", str(path)))
            manifest = forge(photos, Path(tmp) / "forged", args.num, seed=args.seed)
        info = json.loads((manifest.parent / "forged.json").read_text())["forgeries"]
        records = read_manifest(manifest)
        cols = 4
        rows = (len(records) + cols // 2 - 1) // (cols // 2)
        fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.4 * rows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for k, rec in enumerate(records):
            about = info[rec.id]
            a, b = axes.flat[2 * k], axes.flat[2 * k + 1]
            a.imshow(load_image(rec.image))
            a.set_title(f"{about['kind']}: {', '.join(about['traces'])}", fontsize=6)
            b.imshow(load_mask(rec.mask), cmap="gray", vmin=0, vmax=1)
            b.set_title("mask (what changed)", fontsize=6)
        fig.tight_layout()
        fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
