"""Smoke tests of benchmarks/train_step.py, ncl_loss_step.py and train_under_load.py: they run end to end and report finite numbers (no timing asserts)."""
import importlib
import json
import math
from pathlib import Path

import pytest
import torch

from nclkit.ncl.categorize import CONTOUR, TAMPERED, categorize_patches



@pytest.fixture(scope="module")
def train_step():
    return importlib.import_module("train_step")


@pytest.mark.slow
def test_main_reports_finite_numbers(train_step, tmp_path, capsys):
    out = tmp_path / "res.json"
    threads = torch.get_num_threads()
    try:  # one thread: two OpenMP threads thrash when other processes share the 2 cores
        res = train_step.main(["--device", "cpu", "--preset", "quick", "--warmup", "1", "--steps", "1",
                               "--batch", "2", "--size", "64", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the last line is the JSON
    assert printed == json.loads(out.read_text()) == json.loads(json.dumps(res))
    for key in ("ratio_full_vs_reference", "overhead_full_vs_base", "img_per_s", "step_ms", "peak_gib",
                "device_name", "torch", "preset", "batch", "targets", "pass"):
        assert key in printed, key
    assert printed["preset"] == "quick" and printed["batch"] == 2 and printed["size"] == 64
    assert math.isfinite(printed["ratio_full_vs_reference"]) and printed["ratio_full_vs_reference"] > 0
    assert math.isfinite(printed["overhead_full_vs_base"]) and printed["overhead_full_vs_base"] > 0
    for name in train_step.CONFIGS:
        assert math.isfinite(printed["img_per_s"][name]) and printed["img_per_s"][name] > 0
        assert math.isfinite(printed["step_ms"][name]) and printed["step_ms"][name] > 0
        peak = printed["peak_gib"][name]
        assert peak is None or (math.isfinite(peak) and peak > 0)
    assert set(printed["pass"]) == {"overhead_full_vs_base"}  # CPU: only the overhead target applies
    assert isinstance(printed["pass"]["overhead_full_vs_base"], bool)


def test_batch_masks_hold_contour_and_tampered_patches(train_step):
    image, mask, valid = train_step.make_batch(3, 64, seed=1)
    assert image.shape == (3, 3, 64, 64) and mask.shape == valid.shape == (3, 1, 64, 64)
    assert set(mask.unique().tolist()) <= {0.0, 1.0} and bool((valid == 1).all())
    codes = categorize_patches(mask, (16, 16), patch_size=2)  # block 1 of the quick model: stride 4
    for b in range(3):
        assert (codes[b] == CONTOUR).any(), f"image {b} has no contour patch"
    assert (codes == TAMPERED).any()


def test_interleaving_splits_steps_over_rounds(train_step):
    calls = []
    setups = [train_step.Setup(n, (lambda n=n: calls.append(n)), list) for n in ("a", "b")]
    times = train_step.time_interleaved(setups, steps=5, rounds=2, device=torch.device("cpu"))
    assert [len(v) for v in times.values()] == [2, 2]
    assert calls.count("a") == calls.count("b") == 5
    assert calls[:3] == ["a", "a", "a"] and calls[6:8] == ["b", "b"]  # round 2 starts with "b"


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--steps", "-1"], ["--seconds", "0"]])
def test_bad_arguments_fail_fast(train_step, argv):
    with pytest.raises(ValueError):
        train_step.main(["--device", "cpu", *argv])


def _run_main(script: str, argv: list[str], tmp_path, capsys) -> dict:
    """Run a benchmark's main() on one thread (restored after); returns its JSON line, checked against --out and main's result."""
    module = importlib.import_module(Path(script).stem)
    out = tmp_path / "res.json"
    threads = torch.get_num_threads()
    try:
        res = module.main([*argv, "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == json.loads(out.read_text()) == json.loads(json.dumps(res))
    return printed


@pytest.mark.slow
def test_ncl_loss_step_reports_every_piece(tmp_path, capsys):
    printed = _run_main("ncl_loss_step.py", ["--device", "cpu", "--batch", "2", "--size", "64", "--repeats", "2"],
                        tmp_path, capsys)
    assert printed["feature"] == [2, 32, 32, 32]  # quick preset: conv1's 32 channels at stride 2 of 64 px
    assert set(printed["ms_median"]) == {"whole_preset", "whole_nchw", "categories", "sampling", "gather", "features", "terms"}
    assert all(math.isfinite(v) and v > 0 for v in printed["ms_median"].values())
    assert math.isfinite(printed["ratio_nchw_vs_preset"]) and printed["ratio_nchw_vs_preset"] > 0


@pytest.mark.slow
def test_train_under_load_reports_both_windows(tmp_path, capsys):
    printed = _run_main("train_under_load.py", ["--preset", "quick", "--batch", "2", "--size", "64", "--steps", "1",
                                                "--warmup", "0", "--rounds", "1"], tmp_path, capsys)
    assert math.isfinite(printed["loaded_vs_idle"]) and printed["loaded_vs_idle"] > 0
    assert printed["threads"] == {"idle": [1], "loaded": [1]} and printed["device_name"].startswith("CPU")
    assert all(v > 0 for v in printed["img_per_s"].values())


def test_train_under_load_refuses_bad_arguments():
    module = importlib.import_module("train_under_load")
    with pytest.raises(ValueError, match="--steps 0"):
        module.main(["--steps", "0"])
