"""Checkpoints (nclkit.engine.checkpoint): only finite weights are saved, resuming checks the recipe, an incomplete config is refused."""
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


def test_a_config_lacking_keys_is_refused_naming_them(tmp_path):
    from nclkit.engine.checkpoint import load_model, save_checkpoint
    from nclkit.presets import Config

    cfg = get_config("quick")
    partial = {k: v for k, v in cfg.to_dict().items() if k not in ("block1", "sample_weighting")}
    with pytest.raises(ValueError, match=r"run/config.json: the config lacks keys \['block1', 'sample_weighting'\]"):
        Config.from_dict(partial, source="run/config.json")
    path = save_checkpoint({"model": build_model(cfg).state_dict(), "config": partial}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="lacks keys.*another nclkit version"):
        load_model(path)
