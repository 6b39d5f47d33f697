"""Evaluate a model on manifest records with an explicit, stated protocol (docs/evaluation.md).

Default protocol, written into every result's ``protocol`` entry and report header:
pixel F1 at threshold 0.5 (``prob > 0.5``) and tie-aware AUC, computed per tampered image at its
original resolution and averaged over tampered images; authentic images enter only the
image-level metrics (score = max pixel probability unless another rule of
`metrics.IMAGE_SCORES`, chosen on validation, is given). Global (dataset-level), best-threshold and
permuted metrics are opt-in and always carry their protocol in their key names.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..atomic import write_text_atomic
from ..data import describe_data, load_mask, load_sample
from . import metrics
from .attacks import apply_attack, parse_attack
from .predict import predict_probability
from .reports import json_safe, markdown_table, pct

__all__ = ["evaluate", "EvalProtocol", "score_image", "summarise", "write_report", "all_tampered_f1",
           "pixel_threshold_on_val", "threshold_scores", "choose_image_rule"]


def all_tampered_f1(records: Sequence[Any]) -> float:
    """Per-image F1 of calling every pixel tampered (2p / (1 + p) for a tampered share p), averaged
    over the tampered records: the reference a trained model's `pixel_f1` must beat."""
    return metrics.nan_mean([metrics.pixel_f1(np.ones(m.shape, np.float32), m)
                       for m in (load_mask(r.mask) for r in records if r.mask is not None)])


def _resize_prob(prob: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a probability map back to the mask's size (after a resize attack)."""
    if prob.shape == tuple(hw):
        return prob
    t = torch.from_numpy(prob)[None, None]  # (1, 1, h, w)
    return F.interpolate(t, size=hw, mode="bilinear", align_corners=False)[0, 0].clamp_(0, 1).numpy()


@dataclass(frozen=True)
class EvalProtocol:
    """How `evaluate` scores: what `score_image` computes per image and `summarise` over all of them."""

    attack: str | None = None
    seed: int = 0
    extra_thresholds: tuple[float, ...] = ()  # F1 thresholds besides 0.5
    max_side: int | None = None
    image_score: str = "max"
    image_threshold: float = 0.5
    global_metrics: bool = False
    best_threshold: bool = False
    permuted: bool = False

    def describe(self) -> dict:
        """The protocol as every result and report states it."""
        return {
            "pixel_metrics": "per tampered image, then averaged over tampered images",
            "f1_threshold": 0.5,
            "f1_rule": "pixel tampered if prob > threshold",
            "f1_extra_thresholds": list(self.extra_thresholds),
            "auc": "per image, rank-based (Mann-Whitney), ties counted half; undefined (all-tampered mask) "
                   "images skipped and counted in n_auc_undefined",
            "resolution": f"original image resolution (forward pass with longer side <= {self.max_side}, "
                          "probability map resized back bilinearly)",
            "authentic_images": "excluded from pixel metrics; image-level metrics only",
            "image_level": f"score = {self.image_score} of the pixel probabilities; image AUC (tie-aware), balanced "
                           f"accuracy and F1 of the tampered class at score > {self.image_threshold:g}",
            "attack": self.attack,
            "attack_seed": self.seed if self.attack else None,
        }


def score_image(model: nn.Module, record: Any, protocol: EvalProtocol, index: int = 0,
                device: str | torch.device | None = None) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """One record under `protocol`: its row of `per_image`, its probability map (H, W) at the mask's
    resolution and its mask (None if authentic). `index` seeds the attack: (protocol.seed, index)."""
    image, mask = load_sample(record)
    attacked = image if protocol.attack is None else apply_attack(image, protocol.attack, seed=(protocol.seed, index))
    prob = predict_probability(model, attacked, device=device, max_side=protocol.max_side)
    prob = _resize_prob(prob, image.shape[:2])  # (H, W) at the mask's resolution
    scores = metrics.image_scores(prob)
    row: dict[str, Any] = {"id": record.id, "label": 0 if mask is None else 1, "score": scores[protocol.image_score],
                           "scores": scores}
    if mask is not None:
        row["f1"] = metrics.pixel_f1(prob, mask, 0.5)
        for t in protocol.extra_thresholds:
            row[f"f1@{t:g}"] = metrics.pixel_f1(prob, mask, t)
        row["auc"] = metrics.pixel_auc(prob, mask)
        if protocol.best_threshold:
            row["f1_best"], row["best_threshold"] = metrics.best_threshold_f1(prob, mask)
        if protocol.permuted:
            row["f1_permuted"] = metrics.permuted_f1(prob, mask)
    return row, prob, mask


def summarise(per_image: list[dict[str, Any]], protocol: EvalProtocol,
              kept: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])) -> dict[str, Any]:
    """The metrics of `evaluate`'s result from the rows of `score_image`; `kept` holds the tampered images'
    (probability maps, boolean masks) for the global metrics."""
    tampered = [r for r in per_image if r["label"] == 1]
    n_authentic = len(per_image) - len(tampered)
    result: dict[str, Any] = {
        "pixel_f1": metrics.nan_mean([r["f1"] for r in tampered]),
        "pixel_auc": metrics.nan_mean([r["auc"] for r in tampered]),
        "n_images": len(per_image),
        "n_tampered": len(tampered),
        "n_authentic": n_authentic,
        "n_auc_undefined": sum(math.isnan(r["auc"]) for r in tampered),
    }
    for t in protocol.extra_thresholds:
        result[f"pixel_f1@{t:g}"] = metrics.nan_mean([r[f"f1@{t:g}"] for r in tampered])
    if protocol.best_threshold:
        result["pixel_f1_best_threshold"] = metrics.nan_mean([r["f1_best"] for r in tampered])
    if protocol.permuted:
        result["pixel_f1_permuted"] = metrics.nan_mean([r["f1_permuted"] for r in tampered])
    probs, masks = kept
    if protocol.global_metrics and probs:
        result["global_f1"] = metrics.global_f1(probs, masks)
        result["global_auc"] = metrics.global_auc(probs, masks)
        if protocol.best_threshold:
            best = metrics.global_best_threshold_f1(probs, masks)
            result["global_f1_best_threshold"], result["global_best_threshold"] = best
    if n_authentic > 0 and tampered:
        result.update(metrics.image_level_metrics([r["score"] for r in per_image], [r["label"] for r in per_image],
                                            protocol.image_threshold))
    else:
        result.update(dict.fromkeys(("image_auc", "image_balanced_accuracy", "image_f1")))
    return result


