"""Run folders (nclkit.engine.outputs): an earlier run is never silently replaced; stale partial files are removed."""
import pytest

from nclkit.engine.outputs import prepare_run_dir


@pytest.mark.parametrize("held", ["last.pt", "best.pt", "log.jsonl", "summary.json"])
def test_a_folder_holding_a_run_needs_resume_or_overwrite(held, tmp_path):
    (tmp_path / held).write_text("x")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=f"already holds a run \\({held}\\).*--resume.*--overwrite"):
        prepare_run_dir(tmp_path, resume=False, overwrite=False)
    prepare_run_dir(tmp_path, resume=True, overwrite=False)  # resuming is what such a folder is for
    assert (tmp_path / held).exists()
    prepare_run_dir(tmp_path, resume=False, overwrite=True)
    assert not (tmp_path / held).exists() and not (tmp_path / "config.json").exists()


def test_resume_and_overwrite_together_are_refused_and_stale_tmp_cleaned(tmp_path):
    with pytest.raises(ValueError, match="choose one"):
        prepare_run_dir(tmp_path, resume=True, overwrite=True)
    (tmp_path / "best.pt.tmp").write_bytes(b"partial")
    prepare_run_dir(tmp_path, resume=False, overwrite=False)
    assert not (tmp_path / "best.pt.tmp").exists()


def _holder(folder):
    """A second process that holds `folder` until it is killed; returns it once the lock is taken."""
    import subprocess
    import sys

    code = ("import sys, time\nfrom nclkit.engine.outputs import claim_run_dir\n"
            "with claim_run_dir(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_run_folder_is_held_by_one_process_and_a_dead_owner_is_taken_over(tmp_path):
    import os

    from nclkit.engine.outputs import LOCK_FILE, claim_run_dir

    proc = _holder(tmp_path)
    try:
        with pytest.raises(ValueError, match=f"in use by another nclkit process \\(pid {proc.pid}"):
            with claim_run_dir(tmp_path):
                pass
    finally:
        proc.kill()  # killed: no clean-up runs, so its lock file stays behind with its pid
        proc.wait()
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(proc.pid)
    with claim_run_dir(tmp_path):  # the owner is dead: its lock is taken over
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
    assert not (tmp_path / LOCK_FILE).exists()


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    from nclkit.engine.outputs import LOCK_FILE, claim_run_dir

    with pytest.raises(KeyboardInterrupt):
        with claim_run_dir(tmp_path):
            raise KeyboardInterrupt
    assert not (tmp_path / LOCK_FILE).exists()
    with claim_run_dir(tmp_path), pytest.raises(ValueError, match="in use"):
        with claim_run_dir(tmp_path):  # even this process's second claim is refused
            pass
