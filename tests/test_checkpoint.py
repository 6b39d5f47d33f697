"""Checkpoints (nclkit.engine.checkpoint): only finite weights are saved, resuming checks the recipe, old configs keep their readings."""
import math

import pytest
import torch

from helpers import small_cfg
from nclkit import build_model, get_config
from nclkit.engine.checkpoint import check_resumable, save_checkpoint


def test_save_checkpoint_refuses_non_finite_weights_and_leaves_no_tmp(tmp_path):
    with pytest.raises(ValueError, match="non-finite weights"):
        save_checkpoint({"model": {"w": torch.tensor([1.0, math.inf])}, "config": {}}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def _saved_state(cfg):
    return {"model": {}, "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 1, "step": 8,
            "config": cfg.to_dict(), "rng": {}, "best": 0.0, "history": [], "train_seconds": 1.0}


@pytest.mark.parametrize("change, named", [
    ({"variant": "base"}, "variant 'full' -> 'base'"),
    ({"epochs": 9}, "epochs 1 -> 9"),
    ({"name": "paper"}, "name 'quick' -> 'paper'"),
    ({"lr": 0.5}, "lr 0.2 -> 0.5"),
])
def test_resume_refuses_a_changed_recipe_unless_allowed(change, named, tmp_path):
    state = _saved_state(small_cfg())
    with pytest.raises(ValueError, match=f"changed config \\({named}\\).*--allow-changes"):
        check_resumable(state, small_cfg().replace(**change), tmp_path / "last.pt")
    check_resumable(state, small_cfg().replace(**change), tmp_path / "last.pt", allow_changes=True)


@pytest.mark.parametrize("change", [{"num_workers": 2}, {"eval_max_side": 32}, {"max_train_seconds": 60.0}])
def test_resume_accepts_changes_that_do_not_alter_the_run(change, tmp_path):
    check_resumable(_saved_state(small_cfg()), small_cfg().replace(**change), tmp_path / "last.pt")


def test_resume_refuses_a_checkpoint_lacking_what_it_needs(tmp_path):
    state = _saved_state(small_cfg())
    del state["optimizer"], state["rng"]
    with pytest.raises(ValueError, match=r"lacks \['optimizer', 'rng'\]"):
        check_resumable(state, small_cfg(), tmp_path / "last.pt")


def test_config_saved_before_the_new_readings_keeps_the_old_ones(tmp_path):
    # A checkpoint whose config predates `block1`, `aux_before_upsampling`, `sample_weighting` and
    # random scaling is rebuilt with the readings it was trained with, and its weights load.
    from nclkit.engine.checkpoint import check_compatible, load_model, save_checkpoint
    from nclkit.presets import LEGACY_VALUES, Config

    old = {k: v for k, v in get_config("quick").to_dict().items() if k not in LEGACY_VALUES}
    cfg = Config.from_dict(old)
    assert (cfg.block1, cfg.aux_before_upsampling, cfg.sample_weighting) == ("maxpool", True, False)
    assert (cfg.scale_min, cfg.scale_max) == (1.0, 1.0)
    legacy = build_model(cfg)
    assert legacy.encoder.strides[0] == 4 and len(legacy.aux_heads) == 2
    path = save_checkpoint({"model": legacy.state_dict(), "config": old}, tmp_path / "old.pt")
    model, _ = load_model(path)
    assert model.cfg.block1 == "maxpool" and len(model.aux_heads) == 2
    check_compatible(old, get_config("quick", block1="maxpool", aux_before_upsampling=True), path)
    with pytest.raises(ValueError, match="block1"):
        check_compatible(old, get_config("quick", aux_before_upsampling=True), path)
