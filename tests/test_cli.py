"""The command line: every subcommand has --help; user mistakes give one clear line and status 2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nclkit.cli import build_parser, main


@pytest.mark.parametrize("cmd", ["train", "eval", "robustness", "predict", "prepare", "synth"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([cmd, "--help"])
    assert exc.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_console_script_help():
    proc = subprocess.run([sys.executable, "-m", "nclkit.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "train" in proc.stdout and "synth" in proc.stdout


def test_empty_manifest(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    rc = main(["train", "--data", str(empty), "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "empty.jsonl" in err and "Traceback" not in err


def test_missing_split(tiny_manifest, tmp_path, capsys):
    rc = main(["eval", "--checkpoint", str(tmp_path / "nope.pt"), "--data", str(tiny_manifest),
               "--split", "test", "--out", str(tmp_path / "r.json")])
    assert rc == 2 and "nope.pt" in capsys.readouterr().err


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
