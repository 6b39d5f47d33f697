"""Shared fixtures: a tiny synthetic dataset made once per session, and the tiny training config."""
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
