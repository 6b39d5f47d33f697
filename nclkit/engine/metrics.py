"""Pixel- and image-level metrics for manipulation localization (paper §4, "Evaluation Metrics").

The paper reports pixel-level F1 and AUC without saying how they are aggregated; nclkit's default
protocol (docs/evaluation.md) is:

- **F1** of one image at a fixed threshold: a pixel is predicted tampered when ``prob > threshold``
  (default 0.5); F1 = 2 TP / (2 TP + FP + FN).
- **AUC** of one image: the Mann-Whitney statistic, i.e. the probability that a random tampered
  pixel scores higher than a random authentic one, ties counted half. This equals the area under
  the ROC curve with trapezoids (sklearn's ``roc_auc_score``).

Degenerate cases (documented in docs/evaluation.md):

- F1 when nothing is tampered and nothing is predicted (2 TP + FP + FN = 0): 0.0, the convention of
  sklearn's ``f1_score`` (``zero_division=0``). An all-tampered mask is not degenerate for F1.
- AUC when the mask is all 0 or all 1: undefined, returned as ``float('nan')``; averages skip it
  (``nan_mean``) and reports count the skipped images.

AUC and best-threshold F1 rest on one sort: each pixel becomes the integer key
``(bits of prob) << 1 | label``. Non-negative IEEE floats order like their bit patterns, so one
integer sort puts equal probabilities (tie groups) together, authentic pixels first, and every
count below is an exact integer.
No sklearn at run time; tests compare against it.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

__all__ = [
    "IMAGE_SCORES", "image_scores", "best_balanced_threshold", "choose_image_score",
    "PIXEL_THRESHOLDS", "choose_pixel_threshold",
    "pixel_f1",
    "pixel_auc",
    "roc_curve",
    "best_threshold_f1",
    "permuted_f1",
    "global_f1",
    "global_auc",
    "global_best_threshold_f1",
    "image_level_metrics",
    "nan_mean",
]


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


def _check_pair(prob: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (prob, mask) pair; return flat prob (float32/float64) and flat bool mask."""
    p = _to_numpy(prob)
    m = _to_numpy(mask)
    if p.shape != m.shape:
        raise ValueError(f"prob shape {p.shape} differs from mask shape {m.shape}")
    if p.size == 0:
        raise ValueError("prob and mask are empty")
    if p.dtype not in (np.float32, np.float64):
        p = p.astype(np.float64)  # exact for integer and half-precision inputs
    lo, hi = p.min(), p.max()
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
        raise ValueError(f"prob must lie in [0, 1] without NaN; got min {lo}, max {hi}")
    if m.dtype != bool:
        if np.issubdtype(m.dtype, np.integer):
            if m.min() < 0 or m.max() > 1:
                raise ValueError(f"mask must hold only 0 and 1; got min {m.min()}, max {m.max()}")
        elif not ((m == 0) | (m == 1)).all():
            raise ValueError("mask must hold only 0 and 1")
        m = m.astype(bool)
    return p.ravel(), m.ravel()


def _f1_from_counts(tp: int, n_pred: int, n_pos: int) -> float:
    denom = n_pred + n_pos  # = 2 TP + FP + FN
    return 0.0 if denom == 0 else 2.0 * tp / denom


def _f1_counts(p: np.ndarray, m: np.ndarray, threshold: float) -> tuple[int, int, int]:
    pred = p > threshold
    return int(np.count_nonzero(pred & m)), int(np.count_nonzero(pred)), int(np.count_nonzero(m))


def pixel_f1(prob: Any, mask: Any, threshold: float = 0.5) -> float:
    """F1 of one image, pixels with ``prob > threshold`` predicted tampered.

    Args:
        prob: tamper probability, values in [0, 1]. Shape (H, W) (any shape equal to mask's).
        mask: ground truth, 1 = tampered, 0 = authentic. Shape (H, W).
        threshold: decision threshold (strict ``>``).
    Returns:
        F1 in [0, 1]; 0.0 when nothing is tampered and nothing predicted (sklearn's convention).
    """
    p, m = _check_pair(prob, mask)
    return _f1_from_counts(*_f1_counts(p, m, threshold))


