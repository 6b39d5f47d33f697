"""Robustness tables (nclkit.engine.robustness): one row per attack, the clean row first, and their Markdown."""
import pytest

from helpers import RedDetector
from nclkit.engine.evaluator import evaluate
from nclkit.engine.robustness import robustness_markdown, robustness_table


def test_markdown_renderer():
    table = {"seed": 0, "rows": [{"label": "None", "pixel_auc": 0.912, "pixel_f1": 0.5},
                                 {"label": "Resize(0.78x)", "pixel_auc": 0.856, "pixel_f1": 0.4}]}
    md = robustness_markdown(table)
    assert "| None | 91.2 | 50.0 |" in md and "| Resize(0.78x) | 85.6 | 40.0 |" in md


def test_robustness_table_rows(records):
    table = robustness_table(RedDetector(), records, attacks=("blur:3", "jpeg:50"), progress=False)
    assert [r["attack"] for r in table["rows"]] == ["none", "blur:3", "jpeg:50"]
    assert [r["label"] for r in table["rows"]] == ["None", "GaussianBlur(size=3)", "JPEGCompress(50)"]
    assert table["rows"][0]["pixel_auc"] == pytest.approx(evaluate(RedDetector(), records, progress=False)["pixel_auc"])
    md = robustness_markdown(table)
    assert md.count("\n| ") == 4  # header + 3 rows
