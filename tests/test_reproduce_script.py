"""scripts/reproduce.py end to end at a tiny scale: Tables 1, 3 and 6 written, then rendered."""
import json

import pytest

import reproduce  # scripts/ is on the tests' path (pyproject.toml)


@pytest.mark.slow
def test_tables_1_3_6_at_a_tiny_scale(tiny_manifest, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--scale", "quick", "--data", str(tiny_manifest), "--dataset", "tiny", "--tables", "1,3,6",
            "--epochs", "1", "--runs", str(tmp_path / "runs"), "--out", str(out), "--device", "cpu"]
    for item in ("crop_size=64", "batch_size=4", "eval_max_side=64", "cache_images=false"):
        argv += ["--set", item]
    assert reproduce.main(argv) == 0
    t1, t3, t6 = (json.loads((out / f"table{t}_tiny_quick.json").read_text()) for t in (1, 3, 6))
    assert 0 <= t1["measured"]["pixel_f1"] <= 1 and t1["measured"]["epochs"] == 1
    assert t1["paper"] == reproduce.PAPER["1"] and "reproduce.py" in t1["command"]
    assert [r["attack"] for r in t3["measured"]["rows"]][0] == "none" and len(t3["measured"]["rows"]) == 9
    assert list(t6["measured"]) == ["block1", "block2", "block5"]  # full NCL is Table 6's block1 row
    assert [t6["measured"][k]["config"]["pivot_block"] for k in ("block1", "block2", "block5")] == [1, 2, 5]
    assert (out / "predictions_tiny_quick_full.png").stat().st_size > 0
    capsys.readouterr()
    assert reproduce.main(["--render", "--out", str(out)]) == 0
    rendered = capsys.readouterr().out
    assert "### Table 6" in rendered and "| block1 |" in rendered and "| none |" not in rendered.split("### Table 6")[1]
