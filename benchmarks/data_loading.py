"""Images/s of a DataLoader over the synthetic set with 0, 1 and 2 worker processes.

    python benchmarks/data_loading.py [--num 400] [--size 128] [--batch 8] [--epochs 2]

Prints one line per worker count, then one JSON line with all results.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from nclkit.data import ManifestDataset, make_synthetic
from nclkit.presets import get_config


def images_per_second(ds: ManifestDataset, workers: int, batch: int, epochs: int) -> float:
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, drop_last=False)
    next(iter(loader))  # start workers and warm caches outside the timing
    n, t = 0, time.perf_counter()
    for _ in range(epochs):
        for b in loader:
            n += b["image"].shape[0]
    return n / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num", type=int, default=400)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = get_config("quick", crop_size=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        manifest = make_synthetic(Path(tmp) / "syn", num=args.num, size=args.size)
        gen_s = time.perf_counter() - t
        print(f"generated {args.num} synthetic images of {args.size} px in {gen_s:.1f} s")
        ds = ManifestDataset(manifest, cfg, split=None, train=True)
        results = {}
        for w in args.workers:
            ips = images_per_second(ds, w, args.batch, args.epochs)
            results[str(w)] = round(ips, 1)
            print(f"workers={w}: {ips:8.1f} images/s")
    print(json.dumps({"benchmark": "data_loading", "num": args.num, "size": args.size, "batch": args.batch,
                      "generate_s": round(gen_s, 2), "images_per_s_by_workers": results}))


if __name__ == "__main__":
    main()
