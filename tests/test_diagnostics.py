"""The measurements behind "does eq. 7 help?": class-balanced BCE, the val-chosen pixel threshold, the
gradients each loss sends into the tapped map, eq. 7 at chance, the linear probe, and the trainer's
epoch_end callback (which must leave training bit-identical)."""
import json
import math

import numpy as np
import pytest
import torch

from helpers import square_batch
from nclkit import build_model, get_config
from nclkit.engine import train
from nclkit.engine.diagnostics import loss_gradients, ncl_at_chance, patch_probe
from nclkit.engine.metrics import PIXEL_THRESHOLDS, choose_pixel_threshold, pixel_f1
from nclkit.ncl import NCLCriterion
from nclkit.ncl.pc_loss import balanced_bce_loss
from nclkit.ncl.sampling import patch_categories


def test_balanced_bce_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 6, 5, generator=g)
    mask = (torch.rand(2, 1, 6, 5, generator=g) > 0.7).float()
    valid = torch.ones_like(mask)
    valid[1, :, :, 4] = 0
    sums, counts = [0.0, 0.0], [0, 0]
    for z, y, v in zip(logits.flatten().tolist(), mask.flatten().tolist(), valid.flatten().tolist()):
        if v < 0.5:
            continue
        q = 1 / (1 + math.exp(-z))
        sums[int(y)] += -(y * math.log(q) + (1 - y) * math.log(1 - q))
        counts[int(y)] += 1
    want = 0.5 * (sums[0] / counts[0] + sums[1] / counts[1])
    assert float(balanced_bce_loss(logits, mask, valid)) == pytest.approx(want, rel=1e-5)


def test_balanced_bce_is_finite_on_authentic_only_batches():
    logits = torch.randn(1, 1, 4, 4, requires_grad=True)
    loss = balanced_bce_loss(logits, torch.zeros(1, 1, 4, 4))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_criterion_uses_balanced_bce_for_base_only():
    from nclkit.models.deeplab import ModelOutput

    logits = torch.randn(1, 1, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :2, :2] = 1
    out = ModelOutput(logits=logits, features=[], aux_logits=[], pivot_feature=torch.zeros(1, 4, 8, 8))
    plain = NCLCriterion(variant="base")(out, mask).total
    balanced = NCLCriterion(variant="base", balanced_bce=True)(out, mask).total
    assert float(balanced) == pytest.approx(float(balanced_bce_loss(logits, mask)))
    assert float(balanced) != pytest.approx(float(plain))
    with pytest.raises(ValueError, match="balanced_bce"):
        get_config("quick", variant="full", balanced_bce=True)


def _rows(probs, masks):
    rows = []
    for p, m in zip(probs, masks):
        row = {"label": 1, "f1": pixel_f1(p, m, 0.5)}
        row.update({f"f1@{t:g}": pixel_f1(p, m, t) for t in PIXEL_THRESHOLDS if t != 0.5})
        rows.append(row)
    return rows + [{"label": 0}]


def test_pixel_threshold_is_the_grid_point_of_best_mean_f1():
    rng = np.random.default_rng(0)
    masks = [rng.random((20, 20)) > 0.6 for _ in range(5)]
    probs = [np.clip(0.3 * m + 0.25 * rng.random((20, 20)), 0, 1).astype(np.float32) for m in masks]  # never above 0.55
    chosen = choose_pixel_threshold(_rows(probs, masks))
    brute = {t: np.mean([pixel_f1(p, m, t) for p, m in zip(probs, masks)]) for t in PIXEL_THRESHOLDS}
    assert chosen["val_pixel_f1"] == pytest.approx(max(brute.values()))
    assert brute[chosen["threshold"]] == max(brute.values())
    assert chosen["threshold"] < 0.5 and chosen["val_pixel_f1"] > brute[0.5]
    with pytest.raises(ValueError, match="tampered"):
        choose_pixel_threshold([{"label": 0}])


@pytest.fixture
def small_model():
    torch.manual_seed(0)
    return build_model("quick", crop_size=64, patch_size=2)


