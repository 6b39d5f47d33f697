"""The command line: every subcommand has --help; user mistakes give one clear line and status 2."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import make_pair, one_line_error, small_cfg
from nclkit import cli
from nclkit.cli import build_parser, main
from nclkit.data import Record, read_manifest, write_manifest
from nclkit.engine.checkpoint import load_model
from nclkit.engine.devices import pick_device
from nclkit.engine.robustness import parse_attack

GOOD = {"image": "a.png", "mask": "a_gt.png", "label": 1, "dataset": "t", "split": "test", "id": "a"}


@pytest.mark.parametrize("cmd", ["train", "eval", "robustness", "predict", "prepare", "synth"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([cmd, "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


@pytest.mark.slow
def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "nclkit.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout and "synth" in proc.stdout


def test_empty_manifest(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    rc = main(["train", "--data", str(empty), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "empty.jsonl" in err and "Traceback" not in err


def test_missing_checkpoint(tiny_manifest, tmp_path, capsys):
    rc = main(["eval", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(tiny_manifest),
               "--split", "test", "--out", str(tmp_path / "r.json")])
    assert rc == 2 and "nope.pt" in capsys.readouterr().err


def test_missing_split(tiny_manifest, tmp_path, capsys):
    # A real (untrained) checkpoint and a split the manifest lacks: one line naming the split and
    # the splits present, status 2, no report written.
    from nclkit import build_model, get_config
    from nclkit.engine.checkpoint import save_checkpoint

    cfg = get_config("quick")
    ckpt = save_checkpoint({"model": build_model(cfg).state_dict(), "config": cfg.to_dict()}, tmp_path / "m.pt")
    report = tmp_path / "r.json"
    rc = main(["eval", "--checkpoint", str(ckpt), "--data", str(tiny_manifest), "--split", "holdout",
               "--out", str(report), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "holdout" in err and "'test'" in err and "'train'" in err
    assert "Traceback" not in err and not report.exists()


def test_bad_override(tiny_manifest, tmp_path, capsys):
    rc = main(["train", "--data", str(tiny_manifest), "--out", str(tmp_path / "run"), "--set", "taux=1"])
    assert rc == 2 and "taux" in capsys.readouterr().err


@pytest.mark.slow
def test_train_eval_predict_end_to_end(tiny_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    overrides = ["--set", "crop_size=64", "--set", "batch_size=4", "--set", "num_workers=0", "--set", "eval_max_side=64"]
    assert main(["train", "--data", str(tiny_manifest), "--out", str(run), "--epochs", "1", "--no-progress", *overrides]) == 0
    report = tmp_path / "test.json"
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_manifest), "--split", "test",
                 "--out", str(report), "--no-progress", "--attack", "jpeg:50"]) == 0
    rep = json.loads(report.read_text())
    assert {"pixel_f1", "pixel_auc", "n_images", "protocol"} <= set(rep)
    assert report.with_suffix(".md").is_file()
    # the same test images as two folders, masks named NAME_gt: the same scores as through the manifest
    import shutil

    from nclkit.data import read_manifest

    test = [r for r in read_manifest(tiny_manifest, split="test") if r.label == 1]
    (tmp_path / "imgs").mkdir()
    (tmp_path / "gts").mkdir()
    for r in test:
        shutil.copy(r.image, tmp_path / "imgs" / Path(r.image).name)
        shutil.copy(r.mask, tmp_path / "gts" / f"{Path(r.image).stem}_gt.png")
    folder_report = tmp_path / "folder.json"
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--images", str(tmp_path / "imgs"),
                 "--masks", str(tmp_path / "gts"), "--out", str(folder_report), "--no-progress"]) == 0
    clean = tmp_path / "clean.json"
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_manifest), "--out", str(clean),
                 "--no-progress"]) == 0
    by_folder, by_manifest = json.loads(folder_report.read_text()), json.loads(clean.read_text())
    assert by_folder["n_tampered"] == len(test) == by_manifest["n_tampered"]
    assert by_folder["pixel_f1"] == pytest.approx(by_manifest["pixel_f1"])
    assert by_folder["protocol"]["data"].startswith("folder: test")
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_manifest),
                 "--images", str(tmp_path / "imgs"), "--out", str(clean)]) == 2
    assert "not both" in capsys.readouterr().err
    # a split that does not exist: clear message naming the splits present
    assert main(["eval", "--checkpoint", str(run / "best.pt"), "--data", str(tiny_manifest), "--split", "holdout",
                 "--out", str(report)]) == 2
    assert "holdout" in capsys.readouterr().err
    # predict on one good image and one unreadable file: the good one is written, the bad one named
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    good = next((tiny_manifest.parent / "images").iterdir())
    rc = main(["predict", "--checkpoint", str(run / "best.pt"), str(good), str(bad), "--out", str(tmp_path / "pred")])
    out = capsys.readouterr()
    assert rc == 1 and "broken.png" in (out.out + out.err)
    assert any(p.name.endswith("_overlay.png") for p in (tmp_path / "pred").iterdir())
    # a checkpoint from another preset cannot resume this run
    rc = main(["train", "--data", str(tiny_manifest), "--out", str(run), "--resume", "--preset", "paper", *overrides])
    assert rc == 2 and "another model" in capsys.readouterr().err




SMALL = ["--set", "crop_size=64", "--set", "batch_size=4", "--set", "num_workers=0", "--set", "eval_max_side=64"]


@pytest.mark.slow
def test_divergence_stops_training_with_the_step_and_terms(small_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--data", str(small_manifest), "--out", str(run), "--epochs", "2", "--no-progress",
               *SMALL, "--set", "lr=1e6"])
    # Here the weights explode within the first steps: the loss check or the validation finds it.
    line = one_line_error(capsys, "training diverged in epoch 1", "step", "lr=1e+06")
    assert rc == 2, line
    for name in ("best.pt", "last.pt"):  # nothing saved at all, or only finite weights
        if (run / name).exists():
            load_model(run / name)


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_predict_and_eval_refuse_a_non_finite_checkpoint(command, checkpoint, tiny_manifest, tmp_path, capsys):
    state = torch.load(checkpoint, weights_only=True)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = torch.full_like(state["model"][first], math.nan)
    bad = tmp_path / "nan.pt"
    torch.save(state, bad)
    image = read_manifest(tiny_manifest, split="test")[0].image
    args = {"predict": ["predict", "--checkpoint", str(bad), image, "--out", str(tmp_path / "p")],
            "eval": ["eval", "--checkpoint", str(bad), "--data", str(tiny_manifest), "--out", str(tmp_path / "r.json"),
                     "--limit", "2", "--no-progress"]}[command]
    assert main(args) == 2
    one_line_error(capsys, "nan.pt", "non-finite weights", first)


def test_cli_train_into_a_run_folder_is_refused(tiny_manifest, tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"x")
    assert main(["train", "--data", str(tiny_manifest), "--out", str(tmp_path), *SMALL]) == 2
    one_line_error(capsys, "already holds a run", "--resume", "--overwrite")


def test_cli_resume_starts_from_the_runs_own_config(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "train", lambda cfg, *a, **k: seen.update(cfg=cfg) or {})
    (tmp_path / "config.json").write_text(json.dumps(small_cfg(variant="base", lr=0.01).to_dict()))
    assert main(["train", "--data", "m.jsonl", "--out", str(tmp_path), "--resume"]) == 0
    assert seen["cfg"].variant == "base" and seen["cfg"].lr == 0.01 and seen["cfg"].crop_size == 64
    assert main(["train", "--data", "m.jsonl", "--out", str(tmp_path), "--resume", "--epochs", "5"]) == 0
    assert seen["cfg"].epochs == 5 and seen["cfg"].variant == "base"  # a flag given now is a change


def test_eval_names_a_missing_image_before_loading_the_model(tmp_path, capsys):
    rec = make_pair(tmp_path, "a")
    manifest = write_manifest([rec], tmp_path / "m.jsonl")
    Path(rec.image).unlink()
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(manifest),
                 "--out", str(tmp_path / "r.json")]) == 2
    one_line_error(capsys, "a.png", "file not found")


@pytest.mark.parametrize("line2", [{**GOOD, "id": "b", "label": "yes"}, {**GOOD, "id": "b", "image": None}])
def test_cli_manifest_errors_are_one_line(line2, tmp_path, capsys):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(line2) + "\n")
    for args in (["train", "--data", str(path), "--out", str(tmp_path / "run")],
                 ["eval", "--checkpoint", "x.pt", "--data", str(path), "--out", str(tmp_path / "r.json")]):
        assert main(args) == 2
        one_line_error(capsys, "m.jsonl: line 2")


def _blocked(tmp_path: Path) -> Path:
    """A path that cannot become a folder, whoever runs the test (root ignores permission bits)."""
    (tmp_path / "a_file").write_text("x")
    return tmp_path / "a_file" / "out"


@pytest.mark.parametrize("command", ["train", "predict", "eval", "robustness"])
def test_unwritable_out_fails_first(command, tiny_manifest, checkpoint, tmp_path, capsys):
    out = _blocked(tmp_path)
    args = {
        "train": ["train", "--data", str(tiny_manifest), "--out", str(out), *SMALL],
        "predict": ["predict", "--checkpoint", str(checkpoint), str(tiny_manifest.parent), "--out", str(out)],
        "eval": ["eval", "--checkpoint", str(checkpoint), "--data", str(tiny_manifest), "--out", str(out / "r.json")],
        "robustness": ["robustness", "--checkpoint", str(checkpoint), "--data", str(tiny_manifest),
                       "--out", str(out / "t.json")],
    }[command]
    assert main(args) == 2
    one_line_error(capsys, "a_file", "cannot write there")


@pytest.mark.parametrize("device, message", [
    ("foo", "not a device name"), ("cuda:99", "CUDA"), ("xla", "nclkit runs on cpu, cuda or mps"),
])
def test_bad_devices_are_one_line(device, message, checkpoint, tiny_manifest, tmp_path, capsys):
    if device.startswith("cuda") and torch.cuda.device_count() > 99:
        pytest.skip("this machine has that GPU")
    with pytest.raises(ValueError, match=message):
        pick_device(device)
    assert main(["predict", "--checkpoint", str(checkpoint), str(tiny_manifest.parent), "--out", str(tmp_path),
                 "--device", device]) == 2
    one_line_error(capsys, repr(device))


@pytest.mark.parametrize("spec, message", [
    ("resize:inf", "finite"), ("resize:1e5", "<= 4"), ("noise:inf", "finite"), ("noise:nan", "finite"),
    ("resize:0", "> 0"), ("jpeg:101", "0..100"),
])
def test_bad_attacks_are_refused_before_loading(spec, message, tiny_manifest, tmp_path, capsys):
    with pytest.raises(ValueError, match=message):
        parse_attack(spec)
    assert main(["eval", "--checkpoint", str(tmp_path / "not_read.pt"), "--data", str(tiny_manifest),
                 "--out", str(tmp_path / "r.json"), "--attack", spec]) == 2
    one_line_error(capsys, spec)


@pytest.mark.parametrize("args, message", [
    (["predict", "--checkpoint", "c.pt", "x.png", "--out", "o", "--threshold", "5"], "--threshold"),
    (["eval", "--checkpoint", "c.pt", "--data", "m", "--out", "o", "--limit", "-1"], "--limit"),
    (["eval", "--checkpoint", "c.pt", "--data", "m", "--out", "o", "--limit", "0"], "--limit"),
    (["train", "--data", "m", "--out", "o", "--epochs", "0"], "--epochs"),
])
def test_out_of_range_flags_are_refused(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_epochs_zero_through_set_is_refused(tiny_manifest, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_manifest), "--out", str(tmp_path / "run"), "--set", "epochs=0"]) == 2
    one_line_error(capsys, "epochs=0")
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("damage, message", [
    ("pickle", "holds Python objects beyond tensors"),
    ("config lacks keys", "the config lacks keys ['encoder'"),
    ("state dict lacks keys", "weights do not fit"),
    ("not a checkpoint", "is not an nclkit checkpoint"),
    ("garbage", "could not be read"),
])
def test_hostile_or_old_checkpoints_are_one_line(damage, message, checkpoint, tmp_path, capsys):
    state = torch.load(checkpoint, weights_only=True)
    path = tmp_path / "c.pt"
    if damage == "pickle":
        torch.save({"model": {}, "config": {}, "payload": subprocess.Popen}, path)
    elif damage == "config lacks keys":
        del state["config"]["encoder"]
        torch.save(state, path)
    elif damage == "state dict lacks keys":
        state["model"].pop(next(iter(state["model"])))
        torch.save(state, path)
    elif damage == "not a checkpoint":
        torch.save({"weights": 1}, path)
    else:
        path.write_bytes(b"not a torch file")
    assert main(["predict", "--checkpoint", str(path), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    line = one_line_error(capsys, "c.pt", message)
    assert "weights_only=False" not in line


def test_ctrl_c_names_the_last_checkpoint_and_how_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(cfg, data, out, **kw):
        (Path(out) / "last.pt").write_bytes(b"x")
        (Path(out) / "log.jsonl").write_text('{"epoch": 3}\n')
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    tmp_path.mkdir(exist_ok=True)
    assert main(["train", "--data", "m.jsonl", "--out", str(tmp_path)]) == 130
    line = one_line_error(capsys, "interrupted", str(tmp_path / "last.pt"), "epoch 3",
                           f"nclkit train --data m.jsonl --out {tmp_path} --resume")
    assert line.count("\n") == 0


def test_ctrl_c_before_any_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "train", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["train", "--data", "m.jsonl", "--out", str(tmp_path)]) == 130
    one_line_error(capsys, "before the first checkpoint")


@pytest.mark.slow
def test_a_worker_error_is_one_line(tmp_path, capsys):
    recs = [make_pair(tmp_path / "d", f"im{i}", hw=(64, 64)) for i in range(8)]
    recs = [Record(r.image, r.mask, 1, "t", "train", r.id) for r in recs]
    data = Path(recs[5].image).read_bytes()
    Path(recs[5].image).write_bytes(data[: len(data) // 2])  # the header is intact: only decoding fails
    manifest = write_manifest(recs, tmp_path / "m.jsonl")
    rc = main(["train", "--data", str(manifest), "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress",
               "--set", "crop_size=64", "--set", "batch_size=4", "--set", "num_workers=1",
               "--set", "cache_images=false"])
    assert rc == 2
    line = one_line_error(capsys, "im5.png", "cannot decode")
    assert "Original Traceback" not in line and "DataLoader worker" not in line


def test_eval_chooses_the_image_score_on_val(checkpoint, tiny_manifest, tmp_path, capsys):
    from nclkit.engine.metrics import IMAGE_SCORES

    out = tmp_path / "r.json"
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tiny_manifest), "--out", str(out),
                 "--image-score", "val", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    choice = report["image_score_choice"]
    assert choice["rule"] in IMAGE_SCORES and f"chosen on {tiny_manifest} split val: {choice['rule']}" in printed
    assert f"score = {choice['rule']} of the pixel probabilities" in report["protocol"]["image_level"]
    assert all(r["score"] == r["scores"][choice["rule"]] for r in report["per_image"])
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tiny_manifest), "--out", str(out),
                 "--image-score", "top1%", "--image-threshold", "0.2", "--no-progress"]) == 0
    assert "top1% of the pixel probabilities" in json.loads(out.read_text())["protocol"]["image_level"]
    folder = tmp_path / "imgs"
    make_pair(folder, "x")
    assert main(["eval", "--checkpoint", str(checkpoint), "--images", str(folder), "--masks", str(folder),
                 "--out", str(out), "--image-score", "val"]) == 2
    one_line_error(capsys, "--image-score val")


def test_eval_reports_f1_at_the_val_threshold_beside_f1_at_half_and_the_oracle(checkpoint, tiny_manifest, tmp_path,
                                                                               capsys):
    from nclkit.engine.metrics import PIXEL_THRESHOLDS

    out = tmp_path / "r.json"
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tiny_manifest), "--out", str(out),
                 "--no-progress"]) == 0
    report = json.loads(out.read_text())
    t = report["pixel_threshold_choice"]["threshold"]
    assert t in PIXEL_THRESHOLDS and f"pixel threshold chosen on {tiny_manifest} split val: {t:g}" in capsys.readouterr().out
    at_t = report["pixel_f1"] if t == 0.5 else report[f"pixel_f1@{t:g}"]
    assert report["pixel_f1_val_threshold"] == at_t <= report["pixel_f1_best_threshold"] + 1e-9
    assert "pixel_f1_val_threshold" in out.with_suffix(".md").read_text()
    for argv in (["--split", "val"], ["--pixel-threshold", "none"]):  # nothing to choose on, or not asked
        assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(tiny_manifest), "--out", str(out),
                     "--no-progress", *argv]) == 0
        assert "pixel_f1_val_threshold" not in json.loads(out.read_text())
    folder = tmp_path / "imgs"
    make_pair(folder, "x")
    assert main(["eval", "--checkpoint", str(checkpoint), "--images", str(folder), "--masks", str(folder),
                 "--out", str(out), "--pixel-threshold", "val"]) == 2
    one_line_error(capsys, "--pixel-threshold val")
def test_a_file_named_like_an_option_is_named_with_the_two_ways_out(checkpoint, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (32, 32)).save(tmp_path / "-x.png")
    argv = ["predict", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]
    assert main([*argv, "-x.png"]) == 2
    one_line_error(capsys, "nclkit predict: error: -x.png starts with '-'", "./-x.png", "--")
    assert main([*argv, "--", "-x.png"]) == 0
    assert main([*argv, "./-x.png"]) == 0
