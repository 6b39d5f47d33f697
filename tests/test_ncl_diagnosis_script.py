"""scripts/ncl_diagnosis.py end to end on the tiny synthetic set: rows of config changes, a seed each, the
per-epoch diagnostics, F1 at the val threshold beside F1@0.5 and the oracle, the table and the curves."""
import json

import ncl_diagnosis  # scripts/ is on the tests' path (pyproject.toml)
import pytest

TINY = ["crop_size=64", "batch_size=4", "eval_max_side=64", "train_max_side=0", "epochs=2", "val_every=1",
        "max_train_seconds=0", "cache_images=false", "patch_size=2"]


@pytest.fixture
def diagnosis():
    return ncl_diagnosis


def test_rows_parse_names_and_own_changes(diagnosis):
    assert diagnosis.parse_row("full_w0.1") == ("full_w0.1", {"variant": "full", "omega": 0.1})
    assert diagnosis.parse_row("e40=epochs:40;forged:650") == ("e40", {"epochs": 40, "forged": 650})
    with pytest.raises(SystemExit, match="unknown row"):
        diagnosis.parse_row("nonsense")
    with pytest.raises(ValueError, match="omega"):
        diagnosis.parse_row("bad=omega:-1")


@pytest.mark.slow
def test_rows_seeds_diagnostics_and_table(diagnosis, tiny_manifest, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--data", str(tiny_manifest), "--cross", f"again={tiny_manifest}", "--preset", "quick",
            "--rows", "base,full_w0.1", "--seeds", "0", "--diagnose", "--out", str(out), "--device", "cpu"]
    for item in TINY:
        argv += ["--set", item]
    assert diagnosis.main(argv) == 0
    doc = json.loads((out / "rows.json").read_text())
    assert [(r["row"], r["seed"]) for r in doc["runs"]] == [("base", 0), ("full_w0.1", 0)]
    for run in doc["runs"]:
        for which in ("best", "last"):
            for test in ("test", "again"):
                m = run[which][test]
                assert 0 <= m["f1"] <= m["f1_oracle"] + 1e-9 and m["f1_val_threshold"] <= m["f1_oracle"] + 1e-9
    assert doc["summary"]["base"]["best"]["test"]["auc"]["n"] == 1
    for name, ncl_weight in (("base", 0.0), ("full_w0.1", 0.1)):
        rows = [json.loads(x) for x in (out / f"{name}_seed0_diagnostics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2]
        assert all(r["grad_ncl"] == pytest.approx(ncl_weight * r["grad_ncl_unweighted"]) for r in rows)
        assert all(0 <= r["probe_auc"] <= 1 and r["chance_t1"] > 0 for r in rows)
    assert (out / "diagnostics.png").is_file()
    printed = capsys.readouterr().out
    assert "| base (n=1) |" in printed and "again F1@val thr" in printed
    # a second call trains nothing: every (row, seed) is in rows.json
    assert diagnosis.main(argv) == 0
    assert len(json.loads((out / "rows.json").read_text())["runs"]) == 2
