"""Presets and configs (nclkit.presets): the paper's recipe, overrides, validation, JSON round trip."""
import json

import pytest
import torch

from nclkit.presets import PRESETS, apply_overrides, get_config


def test_paper_recipe_reaches_the_optimizer_and_the_schedule():
    # §4's SGD (lr 0.007, momentum 0.9, weight decay 5e-4) and poly power 0.9, as training builds them;
    # the encoder, output stride and ASPP rates are checked on the built model (test_deeplab, slow).
    from torch import nn

    from nclkit.engine.trainer import build_optimizer, poly_lambda

    cfg = PRESETS["paper"]
    group = build_optimizer(nn.Linear(2, 1), cfg, torch.device("cpu")).param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.007, 0.9, 5e-4)
    assert poly_lambda(100, cfg.poly_power)(50) == pytest.approx(0.5 ** 0.9)
    assert (cfg.crop_size, cfg.batch_size) == (512, 4)
    # the readings argued in docs/interpretation.md
    assert (cfg.block1, cfg.patch_size, cfg.aux_before_upsampling, cfg.sample_weighting) == ("conv1", 1, False, True)
    assert (cfg.scale_min, cfg.scale_max, cfg.aux_weight) == (0.5, 2.0, 1.0)
    assert (cfg.omega, cfg.mu, cfg.pivot_block, cfg.variant) == (0.01, 0.9, 1, "full")


def test_quick_preset_changes_numbers_not_logic():
    quick, paper = PRESETS["quick"].to_dict(), PRESETS["paper"].to_dict()
    assert quick.keys() == paper.keys()
    assert (quick["omega"], quick["mu"], quick["variant"]) == (paper["omega"], paper["mu"], paper["variant"])


def test_overrides_and_errors():
    cfg = apply_overrides(get_config("quick"), ["tau=0.2", "aspp_rates=1,2,3", "compile=true", "variant=base"])
    assert (cfg.tau, cfg.aspp_rates, cfg.compile, cfg.variant) == (0.2, (1, 2, 3), True, "base")
    cfg = apply_overrides(get_config("quick"), ["block1=maxpool", "aux_before_upsampling=true", "scale_max=1.5"])
    assert (cfg.block1, cfg.aux_before_upsampling, cfg.scale_max) == ("maxpool", True, 1.5)
    with pytest.raises(ValueError, match="block1"):
        get_config("quick", block1="stem")
    with pytest.raises(ValueError, match="scale_min"):
        get_config("quick", scale_min=2.0, scale_max=1.0)
    with pytest.raises(ValueError, match="variant"):
        get_config("quick", variant="nope")
    with pytest.raises(ValueError, match="unknown preset"):
        get_config("huge")
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(get_config("quick"), ["tau"])


def test_config_round_trip():
    cfg = get_config("paper", tau=0.3)
    assert type(cfg).from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("item, allowed", [
    ("max_patches=0", ">= 1"), ("batch_size=0", ">= 1"), ("batch_size=-4", ">= 1"), ("aspp_rates=", "rates >= 1"),
    ("val_every=0", ">= 1"), ("train_max_side=-1", ">= 0"), ("encoder_width=32.5", "whole number"),
    ("lr=abc", "number"), ("lr=nan", "finite"), ("aspp_rates=1,a", "list of whole numbers"), ("epochs=0", ">= 1"),
    ("compile=maybe", "true or false"), ("momentum=1.5", "momentum < 1"), ("seed=-1", "2**32"),
])
def test_every_override_is_checked_at_the_door(item, allowed):
    # One line naming the key, the value as typed and what is allowed, before any work starts.
    key, value = item.split("=")
    with pytest.raises(ValueError) as err:
        apply_overrides(get_config("quick"), [item])
    text = str(err.value)
    assert f"{key}=" in text and value in text and allowed in text and "\n" not in text


def test_the_base_variant_samples_no_patches():
    assert apply_overrides(get_config("quick"), ["variant=base", "max_patches=0"]).max_patches == 0


@pytest.mark.parametrize("saved, needle", [
    ([], "the config is a list"), ({"lr": "abc"}, "lr='abc'; expected a finite number"),
    ({"aspp_rates": 5}, "aspp_rates=5; expected a list"), ({"encoder_width": 32.5}, "encoder_width=32.5"),
    ({"compile": 1}, "compile=1; expected true or false"), ({"batch_size": 0}, "batch_size=0"),
])
def test_a_saved_config_is_checked_and_the_file_named(saved, needle):
    from nclkit.presets import Config

    if isinstance(saved, dict):
        saved = {**get_config("quick").to_dict(), **saved}  # one bad value in an otherwise complete config
    with pytest.raises(ValueError) as err:
        Config.from_dict(saved, source="run/config.json")
    assert str(err.value).startswith("run/config.json: ") and needle in str(err.value)


@pytest.mark.parametrize("changes, needle", [
    ({"encoder": "swin_t", "output_stride": 16, "block1": "maxpool", "encoder_width": 64},
     "encoder 'swin_t' does not support output_stride=16"),
    ({"encoder": "swin_t", "output_stride": 32, "block1": "conv1", "encoder_width": 64},
     "encoder 'swin_t' does not support block1='conv1'"),
    ({"encoder": "swin_t", "output_stride": 32, "block1": "maxpool", "encoder_width": 32},
     "encoder 'swin_t' does not support encoder_width=32"),
    ({"encoder": "resnet50", "encoder_width": 32}, "encoder 'resnet50' does not support encoder_width=32"),
    ({"encoder": "vgg16"}, "unknown encoder 'vgg16'.*swin_t"),
])
def test_a_config_asks_its_encoder_only_what_it_honours(changes, needle):
    with pytest.raises(ValueError, match=needle):
        PRESETS["paper"].replace(**changes)


def test_swapping_the_encoder_takes_its_own_options_unless_named():
    swin = get_config("course_gpu", encoder="swin_t")
    assert (swin.output_stride, swin.block1, swin.encoder_width) == (32, "maxpool", 64)
    assert apply_overrides(get_config("quick"), ["encoder=swin_t"]) == get_config("quick", encoder="swin_t")
    assert get_config("course_gpu", encoder="resnet18").output_stride == 16  # honoured: kept
    with pytest.raises(ValueError, match="encoder 'swin_t' does not support output_stride=16"):
        get_config("course_gpu", encoder="swin_t", output_stride=16)
