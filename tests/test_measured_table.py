"""The measured table the course quotes (nclkit/reference): loadable anywhere nclkit is installed, and its
summary is what the diagnosis script computes from its own runs (no number in it was typed by hand)."""
import math

import ncl_diagnosis  # scripts/ is on the tests' path (pyproject.toml)
import pytest

from nclkit import course


def test_the_summary_follows_from_the_runs():
    table = course.measured()
    assert table["summary"] == ncl_diagnosis.summarise(table["runs"])
    for run in table["runs"]:
        for which in ("best", "last"):
            for test in table["tests"]:
                m = run[which][test]
                assert all(0.0 <= m[k] <= 1.0 for k in ncl_diagnosis.METRICS), (run["row"], run["seed"], test)
                assert m["f1_val_threshold"] <= m["f1_oracle"] + 1e-9 and m["f1"] <= m["f1_oracle"] + 1e-9
    for row in ("base", "full", "full_w0"):  # the rows the course compares, each with several seeds
        assert table["summary"][row]["best"]["test"]["auc"]["n"] >= 2, row


def test_the_diagnostics_are_ratios_the_notebook_can_plot():
    for name, per_epoch in course.measured()["diagnostics"].items():
        off = name.startswith("base") or name.endswith("_w0")  # rows whose loss has no eq. 7: omega * grad = 0
        assert [d["epoch"] for d in per_epoch] == list(range(1, len(per_epoch) + 1)), name
        for d in per_epoch:
            assert d["grad_pixel"] > 0 and d["chance_t1"] > 0 and 0 <= d["probe_auc"] <= 1
            assert math.isclose(d["grad_ncl"], 0.0) == off, name


def test_an_unknown_table_names_the_known_ones():
    with pytest.raises(FileNotFoundError, match="ncl_diagnosis_casia1_real"):
        course.measured("nonsense")
