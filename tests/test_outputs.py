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
