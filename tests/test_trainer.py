"""Training: the loop runs, resumes exactly, selects on val, refuses bad input, and runs under DDP (gloo)."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import make_pair, small_cfg
from nclkit.data import DataError, Record, read_manifest, write_manifest
from nclkit.engine import trainer
from nclkit.engine.checkpoint import load_model, read_checkpoint
from nclkit.engine.trainer import TrainingDiverged, poly_lambda, train


def _weights(path):
    return read_checkpoint(path)["model"]


def test_poly_schedule():
    f = poly_lambda(100, 0.9)
    assert f(0) == 1.0 and f(100) == 0.0
    assert f(50) == pytest.approx(0.5 ** 0.9)


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
    model, saved = load_model(tmp_path / "best.pt")
    assert saved["config"]["crop_size"] == 64 and model.eval_max_side == saved["config"]["eval_max_side"]


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


@pytest.mark.slow
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


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_loss_stops_the_step_before_the_weights_change(bad):
    t = trainer.build_training(small_cfg(amp="fp32"), torch.device("cpu"), total_steps=10)
    weight = t.optimizer.param_groups[0]["params"][0]
    before = weight.detach().clone()

    def forward(image, mask, valid):
        total = (weight * bad).sum()
        return total, {"bce": total.detach(), "ncl": torch.tensor(0.5)}

    x = torch.zeros(1, 3, 4, 4)
    batch = {"image": x, "mask": x[:, :1], "valid": x[:, :1]}
    with pytest.raises(TrainingDiverged, match=r"at step 1: non-finite loss \(loss=(nan|inf), bce=(nan|inf), ncl=0.5\)"):
        trainer.train_one_epoch(t, forward, [batch])
    assert torch.equal(weight.detach(), before) and weight.grad is None


@pytest.mark.slow
def test_weights_gone_non_finite_in_the_last_step_are_never_saved(small_manifest, tmp_path, monkeypatch):
    steps = len(read_manifest(small_manifest, split="train")) // 4  # the epoch's last step
    real_builder = trainer.build_optimizer

    class PoisoningSGD(torch.optim.SGD):
        calls = 0

        def step(self, closure=None):
            out = super().step(closure)
            PoisoningSGD.calls += 1
            if PoisoningSGD.calls == steps:  # the loss was finite, but the update left a NaN weight
                self.param_groups[0]["params"][0].data.fill_(math.nan)
            return out

    def poisoning_builder(*args, **kwargs):
        sgd = real_builder(*args, **kwargs)
        sgd.__class__ = PoisoningSGD
        return sgd

    monkeypatch.setattr(trainer, "build_optimizer", poisoning_builder)
    with pytest.raises(TrainingDiverged, match=f"by step {steps}: the weights became non-finite"):
        train(small_cfg(), small_manifest, tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


@pytest.mark.slow
def test_log_follows_the_checkpoint_after_a_failed_save(small_manifest, tmp_path, monkeypatch):
    real_save = trainer.save_checkpoint

    def full_disk_in_epoch_2(state, path):
        if state["epoch"] == 2:
            raise OSError(28, "No space left on device")
        return real_save(state, path)

    cfg = small_cfg().replace(epochs=2)
    monkeypatch.setattr(trainer, "save_checkpoint", full_disk_in_epoch_2)
    with pytest.raises(OSError, match="No space left"):
        train(cfg, small_manifest, tmp_path, progress=False)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert epochs == [1]  # the failed epoch is not in the log
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    train(cfg, small_manifest, tmp_path, progress=False, resume=True)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2] and not list(tmp_path.glob("*.tmp"))


def test_resume_rewrites_a_log_that_ran_ahead(tmp_path):
    """A log left by an older version (written before a failed save) is cut back to the checkpoint's history."""
    (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    trainer._rewrite_log(tmp_path, [{"epoch": 1}])
    assert (tmp_path / "log.jsonl").read_text() == '{"epoch": 1}\n'


@pytest.mark.parametrize("split", ["train", "val"])
def test_train_finds_a_corrupt_file_before_building_the_model(split, tmp_path, monkeypatch):
    recs = [make_pair(tmp_path / "d", f"im{i}") for i in range(4)]
    recs = [Record(r.image, r.mask, 1, "t", s, r.id) for r, s in zip(recs, ["train", "train", "val", "val"])]
    target = recs[0] if split == "train" else recs[3]
    Path(target.image).write_bytes(b"garbage")
    manifest = write_manifest(recs, tmp_path / "m.jsonl")
    monkeypatch.setattr(trainer, "build_model", lambda cfg: pytest.fail("the model was built before the check"))
    with pytest.raises(DataError, match=Path(target.image).name):
        train(small_cfg(), manifest, tmp_path / "run", progress=False)


def test_a_truncated_validation_image_is_found_before_training(tmp_path, monkeypatch):
    recs = [make_pair(tmp_path / "d", f"im{i}") for i in range(4)]
    recs = [Record(r.image, r.mask, 1, "t", s, r.id) for r, s in zip(recs, ["train", "train", "val", "val"])]
    data = Path(recs[3].image).read_bytes()
    Path(recs[3].image).write_bytes(data[: len(data) // 2])  # the header is intact: only decoding fails
    manifest = write_manifest(recs, tmp_path / "m.jsonl")
    monkeypatch.setattr(trainer, "build_model", lambda cfg: pytest.fail("the model was built before the check"))
    with pytest.raises(DataError, match="im3.png: cannot decode"):
        train(small_cfg(), manifest, tmp_path / "run", progress=False)
