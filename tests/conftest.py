"""Shared fixtures: a tiny synthetic dataset, a small two-split manifest and an untrained checkpoint (once per session), the tiny training config."""
from pathlib import Path

import matplotlib
import pytest

# Headless figures for the unit tests, whatever MPLBACKEND says (the notebooks run with an image backend).
matplotlib.use("Agg")


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory) -> Path:
    from nclkit.data.synthetic import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("tiny_synth"), num=40, seed=3, size=64)


@pytest.fixture
def tiny_cfg():
    from nclkit import get_config

    return get_config("quick", crop_size=64, batch_size=4, epochs=2, num_workers=0, eval_max_side=64)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A loadable checkpoint of an untrained quick model (loading, predicting, evaluating need no training)."""
    import torch

    from helpers import small_cfg
    from nclkit import build_model

    torch.manual_seed(0)
    cfg = small_cfg()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"model": build_model(cfg).state_dict(), "config": cfg.to_dict()}, path)
    return path


@pytest.fixture(scope="session")
def small_manifest(tmp_path_factory) -> Path:
    """8 training and 2 validation images of 64 px: two steps an epoch at batch 4."""
    from helpers import make_pair
    from nclkit.data import Record, write_manifest

    folder = tmp_path_factory.mktemp("small")
    recs = [make_pair(folder, f"im{i}", hw=(64, 64)) for i in range(10)]
    return write_manifest([Record(r.image, r.mask, 1, "t", "train" if i < 8 else "val", r.id)
                           for i, r in enumerate(recs)], folder / "m.jsonl")


@pytest.fixture
def records(tmp_path):
    """Five toy records (three tampered, two authentic) that RedDetector reads almost right."""
    from helpers import write_toy_records

    return write_toy_records(tmp_path)