def test_loss_gradients_leave_the_model_and_the_random_stream_alone(small_model):
    cfg = get_config("quick", patch_size=2)
    image, mask = square_batch(2, 64)
    before = {k: v.clone() for k, v in small_model.state_dict().items()}
    rng = torch.random.get_rng_state()
    got = loss_gradients(small_model, NCLCriterion.from_config(cfg), image, mask)
    assert torch.equal(rng, torch.random.get_rng_state())
    for k, v in small_model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert got["grad_pixel"] > 0 and got["grad_ncl_unweighted"] > 0
    assert got["grad_ncl"] == pytest.approx(cfg.omega * got["grad_ncl_unweighted"])
    assert -1.0 <= got["cosine"] <= 1.0
    again = loss_gradients(small_model, NCLCriterion.from_config(cfg), image, mask)
    assert again == got  # the same patches each call: its own seeded generator
    base = loss_gradients(small_model, NCLCriterion.from_config(cfg.replace(variant="base")), image, mask)
    assert base["grad_ncl"] == 0.0 and base["grad_ncl_unweighted"] > 0


def test_ncl_at_chance_is_log_one_plus_the_weighted_negatives(small_model):
    """With every similarity equal each term is log(1 + K), K the (N/k-weighted) number of negatives."""
    cfg = get_config("quick", patch_size=2, max_patches=10_000)  # every patch sampled: k = N
    image, mask = square_batch(1, 64)
    feature = small_model(image).pivot_feature
    codes = patch_categories(mask, feature.shape[-2:], 2)
    n_t, n_a = int((codes == 1).sum()), int((codes == 0).sum())
    chance = ncl_at_chance(NCLCriterion.from_config(cfg), small_model.pivot, feature, mask)
    assert chance["ncl_t1"] == pytest.approx(math.log(1 + n_a), rel=1e-5)
    assert chance["ncl_t2"] == pytest.approx(math.log(1 + n_a), rel=1e-5)
    assert chance["ncl_t3"] == pytest.approx(math.log(1 + n_t), rel=1e-5)


def _painted(folder, name):
    """A record whose tampered square is painted white on dark noise: its pixels say which class they are."""
    from PIL import Image

    from nclkit.data import Record

    rng = np.random.default_rng(len(name))
    image = rng.integers(0, 60, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 20:48] = 255
    image[mask > 0] = 255
    Image.fromarray(image).save(folder / f"{name}.png")
    Image.fromarray(mask).save(folder / f"{name}_gt.png")
    return Record(str(folder / f"{name}.png"), str(folder / f"{name}_gt.png"), 1, "t", "test", name)


class _Echo(torch.nn.Module):
    """A stand-in model whose tapped map is its input's red channel (or zeros)."""

    def __init__(self, constant: bool):
        super().__init__()
        self.constant = constant

    def forward(self, x):
        from nclkit.models.deeplab import ModelOutput

        red = x[:, :1]
        feat = torch.zeros_like(red) if self.constant else red
        return ModelOutput(logits=feat, features=[], aux_logits=[], pivot_feature=torch.cat([feat, -feat], 1))


def test_patch_probe_separates_what_the_features_separate(tmp_path):
    """Features that show the tampered region give the probe an AUC of 1; constant ones give 0.5."""
    records = [_painted(tmp_path, f"im{i}") for i in range(4)]
    assert patch_probe(_Echo(False), records[:2], records[2:], patch_size=1, max_side=None) == pytest.approx(1.0)
    assert patch_probe(_Echo(True), records[:2], records[2:], patch_size=1, max_side=None) == pytest.approx(0.5)


@pytest.mark.slow
def test_epoch_end_sees_every_epoch_and_changes_nothing(tiny_manifest, tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(patch_size=2)
    image, mask = square_batch(2, 64)
    seen = []

    def measure(epoch, model):
        seen.append((epoch, loss_gradients(model, NCLCriterion.from_config(cfg), image, mask)["grad_pixel"]))

    train(cfg, tiny_manifest, tmp_path / "plain", progress=False)
    train(cfg, tiny_manifest, tmp_path / "measured", progress=False, epoch_end=measure)
    assert [e for e, _ in seen] == [1, 2] and all(g > 0 for _, g in seen)
    a = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "measured" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    logs = [[json.loads(x)["loss"] for x in (tmp_path / d / "log.jsonl").read_text().splitlines()]
            for d in ("plain", "measured")]
    assert logs[0] == logs[1]
