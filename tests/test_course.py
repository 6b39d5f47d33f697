"""The course helpers: which data the notebooks train on, and where they find it."""
import sys
import types
from pathlib import Path

import pytest
import torch

from nclkit import course
from nclkit.presets import get_config

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def no_real_data(monkeypatch, tmp_path):
    """A working directory with no shared/ above it, and no dataset variables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NCLKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NCLKIT_CASIA1", raising=False)
    monkeypatch.delenv("NCLKIT_COVERAGE", raising=False)
    return tmp_path


def test_no_real_data_means_synthetic(no_real_data, monkeypatch):
    monkeypatch.setattr(course, "synthetic_manifest", lambda: Path("synthetic/manifest.jsonl"))
    profile = course.device_profile()
    manifest, preset, about = course.course_data(profile)
    assert manifest == Path("synthetic/manifest.jsonl") and preset == profile.preset and "synthetic" in about
    assert course.casia1_root() is None and course.casia1_manifest() is None


@pytest.mark.data
def test_casia1_found_through_the_environment(no_real_data, monkeypatch):
    if not (SHARED / "CASIA1").is_dir():
        pytest.skip(f"real data CASIA1 not found at {SHARED}")
    monkeypatch.setenv("NCLKIT_CASIA1", str(SHARED / "CASIA1"))
    monkeypatch.setenv("NCLKIT_QUICK", "1")
    manifest, preset, about = course.course_data()
    assert preset == "real" and "CASIA v1.0" in about and "grouped" in about
    from nclkit.data import read_manifest

    records = read_manifest(manifest)
    assert {r.protocol for r in records} == {"grouped"} and {r.split for r in records} == {"train", "val", "test"}
    assert course.casia1_manifest() == manifest  # prepared once, then reused from the cache


# Load-else-train: a run is reused only when it finished, resumed when it did not.
TINY = dict(preset="quick", epochs=2, crop_size=32, batch_size=4, num_workers=0, eval_max_side=32)


def test_run_progress_trusts_only_a_finished_summary(tmp_path):
    import json

    import torch

    run = tmp_path / "run"
    run.mkdir()
    assert course.run_progress(run, 2) == ("new", 0)
    (run / "best.pt").write_bytes(b"written mid-run")
    torch.save({"epoch": 1, "train_seconds": 3.0}, run / "last.pt")
    assert course.run_progress(run, 2) == ("interrupted", 1), "best.pt alone does not make a run complete"
    summary = {"epochs_done": 2, "stopped_by_time_budget": True}
    (run / "summary.json").write_text(json.dumps(summary))
    assert course.run_progress(run, 2) == ("interrupted", 1), "a run its time budget stopped is not complete"
    (run / "summary.json").write_text(json.dumps({**summary, "epochs_done": 1, "stopped_by_time_budget": False}))
    assert course.run_progress(run, 2) == ("interrupted", 1), "a run that ended early is not complete"
    (run / "summary.json").write_text(json.dumps({**summary, "stopped_by_time_budget": False}))
    assert course.run_progress(run, 2) == ("complete", 2)


@pytest.mark.slow
def test_trained_then_reused(no_real_data, tiny_manifest, capsys):
    first = course.train_or_reuse(tiny_manifest, **TINY)
    assert first.outcome == "trained" and first.checkpoint.is_file() and "from scratch" in first.message
    again = course.train_or_reuse(tiny_manifest, **TINY)
    assert (again.outcome, again.checkpoint) == ("reused", first.checkpoint)
    assert "reused a complete run" in capsys.readouterr().out


@pytest.mark.slow
def test_interrupted_run_is_resumed_not_reused(no_real_data, tiny_manifest, monkeypatch, capsys):
    from nclkit.engine import trainer

    original, calls = trainer.train_one_epoch, []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the runtime stopped during the second of two epochs
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", interrupted_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        course.train_or_reuse(tiny_manifest, **TINY)
    monkeypatch.setattr(trainer, "train_one_epoch", original)
    resumed = course.train_or_reuse(tiny_manifest, **TINY)
    cut = resumed
    assert (resumed.outcome, resumed.resumed_from, resumed.run) == ("resumed", 1, cut.run)
    assert "resumed an interrupted run from epoch 1 of 2" in capsys.readouterr().out
    assert course.run_progress(cut.run, 2) == ("complete", 2)
    assert course.train_or_reuse(tiny_manifest, **TINY).outcome == "reused"
    assert course.trained_checkpoint(tiny_manifest, **TINY) == cut.checkpoint


def test_casia1_is_fetched_on_colab_only(no_real_data, monkeypatch):
    from nclkit.data import fetch as fetch_module

    calls = []

    def fake_fetch(name, out):
        calls.append((name, out))
        return out

    monkeypatch.setattr(fetch_module, "fetch", fake_fetch)
    assert course.casia1_root(fetch_on_colab=True) is None and calls == []  # not on Colab: never
    monkeypatch.setattr(course, "in_colab", lambda: True)
    assert course.casia1_root() is None and calls == []  # only when asked
    assert course.casia1_root(fetch_on_colab=True) == course.cache_dir() / "CASIA1"
    assert calls == [("casia1", course.cache_dir() / "CASIA1")]
    # A copy fetched earlier into the cache is found without fetching again.
    (course.cache_dir() / "CASIA1" / "Sp").mkdir(parents=True)
    (course.cache_dir() / "CASIA1" / "CASIA 1.0 groundtruth").mkdir()
    assert course.casia1_root(fetch_on_colab=True) == course.cache_dir() / "CASIA1" and len(calls) == 1


def test_a_failed_casia1_fetch_falls_back_to_the_synthetic_set(no_real_data, monkeypatch, capsys):
    from nclkit.data import fetch as fetch_module
    from nclkit.data.errors import DataError

    def offline(name, out):
        raise DataError("https://example.invalid: no network")

    monkeypatch.setattr(fetch_module, "fetch", offline)
    monkeypatch.setattr(course, "in_colab", lambda: True)
    monkeypatch.setattr(course, "synthetic_manifest", lambda: Path("synthetic/manifest.jsonl"))
    quick = course.Profile(torch.device("cpu"), "cpu", True, "quick")
    manifest, preset, what = course.course_data(quick)
    assert (manifest, preset) == (Path("synthetic/manifest.jsonl"), "quick") and "synthetic" in what
    out = capsys.readouterr().out
    assert "could not fetch CASIA v1.0" in out and "no network" in out


def test_without_drive_colab_retrains_the_main_model_in_each_notebook_that_uses_it():
    with_drive, without = course.course_gpu_minutes("T4"), course.course_gpu_minutes("T4", drive=False)
    one_run = course.course_gpu_run_minutes("T4")
    assert with_drive["05"] == pytest.approx(2 * one_run)  # notebook 05 trains two runs: full NCL and Base
    for notebook in ("06", "07", "08", "09"):
        reused = 2 if notebook in course.USES_BASE_MODEL else 1  # 07 also shows 05's Base
        assert without[notebook] == pytest.approx(with_drive.get(notebook, 0.0) + reused * one_run)
    assert without["total"] == pytest.approx(with_drive["total"] + 5 * one_run)


def test_cache_dir_env_then_drive_then_home(monkeypatch, tmp_path):
    from nclkit import course

    monkeypatch.setenv("NCLKIT_CACHE", str(tmp_path / "env"))
    assert course.cache_dir() == tmp_path / "env"
    monkeypatch.delenv("NCLKIT_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    drive = tmp_path / "drive" / "MyDrive"
    monkeypatch.setattr(course, "COLAB_DRIVE", drive)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert course.cache_dir() == tmp_path / "home" / ".cache" / "nclkit" / "course"  # Drive not mounted
    drive.mkdir(parents=True)
    assert course.cache_dir() == drive / "nclkit_cache"
    monkeypatch.delitem(sys.modules, "google.colab")
    assert course.cache_dir() == tmp_path / "home" / ".cache" / "nclkit" / "course"  # Drive is Colab's only


# The course's GPU recipe, on a fake CUDA machine (no GPU needed).
@pytest.fixture
def fake_t4(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(course, "device_name", lambda device: "Tesla T4")
    monkeypatch.delenv("NCLKIT_QUICK", raising=False)


def test_a_gpu_gets_the_course_gpu_recipe(fake_t4, monkeypatch):
    profile = course.device_profile()
    assert (profile.device.type, profile.quick, profile.preset) == ("cuda", False, "course_gpu")
    cfg = get_config(profile.preset, variant="base")
    paper = get_config("paper")
    changed = {k for k, v in cfg.to_dict().items() if v != paper.to_dict()[k]}
    assert changed == {"name", "encoder", "output_stride", "aspp_rates", "crop_size", "scale_min", "scale_max",
                       "batch_size", "lr", "num_workers", "cache_images", "train_authentic", "epochs", "val_every",
                       "variant"}, "only what the time of a T4 forces differs from the paper preset"
    assert (cfg.encoder, cfg.output_stride, cfg.crop_size, cfg.batch_size, cfg.epochs) == ("resnet50", 16, 256, 16, 30)
    # the paper's method is untouched
    assert (cfg.omega, cfg.mu, cfg.pivot_block, cfg.patch_size, cfg.momentum) == (0.01, 0.9, 1, 1, 0.9)
    monkeypatch.setenv("NCLKIT_QUICK", "1")
    assert course.device_profile().preset == "quick"


def test_gpu_fallback_to_synthetic_crops_at_its_size(fake_t4, no_real_data, monkeypatch):
    monkeypatch.setattr(course, "synthetic_manifest", lambda: Path("synthetic/manifest.jsonl"))
    _, preset, about = course.course_data(course.device_profile())
    assert "synthetic" in about and preset.name == "course_gpu" and preset.crop_size == 128
    assert "NCLKIT_CASIA1" in about and "NCLKIT_COVERAGE" in about  # on a GPU either benchmark would be used


def test_cpu_fallback_names_only_what_a_cpu_would_use(no_real_data, monkeypatch):
    monkeypatch.setattr(course, "synthetic_manifest", lambda: Path("synthetic/manifest.jsonl"))
    quick = course.Profile(torch.device("cpu"), "cpu", True, "quick")
    _, _, about = course.course_data(quick)
    assert "NCLKIT_CASIA1" in about and "COVERAGE" not in about  # COVERAGE trains the course on a GPU only
    assert "synthetic data" not in str(quick) and "quick" in str(quick)  # the header claims no data


def test_progress_bars_on_request_at_the_quick_scale(no_real_data, monkeypatch):
    seen = []
    monkeypatch.setattr(course, "ensure_trained", lambda *a, **k: seen.append(k["progress"]))
    monkeypatch.setenv("NCLKIT_QUICK", "1")
    for progress in (None, True):
        course.train_or_reuse(Path("m.jsonl"), progress=progress)
    assert seen == [False, True]


def test_estimate_arithmetic():
    rate = course.GPU_IMAGES_PER_S["T4"]
    # images x epochs / img/s, in minutes; validation counted at INFERENCE_SPEEDUP times the rate
    assert course.expected_minutes(600, 10, "T4") == pytest.approx(600 * 10 / rate / 60)
    with_val = course.expected_minutes(600, 10, "T4", val_images=90, val_every=5)
    assert with_val == pytest.approx((600 * 10 + 90 * 2 / course.INFERENCE_SPEEDUP) / rate / 60)
    assert course.expected_minutes(600, 10, "T4", slowdown=2) == pytest.approx(2 * course.expected_minutes(600, 10, "T4"))
    # faster GPU classes take less time
    t4, a100, h100 = (course.expected_minutes(643, 30, g) for g in ("T4", "A100", "H100"))
    assert h100 < a100 < t4
    assert [course.gpu_class(n) for n in ("Tesla T4", "NVIDIA A100-SXM4-40GB", "NVIDIA H200", "NVIDIA L4")] == \
        ["T4", "A100", "H100", None]


def test_estimate_line_counts_the_manifest(tiny_manifest):
    cfg = get_config("course_gpu", train_authentic=True)
    images, val_images = course.training_images(tiny_manifest, cfg)
    assert images > 0
    line = course.expected_time(tiny_manifest, cfg, runs=2)
    assert "not a measurement" in line and "T4" in line and "A100" in line
    t4 = 2 * course.expected_minutes(images, cfg.epochs, "T4", val_images, cfg.val_every)
    assert f"T4 ~{t4:.1f} min" in line
    assert course.training_images(tiny_manifest, cfg.replace(forged=50))[0] == images + 50  # forgeries train too


def test_whole_course_fits_an_hour_on_a_t4():
    minutes = course.course_gpu_minutes("T4")
    assert set(minutes) == {"05", "07", "08", "total"}
    assert minutes["total"] == pytest.approx(minutes["05"] + minutes["07"] + minutes["08"])
    assert minutes["total"] <= 60, minutes
    assert course.course_gpu_minutes("A100")["total"] < minutes["total"] / 4