def evaluate(
    model: nn.Module,
    records: Sequence[Any],
    device: str | torch.device | None = None,
    attack: str | None = None,
    thresholds: Sequence[float] = (0.5,),
    global_metrics: bool = False,
    best_threshold: bool = False,
    permuted: bool = False,
    progress: bool = True,
    seed: int = 0,
    max_side: int | None = None,
    image_score: str = "max",
    image_threshold: float = 0.5,
) -> dict[str, Any]:
    """Evaluate ``model`` on ``records`` (nclkit.data.Record) under the protocol above.

    Args:
        attack: Table 3 attack spec (e.g. ``"jpeg:50"``) applied to every image; None = clean.
        thresholds: fixed F1 thresholds; 0.5 (always computed) gives ``pixel_f1``, any other t
            adds ``pixel_f1@<t>``.
        global_metrics: add ``global_f1`` / ``global_auc`` over the pixels of all tampered images
            (keeps every tampered pixel in memory: 5 bytes each).
        best_threshold: add ``pixel_f1_best_threshold`` (per-image optimal threshold, mean), and
            ``global_f1_best_threshold`` when ``global_metrics`` is on.
        permuted: add ``pixel_f1_permuted`` (max of F1 with mask and inverted mask, mean).
        seed: attack seed; image i uses ``(seed, i)`` so results do not depend on batching.
        max_side: forward-pass size limit; None = ``model.eval_max_side``.
        image_score, image_threshold: how a map becomes an image score (one of ``metrics.IMAGE_SCORES``)
            and the score above which an image counts as tampered; `metrics.choose_image_score` picks
            both on a validation split. Every rule's score is kept in ``per_image`` (``scores``).
    Returns:
        dict: ``pixel_f1``, ``pixel_auc``, ``n_images``, ``n_tampered``, ``n_authentic``,
        ``n_auc_undefined``, image-level metrics (None without both classes), opt-in metrics,
        ``protocol`` and ``per_image`` (id, label, f1, auc, score, ...).
    """
    records = list(records)
    if not records:
        raise ValueError("evaluate() got no records; check the manifest path and the split filter")
    protocol = _checked_protocol(model, attack, thresholds, seed, max_side, image_score, image_threshold,
                                 global_metrics, best_threshold, permuted)
    per_image: list[dict[str, Any]] = []
    kept: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for i, rec in enumerate(tqdm(records, desc=f"eval {protocol.attack or 'clean'}", disable=not progress)):
        row, prob, mask = score_image(model, rec, protocol, i, device)
        per_image.append(row)
        if global_metrics and mask is not None:
            kept[0].append(prob)
            kept[1].append(mask.astype(bool))
    result = summarise(per_image, protocol, kept)
    result["protocol"] = {"data": describe_data(records), **protocol.describe()}
    result["per_image"] = per_image
    return result


