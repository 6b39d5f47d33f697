"""The machine failing under a run: kill -9 at many moments, damaged checkpoints, full disks, read-only
folders and a Colab disconnect. Kills are real: a process (tests/crash_at.py) stops at a chosen moment
and is sent SIGKILL."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from PIL import Image

import nclkit
from helpers import make_pair, one_line_error, small_cfg
from nclkit import course
from nclkit.atomic import WriteError, write_atomic, write_text_atomic
from nclkit.cli import main
from nclkit.engine import trainer
from nclkit.engine.checkpoint import DamagedCheckpoint, read_checkpoint, save_checkpoint
from nclkit.engine.trainer import train

CRASH_AT = Path(__file__).with_name("crash_at.py")
# The subprocesses import the nclkit these tests import.
SOURCE = str(Path(nclkit.__file__).resolve().parents[1])
# The tiny run of the kill tests: 36 images (32 + 4 forged) a 9-step epoch, validated every epoch.
FLAGS = ["--no-progress", "--set", "crop_size=64", "--set", "batch_size=4", "--set", "num_workers=0",
         "--set", "eval_max_side=64", "--set", "forged=4"]
TIMING = ("seconds", "images_per_s")


@pytest.fixture
def one_thread(monkeypatch):
    """One CPU thread here as in the subprocesses (OMP_NUM_THREADS=1): the same arithmetic, bit for bit."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        p for p in (SOURCE, os.environ.get("PYTHONPATH")) if p)}


def kill_at(point: str, argv: list[str], folder: Path, timeout: float = 300) -> str:
    """Run nclkit `argv` until it reaches `point` (tests/crash_at.py), then SIGKILL it; returns its output."""
    marker, out = folder / f"reached-{point.replace(':', '-')}", folder / f"output-{point.replace(':', '-')}"
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, str(CRASH_AT), point, str(marker), "--", *argv], env=_env(),
                                stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"{point} was never reached (exit {proc.returncode}):\n{out.read_text()[-3000:]}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    return out.read_text()


