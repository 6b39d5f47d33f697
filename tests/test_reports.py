"""Report helpers (nclkit.engine.reports) and run logs (nclkit.engine.outputs.read_log)."""

import numpy as np

from nclkit.engine.outputs import read_log
from nclkit.engine.reports import json_safe, markdown_table, pct
from nclkit.presets import ABLATION_TABLES, ablation_label


def test_pct_and_markdown_table():
    assert [pct(0.1234), pct(0.1234, 2), pct(None), pct(float("nan")), pct(7), pct("id")] == \
        ["12.3", "12.34", "n/a", "n/a", "7", "id"]
    assert markdown_table(["a", "b"], [[1, "x"]], align="lr") == ["| a | b |", "|---|---:|", "| 1 | x |"]
    assert markdown_table(["a", "b", "c"], [])[1] == "|---|---|---|"


def test_json_safe():
    assert json_safe({"a": float("nan"), 1: [np.float32(0.5), np.int64(3)]}) == {"a": None, "1": [0.5, 3]}


def test_read_log(tmp_path):
    assert read_log(tmp_path) == []
    (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{"epoch": 2, "val_pixel_f1": 0.5}\n\n')
    assert read_log(tmp_path) == [{"epoch": 1}, {"epoch": 2, "val_pixel_f1": 0.5}]


def test_table6_labels_full_ncl_block1():
    assert [ablation_label("6", r) for r in ABLATION_TABLES["6"]] == ["block1", "block2", "block5"]
    assert [ablation_label("5", r) for r in ABLATION_TABLES["5"]] == list(ABLATION_TABLES["5"])
