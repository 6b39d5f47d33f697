"""nclkit.engine.evaluator on a tiny on-disk set with a stand-in model whose output is known."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import RedDetector, make_pair
from nclkit.data import DataError, Record
from nclkit.engine import metrics as M
from nclkit.engine.checkpoint import load_model
from nclkit.engine.evaluator import evaluate, write_report
from nclkit.engine.predict import predict_probability


def test_metrics_are_per_tampered_image_means(records):
    model = RedDetector()
    result = evaluate(model, records, progress=False, global_metrics=True, best_threshold=True,
                      permuted=True, thresholds=(0.5, 0.3))
    probs, masks, scores, labels = [], [], [], []
    for rec in records:
        image = np.array(Image.open(rec.image))
        prob = predict_probability(model, image)
        scores.append(prob.max())
        labels.append(rec.label)
        if rec.mask is not None:
            probs.append(prob)
            masks.append((np.asarray(Image.open(rec.mask)) > 127).astype(np.uint8))
    assert result["n_images"] == 5 and result["n_tampered"] == 3 and result["n_authentic"] == 2
    assert result["pixel_f1"] == pytest.approx(np.mean([M.pixel_f1(p, m) for p, m in zip(probs, masks)]))
    assert result["pixel_auc"] == pytest.approx(np.mean([M.pixel_auc(p, m) for p, m in zip(probs, masks)]))
    assert 0.5 < result["pixel_f1"] < 1.0
    assert result["pixel_f1@0.3"] == pytest.approx(np.mean([M.pixel_f1(p, m, 0.3) for p, m in zip(probs, masks)]))
    assert result["global_f1"] == pytest.approx(M.global_f1(probs, masks))
    assert result["global_auc"] == pytest.approx(M.global_auc(probs, masks))
    assert result["pixel_f1_best_threshold"] >= result["pixel_f1"]
    assert result["pixel_f1_permuted"] >= result["pixel_f1"]
    assert "global_f1_best_threshold" in result
    image_level = M.image_level_metrics(scores, labels)
    for key, value in image_level.items():
        assert result[key] == pytest.approx(value)
    assert [r["id"] for r in result["per_image"]] == ["t1", "t2", "t3", "a1", "a2"]
    assert "auc" not in result["per_image"][3] and "score" in result["per_image"][3]
    proto = result["protocol"]
    assert proto["f1_threshold"] == 0.5 and "ties counted half" in proto["auc"]
    assert "original" in proto["resolution"] and proto["attack"] is None


def test_only_tampered_images_have_no_image_level_metrics(records):
    result = evaluate(RedDetector(), records[:3], progress=False)
    assert result["image_auc"] is None and result["image_f1"] is None
    assert "global_f1" not in result and "pixel_f1_permuted" not in result


def test_only_authentic_images_give_nan_pixel_metrics(records):
    result = evaluate(RedDetector(), records[3:], progress=False)
    assert math.isnan(result["pixel_f1"]) and math.isnan(result["pixel_auc"])
    assert result["n_tampered"] == 0


def test_all_tampered_mask_counts_as_undefined_auc(records):
    result = evaluate(RedDetector(), records[1:2], progress=False)  # t2's box is not the whole image
    assert result["n_auc_undefined"] == 0
    Image.fromarray(np.full((33, 47), 255, np.uint8)).save(records[1].mask)
    result = evaluate(RedDetector(), records[1:2], progress=False)
    assert result["n_auc_undefined"] == 1 and math.isnan(result["pixel_auc"])


def test_empty_records_raise():
    with pytest.raises(ValueError, match="no records"):
        evaluate(RedDetector(), [], progress=False)


def test_attack_keeps_mask_resolution_and_is_seeded(records):
    model = RedDetector()
    small = evaluate(model, records, attack="resize:0.5", progress=False)
    assert small["protocol"]["attack"] == "resize:0.5"
    assert small["n_tampered"] == 3
    a = evaluate(model, records, attack="noise:5", seed=3, progress=False)
    b = evaluate(model, records, attack="noise:5", seed=3, progress=False)
    c = evaluate(model, records, attack="noise:5", seed=4, progress=False)
    assert a["pixel_auc"] == b["pixel_auc"] and a["pixel_auc"] != c["pixel_auc"]
    with pytest.raises(ValueError, match="unknown attack kind"):
        evaluate(model, records, attack="rotate:5", progress=False)


def test_write_report_json_and_markdown(records, tmp_path):
    result = evaluate(RedDetector(), records[:2] + records[3:4], progress=False)
    result["pixel_auc"] = float("nan")  # undefined values must survive as null / n/a
    json_path, md_path = write_report(result, tmp_path / "reports" / "eval.json")
    assert md_path == tmp_path / "reports" / "eval.md"
    data = json.loads(json_path.read_text())
    assert data["pixel_auc"] is None and data["n_images"] == 3
    assert data["protocol"]["f1_threshold"] == 0.5
    md = md_path.read_text()
    assert "| pixel_auc | n/a |" in md and "## Protocol" in md and "| t1 |" in md


DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.data
def test_real_coverage_images_with_real_model():
    coverage = DATA / "COVERAGE"
    if not (coverage / "image" / "1t.tif").exists():
        pytest.skip(f"real data not found at {coverage} (only present on the development machine)")
    from nclkit import build_model, get_config

    torch.manual_seed(0)
    model = build_model(get_config("quick", eval_max_side=256))
    recs = [Record(str(coverage / "image" / "1t.tif"), str(coverage / "mask" / "1forged.tif"), 1,
                   "coverage", "test", "1t"),
            Record(str(coverage / "image" / "1.tif"), None, 0, "coverage", "test", "1")]
    for attack in (None, "resize:0.25"):
        result = evaluate(model, recs, attack=attack, progress=False)
        assert result["n_tampered"] == 1 and result["n_authentic"] == 1
        assert 0.0 <= result["pixel_f1"] <= 1.0 and 0.0 <= result["pixel_auc"] <= 1.0
        assert result["image_auc"] in (0.0, 0.5, 1.0)


def test_evaluate_refuses_records_whose_label_and_mask_disagree(checkpoint, tmp_path):
    rec = make_pair(tmp_path, "a")
    model, _ = load_model(checkpoint)
    for bad in (Record(rec.image, None, 1, "t", "test", "x"), Record(rec.image, rec.mask, 0, "t", "test", "y")):
        with pytest.raises(DataError, match="tampered records need a mask"):
            evaluate(model, [bad], progress=False)


def test_all_tampered_reference_is_2p_over_1_plus_p(tiny_manifest):
    from nclkit.data import load_mask, read_manifest
    from nclkit.engine.evaluator import all_tampered_f1

    test = [r for r in read_manifest(tiny_manifest, split="test") if r.mask]
    shares = [load_mask(r.mask).mean() for r in test]
    expected = sum(2 * p / (1 + p) for p in shares) / len(shares)
    assert all_tampered_f1(test) == pytest.approx(expected)


def test_image_score_rule_and_threshold_are_used_and_stated(records):
    res = evaluate(RedDetector(), records, progress=False, image_score="top10%", image_threshold=0.3)
    for row in res["per_image"]:
        assert set(row["scores"]) == set(M.IMAGE_SCORES) and row["score"] == row["scores"]["top10%"]
    expected = M.image_level_metrics([r["scores"]["top10%"] for r in res["per_image"]],
                                     [r["label"] for r in res["per_image"]], 0.3)
    assert {k: res[k] for k in expected} == pytest.approx(expected)
    assert "top10% of the pixel probabilities" in res["protocol"]["image_level"] and "> 0.3" in res["protocol"]["image_level"]
    with pytest.raises(ValueError, match="image_score='median'"):
        evaluate(RedDetector(), records, progress=False, image_score="median")