def assert_nothing_half_written(run: Path) -> None:
    """Every file a later run reads is whole: the checkpoints load, the JSON files parse."""
    for name in ("last.pt", "best.pt"):
        if (run / name).exists():
            read_checkpoint(run / name)
    for name in ("config.json", "summary.json"):
        if (run / name).exists():
            json.loads((run / name).read_text())
    for name in ("log.jsonl", "forged/manifest.jsonl"):
        if (run / name).exists():
            [json.loads(line) for line in (run / name).read_text().splitlines()]


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights and optimiser state in last.pt and best.pt, the same history but for timings."""
    for name in ("last.pt", "best.pt"):
        sa, sb = read_checkpoint(a / name), read_checkpoint(b / name)
        assert (sa["epoch"], sa["step"]) == (sb["epoch"], sb["step"]), name
        for k in sa["model"]:
            assert torch.equal(sa["model"][k], sb["model"][k]), (name, k)
        for i, state in sa["optimizer"]["state"].items():
            assert torch.equal(state["momentum_buffer"], sb["optimizer"]["state"][i]["momentum_buffer"]), (name, i)
        strip = [{k: v for k, v in row.items() if k not in TIMING} for row in sa["history"]]
        assert strip == [{k: v for k, v in row.items() if k not in TIMING} for row in sb["history"]], name


# kill -9 at any moment

def _best_epochs(history: list[dict]) -> list[int]:
    """The epochs whose validation improved on every earlier one (the trainer's score: F1, then AUC)."""
    best, out = float("-inf"), []
    for row in history:
        score = row["val_pixel_f1"] + 1e-3 * row["val_pixel_auc"]
        if score > best:
            best, out = score, [*out, row["epoch"]]
    return out


@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume_gives_the_same_run(tiny_manifest, tmp_path, one_thread, capsys):
    """Forging, the first epoch, validation, best.pt and last.pt being replaced: after each kill the
    next --resume takes the lock over, and the run ends bit for bit as the run never killed."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    args = ["train", "--data", str(tiny_manifest), "--epochs", "4", *FLAGS]
    assert main([*args, "--out", str(ref)]) == 0
    history = read_checkpoint(ref / "last.pt")["history"]
    steps = history[0]["step"]
    best_epochs = _best_epochs(history)  # the epochs that wrote best.pt
    replaced = next((e for e in best_epochs if e > 1), None)
    assert replaced, f"no epoch after the first improved on val ({history}): choose another seed for this test"
    before = max(e for e in best_epochs if e < replaced)

    kill_at("forge:2", [*args, "--out", str(run)], tmp_path)
    assert (run / "nclkit.lock").exists() and not (run / "forged" / "manifest.jsonl").exists()
    resume = [*args, "--out", str(run), "--resume"]
    out = kill_at(f"step:{steps // 2}", resume, tmp_path)  # during the first epoch
    assert "no checkpoint yet" in out and "from epoch 1" in out
    assert not (run / "last.pt").exists()
    kill_at("validate:2", resume, tmp_path)  # epoch 1 saved, epoch 2 validating
    assert read_checkpoint(run / "last.pt")["epoch"] == 1
    kill_at("save:best.pt:1", resume, tmp_path)  # best.pt being replaced
    assert (run / "best.pt.tmp").stat().st_size > 0 and read_checkpoint(run / "best.pt")["epoch"] == before
    assert read_checkpoint(run / "last.pt")["epoch"] == replaced - 1
    assert_nothing_half_written(run)
    kill_at("save:last.pt:1", resume, tmp_path)  # the same epoch's best.pt written, last.pt being replaced
    assert read_checkpoint(run / "best.pt")["epoch"] == replaced
    assert read_checkpoint(run / "last.pt")["epoch"] == replaced - 1
    assert_nothing_half_written(run)
    capsys.readouterr()
    assert main(resume) == 0
    assert_same_run(ref, run)
    assert not list(run.glob("*.tmp")) and not (run / "nclkit.lock").exists()
    assert [json.loads(r)["epoch"] for r in (run / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


@pytest.mark.slow
def test_kill_9_while_predict_writes_then_the_same_command_gives_the_same_files(checkpoint, tmp_path):
    inputs = tmp_path / "in"
    for name in ("a", "b", "c"):
        make_pair(inputs, name, hw=(48, 64))
    for mask in inputs.glob("*_gt.png"):
        mask.unlink()
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), str(inputs), "--out", str(ref)]) == 0
    command = ["predict", "--checkpoint", str(checkpoint), str(inputs), "--out", str(out)]
    kill_at("png:3", command, tmp_path)  # halfway through b's probability map
    for png in out.glob("*.png"):  # no half-written map where a finished one is expected
        with Image.open(png) as im:
            im.load()
    assert len(list(out.glob("*.png"))) == 2
    assert main(command) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())
    for png in ref.iterdir():
        assert (out / png.name).read_bytes() == png.read_bytes(), png.name


# Damaged checkpoints

@pytest.fixture(scope="module")
def finished_run(small_manifest, tmp_path_factory) -> Path:
    """A 2-epoch run of the small config (2 steps an epoch)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    train(small_cfg().replace(epochs=2), small_manifest, run, progress=False)
    return run


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "cut in half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "zero bytes":
        path.write_bytes(b"")
    else:  # another run's: the same model trained with another seed
        state = read_checkpoint(path)
        state["config"]["seed"] = 7
        torch.save(state, path)


@pytest.mark.slow
@pytest.mark.parametrize("how, problem", [("cut in half", "is damaged"), ("zero bytes", "is empty (0 bytes)"),
                                          ("another run's", "holds another run (seed not as in")])
def test_a_damaged_last_pt_is_set_aside_and_resume_continues_from_best(how, problem, finished_run, small_manifest,
                                                                       tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "summary.json").unlink()
    _damage(run / "last.pt", how)
    damaged = (run / "last.pt").read_bytes()
    best_epoch = read_checkpoint(run / "best.pt")["epoch"]
    assert main(["train", "--data", str(small_manifest), "--out", str(run), "--resume", "--no-progress"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "continuing from" in line]
    assert len(said) == 1 and str(run / "last.pt") in said[0] and problem in said[0], said
    assert f"continuing from {run / 'best.pt'} (epoch {best_epoch})" in said[0]
    assert "kept as last.unusable.pt" in said[0]
    assert (run / "last.unusable.pt").read_bytes() == damaged  # nothing overwritten
    assert read_checkpoint(run / "last.pt")["epoch"] == 2


@pytest.mark.slow
def test_a_damaged_best_pt_is_set_aside_and_written_again(finished_run, small_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _damage(run / "best.pt", "cut in half")
    assert main(["train", "--data", str(small_manifest), "--out", str(run), "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "best.pt is damaged" in out and "kept as best.unusable.pt" in out
    assert (run / "best.unusable.pt").exists() and not (run / "best.pt").exists()  # the run was already done
    assert "best.pt" in out and "the next validated epoch writes a new best.pt" in out


@pytest.mark.slow
def test_a_run_resumed_with_changes_and_stopped_before_saving_is_still_its_own(finished_run, small_manifest, tmp_path,
                                                                               monkeypatch):
    """config.json is written with last.pt: a resumed run with --allow-changes stopped before its first save
    leaves the two agreeing, so the next --resume does not take last.pt for another run's."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    longer = small_cfg().replace(epochs=3)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(trainer, "train_one_epoch", stopped)
        with pytest.raises(KeyboardInterrupt):
            train(longer, small_manifest, run, progress=False, resume=True, allow_changes=True)
    assert json.loads((run / "config.json").read_text())["epochs"] == 2
    assert train(longer, small_manifest, run, progress=False, resume=True, allow_changes=True)["epochs_done"] == 3
    assert json.loads((run / "config.json").read_text())["epochs"] == 3
    assert not list(run.glob("*.unusable*"))


def test_no_sound_checkpoint_is_one_line_and_nothing_changes(finished_run, small_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _damage(run / "last.pt", "cut in half")
    _damage(run / "best.pt", "zero bytes")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert main(["train", "--data", str(small_manifest), "--out", str(run), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, "no sound checkpoint", "last.pt is damaged", "best.pt is empty", "--overwrite")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("how", ["cut in half", "zero bytes"])
def test_predict_with_a_damaged_checkpoint_is_one_line(how, checkpoint, tmp_path, capsys):
    path = tmp_path / "c.pt"
    shutil.copy(checkpoint, path)
    _damage(path, how)
    with pytest.raises(DamagedCheckpoint):
        read_checkpoint(path)
    assert main(["predict", "--checkpoint", str(path), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    one_line_error(capsys, str(path), "is damaged" if how == "cut in half" else "is empty",
                   "use another checkpoint, or copy this one again")


# Full disks and read-only folders

@contextmanager
def _small_disk(folder: Path, size: str = "4m"):
    """A tmpfs of `size` mounted on `folder` (skip where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                                        str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root): the fault-injection tests cover the same paths")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int = 0) -> None:
    """Fill the disk under `folder`, leaving about `leave` bytes."""
    free = shutil.disk_usage(folder).free - leave
    with open(folder / "filler", "wb") as fh:
        try:
            fh.write(b"\0" * max(free, 0))
        except OSError:
            pass


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "filler"}


@pytest.mark.slow
def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_last_one(small_manifest, tmp_path, capsys):
    with _small_disk(tmp_path / "disk", "64m") as disk:  # two checkpoints of the quick model: 30 MB
        run = disk / "run"
        args = ["train", "--data", str(small_manifest), "--out", str(run), "--no-progress", "--set", "crop_size=64",
                "--set", "batch_size=4", "--set", "num_workers=0", "--set", "eval_max_side=64"]
        assert main([*args, "--epochs", "1"]) == 0
        before = _snapshot(run)
        _fill(disk, leave=64 * 1024)  # room for config.json and the log, not for a checkpoint
        assert main([*args, "--epochs", "2", "--resume", "--allow-changes"]) == 2
        line = one_line_error(capsys, "cannot write", "No space left on device", "the earlier", "is intact",
                              "free some space", f"{run / 'last.pt'} (epoch 1)", "--resume")
        assert ".pt" in line.split("cannot write ")[1].split(" ")[0]
        after = _snapshot(run)
        assert {k: after[k] for k in ("last.pt", "best.pt", "log.jsonl")} == \
            {k: before[k] for k in ("last.pt", "best.pt", "log.jsonl")}
        assert not list(run.glob("*.tmp"))


def _all_whole(folder: Path) -> None:
    for png in folder.glob("*.png"):
        with Image.open(png) as im:
            im.load()
    for report in folder.glob("*.json"):
        json.loads(report.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("command", ["eval", "predict"])
def test_a_full_disk_while_writing_a_report_or_a_prediction_is_one_line(command, checkpoint, records, tmp_path,
                                                                        capsys):
    """An earlier report or maps on a disk that then fills up: the next, larger, output fails in one line
    and leaves them as they were (written in place, they were cut short)."""
    from dataclasses import replace

    from nclkit.data import write_manifest

    many = [replace(r, id=f"{r.id}-{i}") for i in range(8) for r in records]  # a report of several pages
    manifest = write_manifest(many, tmp_path / "m.jsonl")
    photos = tmp_path / "photos"
    for i, r in enumerate(records):
        if i == 0 or command == "eval":
            photos.mkdir(exist_ok=True)
            shutil.copy(r.image, photos / Path(r.image).name)
    with _small_disk(tmp_path / "disk", "1m") as disk:
        if command == "eval":
            first = ["eval", "--checkpoint", str(checkpoint), "--data", str(manifest), "--out", str(disk / "r.json"),
                     "--no-progress"]
            again = [*first, "--all-protocols"]  # a larger report
            first = [*first, "--limit", "1"]
        else:
            first = ["predict", "--checkpoint", str(checkpoint), str(photos), "--out", str(disk)]
            again = ["predict", "--checkpoint", str(checkpoint), str(photos), str(Path(records[1].image).parent),
                     "--out", str(disk)]  # more maps
        assert main(first) == 0
        capsys.readouterr()
        before = _snapshot(disk)
        _fill(disk)
        assert main(again) == 2
        one_line_error(capsys, "cannot write", str(disk), "No space left on device", "is intact", "free some space")
        _all_whole(disk)
        assert {k: v for k, v in _snapshot(disk).items() if k in before} == before
        assert not list(disk.glob("*.tmp"))


def test_a_full_disk_while_writing_the_log_keeps_the_log_whole(small_manifest, tmp_path, monkeypatch):
    """The log is rewritten whole through a .tmp: a failed write leaves the earlier log as it was."""
    cfg = small_cfg()
    train(cfg, small_manifest, tmp_path, progress=False)
    before = (tmp_path / "log.jsonl").read_bytes()

    def no_space(fh):
        fh.write(b'{"epoch": 1, "step"')
        raise OSError(errno.ENOSPC, "No space left on device")

    real, logs = trainer.write_text_atomic, []

    def write(path, text):
        logs.append(path.name == "log.jsonl")
        if path.name == "log.jsonl" and logs.count(True) == 2:  # after epoch 2's checkpoint (1: the resume's rewrite)
            return write_atomic(path, no_space)
        return real(path, text)

    monkeypatch.setattr(trainer, "write_text_atomic", write)
    with pytest.raises(WriteError, match=r"cannot write .*log\.jsonl \(No space left on device\); the earlier "
                                         r"log\.jsonl is intact"):
        train(cfg.replace(epochs=2), small_manifest, tmp_path, progress=False, resume=True, allow_changes=True)
    assert (tmp_path / "log.jsonl").read_bytes() == before and not list(tmp_path.glob("*.tmp"))
    assert read_checkpoint(tmp_path / "last.pt")["epoch"] == 2  # the log never runs ahead of the checkpoint


def test_a_failed_torch_save_is_a_write_error_naming_the_file(tmp_path, monkeypatch):
    """PyTorch reports a full disk as a RuntimeError ('unexpected pos ...'): it becomes one line naming the file."""
    path = tmp_path / "last.pt"
    save_checkpoint({"epoch": 1}, path)
    before = path.read_bytes()

    def torch_save(obj, fh):
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", torch_save)
    with pytest.raises(WriteError) as err:
        save_checkpoint({"epoch": 2}, path)
    assert str(err.value) == (f"cannot write {path} (No space left on device); the earlier last.pt is intact; "
                              "free some space (or choose a folder on another disk)")
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


def test_ctrl_c_while_writing_keeps_the_earlier_file(tmp_path):
    path = write_text_atomic(tmp_path / "f.json", "old")

    def interrupted(fh):
        fh.write(b"ne")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, interrupted)
    assert path.read_text() == "old" and not list(tmp_path.glob("*.tmp"))


@contextmanager
def _read_only(folder: Path):
    """`folder` made read-only: chmod for a normal user; root ignores permission bits, so for root a read-only
    bind mount (skip where that is not allowed)."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode == 0
    if not mounted or subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)],
                                     capture_output=True).returncode != 0:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        pytest.skip("root ignores chmod, and a read-only bind mount is not allowed here")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_read_only_run_folder_is_one_line_and_keeps_the_run(finished_run, small_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _snapshot(run)
    with _read_only(run):
        assert main(["train", "--data", str(small_manifest), "--out", str(run), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, f"--out {run}: cannot write there", "are intact", "make the folder writable")
    assert _snapshot(run) == before


# A Colab disconnect

@pytest.mark.slow
def test_a_colab_disconnect_resumes_from_the_checkpoint_on_drive(tiny_manifest, tmp_path, monkeypatch, capsys):
    """Notebook 05's training call (course.train_or_reuse) killed in its second epoch with the cache on
    "Drive" (a folder that outlives the process), then run again: it resumes from epoch 1."""
    drive = tmp_path / "drive"
    monkeypatch.setenv("NCLKIT_CACHE", str(drive))
    kwargs = dict(manifest=str(tiny_manifest), preset="quick", epochs=2, crop_size=64, batch_size=4, num_workers=0,
                  eval_max_side=64)
    kill_at("step:10", ["course", json.dumps(kwargs)], tmp_path)  # 9 steps an epoch: epoch 1 is saved
    capsys.readouterr()
    trained = course.train_or_reuse(**kwargs)
    out = capsys.readouterr().out
    assert trained.outcome == "resumed" and trained.resumed_from == 1
    assert "resuming an interrupted run" in out and "resumed an interrupted run from epoch 1 of 2" in out
    assert read_checkpoint(trained.run / "last.pt")["epoch"] == 2


def test_without_drive_the_course_says_what_a_disconnect_loses(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.delenv("NCLKIT_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(course, "ensure_trained", lambda cfg, manifest, run, **kw: run)
    assert not course.cache_on_drive()
    course.train_or_reuse(tmp_path / "m.jsonl", preset="quick", epochs=2)
    out = capsys.readouterr().out
    assert "not on Google Drive" in out and "its epochs were lost with it" in out and "from epoch 1 of 2" in out
    assert "USE_DRIVE" in out
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint({"epoch": 1}, run / "last.pt")
    assert "the 1 of 2 epochs done so far are kept only while this runtime lives" in course.disconnect_note(run, 2)
    monkeypatch.setenv("NCLKIT_CACHE", str(tmp_path / "drive"))  # a cache the learner chose: nothing said
    assert course.disconnect_note(run, 2) is None
