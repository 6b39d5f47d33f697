"""Per-image pixel AUC + F1: nclkit vs sklearn on the same arrays (values must agree).

Run: python benchmarks/metrics.py [--n 20] [--size 512] [--seed 0]
Prints per-method timings, then ONE JSON line with speedup_vs_sklearn, n_images, nclkit_s, sklearn_s.
Half of the maps are quantised to 1/50 steps (heavy ties), half continuous float32.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from nclkit.engine.metrics import pixel_auc, pixel_f1


def make_pairs(n: int, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    pairs = []
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        y0, x0 = rng.integers(0, size // 2, 2)
        mask[y0:y0 + size // 3, x0:x0 + size // 4] = 1  # one tampered rectangle (~8% of pixels)
        prob = np.clip(0.3 * mask + rng.random((size, size)) * 0.7, 0, 1)
        if i % 2 == 0:
            prob = np.round(prob * 50) / 50  # heavy ties
        pairs.append((prob.astype(np.float32), mask))
    return pairs


def run(pairs, fn) -> tuple[float, list[tuple[float, float]]]:
    fn(*pairs[0])  # warm-up (imports, caches)
    start = time.perf_counter()
    values = [fn(p, m) for p, m in pairs]
    return time.perf_counter() - start, values


def ours(prob, mask):
    return pixel_auc(prob, mask), pixel_f1(prob, mask)


def sklearn(prob, mask):
    y, s = mask.ravel(), prob.ravel()
    return roc_auc_score(y, s), f1_score(y, s > 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pairs = make_pairs(args.n, args.size, args.seed)
    nclkit_s, ours_values = run(pairs, ours)
    sklearn_s, sk_values = run(pairs, sklearn)
    max_diff = float(np.max(np.abs(np.array(ours_values) - np.array(sk_values))))
    if max_diff > 1e-9:
        raise SystemExit(f"nclkit and sklearn disagree: max |difference| = {max_diff:.3g}")
    print(f"{args.n} images of {args.size}x{args.size} (half with heavy ties)")
    print(f"nclkit  pixel_auc + pixel_f1: {nclkit_s:.4f} s ({1e3 * nclkit_s / args.n:.2f} ms/image)")
    print(f"sklearn roc_auc + f1_score:   {sklearn_s:.4f} s ({1e3 * sklearn_s / args.n:.2f} ms/image)")
    print(f"max |difference| of values: {max_diff:.2e}")
    print(json.dumps({
        "benchmark": "per_image_pixel_auc_f1",
        "n_images": args.n,
        "size": args.size,
        "nclkit_s": round(nclkit_s, 5),
        "sklearn_s": round(sklearn_s, 5),
        "speedup_vs_sklearn": round(sklearn_s / nclkit_s, 2),
        "max_abs_diff": max_diff,
    }))


if __name__ == "__main__":
    main()