def _sorted_keys(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    """One sortable integer per pixel, ``(bits of prob) << 1 | label``, sorted ascending.

    Within a tie group (equal probabilities) authentic pixels (label 0) sort before tampered ones.
    """
    p = p + p.dtype.type(0.0)  # turns -0.0 into +0.0 so that bit patterns order like values
    if p.dtype == np.float32:
        keys = (p.view(np.int32) << 1) | m.view(np.uint8)  # bits of 1.0f < 2**30: fits int32
    else:
        keys = (p.view(np.int64) << 1) | m  # bits of 1.0 < 2**62: fits int64
    keys.sort()
    return keys


def _auc_from_keys(keys: np.ndarray) -> float:
    pos_idx = np.flatnonzero(keys & 1)  # sorted positions of tampered pixels
    n_pos = pos_idx.size
    n_neg = keys.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # The r-th tampered pixel (0-based) at position i has i - r authentic pixels at or below its
    # value (tied authentic pixels sort first), so sum(i) - n_pos(n_pos-1)/2 counts ties as wins.
    twice_u = 2 * (int(pos_idx.sum()) - n_pos * (n_pos - 1) // 2)
    # Ties count half: subtract n_neg_g * n_pos_g / 2 per mixed tie group. A mixed group has exactly
    # one place where an authentic key 2v is followed by the tampered key 2v + 1.
    step = np.flatnonzero((keys[1:] - keys[:-1] == 1) & ((keys[:-1] & 1) == 0))  # (n_mixed,)
    if step.size:
        even = keys[step]
        start = np.searchsorted(keys, even, "left")
        end = np.searchsorted(keys, even | 1, "right")
        n_neg_g = (step + 1 - start).astype(np.int64)
        n_pos_g = (end - step - 1).astype(np.int64)
        twice_u -= int(np.dot(n_neg_g, n_pos_g))
    return twice_u / (2.0 * n_pos * n_neg)


def pixel_auc(prob: Any, mask: Any) -> float:
    """Tie-aware ROC AUC of one image (Mann-Whitney U / (n_tampered * n_authentic)).

    Args:
        prob: tamper probability in [0, 1]. Shape (H, W).
        mask: ground truth in {0, 1}. Shape (H, W).
    Returns:
        AUC in [0, 1]; ``nan`` when the mask is all 0 or all 1 (AUC undefined).
    """
    p, m = _check_pair(prob, mask)
    n_pos = int(np.count_nonzero(m))
    if n_pos == 0 or n_pos == m.size:
        return float("nan")
    return _auc_from_keys(_sorted_keys(p, m))


def roc_curve(prob: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve of one image, one point per distinct probability: the curve whose area is `pixel_auc`.

    Args:
        prob: tamper probability in [0, 1]. Shape (H, W).
        mask: ground truth in {0, 1}, both values present. Shape (H, W).
    Returns:
        (false-positive rate, true-positive rate), each of shape (distinct probabilities + 1,), from
        (0, 0) (threshold above every probability) to (1, 1). Pixels tied at one probability move the
        curve in one straight step, which is why the trapezoids count ties half.
    Raises:
        ValueError: the mask is all 0 or all 1 (no curve: one of the rates is undefined).
    """
    p, m = _check_pair(prob, mask)
    keys = _sorted_keys(p, m)[::-1]  # highest probability first
    tampered = (keys & 1).astype(bool)
    tp, fp = np.cumsum(tampered), np.cumsum(~tampered)
    if tp[-1] == 0 or fp[-1] == 0:
        raise ValueError("ROC curve of a mask that is all 0 or all 1: undefined")
    values = keys >> 1
    last = np.r_[np.flatnonzero(values[1:] != values[:-1]), keys.size - 1]  # the end of each tie group
    return np.r_[0.0, fp[last] / fp[-1]], np.r_[0.0, tp[last] / tp[-1]]


def _best_f1_from_keys(keys: np.ndarray, dtype: np.dtype) -> tuple[float, float]:
    labels = keys & 1
    total_pos = int(np.count_nonzero(labels))
    if total_pos == 0:
        return 0.0, float("nan")
    values = keys >> 1
    starts = np.concatenate(([0], np.flatnonzero(values[1:] != values[:-1]) + 1))  # (G,) tie groups
    # Threshold at group g predicts tampered every pixel with prob >= its value: those from starts[g].
    pos_below = np.concatenate(([0], np.cumsum(labels, dtype=np.int64)))[starts]  # (G,)
    tp = total_pos - pos_below
    n_pred = keys.size - starts
    f1 = 2.0 * tp / (n_pred + total_pos)  # (G,)
    best = len(f1) - 1 - int(np.argmax(f1[::-1]))  # the highest threshold among equal maxima
    bits = values[starts[best]]
    threshold = np.array(bits, dtype=np.int32).view(np.float32) if dtype == np.float32 \
        else np.array(bits, dtype=np.int64).view(np.float64)
    return float(f1[best]), float(threshold)


def best_threshold_f1(prob: Any, mask: Any) -> tuple[float, float]:
    """Best F1 of one image over every distinct threshold (the "optimal threshold" protocol).

    Exact: every distinct probability t is tried as the rule ``prob >= t`` (what sklearn's
    ``precision_recall_curve`` sweeps); predicting nothing gives F1 0 and never wins.

    Args:
        prob: tamper probability in [0, 1]. Shape (H, W).
        mask: ground truth in {0, 1}. Shape (H, W).
    Returns:
        (best F1, threshold t for the rule ``prob >= t``); (0.0, nan) when nothing is tampered.
    """
    p, m = _check_pair(prob, mask)
    return _best_f1_from_keys(_sorted_keys(p, m), p.dtype)


def permuted_f1(prob: Any, mask: Any, threshold: float = 0.5) -> float:
    """max(F1 against the mask, F1 against the inverted mask) — the "permuted" F1.

    Some IML papers report it because which side of a splice is "tampered" can be ambiguous; it
    is never lower than `pixel_f1` and must always be labelled as permuted in reports.
    """
    p, m = _check_pair(prob, mask)
    tp, n_pred, n_pos = _f1_counts(p, m, threshold)
    tp_inv = n_pred - tp  # predicted pixels that are authentic = TP against the inverted mask
    return max(_f1_from_counts(tp, n_pred, n_pos), _f1_from_counts(tp_inv, n_pred, m.size - n_pos))


def _concat(probs: Sequence[Any], masks: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    if len(probs) != len(masks):
        raise ValueError(f"{len(probs)} probability maps but {len(masks)} masks")
    if len(probs) == 0:
        raise ValueError("no images given")
    pairs = [_check_pair(p, m) for p, m in zip(probs, masks)]
    dtype = np.result_type(*[p.dtype for p, _ in pairs])
    return (np.concatenate([p.astype(dtype, copy=False) for p, _ in pairs]),
            np.concatenate([m for _, m in pairs]))


def global_f1(probs: Sequence[Any], masks: Sequence[Any], threshold: float = 0.5) -> float:
    """Dataset-level F1: TP, FP, FN summed over all pixels of all images, then one F1."""
    if len(probs) != len(masks) or len(probs) == 0:
        raise ValueError(f"need equally many (>0) maps and masks, got {len(probs)} and {len(masks)}")
    tp = n_pred = n_pos = 0
    for prob, mask in zip(probs, masks):
        a, b, c = _f1_counts(*_check_pair(prob, mask), threshold)
        tp, n_pred, n_pos = tp + a, n_pred + b, n_pos + c
    return _f1_from_counts(tp, n_pred, n_pos)


def global_auc(probs: Sequence[Any], masks: Sequence[Any]) -> float:
    """Dataset-level AUC over the concatenated pixels of all images (nan if one class only)."""
    p, m = _concat(probs, masks)
    return _auc_from_keys(_sorted_keys(p, m))


def global_best_threshold_f1(probs: Sequence[Any], masks: Sequence[Any]) -> tuple[float, float]:
    """Dataset-level best F1: one threshold for the whole dataset, chosen to maximise F1."""
    p, m = _concat(probs, masks)
    return _best_f1_from_keys(_sorted_keys(p, m), p.dtype)


def image_level_metrics(scores: Sequence[float], labels: Sequence[int],
                        threshold: float = 0.5) -> dict[str, float]:
    """Image-level detection metrics from one score per image (score = max pixel probability).

    Args:
        scores: per-image scores in [0, 1]. Shape (N,).
        labels: 1 tampered, 0 authentic. Shape (N,).
        threshold: an image is predicted tampered when ``score > threshold``.
    Returns:
        dict with ``image_auc`` (tie-aware; nan without both classes), ``image_balanced_accuracy``
        (mean of the recalls of the classes present), ``image_f1`` (F1 of the tampered class).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.shape != y.shape or s.ndim != 1 or s.size == 0:
        raise ValueError(f"need equally long non-empty 1-D scores and labels, got {s.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 (authentic) or 1 (tampered); got {sorted(set(y.tolist()))}")
    y = y.astype(bool)
    pred = s > threshold
    recalls = [float(np.mean(pred[y == cls] == cls)) for cls in (True, False) if np.any(y == cls)]
    tp = int(np.count_nonzero(pred & y))
    return {
        "image_auc": pixel_auc(s, y),
        "image_balanced_accuracy": float(np.mean(recalls)),
        "image_f1": _f1_from_counts(tp, int(np.count_nonzero(pred)), int(np.count_nonzero(y))),
    }


# How one probability map becomes one image score (is this photo tampered at all?). "max" is the
# default (docs/evaluation.md); the others are steadier where a model fires a few pixels on every photo:
# the mean of the top k % of pixels, the share of pixels above 0.5, the mean. Chosen on a validation
# split with `choose_image_score`, never on test.
IMAGE_SCORES = ("max", "top0.1%", "top1%", "top10%", "area@0.5", "mean")


_TOP_PERCENT = {"top0.1%": 0.1, "top1%": 1.0, "top10%": 10.0}


def image_scores(prob: Any) -> dict[str, float]:
    """Every rule of IMAGE_SCORES for one probability map (any shape), each in [0, 1]; the three top-k
    means come from one partial sort."""
    p = _to_numpy(prob).astype(np.float32, copy=False).ravel()
    if p.size == 0:
        raise ValueError("image scores of an empty map")
    starts = {rule: p.size - max(int(round(p.size * pct / 100)), 1) for rule, pct in _TOP_PERCENT.items()}
    part = np.partition(p, sorted(set(starts.values())))  # each start index holds its order statistic
    scores = {"max": float(p.max()), "mean": float(p.mean(dtype=np.float64)),
              "area@0.5": float(np.count_nonzero(p > 0.5) / p.size)}
    scores.update({rule: float(part[start:].mean(dtype=np.float64)) for rule, start in starts.items()})
    return {rule: scores[rule] for rule in IMAGE_SCORES}


def best_balanced_threshold(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The threshold (score > t is tampered) with the highest balanced accuracy: midpoints between
    neighbouring distinct scores, and below the lowest; ties go to the smallest threshold."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if not (y.any() and (~y).any()):
        raise ValueError("a balanced-accuracy threshold needs tampered and authentic images")
    u = np.unique(s)
    candidates = np.concatenate([[u[0] - 1e-6], (u[:-1] + u[1:]) / 2]) if u.size > 1 else np.array([u[0] - 1e-6])
    pred = s[None, :] > candidates[:, None]  # (T, N)
    bacc = (pred[:, y].mean(1) + (~pred[:, ~y]).mean(1)) / 2
    return float(candidates[int(np.argmax(bacc))])


def choose_image_score(per_image: Sequence[dict]) -> dict[str, Any]:
    """The image-score rule and threshold to use on test, chosen on validation rows (the evaluator's
    ``per_image``, each with ``label`` and ``scores``): the rule with the highest image AUC (first in
    IMAGE_SCORES on a tie), and its threshold of best balanced accuracy."""
    labels = [r["label"] for r in per_image]
    if len(set(labels)) < 2:
        raise ValueError("choosing an image score needs tampered and authentic validation images")
    aucs = {rule: pixel_auc(np.array([r["scores"][rule] for r in per_image]), np.array(labels, bool))
            for rule in IMAGE_SCORES}
    rule = max(IMAGE_SCORES, key=lambda k: (aucs[k], -IMAGE_SCORES.index(k)))
    threshold = best_balanced_threshold([r["scores"][rule] for r in per_image], labels)
    return {"rule": rule, "threshold": threshold, "val_image_auc": aucs[rule], "val_image_auc_by_rule": aucs}


# The thresholds `choose_pixel_threshold` tries: 0.05, 0.10, ..., 0.95.
PIXEL_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(1, 20))


def choose_pixel_threshold(per_image: Sequence[dict]) -> dict[str, Any]:
    """The pixel threshold to use on test, chosen on validation rows (the evaluator's ``per_image`` run
    with ``thresholds=PIXEL_THRESHOLDS``): the one of highest mean per-image F1 over the tampered images
    (the lower one on a tie). F1 at it, applied to test, sits between F1@0.5, which a model that never
    reaches 0.5 fails, and the oracle F1, which picks each test image's best threshold after the fact."""
    tampered = [r for r in per_image if r["label"] == 1]
    if not tampered:
        raise ValueError("choosing a pixel threshold needs tampered validation images")
    means = {t: nan_mean([r["f1" if t == 0.5 else f"f1@{t:g}"] for r in tampered]) for t in PIXEL_THRESHOLDS}
    threshold = max(PIXEL_THRESHOLDS, key=lambda t: (means[t], -t))
    return {"threshold": threshold, "val_pixel_f1": means[threshold]}


def nan_mean(values: Sequence[float]) -> float:
    """Mean ignoring nan (undefined per-image AUCs); nan when nothing is defined."""
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")
