"""Unusual inputs at the command line: each ends in one clear line (or a quiet exit), never a traceback,
and nothing is trained or scored wrongly without a word."""
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import make_pair, one_line_error, small_cfg
from nclkit.cli import main
from nclkit.data import Record, write_manifest
from nclkit.engine.checkpoint import save_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--no-progress", "--set", "crop_size=64", "--set", "batch_size=4", "--set", "eval_max_side=64"]


def _run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


@pytest.mark.parametrize("item, needle", [
    ("val_every=0", "val_every=0; expected >= 1"), ("batch_size=-4", "batch_size=-4; expected >= 1"),
    ("max_patches=0", "max_patches=0"), ("aspp_rates=", "aspp_rates=''"), ("encoder_width=32.5", "encoder_width='32.5'"),
    ("train_max_side=-1", "train_max_side=-1; expected >= 0"),
])
def test_a_bad_value_is_refused_before_any_work(item, needle, tiny_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_manifest), "--out", str(run), *TINY, "--set", item]) == 2
    one_line_error(capsys, needle)
    assert not run.exists()  # refused at the door: not even the run folder was made


@pytest.mark.parametrize("text, needle", [
    ("[]", "the config is a list"), ("lr: abc", "lr='abc'; expected a finite number"),
    ('{"lr": 0.1,', "not valid JSON (Expecting property name enclosed in double quotes at line 1)"),
])
def test_resume_checks_the_runs_config_and_names_it(text, needle, tiny_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    if text == "lr: abc":  # one bad value in an otherwise complete config
        text = json.dumps({**small_cfg().to_dict(), "lr": "abc"})
    (run / "config.json").write_text(text)
    assert main(["train", "--data", str(tiny_manifest), "--out", str(run), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, str(run / "config.json"), needle)


def test_a_checkpoint_whose_config_is_broken_is_refused_in_one_line(tiny_manifest, tmp_path, capsys):
    bad = {**small_cfg().to_dict(), "aspp_rates": 5}
    ckpt = save_checkpoint({"model": {}, "config": bad}, tmp_path / "m.pt")
    rc = main(["eval", "--checkpoint", str(ckpt), "--data", str(tiny_manifest), "--out", str(tmp_path / "r.json"),
               "--no-progress"])
    assert rc == 2
    one_line_error(capsys, f"checkpoint {ckpt}: aspp_rates=5; expected a list of whole numbers")


def test_tensorboard_missing_is_one_line_with_the_install_command(tiny_manifest, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if TensorBoard were not installed
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_manifest), "--out", str(run), "--tensorboard", *TINY]) == 2
    one_line_error(capsys, "--tensorboard needs TensorBoard", "pip install 'nclkit[tensorboard]'")
    assert not run.exists()


def test_a_second_train_into_the_same_folder_is_refused(tiny_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    code = ("import sys, time\nfrom nclkit.engine.outputs import claim_run_dir\n"
            f"with claim_run_dir({str(run)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main(["train", "--data", str(tiny_manifest), "--out", str(run), *TINY]) == 2
    finally:
        holder.kill()
        holder.wait()
    one_line_error(capsys, f"{run} is in use by another nclkit process (pid {holder.pid}")
    assert not (run / "log.jsonl").exists()


def test_a_train_split_without_tampered_images_is_refused_for_ncl(tmp_path, capsys):
    folder = tmp_path / "d"
    recs = [make_pair(folder, f"im{i}", hw=(64, 64)) for i in range(4)]
    manifest = write_manifest([Record(r.image, None, 0, "t", "train", r.id) for r in recs[:3]]
                              + [Record(recs[3].image, recs[3].mask, 1, "t", "val", recs[3].id)], tmp_path / "m.jsonl")
    assert main(["train", "--data", str(manifest), "--out", str(tmp_path / "run"), *TINY]) == 2
    one_line_error(capsys, "split 'train' has no tampered image (3 authentic)", "'full' variant")


def test_eval_folders_refuse_one_mask_for_two_images(tmp_path, capsys):
    for sub in ("a", "b"):
        (tmp_path / "D" / sub).mkdir(parents=True)
        Image.fromarray(np.full((16, 20, 3), 90, np.uint8)).save(tmp_path / "D" / sub / "x.png")
    (tmp_path / "M").mkdir()
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(tmp_path / "M" / "x.png")
    rc = main(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--images", str(tmp_path / "D"),
               "--masks", str(tmp_path / "M"), "--out", str(tmp_path / "r.json"), "--no-progress"])
    assert rc == 2
    one_line_error(capsys, "one mask fits two images")


def test_a_huge_blur_is_refused_as_typed_before_the_model_loads(tiny_manifest, tmp_path, capsys):
    rc = main(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(tiny_manifest), "--attack",
               "blur:1000001", "--out", str(tmp_path / "r.json"), "--no-progress"])
    assert rc == 2
    assert "none.pt" not in one_line_error(capsys, "blur kernel size 1000001", "from 1 to 255")


# What the import of torch does when Ctrl-C arrives: the interrupt itself, or (Ctrl-C inside numpy's import
# leaves it half imported) a later import failing on a name the half-imported module lacks.
_CTRL_C = {
    "interrupt": "            raise KeyboardInterrupt\n",
    "half imported": ("            try:\n"
                      "                os.kill(os.getpid(), signal.SIGINT)\n"
                      "                time.sleep(5)\n"
                      "            except KeyboardInterrupt:\n"
                      "                pass\n"
                      "            raise AttributeError(\"module 'numpy' has no attribute 'matrix'\")\n"),
}


@pytest.mark.slow
@pytest.mark.parametrize("what", sorted(_CTRL_C))
def test_ctrl_c_while_the_console_script_imports_torch_is_one_line(what):
    # The console script as pyproject declares it, with Ctrl-C arriving while PyTorch is imported.
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["nclkit"]
    module, func = target.split(":")
    code = ("import importlib, os, signal, sys, time\n"
            "class CtrlC:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch':\n"
            f"{_CTRL_C[what]}"
            "sys.meta_path.insert(0, CtrlC())\n"
            f"sys.exit(getattr(importlib.import_module({module!r}), {func!r})(['train', '--help']))\n")
    proc = _run_python(code)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "nclkit: interrupted while starting"


@pytest.mark.slow
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `| head -1` after its line: every write meets a closed pipe
    try:
        proc = subprocess.run([sys.executable, "-m", "nclkit.cli", "synth", "--out", str(tmp_path / "s"), "--num", "2",
                               "--size", "32"], stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    finally:
        os.close(write_end)
    assert proc.returncode == 141 and proc.stderr == ""  # the set was still written: only its report line was lost
    assert (tmp_path / "s" / "manifest.jsonl").is_file()


@pytest.mark.slow
def test_a_warning_is_one_line_too(checkpoint, tmp_path):
    rec = make_pair(tmp_path, "a", hw=(64, 64))
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(rec.mask)  # a tampered image with an empty mask
    manifest = write_manifest([rec], tmp_path / "m.jsonl")
    proc = subprocess.run([sys.executable, "-m", "nclkit", "eval", "--checkpoint", str(checkpoint), "--data",
                           str(manifest), "--out", str(tmp_path / "r.json"), "--no-progress"], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [
        "nclkit eval: warning: 1 of 1 masks may be misread: a_gt.png (no tampered pixel). Rule applied: white = "
        "tampered: a pixel counts when its brightest colour channel is above half its type's range (a mask of 0 and "
        "1 only: 1), the alpha channel is not read; fix such masks, or leave their images out"]
