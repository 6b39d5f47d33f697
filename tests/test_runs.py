"""One "train unless a finished run can be reused" (nclkit.engine.runs) for the course and the table scripts."""
import json

from nclkit.engine import runs
from nclkit.presets import get_config


def test_a_complete_run_is_reused_only_when_asked(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_train(cfg, manifest, run, resume=False, device=None, progress=False, overwrite=False):
        calls.append({"resume": resume, "overwrite": overwrite})
        run.mkdir(parents=True, exist_ok=True)
        (run / "best.pt").write_bytes(b"weights")
        summary = {"epochs_done": cfg.epochs, "stopped_by_time_budget": False, "train_seconds": 1.0}
        (run / "summary.json").write_text(json.dumps(summary))
        return summary

    monkeypatch.setattr(runs, "train", fake_train)
    cfg, run = get_config("quick", epochs=2), tmp_path / "run"
    first = runs.ensure_trained(cfg, "m.jsonl", run, device="cpu")
    assert (first.outcome, first.summary["epochs_done"], calls) == ("trained", 2, [{"resume": False, "overwrite": True}])
    assert "no run with these settings yet" in capsys.readouterr().out
    again = runs.ensure_trained(cfg, "m.jsonl", run, device="cpu")
    assert (again.outcome, again.checkpoint, len(calls)) == ("reused", run / "best.pt", 1)
    afresh = runs.ensure_trained(cfg, "m.jsonl", run, device="cpu", reuse=False)  # the scripts without --reuse
    assert afresh.outcome == "trained" and calls[-1] == {"resume": False, "overwrite": True} and len(calls) == 2
    longer = runs.ensure_trained(cfg.replace(epochs=3), "m.jsonl", run, device="cpu")  # 2 of 3 epochs: not complete
    assert longer.outcome == "trained" and len(calls) == 3
