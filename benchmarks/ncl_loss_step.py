"""Eq. 7 alone: forward + backward of the NCL loss as training computes it, piece by piece.

    python benchmarks/ncl_loss_step.py [--preset quick|paper] [--batch N] [--size PX] [--repeats N]
        [--threads N] [--out FILE.json]

The full training step (train_step.py) times eq. 7 only as the difference between two noisy step
times. This script times `batch_ncl_loss` (`NCLCriterion.ncl`) by itself on the preset's tapped
feature map (block `pivot_block` of a `--size` px crop: the shape, channels and layout the preset's
model would give it, filled with random values), in the precision training uses on this device,
with the masks of train_step.py's batch:

- whole: the loss forward + backward into the feature map (what the NCL term adds to a step);
- its pieces, forward only, each a step of `batch_ncl_loss` itself: patch categories, categories and
  sampling (`sample_ncl_patches`), the cell gather, the gather with the pivot network
  (`patch_features`), the three terms;
- the same whole loss on an NCHW map (the gather path) beside the preset's channels_last map (the
  row-picking path): the in-run baseline, `ratio_nchw_vs_preset`.

Each figure is the median (and minimum) over `--repeats` calls after three warm-up calls, in ms.
Prints a table, then ONE JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from nclkit.engine.devices import device_name, pick_device, precision_name
from nclkit.models import build_model
from nclkit.ncl import NCLCriterion
from nclkit.ncl.ncl_loss import ncl_terms_batched, patch_features, sample_ncl_patches
from nclkit.ncl.sampling import patch_categories, patch_cells
from nclkit.presets import get_config
from train_step import make_batch  # one source of the benchmark batch (this folder is on the path when run)


def _time(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median, min) ms per call over `repeats` calls, after three warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=("quick", "paper"), default="quick")
    p.add_argument("--batch", type=int, default=None, help="default: the preset's batch size")
    p.add_argument("--size", type=int, default=None, help="crop side in px; default: the preset's crop")
    p.add_argument("--repeats", type=int, default=40)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on the CPU")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = get_config(args.preset)
    device = pick_device(args.device)
    batch, size = args.batch or cfg.batch_size, args.size or cfg.crop_size
    model = build_model(cfg)
    # The map the pivot taps: its channels and stride as the preset's model gives them.
    pivot, stride = model.pivot.to(device).train(), model.pivot_stride
    channels, criterion = pivot.channels, NCLCriterion.from_config(cfg)
    precision = precision_name(cfg, device)
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision, torch.float32)
    _, mask, valid = (x.to(device) for x in make_batch(batch, size, cfg.seed))
    feature = torch.randn(batch, channels, size // stride, size // stride, device=device).to(dtype)
    layouts = {"preset": torch.channels_last if cfg.channels_last else torch.contiguous_format,
               "nchw": torch.contiguous_format}
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)  # noqa: E731

    def whole(layout) -> Callable[[], None]:
        def run() -> None:
            f = feature.contiguous(memory_format=layout).requires_grad_()
            with autocast():
                loss = criterion.ncl(pivot, f, mask, valid)[0]
            loss.backward()
        return run

    # The pieces, forward only, on the preset's layout: the library's own steps of batch_ncl_loss.
    f = feature.contiguous(memory_format=layouts["preset"])
    grid = tuple(f.shape[-2:])
    steps = {"patch_size": cfg.patch_size, "tolerance": cfg.tolerance, "max_patches": cfg.max_patches}
    sampled = sample_ncl_patches(mask, grid, valid, **steps)
    with autocast():
        p, n, se_plus, se_minus, has = patch_features(pivot, f, sampled, cfg.patch_size)
    pieces = {
        "categories": lambda: patch_categories(mask, grid, cfg.patch_size, cfg.tolerance, valid),
        "sampling": lambda: sample_ncl_patches(mask, grid, valid, **steps),
        "gather": lambda: patch_cells(f, sampled.idx, sampled.codes.shape[2], cfg.patch_size),
        "features": lambda: patch_features(pivot, f, sampled, cfg.patch_size),
        "terms": lambda: ncl_terms_batched(p, sampled.t_valid, n, sampled.a_valid, se_plus, se_minus, has, cfg.tau),
    }
    ms = {"whole_preset": _time(whole(layouts["preset"]), args.repeats),
          "whole_nchw": _time(whole(layouts["nchw"]), args.repeats)}
    with torch.no_grad(), autocast():
        ms.update({name: _time(fn, args.repeats) for name, fn in pieces.items()})
    res = {"benchmark": "ncl_loss_step", "preset": args.preset, "batch": batch, "size": size,
           "feature": list(feature.shape), "precision": precision, "device_name": device_name(device),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": args.repeats,
           "ms_median": {k: round(v[0], 3) for k, v in ms.items()}, "ms_min": {k: round(v[1], 3) for k, v in ms.items()},
           "ratio_nchw_vs_preset": round(ms["whole_nchw"][0] / ms["whole_preset"][0], 3)}
    print(f"eq. 7 forward + backward | preset {args.preset} | batch {batch} x {size} px, tapped map "
          f"{tuple(feature.shape)} | {precision} | {res['device_name']} | torch {torch.__version__}")
    print(f"{'piece':24s} {'median ms':>10s} {'min ms':>8s}")
    for k, (med, low) in ms.items():
        print(f"{k:24s} {med:10.2f} {low:8.2f}")
    print(f"whole loss, NCHW (gather) / preset layout: x{res['ratio_nchw_vs_preset']:.2f}")
    line = json.dumps(res)
    print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")
    return res


if __name__ == "__main__":
    main()
