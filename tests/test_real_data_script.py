"""scripts/real_data.py end to end on the tiny synthetic set: seeds, mean and sd, cross-dataset rows."""
import json

import pytest

from nclkit.engine.metrics import PIXEL_THRESHOLDS

import real_data  # scripts/ is on the tests' path (pyproject.toml)


@pytest.mark.slow
def test_seeds_summary_and_cross_rows(tiny_manifest, tmp_path, capsys):
    tiny = ["crop_size=64", "batch_size=4", "eval_max_side=64", "train_max_side=0", "epochs=1",
            "max_train_seconds=0", "cache_images=false"]
    argv = ["--train", f"a={tiny_manifest}", "--cross", f"b={tiny_manifest}", "--variants", "full",
            "--seeds", "0,1", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out"), "--device", "cpu"]
    for item in tiny:
        argv += ["--set", item]
    assert real_data.main(argv) == 0
    table = json.loads((tmp_path / "out" / "table5_real_a_real.json").read_text())
    assert set(table["runs"]) == {"full"} and [r["seed"] for r in table["runs"]["full"]] == [0, 1]
    f1s = [r["pixel_f1"] for r in table["runs"]["full"]]
    assert table["summary"]["full"]["pixel_f1"]["mean"] == pytest.approx(sum(f1s) / 2)
    assert table["summary"]["full"]["pixel_f1"]["n"] == 2
    assert 0 < table["all_tampered_f1"] < 1 and "ISA" in table["device"]
    for run in table["runs"]["full"]:  # F1 at the pixel threshold chosen on val, beside F1@0.5 and the oracle's
        assert run["image_rule"]["pixel_threshold"] in PIXEL_THRESHOLDS
        assert 0 <= run["pixel_f1_val_threshold"] <= run["pixel_f1_best_threshold"] + 1e-9
    cross = json.loads((tmp_path / "out" / "cross_dataset_real.json").read_text())
    assert [(r["trained_on"], r["tested_on"]) for r in cross["rows"]] == [("a", "b")]
    assert len(cross["rows"][0]["runs"]) == 2  # one row per full-NCL seed
    printed = capsys.readouterr().out
    assert "every pixel tampered (reference)" in printed and "Cross-dataset" in printed
    assert "F1 at the val threshold" in printed


@pytest.mark.slow
def test_table6_rows_leave_table5_alone(tiny_manifest, tmp_path):
    out = tmp_path / "out"
    argv = ["--train", f"a={tiny_manifest}", "--rows", "full,block2", "--seeds", "0", "--runs", str(tmp_path / "runs"),
            "--out", str(out), "--device", "cpu", "--set", "crop_size=64", "--set", "batch_size=4", "--set", "epochs=1",
            "--set", "eval_max_side=64", "--set", "train_max_side=0", "--set", "cache_images=false"]
    assert real_data.main(argv) == 0
    assert not (out / "table5_real_a_real.json").exists()  # Table 5 from its one shared row would overwrite a full one
    table = json.loads((out / "table6_real_a_real.json").read_text())
    assert table["table"] == "6" and set(table["runs"]) == {"block1", "block2"}
    assert (out / "val_curves_table6_a_real.png").stat().st_size > 0
    assert (tmp_path / "runs" / "a_real" / "block2_seed0" / "best.pt").is_file()
    saved = json.loads((tmp_path / "runs" / "a_real" / "block2_seed0" / "config.json").read_text())
    assert saved["pivot_block"] == 2 and saved["variant"] == "full"


def test_unknown_row_is_refused(tiny_manifest, tmp_path):
    with pytest.raises(SystemExit):
        real_data.main(["--train", f"a={tiny_manifest}", "--rows", "full,block3", "--out", str(tmp_path)])


@pytest.mark.slow
def test_set_scoped_to_one_training_set(tiny_manifest, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    argv = ["--train", f"a={tiny_manifest}", "--train", f"b={tiny_manifest}", "--rows", "full", "--seeds", "0",
            "--runs", str(runs), "--out", str(out), "--device", "cpu"]
    for item in ["crop_size=64", "batch_size=4", "epochs=1", "eval_max_side=64", "train_max_side=0",
                 "cache_images=false", "b:epochs=2"]:
        argv += ["--set", item]
    assert real_data.main(argv) == 0
    epochs = {n: json.loads((runs / f"{n}_real" / "full_seed0" / "config.json").read_text())["epochs"] for n in "ab"}
    assert epochs == {"a": 1, "b": 2}
    table_b = json.loads((out / "table5_real_b_real.json").read_text())
    assert table_b["overrides"][-1] == "epochs=2" and table_b["config"]["epochs"] == 2
    assert json.loads((out / "table5_real_a_real.json").read_text())["config"]["epochs"] == 1


def test_set_scope_must_name_a_training_set(tiny_manifest, tmp_path):
    with pytest.raises(SystemExit):
        real_data.main(["--train", f"a={tiny_manifest}", "--set", "c:epochs=2", "--out", str(tmp_path)])
