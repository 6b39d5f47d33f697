"""scripts/course_gpu_casia1.sh end to end at a tiny scale on the CPU: a subset of the real CASIA v1 in its
published layout, every row of Tables 5 and 6, two seeds trained side by side, the tables put together."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TINY = ["encoder=resnet10", "encoder_width=16", "output_stride=32", "aspp_rates=1,2,3", "aspp_channels=16",
        "low_level_channels=8", "decoder_channels=16", "patch_size=2", "crop_size=64", "train_max_side=64",
        "eval_max_side=64", "batch_size=8", "epochs=1", "val_every=1", "num_workers=0", "amp=fp32",
        "channels_last=false", "max_patches=16"]


def _casia1_subset(folder: Path) -> Path:
    """The published layout with the first 48 tampered photos and every 20th authentic one (links, not
    copies): train, val and test each hold both classes."""
    src = SHARED / "CASIA1"
    if not src.is_dir():
        pytest.skip(f"real data CASIA1 not found at {SHARED}")
    for sub, chosen in (("Sp", slice(0, 48)), ("Au", slice(0, None, 20))):
        (folder / sub).mkdir(parents=True)
        for f in sorted((src / sub).iterdir())[chosen]:
            (folder / sub / f.name).symlink_to(f)
    (folder / "CASIA 1.0 groundtruth").symlink_to(src / "CASIA 1.0 groundtruth")
    return folder


@pytest.mark.data
@pytest.mark.slow
def test_course_gpu_script_at_a_tiny_scale(tmp_path):
    data = _casia1_subset(tmp_path / "CASIA1")
    out = tmp_path / "out"
    sets = [a for item in TINY for a in ("--set", item)]
    env = {**os.environ, "SEEDS": "0,1", "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "course_gpu_casia1.sh"), str(data), str(out), *sets],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table5 = json.loads((out / "tables" / "table5_real_casia1_course_gpu.json").read_text())
    table6 = json.loads((out / "tables" / "table6_real_casia1_course_gpu.json").read_text())
    assert list(table5["runs"]) == ["base", "pivot", "full"]
    assert list(table6["runs"]) == ["block1", "block2", "block5"]
    for table in (table5, table6):
        for rows in table["runs"].values():
            assert [r["seed"] for r in rows] == [0, 1]
        assert table["config"]["epochs"] == 1 and table["preset"] == "course_gpu"
    markdown = (out / "tables.md").read_text()
    assert "F1 at the val threshold" in markdown and "Table 6" in markdown
    assert (out / "tables" / "val_curves_table5_casia1_course_gpu.png").is_file()
    assert not list((out / "runs").rglob("*.pt"))  # checkpoints deleted, logs kept
    assert list((out / "runs").rglob("log.jsonl"))
