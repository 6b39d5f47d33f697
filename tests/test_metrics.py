"""nclkit.engine.metrics against sklearn.metrics and hand-computed cases."""
import math
import zlib

import numpy as np
import pytest
import torch

from nclkit.engine import metrics as M
from nclkit.engine.metrics import (
    best_threshold_f1, global_auc, global_best_threshold_f1, global_f1, image_level_metrics,
    nan_mean, permuted_f1, pixel_auc, pixel_f1,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")

SIZES = [(1, 7), (13, 17), (64, 48), (128, 128)]
QUANTA = [None, 2, 10, 255]  # None = continuous; small quanta = heavy ties


def _random_pair(rng, shape, quanta, dtype, tampered_fraction):
    prob = rng.random(shape)
    if quanta is not None:
        prob = np.round(prob * quanta) / quanta
    mask = (rng.random(shape) < tampered_fraction).astype(np.uint8)
    mask.flat[0], mask.flat[-1] = 0, 1  # both classes present
    return prob.astype(dtype), mask


def _sk_best_f1(prob, mask):
    precision, recall, _ = sklearn_metrics.precision_recall_curve(mask.ravel(), prob.ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return f1.max()


@pytest.mark.parametrize("shape", SIZES)
@pytest.mark.parametrize("quanta", QUANTA)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_sklearn(shape, quanta, dtype):
    rng = np.random.default_rng(zlib.crc32(repr((shape, quanta, dtype)).encode()))
    for fraction in (0.05, 0.5):
        prob, mask = _random_pair(rng, shape, quanta, dtype, fraction)
        y, s = mask.ravel(), prob.ravel()
        assert pixel_auc(prob, mask) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12)
        for thr in (0.5, 0.3):
            expected = sklearn_metrics.f1_score(y, s > thr, zero_division=0)
            assert pixel_f1(prob, mask, thr) == pytest.approx(expected, abs=1e-12)
        best, t = best_threshold_f1(prob, mask)
        assert best == pytest.approx(_sk_best_f1(prob, mask), abs=1e-12)
        # the returned threshold reproduces the best F1 with the rule prob >= t
        assert sklearn_metrics.f1_score(y, s >= t) == pytest.approx(best, abs=1e-12)


def test_torch_tensors_and_bool_masks():
    rng = np.random.default_rng(1)
    prob, mask = _random_pair(rng, (32, 32), 10, np.float32, 0.3)
    expected = pixel_auc(prob, mask)
    assert pixel_auc(torch.from_numpy(prob), torch.from_numpy(mask).bool()) == expected
    assert pixel_auc(torch.from_numpy(prob).to(torch.bfloat16).float(), mask) == pytest.approx(
        sklearn_metrics.roc_auc_score(mask.ravel(), torch.from_numpy(prob).bfloat16().float().numpy().ravel()))
    assert pixel_f1(torch.from_numpy(prob), mask.astype(bool)) == pixel_f1(prob, mask)


def test_hand_computed():
    mask = np.array([[0, 0, 1, 1]])
    prob = np.array([[0.1, 0.6, 0.4, 0.9]])
    # prob > 0.5: predicted {1, 3}; TP = 1, FP = 1, FN = 1 -> F1 = 2 / 4
    assert pixel_f1(prob, mask) == 0.5
    # pairs (pos, neg): (0.4, 0.1) win, (0.4, 0.6) loss, (0.9, *) two wins -> 3 / 4
    assert pixel_auc(prob, mask) == 0.75
    # all tied: every pair is a tie -> 0.5
    assert pixel_auc(np.full((1, 4), 0.3), mask) == 0.5
    # one tie between classes: (0.5, 0.5) counts half -> (1 + 0.5 + 1 + 1) / 4
    assert pixel_auc(np.array([[0.1, 0.5, 0.5, 0.9]]), mask) == 0.875
    # best threshold 0.4 (prob >= 0.4 -> {1, 2, 3}: TP 2, FP 1 -> 0.8), or 0.9 (TP 1 -> 2/3)
    assert best_threshold_f1(prob, mask) == (pytest.approx(0.8), pytest.approx(0.4))
    # inverted mask: TP' = 1, F1' = 2 * 1 / (2 + 2) = 0.5 -> permuted = 0.5
    assert permuted_f1(prob, mask) == 0.5
    # a perfectly inverted prediction has F1 0 but permuted F1 1
    assert pixel_f1(1.0 - mask, mask) == 0.0
    assert permuted_f1((1.0 - mask).astype(float), mask) == 1.0


def test_degenerate_cases():
    zeros = np.zeros((4, 4), np.uint8)
    ones = np.ones((4, 4), np.uint8)
    low = np.full((4, 4), 0.2)
    high = np.full((4, 4), 0.8)
    assert math.isnan(pixel_auc(high, zeros))
    assert math.isnan(pixel_auc(high, ones))
    assert pixel_f1(low, zeros) == 0.0  # nothing tampered, nothing predicted: sklearn's 0
    assert pixel_f1(high, zeros) == 0.0
    assert pixel_f1(high, ones) == 1.0
    assert pixel_f1(low, ones) == 0.0
    f1, t = best_threshold_f1(high, zeros)
    assert f1 == 0.0 and math.isnan(t)
    assert nan_mean([0.5, float("nan"), 1.0]) == 0.75
    assert math.isnan(nan_mean([float("nan")]))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        pixel_auc(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pixel_f1(np.full((2, 2), 1.5), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pixel_auc(np.full((2, 2), np.nan), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="0 and 1"):
        pixel_auc(np.zeros((2, 2)), np.full((2, 2), 255, np.uint8))
    with pytest.raises(ValueError, match="empty"):
        pixel_auc(np.zeros((0,)), np.zeros((0,)))


def test_global_metrics_match_sklearn_on_concatenation():
    rng = np.random.default_rng(3)
    pairs = [_random_pair(rng, shape, 20, np.float32, 0.2) for shape in [(10, 12), (30, 5), (8, 8)]]
    probs, masks = [p for p, _ in pairs], [m for _, m in pairs]
    y = np.concatenate([m.ravel() for m in masks])
    s = np.concatenate([p.ravel() for p in probs])
    assert global_auc(probs, masks) == pytest.approx(sklearn_metrics.roc_auc_score(y, s), abs=1e-12)
    assert global_f1(probs, masks) == pytest.approx(sklearn_metrics.f1_score(y, s > 0.5), abs=1e-12)
    assert global_best_threshold_f1(probs, masks)[0] == pytest.approx(_sk_best_f1(s, y), abs=1e-12)
    with pytest.raises(ValueError):
        global_auc(probs, masks[:2])


def test_image_level_metrics():
    scores = [0.9, 0.6, 0.4, 0.2, 0.7, 0.7]
    labels = [1, 1, 1, 0, 0, 0]
    out = image_level_metrics(scores, labels)
    assert out["image_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores))
    pred = np.array(scores) > 0.5
    assert out["image_balanced_accuracy"] == pytest.approx(
        sklearn_metrics.balanced_accuracy_score(labels, pred))
    assert out["image_f1"] == pytest.approx(sklearn_metrics.f1_score(labels, pred))
    only_tampered = image_level_metrics([0.9, 0.3], [1, 1])
    assert math.isnan(only_tampered["image_auc"])
    assert only_tampered["image_balanced_accuracy"] == 0.5
    with pytest.raises(ValueError, match="labels"):
        image_level_metrics([0.1], [2])


def test_public_import_path_is_nclkit_metrics():
    """The public interface: nclkit.metrics.pixel_f1 / pixel_auc on one (H, W) image, a Python float back."""
    import nclkit
    from nclkit import metrics

    assert nclkit.metrics is metrics
    assert set(metrics.__all__) >= {"pixel_f1", "pixel_auc"}
    rng = np.random.default_rng(7)
    prob, mask = _random_pair(rng, (33, 21), 10, np.float32, 0.3)  # heavy ties
    for p, m in ((prob, mask), (torch.from_numpy(prob), torch.from_numpy(mask))):
        f1, auc = metrics.pixel_f1(p, m), metrics.pixel_auc(p, m)
        assert type(f1) is float and type(auc) is float
        assert f1 == pytest.approx(sklearn_metrics.f1_score(mask.ravel(), prob.ravel() > 0.5), abs=1e-12)
        assert auc == pytest.approx(sklearn_metrics.roc_auc_score(mask.ravel(), prob.ravel()), abs=1e-12)


# --- image scores (one score per map) and their choice on validation ---

def _slow_top_mean(p, percent):
    """Mean of the ceil-free k = round(n * percent / 100) (at least 1) largest values, by full sorting."""
    v = sorted(np.asarray(p, np.float64).ravel().tolist(), reverse=True)
    k = max(int(round(len(v) * percent / 100)), 1)
    return sum(v[:k]) / k


def _score(p, rule):
    return M.image_scores(p)[rule]


def test_image_scores_against_plain_numpy():
    rng = np.random.default_rng(4)
    for shape in [(1, 1), (7, 9), (64, 48)]:
        p = rng.random(shape).astype(np.float32)
        assert _score(p, "max") == pytest.approx(float(p.max()))
        assert _score(p, "mean") == pytest.approx(float(p.astype(np.float64).mean()))
        assert _score(p, "area@0.5") == pytest.approx(float((p > 0.5).mean()))
        for rule, percent in (("top0.1%", 0.1), ("top1%", 1), ("top10%", 10)):
            assert _score(p, rule) == pytest.approx(_slow_top_mean(p, percent), rel=1e-6)
    assert set(M.image_scores(np.zeros((2, 2)))) == set(M.IMAGE_SCORES)
    with pytest.raises(ValueError, match="empty map"):
        M.image_scores(np.zeros((0, 2)))


def test_balanced_threshold_against_sklearn_by_brute_force():
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 30)
        y[:2] = (0, 1)
        s = np.round(rng.random(30) * 0.5 + 0.3 * y, 2)  # ties on purpose
        t = M.best_balanced_threshold(s, y)
        best = max(balanced_accuracy_score(y, s > c) for c in np.concatenate([s, [s.min() - 1]]))
        assert balanced_accuracy_score(y, s > t) == pytest.approx(best)
    with pytest.raises(ValueError, match="tampered and authentic"):
        M.best_balanced_threshold([0.1, 0.2], [1, 1])


def test_choose_image_score_picks_the_best_auc_rule():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    rows = []
    for i in range(40):
        label = i % 2
        p = rng.random((16, 16)) * 0.3
        p[0, 0] = 0.99  # one hot pixel everywhere: "max" cannot tell the classes apart
        if label:
            p[4:10, 4:10] += 0.4  # a tampered photo has a wide warm region
        rows.append({"label": label, "scores": {r: _score(p, r) for r in M.IMAGE_SCORES}})
    choice = M.choose_image_score(rows)
    labels = [r["label"] for r in rows]
    aucs = {r: roc_auc_score(labels, [row["scores"][r] for row in rows]) for r in M.IMAGE_SCORES}
    assert aucs["max"] == pytest.approx(0.5)
    assert choice["val_image_auc"] == pytest.approx(max(aucs.values()))
    assert aucs[choice["rule"]] == pytest.approx(max(aucs.values())) and choice["rule"] != "max"
    assert choice["val_image_auc_by_rule"] == pytest.approx(aucs)
    with pytest.raises(ValueError, match="tampered and authentic"):
        M.choose_image_score(rows[1::2])


@pytest.mark.parametrize("seed", range(5))
def test_roc_curve_matches_sklearn_and_its_area_is_pixel_auc(seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((24, 20)) > 0.7).astype(np.uint8)
    prob = np.round(rng.random((24, 20)), 1 + seed % 3).astype(np.float32)  # coarse values: many ties
    fpr, tpr = M.roc_curve(prob, mask)
    want_fpr, want_tpr, _ = sklearn_metrics.roc_curve(mask.ravel(), prob.ravel(), drop_intermediate=False)
    np.testing.assert_allclose(fpr, want_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, want_tpr, atol=1e-12)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(M.pixel_auc(prob, mask), abs=1e-12)
    with pytest.raises(ValueError, match="all 0 or all 1"):
        M.roc_curve(prob, np.zeros_like(mask))
