"""Does sampling patches change eq. 7's gradient? Capped L_NCL vs the loss over every patch.

    python benchmarks/ncl_sampling.py [--data DIR] [--images 1,23,40,...] [--size 512] [--cap 128]
        [--draws 8] [--separation 0,1] [--out FILE.json]

Eq. 7 sums over all patches of an image; nclkit draws at most `max_patches` tampered, authentic and
contour patches (`NCLCriterion`). This script measures, on real COVERAGE masks (resized to
`--size` px, nearest), how far the capped loss's gradient points from the uncapped one, with and
without the N/k weighting of sampled negatives (`sample_weighting`):

- the uncapped reference is eq. 7 over every patch (term 1 computed in chunks of anchors, its
  gradient accumulated chunk by chunk), the pivot network fed with every contour patch;
- the capped losses are `NCLCriterion.ncl` as training calls it, `--draws` random samples each.

Setting: the paper preset's block 1 (ResNet-101 conv1, stride 2, one cell per patch) at random
initialisation on the real image. At initialisation tampered and authentic cells look alike and
every denominator is dominated by its negatives whatever their weight, so a second regime imitates
a trained encoder: `--separation s` adds s x (the mean cell norm) along one random direction to
tampered cells and along another to authentic ones (in proportion to each cell's tampered fraction).
Reported per image and as medians:
cos(g_cap, g_full) of single draws, cos of the draws' mean gradient (the estimator's bias) and the
loss ratio L_cap / L_full; gradients with respect to the block-1 feature map and to conv1's weights.
Prints a table, then ONE JSON line.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from nclkit.data import load_image, load_mask
from nclkit.data.transforms import to_tensor_image
from nclkit.engine.devices import device_name
from nclkit.models import build_model
from nclkit.ncl import AUTHENTIC, CONTOUR, TAMPERED, NCLCriterion, categorize_patches, cell_fraction
from nclkit.ncl.ncl_loss import contrastive_nll
from nclkit.presets import get_config

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "COVERAGE"
DEFAULT_IMAGES = "1,5,10,23,40,60,80,100"


def full_ncl_backward(feature: torch.Tensor, codes: torch.Tensor, pivot, tau: float, chunk: int = 512) -> float:
    """Eq. 7 over every patch of ONE image (patch_size 1), as a loss; accumulates d loss / d feature.

    feature: (1, C, h, w) leaf with requires_grad; codes: (h, w) categories. Returns the loss value.
    """
    flat = codes.flatten()  # (h*w,)
    t_idx, a_idx = (flat == TAMPERED).nonzero()[:, 0], (flat == AUTHENTIC).nonzero()[:, 0]
    c_idx = (flat == CONTOUR).nonzero()[:, 0]
    M, N = len(t_idx), len(a_idx)
    total = 0.0

    def rows(idx):  # (k, C) unit vectors of the cells idx, recomputed for every graph
        return F.normalize(feature[0].flatten(1).T[idx], dim=1)

    # Term 1, anchor by anchor in chunks: -1/(M(M-1)) sum_m sum_{j!=m} log e^{pm pj} / (e^{pm pj} + sum_i e^{pm ni})
    for start in range(0, M, chunk):
        p, n = rows(t_idx), rows(a_idx)
        anchors = p[start:start + chunk]  # (c, C)
        s_pp = anchors @ p.T / tau  # (c, M)
        neg = torch.logsumexp(anchors @ n.T / tau, dim=1, keepdim=True)  # (c, 1)
        off = torch.ones_like(s_pp, dtype=torch.bool)
        off[torch.arange(len(anchors)), torch.arange(start, start + len(anchors))] = False  # j != m
        part = (contrastive_nll(s_pp, neg) * off).sum() / (M * (M - 1))
        part.backward()
        total += float(part.detach())

    # Terms 2 and 3: the pivot on every contour cell (BatchNorm statistics over all of them).
    contour = feature[0].flatten(1)[:, c_idx].T.reshape(1, len(c_idx), 1, -1).permute(0, 3, 1, 2)  # (1, C, k, 1)
    se_plus, se_minus, _ = pivot(contour, torch.ones(1, 1, len(c_idx), 1))
    p, n = rows(t_idx), rows(a_idx)
    sp, sm = F.normalize(se_plus[0], dim=0), F.normalize(se_minus[0], dim=0)
    term2 = contrastive_nll(p @ sp / tau, torch.logsumexp(n @ sp / tau, 0)).mean()
    term3 = contrastive_nll(n @ sm / tau, torch.logsumexp(p @ sm / tau, 0)).mean()
    (term2 + term3).backward()
    return total + float((term2 + term3).detach())


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def measure(image_id: str, data: Path, size: int, cap: int, draws: int, separation: float) -> dict:
    torch.manual_seed(0)
    cfg = get_config("paper", variant="pivot", max_patches=cap)
    model = build_model(cfg).train()
    stem, pivot = model.encoder.stem, model.pivot  # block 1 = conv1, BN, ReLU (stride 2)
    image = load_image(data / "image" / f"{image_id}t.tif")
    mask = load_mask(data / "mask" / f"{image_id}forged.tif")
    x = F.interpolate(to_tensor_image(image)[None], size=(size, size), mode="bilinear", align_corners=False)
    m = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(size, size), mode="nearest")  # (1, 1, S, S)
    conv1 = stem[0].weight
    with torch.no_grad():
        base = stem(x)  # (1, 64, S/2, S/2)
        frac = cell_fraction(m, tuple(base.shape[-2:]))  # (1, 1, S/2, S/2) tampered fraction per cell
        u = F.normalize(torch.randn(2, base.shape[1], generator=torch.Generator().manual_seed(7)), dim=1)
        scale = separation * base.norm(dim=1).mean()
        offset = scale * (frac * u[0].view(1, -1, 1, 1) + (1 - frac) * u[1].view(1, -1, 1, 1))  # (1, 64, S/2, S/2)

    def grads(loss_fn):
        """(loss, d/d feature, d/d conv1) for loss_fn(feature leaf), which back-propagates itself."""
        feature = stem(x) + offset
        leaf = feature.detach().requires_grad_(True)
        value = loss_fn(leaf)
        g_feature = leaf.grad.detach().clone()
        (g_conv1,) = torch.autograd.grad(feature, conv1, grad_outputs=g_feature)
        pivot.zero_grad(set_to_none=True)
        return value, g_feature, g_conv1

    codes = categorize_patches(m, tuple(base.shape[-2:]), 1)[0]  # (S/2, S/2)
    counts = {name: int((codes == c).sum()) for name, c in (("tampered", TAMPERED), ("authentic", AUTHENTIC),
                                                            ("contour", CONTOUR))}
    t0 = time.perf_counter()
    full = grads(lambda f: full_ncl_backward(f, codes, pivot, cfg.tau))
    full_s = time.perf_counter() - t0
    row = {"image": image_id, "separation": separation, **counts, "loss_full": round(full[0], 4), "full_seconds": round(full_s, 1)}
    for weighting in (False, True):
        crit = NCLCriterion.from_config(cfg.replace(sample_weighting=weighting))
        runs = []
        for d in range(draws):
            g = torch.Generator().manual_seed(1000 + d)

            def capped(f, crit=crit, g=g):
                loss, _, _ = crit.ncl(pivot, f, m, generator=g)
                loss.backward()
                return float(loss.detach())

            runs.append(grads(capped))
        key = "weighted" if weighting else "plain"
        mean_f = torch.stack([r[1] for r in runs]).mean(0)
        mean_c = torch.stack([r[2] for r in runs]).mean(0)
        row[key] = {
            "loss_ratio": round(statistics.median(r[0] for r in runs) / full[0], 4),
            "cos_feature_single": round(statistics.median(_cos(r[1], full[1]) for r in runs), 4),
            "cos_feature_mean": round(_cos(mean_f, full[1]), 4),
            "cos_conv1_single": round(statistics.median(_cos(r[2], full[2]) for r in runs), 4),
            "cos_conv1_mean": round(_cos(mean_c, full[2]), 4),
            "norm_ratio_conv1": round(float(mean_c.norm() / full[2].norm()), 4),
        }
    return row


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="COVERAGE folder (image/Nt.tif, mask/Nforged.tif)")
    p.add_argument("--images", default=DEFAULT_IMAGES)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--cap", type=int, default=128, help="max_patches")
    p.add_argument("--draws", type=int, default=8)
    p.add_argument("--separation", default="0,1", help="comma-separated regimes (0 = initialisation)")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    seps = [float(v) for v in args.separation.split(",")]
    rows = [measure(i.strip(), args.data, args.size, args.cap, args.draws, sep)
            for sep in seps for i in args.images.split(",") if i.strip()]
    print(f"{'sep':>4}{'image':>6}{'tamp':>7}{'auth':>7}{'cont':>6} | {'L_cap/L_full':>14}{'cos feat 1':>11}{'cos feat E':>11}"
          f"{'cos conv1 1':>12}{'cos conv1 E':>12}{'|E g|/|g|':>10}")
    for r in rows:
        for key in ("plain", "weighted"):
            v = r[key]
            print(f"{r['separation']:>4}{r['image']:>6}{r['tampered']:>7}{r['authentic']:>7}{r['contour']:>6} | {key[:5]:>5}"
                  f"{v['loss_ratio']:>9.3f}{v['cos_feature_single']:>11.3f}{v['cos_feature_mean']:>11.3f}"
                  f"{v['cos_conv1_single']:>12.3f}{v['cos_conv1_mean']:>12.3f}{v['norm_ratio_conv1']:>10.3f}")
    summary = {f"sep{sep:g}_{key}": {k: round(statistics.median(r[key][k] for r in rows if r["separation"] == sep), 4)
                                     for k in rows[0][key]}
               for sep in seps for key in ("plain", "weighted")}
    res = {"benchmark": "ncl_sampling", "size": args.size, "cap": args.cap, "draws": args.draws, "separation": seps,
           "images": [r["image"] for r in rows], "cpu": device_name(torch.device("cpu")),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "median": summary, "rows": rows,
           "total_s": round(time.perf_counter() - t0, 1)}
    print("median over images:", json.dumps(summary))
    line = json.dumps(res)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)
    return res


if __name__ == "__main__":
    main()
