"""Training: the loop runs, resumes exactly, selects on val, refuses bad input, and runs under DDP (gloo)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from nclkit.engine import devices, trainer
from nclkit.engine.checkpoint import load_model, read_checkpoint
from nclkit.engine.devices import autocast_dtype
from nclkit.engine.trainer import poly_lambda, train
from nclkit.presets import get_config


def _weights(path):
    return read_checkpoint(path)["model"]


def test_poly_schedule():
    f = poly_lambda(100, 0.9)
    assert f(0) == 1.0 and f(100) == 0.0
    assert f(50) == pytest.approx(0.5 ** 0.9)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_autocast_follows_native_bf16(monkeypatch, native):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert autocast_dtype(get_config("quick", amp="auto"), cpu) == (torch.bfloat16 if native else None)
    assert autocast_dtype(get_config("quick", amp="bf16"), cpu) == torch.bfloat16  # asked for: always
    assert autocast_dtype(get_config("quick", amp="fp16"), cpu) is None  # CPU fp16 autocast: never
    assert autocast_dtype(get_config("quick", amp="fp32"), cpu) is None


@pytest.mark.slow
def test_train_writes_checkpoints_and_log(tiny_manifest, tiny_cfg, tmp_path):
    summary = train(tiny_cfg, tiny_manifest, tmp_path, progress=False)
    assert summary["epochs_done"] == 2
    for name in ("best.pt", "last.pt", "log.jsonl", "config.json", "summary.json"):
        assert (tmp_path / name).is_file(), name
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all("val_pixel_f1" in r and "ncl" in r and "pc" in r for r in rows)
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    # weights_only load works, and the checkpoint rebuilds its own model
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "step", "config", "rng"} <= set(state)
    model, _ = load_model(tmp_path / "best.pt")
    assert model.cfg.crop_size == 64


@pytest.mark.slow
def test_resume_equals_uninterrupted(tiny_manifest, tiny_cfg, tmp_path, monkeypatch):
    full = tmp_path / "full"
    part = tmp_path / "part"
    train(tiny_cfg, tiny_manifest, full, progress=False)
    real_epoch, calls = trainer.train_one_epoch, []

    def interrupted_in_epoch_2(*args, **kwargs):  # Ctrl-C during the second epoch
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(trainer, "train_one_epoch", interrupted_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_cfg, tiny_manifest, part, progress=False)
    assert read_checkpoint(part / "last.pt")["epoch"] == 1
    train(tiny_cfg, tiny_manifest, part, progress=False, resume=True)
    a, b = _weights(full / "last.pt"), _weights(part / "last.pt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = (full / "log.jsonl").read_text().splitlines()
    lb = (part / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in la] == [json.loads(x)["loss"] for x in lb]


def test_resume_without_checkpoint_is_clear(tiny_manifest, tiny_cfg, tmp_path):
    with pytest.raises(FileNotFoundError, match="last.pt"):
        train(tiny_cfg, tiny_manifest, tmp_path, resume=True, progress=False)


def test_resume_with_another_preset_is_refused(tiny_manifest, tiny_cfg, tmp_path):
    train(tiny_cfg.replace(epochs=1), tiny_manifest, tmp_path, progress=False)
    with pytest.raises(ValueError, match="another model"):
        train(tiny_cfg.replace(encoder="resnet34"), tiny_manifest, tmp_path, resume=True, progress=False)


def test_empty_manifest_is_clear(tiny_cfg, tmp_path):
    from nclkit.data import DataError

    src = tmp_path / "m.jsonl"
    src.write_text("")
    with pytest.raises(DataError):
        train(tiny_cfg, src, tmp_path / "run", progress=False)


@pytest.mark.slow
def test_two_process_gloo_ddp(tiny_manifest, tiny_cfg, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
           "-m", "nclkit.cli", "train", "--preset", "quick", "--data", str(tiny_manifest), "--out", str(out),
           "--epochs", "1", "--device", "cpu", "--no-progress",
           "--set", "crop_size=64", "--set", "batch_size=2", "--set", "num_workers=0", "--set", "eval_max_side=64"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert summary["ranks_agree"] is True
    assert (out / "best.pt").is_file()