def pixel_threshold_on_val(model: nn.Module, val_records: Sequence[Any], device=None, max_side: int | None = None,
                           progress: bool = False) -> dict[str, Any]:
    """The pixel threshold of best mean F1 on the validation records (`metrics.choose_pixel_threshold`).

    Pass the result's ``threshold`` to `evaluate(..., thresholds=(t,))` on test: its ``pixel_f1@t`` is
    the val-threshold F1 that reports print beside F1@0.5 and the oracle F1.
    """
    res = evaluate(model, [r for r in val_records if r.label == 1], device=device, thresholds=metrics.PIXEL_THRESHOLDS,
                   max_side=max_side, progress=progress)
    return metrics.choose_pixel_threshold(res["per_image"])


def threshold_scores(model: nn.Module, records: Sequence[Any], threshold: float, device=None,
                     progress: bool = False) -> dict[str, Any]:
    """The pixel metrics of the tampered `records` that tell ranking from crossing 0.5: AUC, F1@0.5, F1 at
    `threshold` (chosen on val by `pixel_threshold_on_val`) and the oracle F1 (each image's best threshold)."""
    res = evaluate(model, [r for r in records if r.label == 1], device=device, thresholds=(threshold,),
                   best_threshold=True, progress=progress)
    at = res["pixel_f1"] if threshold == 0.5 else res[f"pixel_f1@{threshold:g}"]
    return {"auc": res["pixel_auc"], "f1": res["pixel_f1"], "f1_val_threshold": at,
            "f1_oracle": res["pixel_f1_best_threshold"], "n": res["n_tampered"]}


def choose_image_rule(model: nn.Module, val_records: Sequence[Any], device: str | torch.device | None = None,
                      progress: bool = False) -> dict[str, Any]:
    """The image-score rule and threshold that do best on `val_records` (a validation split, never the
    split they will score): `metrics.choose_image_score` on the model's per-image scores there.

    Raises:
        ValueError: the records are not both tampered and authentic (checked before any prediction).
    """
    if len({r.label for r in val_records}) < 2:
        raise ValueError("choosing an image score needs tampered and authentic validation images")
    res = evaluate(model, val_records, device=device, progress=progress)
    return metrics.choose_image_score(res["per_image"])


def _checked_protocol(model, attack, thresholds, seed, max_side, image_score, image_threshold, global_metrics,
                      best_threshold, permuted) -> EvalProtocol:
    """`evaluate`'s arguments as an EvalProtocol, each checked (an unknown attack, rule or threshold raises)."""
    attack = None if attack is None else str(parse_attack(attack))
    extra_thresholds = tuple(float(t) for t in thresholds if float(t) != 0.5)
    bad = [t for t in extra_thresholds if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f"thresholds {bad} outside [0, 1]")
    if image_score not in metrics.IMAGE_SCORES:
        raise ValueError(f"image_score={image_score!r}; expected one of {metrics.IMAGE_SCORES}")
    if max_side is None:
        max_side = getattr(model, "eval_max_side", None)
    return EvalProtocol(attack, seed, extra_thresholds, max_side,
                    image_score, image_threshold, global_metrics, best_threshold, permuted)


def write_report(result: dict[str, Any], json_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``result`` as JSON and a Markdown table next to it (same stem, ``.md``).

    NaN (undefined) values become JSON null and "n/a" in Markdown. Returns both paths.
    """
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json_path, json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
    md_path = json_path.with_suffix(".md")
    scalars = {k: v for k, v in result.items() if k not in ("protocol", "per_image")}
    lines = ["# Evaluation report", "", "## Protocol", ""]
    lines += [f"- **{k}**: {v}" for k, v in result.get("protocol", {}).items()]
    lines += ["", "## Metrics (percent; counts as integers)", ""]
    lines += markdown_table(["metric", "value"], [(k, pct(v, 2)) for k, v in scalars.items()], align="lr")
    rows = result.get("per_image", [])
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r if k != "scores"))  # every rule's score: JSON only
        lines += ["", "## Per image", ""]
        lines += markdown_table(cols, [[pct(r.get(c), 2) if c not in ("id", "label") else str(r.get(c)) for c in cols]
                                       for r in rows])
    write_text_atomic(md_path, "\n".join(lines) + "\n")
    return json_path, md_path
