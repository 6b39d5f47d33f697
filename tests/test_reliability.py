"""Nothing silently wrong: each case of docs/reliability.md gives the right result or one clear line.

Fixtures are made in the tests: tiny images, masks, manifests and checkpoints of an untrained
quick model (loading, predicting and evaluating need no training).
"""
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageOps

from nclkit import build_model, get_config
from nclkit import cli
from nclkit.cli import main
from nclkit.data import DataError, Record, image_hw, load_image, load_mask, read_manifest, scan_records, write_manifest
from nclkit.data.preparers import prepare_nist16
from nclkit.data.preparers.common import manifest_paths
from nclkit.engine import trainer
from nclkit.engine.checkpoint import check_resumable, load_model, save_checkpoint
from nclkit.engine.devices import pick_device
from nclkit.engine.evaluator import evaluate
from nclkit.engine.outputs import prepare_run_dir
from nclkit.engine.robustness import parse_attack
from nclkit.viz import predict_files
from nclkit.engine.trainer import TrainingDiverged, train

REPO = Path(__file__).resolve().parents[1]
SMALL = ["--set", "crop_size=64", "--set", "batch_size=4", "--set", "num_workers=0", "--set", "eval_max_side=64"]


def _cfg(**kw):
    return get_config("quick", crop_size=64, batch_size=4, epochs=1, num_workers=0, eval_max_side=64, **kw)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A loadable checkpoint of an untrained quick model."""
    torch.manual_seed(0)
    cfg = _cfg()
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save({"model": build_model(cfg).state_dict(), "config": cfg.to_dict()}, path)
    return path


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory):
    """8 training and 2 validation images of 64 px: two steps an epoch at batch 4."""
    folder = tmp_path_factory.mktemp("small")
    recs = [_pair(folder, f"im{i}", hw=(64, 64)) for i in range(10)]
    return write_manifest([Record(r.image, r.mask, 1, "t", "train" if i < 8 else "val", r.id)
                           for i, r in enumerate(recs)], folder / "m.jsonl")


def _one_line_error(capsys, *needles):
    """The last stderr line names every needle; no traceback was printed."""
    full = capsys.readouterr().err
    assert "Traceback" not in full, full[-2000:]
    last = [line for line in full.strip().splitlines() if line.startswith("nclkit ")][-1]
    for needle in needles:
        assert needle in last, (needle, last)
    return last


def _pair(folder: Path, name: str, hw=(40, 48), region=(slice(8, 20), slice(10, 30))):
    """A tampered image (RGB noise) and its 0/255 mask of a known region; returns the Record."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name))
    Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    m = np.zeros(hw, np.uint8)
    m[region] = 255
    Image.fromarray(m).save(folder / f"{name}_gt.png")
    return Record(str(folder / f"{name}.png"), str(folder / f"{name}_gt.png"), 1, "t", "test", name)


# --- 1. divergence ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_divergence_stops_training_with_the_step_and_terms(small_manifest, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--data", str(small_manifest), "--out", str(run), "--epochs", "2", "--no-progress",
               *SMALL, "--set", "lr=1e6"])
    # Here the weights explode within the first steps: the loss check or the validation finds it.
    line = _one_line_error(capsys, "training diverged in epoch 1", "step", "lr=1e+06")
    assert rc == 2, line
    for name in ("best.pt", "last.pt"):  # nothing saved at all, or only finite weights
        if (run / name).exists():
            load_model(run / name)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_loss_stops_the_step_before_the_weights_change(bad):
    t = trainer.build_training(_cfg(amp="fp32"), torch.device("cpu"), total_steps=10)
    weight = t.optimizer.param_groups[0]["params"][0]
    before = weight.detach().clone()

    def forward(image, mask, valid):
        total = (weight * bad).sum()
        return total, {"bce": total.detach(), "ncl": torch.tensor(0.5)}

    x = torch.zeros(1, 3, 4, 4)
    batch = {"image": x, "mask": x[:, :1], "valid": x[:, :1]}
    with pytest.raises(TrainingDiverged, match=r"at step 1: non-finite loss \(loss=(nan|inf), bce=(nan|inf), ncl=0.5\)"):
        trainer.train_one_epoch(t, forward, [batch])
    assert torch.equal(weight.detach(), before) and weight.grad is None


@pytest.mark.slow
def test_weights_gone_non_finite_in_the_last_step_are_never_saved(small_manifest, tmp_path, monkeypatch):
    steps = len(read_manifest(small_manifest, split="train")) // 4  # the epoch's last step
    real_builder = trainer.build_optimizer

    class PoisoningSGD(torch.optim.SGD):
        calls = 0

        def step(self, closure=None):
            out = super().step(closure)
            PoisoningSGD.calls += 1
            if PoisoningSGD.calls == steps:  # the loss was finite, but the update left a NaN weight
                self.param_groups[0]["params"][0].data.fill_(math.nan)
            return out

    def poisoning_builder(*args, **kwargs):
        sgd = real_builder(*args, **kwargs)
        sgd.__class__ = PoisoningSGD
        return sgd

    monkeypatch.setattr(trainer, "build_optimizer", poisoning_builder)
    with pytest.raises(TrainingDiverged, match=f"by step {steps}: the weights became non-finite"):
        train(_cfg(), small_manifest, tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists() and not (tmp_path / "best.pt").exists()


def test_save_checkpoint_refuses_non_finite_weights_and_leaves_no_tmp(tmp_path):
    with pytest.raises(ValueError, match="non-finite weights"):
        save_checkpoint({"model": {"w": torch.tensor([1.0, math.inf])}, "config": {}}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_predict_and_eval_refuse_a_non_finite_checkpoint(command, checkpoint, tiny_manifest, tmp_path, capsys):
    state = torch.load(checkpoint, weights_only=True)
    first = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][first] = torch.full_like(state["model"][first], math.nan)
    bad = tmp_path / "nan.pt"
    torch.save(state, bad)
    image = read_manifest(tiny_manifest, split="test")[0].image
    args = {"predict": ["predict", "--checkpoint", str(bad), image, "--out", str(tmp_path / "p")],
            "eval": ["eval", "--checkpoint", str(bad), "--data", str(tiny_manifest), "--out", str(tmp_path / "r.json"),
                     "--limit", "2", "--no-progress"]}[command]
    assert main(args) == 2
    _one_line_error(capsys, "nan.pt", "non-finite weights", first)


# --- 2. masks read as meant -----------------------------------------------------------------------------

REGION = (slice(2, 5), slice(3, 7))  # 12 pixels of a 6 x 8 mask
N_REGION = 12


def _region(dtype=np.uint8, value=1):
    m = np.zeros((6, 8), dtype)
    m[REGION] = value
    return m


def _palette(path, colour):
    im = Image.frombytes("P", (8, 6), _region().tobytes())
    im.putpalette([0, 0, 0, *colour])
    im.save(path)


def _rgb(path, colour, fmt=None):
    arr = np.zeros((6, 8, 3), np.uint8)
    arr[REGION] = colour
    Image.fromarray(arr).save(path, format=fmt)


MASK_WRITERS = {
    "png 8-bit 0/1": ("png", lambda p: Image.fromarray(_region()).save(p)),
    "png 8-bit 0/255": ("png", lambda p: Image.fromarray(_region(value=255)).save(p)),
    "png 16-bit 0/1": ("png", lambda p: Image.fromarray(_region(np.uint16)).save(p)),
    "png 16-bit 0/65535": ("png", lambda p: Image.fromarray(_region(np.uint16, 65535)).save(p)),
    "tiff 16-bit 0/1": ("tif", lambda p: tifffile.imwrite(p, _region(np.uint16))),
    "tiff float 0/1": ("tif", lambda p: tifffile.imwrite(p, _region(np.float32))),
    "palette index 1 red": ("png", lambda p: _palette(p, (255, 0, 0))),
    "palette index 1 = (1, 1, 1)": ("png", lambda p: _palette(p, (1, 1, 1))),
    "red on black": ("png", lambda p: _rgb(p, (255, 0, 0))),
    "green on black": ("png", lambda p: _rgb(p, (0, 255, 0))),
    "blue on black bmp": ("bmp", lambda p: _rgb(p, (0, 0, 255))),
    "rgba white, opaque": ("png", lambda p: Image.fromarray(
        np.dstack([_region(value=255)] * 3 + [np.full((6, 8), 255, np.uint8)])).save(p)),
    "1-bit": ("png", lambda p: Image.fromarray(_region().astype(bool)).save(p)),
}


@pytest.mark.parametrize("name", sorted(MASK_WRITERS))
def test_masks_binarised_as_meant(name, tmp_path):
    suffix, write = MASK_WRITERS[name]
    path = tmp_path / f"mask.{suffix}"
    write(path)
    mask = load_mask(path, expected_hw=(6, 8))
    assert mask.dtype == np.uint8 and int(mask.sum()) == N_REGION, name
    assert mask[REGION].all()


# --- 6. EXIF orientation: images and masks alike --------------------------------------------------------

@pytest.mark.parametrize("code", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_applied_to_images_and_masks_alike(code, suffix, tmp_path):
    stored = np.zeros((6, 10, 3), np.uint8)
    stored[1:3, 2:5] = 255  # a bright block, also the mask's region: the pair must stay aligned
    exif = Image.Exif()
    exif[0x0112] = code
    Image.fromarray(stored).save(tmp_path / f"img{suffix}", exif=exif, quality=100)
    Image.fromarray(stored[:, :, 0]).save(tmp_path / "mask.png", exif=exif)
    image = load_image(tmp_path / f"img{suffix}")
    upright = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / f"img{suffix}")).convert("RGB"))
    np.testing.assert_array_equal(image, upright)
    mask = load_mask(tmp_path / "mask.png", expected_hw=image.shape[:2])
    np.testing.assert_array_equal(mask, image[:, :, 0] > 127)
    assert image_hw(tmp_path / f"img{suffix}") == image.shape[:2] == ((10, 6) if code >= 5 else (6, 10))


@pytest.mark.parametrize("code", [3, 6, 8])
def test_tiff_orientation_read_by_tifffile_matches(code, tmp_path):
    stored = np.arange(6 * 10 * 3, dtype=np.uint8).reshape(6, 10, 3)
    tifffile.imwrite(tmp_path / "a.tif", stored, photometric="rgb", extratags=[(0x0112, "H", 1, code, True)])
    exif = Image.Exif()
    exif[0x0112] = code
    Image.fromarray(stored).save(tmp_path / "a.png", exif=exif)
    np.testing.assert_array_equal(load_image(tmp_path / "a.tif"), load_image(tmp_path / "a.png"))
    assert image_hw(tmp_path / "a.tif") == load_image(tmp_path / "a.tif").shape[:2]


def test_predict_writes_maps_of_the_upright_view(checkpoint, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(tmp_path / "photo.jpg", exif=exif)
    model, _ = load_model(checkpoint)
    summary = predict_files(model, [tmp_path / "photo.jpg"], tmp_path / "out")
    assert Image.open(summary.written[0][2]).size == (32, 64)  # (W, H) of the upright photo


# --- 3. runs never silently overwritten -----------------------------------------------------------------

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


def _saved_state(cfg):
    return {"model": {}, "optimizer": {}, "scheduler": {}, "scaler": {}, "epoch": 1, "step": 8,
            "config": cfg.to_dict(), "rng": {}, "best": 0.0, "history": [], "train_seconds": 1.0}


@pytest.mark.parametrize("change, named", [
    ({"variant": "base"}, "variant 'full' -> 'base'"),
    ({"epochs": 9}, "epochs 1 -> 9"),
    ({"name": "paper"}, "name 'quick' -> 'paper'"),
    ({"lr": 0.5}, "lr 0.2 -> 0.5"),
])
def test_resume_refuses_a_changed_recipe_unless_allowed(change, named, tmp_path):
    state = _saved_state(_cfg())
    with pytest.raises(ValueError, match=f"changed config \\({named}\\).*--allow-changes"):
        check_resumable(state, _cfg().replace(**change), tmp_path / "last.pt")
    check_resumable(state, _cfg().replace(**change), tmp_path / "last.pt", allow_changes=True)


@pytest.mark.parametrize("change", [{"num_workers": 2}, {"eval_max_side": 32}, {"max_train_seconds": 60.0}])
def test_resume_accepts_changes_that_do_not_alter_the_run(change, tmp_path):
    check_resumable(_saved_state(_cfg()), _cfg().replace(**change), tmp_path / "last.pt")


def test_resume_refuses_a_checkpoint_lacking_what_it_needs(tmp_path):
    state = _saved_state(_cfg())
    del state["optimizer"], state["rng"]
    with pytest.raises(ValueError, match=r"lacks \['optimizer', 'rng'\]"):
        check_resumable(state, _cfg(), tmp_path / "last.pt")


@pytest.mark.slow
def test_log_follows_the_checkpoint_after_a_failed_save(small_manifest, tmp_path, monkeypatch):
    real_save = trainer.save_checkpoint

    def full_disk_in_epoch_2(state, path):
        if state["epoch"] == 2:
            raise OSError(28, "No space left on device")
        return real_save(state, path)

    cfg = _cfg().replace(epochs=2)
    monkeypatch.setattr(trainer, "save_checkpoint", full_disk_in_epoch_2)
    with pytest.raises(OSError, match="No space left"):
        train(cfg, small_manifest, tmp_path, progress=False)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert epochs == [1]  # the failed epoch is not in the log
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    train(cfg, small_manifest, tmp_path, progress=False, resume=True)
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert epochs == [1, 2] and not list(tmp_path.glob("*.tmp"))


def test_resume_rewrites_a_log_that_ran_ahead(tmp_path):
    """A log left by an older version (written before a failed save) is cut back to the checkpoint's history."""
    (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    trainer._rewrite_log(tmp_path, [{"epoch": 1}])
    assert (tmp_path / "log.jsonl").read_text() == '{"epoch": 1}\n'


def test_cli_train_into_a_run_folder_is_refused(tiny_manifest, tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"x")
    assert main(["train", "--data", str(tiny_manifest), "--out", str(tmp_path), *SMALL]) == 2
    _one_line_error(capsys, "already holds a run", "--resume", "--overwrite")


def test_cli_resume_starts_from_the_runs_own_config(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(cli, "train", lambda cfg, *a, **k: seen.update(cfg=cfg) or {})
    (tmp_path / "config.json").write_text(json.dumps(_cfg(variant="base", lr=0.01).to_dict()))
    assert main(["train", "--data", "m.jsonl", "--out", str(tmp_path), "--resume"]) == 0
    assert seen["cfg"].variant == "base" and seen["cfg"].lr == 0.01 and seen["cfg"].crop_size == 64
    assert main(["train", "--data", "m.jsonl", "--out", str(tmp_path), "--resume", "--epochs", "5"]) == 0
    assert seen["cfg"].epochs == 5 and seen["cfg"].variant == "base"  # a flag given now is a change


# --- 4./5. manifests validated on read, every file's header read up front -------------------------------

GOOD = {"image": "a.png", "mask": "a_gt.png", "label": 1, "dataset": "t", "split": "test", "id": "a"}


@pytest.mark.parametrize("line2, message", [
    (dict(GOOD), "line 2: id 'a' repeats line 1"),
    ({**GOOD, "id": "b", "mask": None}, "line 2: tampered record 'b' has no mask"),
    ({**GOOD, "id": "b", "label": 0}, "line 2: authentic record 'b' has a mask"),
    ({**GOOD, "id": "b", "label": 2}, "line 2: label 2; expected 0"),
    ({**GOOD, "id": "b", "label": None}, "line 2: label None; expected 0"),
    ({**GOOD, "id": "b", "label": "yes"}, "line 2: label 'yes'; expected 0"),
    ({**GOOD, "id": "b", "label": True}, "line 2: label True; expected 0"),
    ({**GOOD, "id": "b", "image": None}, "line 2: image None; expected a non-empty string"),
    ({**GOOD, "id": "b", "mask": 5}, "line 2: mask 5; expected a path"),
    ({**GOOD, "id": "b", "split": "dev"}, "line 2: split 'dev'"),
    ({**GOOD, "id": None}, "line 2: id None"),
])
def test_manifest_lines_validated_on_read(line2, message, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(line2) + "\n")
    with pytest.raises(DataError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), str(err.value)


def test_non_utf8_manifest_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    latin1 = json.dumps({**GOOD, "id": "é"}, ensure_ascii=False).encode("latin-1")
    path.write_bytes((json.dumps(GOOD) + "\n").encode() + latin1 + b"\n")
    with pytest.raises(DataError, match=r"latin1.jsonl: line 2 is not UTF-8"):
        read_manifest(path)


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({**GOOD, "mask": None, "label": 0}).encode() + b"\n")
    assert read_manifest(path)[0].id == "a"


def test_evaluate_refuses_records_whose_label_and_mask_disagree(checkpoint, tmp_path):
    rec = _pair(tmp_path, "a")
    model, _ = load_model(checkpoint)
    for bad in (Record(rec.image, None, 1, "t", "test", "x"), Record(rec.image, rec.mask, 0, "t", "test", "y")):
        with pytest.raises(DataError, match="tampered records need a mask"):
            evaluate(model, [bad], progress=False)


def _bad_file(kind: str, folder: Path, rec: Record) -> Record:
    if kind == "missing image":
        Path(rec.image).unlink()
    elif kind == "corrupt image":
        Path(rec.image).write_bytes(b"\x89PNG but not really")
    elif kind == "empty mask":
        Path(rec.mask).write_bytes(b"")
    elif kind == "mis-sized mask":
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(rec.mask)
    return rec


@pytest.mark.parametrize("kind, message", [
    ("missing image", "file not found"), ("corrupt image", "cannot decode"), ("empty mask", "empty"),
    ("mis-sized mask", "mask size 10x10"),
])
def test_header_pass_finds_bad_files_before_any_work(kind, message, tmp_path):
    recs = [_pair(tmp_path, f"im{i}") for i in range(3)]
    bad = _bad_file(kind, tmp_path, recs[1])
    with pytest.raises(DataError) as err:
        scan_records(recs)
    name = Path(bad.mask if "mask" in kind else bad.image).name
    assert name in str(err.value) and message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("split", ["train", "val"])
def test_train_finds_a_corrupt_file_before_building_the_model(split, tmp_path, monkeypatch):
    recs = [_pair(tmp_path / "d", f"im{i}") for i in range(4)]
    recs = [Record(r.image, r.mask, 1, "t", s, r.id) for r, s in zip(recs, ["train", "train", "val", "val"])]
    target = recs[0] if split == "train" else recs[3]
    Path(target.image).write_bytes(b"garbage")
    manifest = write_manifest(recs, tmp_path / "m.jsonl")
    monkeypatch.setattr(trainer, "build_model", lambda cfg: pytest.fail("the model was built before the check"))
    with pytest.raises(DataError, match=Path(target.image).name):
        train(_cfg(), manifest, tmp_path / "run", progress=False)


def test_a_truncated_validation_image_is_found_before_training(tmp_path, monkeypatch):
    recs = [_pair(tmp_path / "d", f"im{i}") for i in range(4)]
    recs = [Record(r.image, r.mask, 1, "t", s, r.id) for r, s in zip(recs, ["train", "train", "val", "val"])]
    data = Path(recs[3].image).read_bytes()
    Path(recs[3].image).write_bytes(data[: len(data) // 2])  # the header is intact: only decoding fails
    manifest = write_manifest(recs, tmp_path / "m.jsonl")
    monkeypatch.setattr(trainer, "build_model", lambda cfg: pytest.fail("the model was built before the check"))
    with pytest.raises(DataError, match="im3.png: cannot decode"):
        train(_cfg(), manifest, tmp_path / "run", progress=False)


def test_eval_names_a_missing_image_before_loading_the_model(tmp_path, capsys):
    rec = _pair(tmp_path, "a")
    manifest = write_manifest([rec], tmp_path / "m.jsonl")
    Path(rec.image).unlink()
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(manifest),
                 "--out", str(tmp_path / "r.json")]) == 2
    _one_line_error(capsys, "a.png", "file not found")


@pytest.mark.parametrize("line2", [{**GOOD, "id": "b", "label": "yes"}, {**GOOD, "id": "b", "image": None}])
def test_cli_manifest_errors_are_one_line(line2, tmp_path, capsys):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(line2) + "\n")
    for args in (["train", "--data", str(path), "--out", str(tmp_path / "run")],
                 ["eval", "--checkpoint", "x.pt", "--data", str(path), "--out", str(tmp_path / "r.json")]):
        assert main(args) == 2
        _one_line_error(capsys, "m.jsonl: line 2")


# --- 5./8. outputs checked first; one line instead of a traceback ----------------------------------------

def _blocked(tmp_path: Path) -> Path:
    """A path that cannot become a folder, whoever runs the test (root ignores permission bits)."""
    (tmp_path / "a_file").write_text("x")
    return tmp_path / "a_file" / "out"


@pytest.mark.parametrize("command", ["train", "predict", "eval", "robustness"])
def test_unwritable_out_fails_first(command, tiny_manifest, checkpoint, tmp_path, capsys):
    out = _blocked(tmp_path)
    args = {
        "train": ["train", "--data", str(tiny_manifest), "--out", str(out), *SMALL],
        "predict": ["predict", "--checkpoint", str(checkpoint), str(tiny_manifest.parent), "--out", str(out)],
        "eval": ["eval", "--checkpoint", str(checkpoint), "--data", str(tiny_manifest), "--out", str(out / "r.json")],
        "robustness": ["robustness", "--checkpoint", str(checkpoint), "--data", str(tiny_manifest),
                       "--out", str(out / "t.json")],
    }[command]
    assert main(args) == 2
    _one_line_error(capsys, "a_file", "cannot write there")


@pytest.mark.parametrize("device, message", [
    ("foo", "not a device name"), ("cuda:99", "CUDA"), ("xla", "nclkit runs on cpu, cuda or mps"),
])
def test_bad_devices_are_one_line(device, message, checkpoint, tiny_manifest, tmp_path, capsys):
    if device.startswith("cuda") and torch.cuda.device_count() > 99:
        pytest.skip("this machine has that GPU")
    with pytest.raises(ValueError, match=message):
        pick_device(device)
    assert main(["predict", "--checkpoint", str(checkpoint), str(tiny_manifest.parent), "--out", str(tmp_path),
                 "--device", device]) == 2
    _one_line_error(capsys, repr(device))


def test_cuda_without_a_gpu_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")


@pytest.mark.parametrize("spec, message", [
    ("resize:inf", "finite"), ("resize:1e5", "<= 4"), ("noise:inf", "finite"), ("noise:nan", "finite"),
    ("resize:0", "> 0"), ("jpeg:101", "0..100"),
])
def test_bad_attacks_are_refused_before_loading(spec, message, tiny_manifest, tmp_path, capsys):
    with pytest.raises(ValueError, match=message):
        parse_attack(spec)
    assert main(["eval", "--checkpoint", str(tmp_path / "not_read.pt"), "--data", str(tiny_manifest),
                 "--out", str(tmp_path / "r.json"), "--attack", spec]) == 2
    _one_line_error(capsys, spec)


@pytest.mark.parametrize("args, message", [
    (["predict", "--checkpoint", "c.pt", "x.png", "--out", "o", "--threshold", "5"], "--threshold"),
    (["eval", "--checkpoint", "c.pt", "--data", "m", "--out", "o", "--limit", "-1"], "--limit"),
    (["eval", "--checkpoint", "c.pt", "--data", "m", "--out", "o", "--limit", "0"], "--limit"),
    (["train", "--data", "m", "--out", "o", "--epochs", "0"], "--epochs"),
])
def test_out_of_range_flags_are_refused(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_threshold_checked_by_the_library_too(checkpoint, tmp_path):
    model, _ = load_model(checkpoint)
    with pytest.raises(ValueError, match="threshold 5"):
        predict_files(model, [], tmp_path, threshold=5)


def test_epochs_zero_through_set_is_refused(tiny_manifest, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_manifest), "--out", str(tmp_path / "run"), "--set", "epochs=0"]) == 2
    _one_line_error(capsys, "epochs=0")
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize("damage, message", [
    ("pickle", "holds Python objects beyond tensors"),
    ("config lacks keys", "its config lacks ['encoder'"),
    ("state dict lacks keys", "weights do not fit"),
    ("not a checkpoint", "is not an nclkit checkpoint"),
    ("garbage", "could not be read"),
])
def test_hostile_or_old_checkpoints_are_one_line(damage, message, checkpoint, tmp_path, capsys):
    state = torch.load(checkpoint, weights_only=True)
    path = tmp_path / "c.pt"
    if damage == "pickle":
        torch.save({"model": {}, "config": {}, "payload": subprocess.Popen}, path)
    elif damage == "config lacks keys":
        del state["config"]["encoder"]
        torch.save(state, path)
    elif damage == "state dict lacks keys":
        state["model"].pop(next(iter(state["model"])))
        torch.save(state, path)
    elif damage == "not a checkpoint":
        torch.save({"weights": 1}, path)
    else:
        path.write_bytes(b"not a torch file")
    assert main(["predict", "--checkpoint", str(path), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    line = _one_line_error(capsys, "c.pt", message)
    assert "weights_only=False" not in line


def test_ctrl_c_names_the_last_checkpoint_and_how_to_resume(tmp_path, monkeypatch, capsys):
    def interrupted(cfg, data, out, **kw):
        (Path(out) / "last.pt").write_bytes(b"x")
        (Path(out) / "log.jsonl").write_text('{"epoch": 3}\n')
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    tmp_path.mkdir(exist_ok=True)
    assert main(["train", "--data", "m.jsonl", "--out", str(tmp_path)]) == 130
    line = _one_line_error(capsys, "interrupted", str(tmp_path / "last.pt"), "epoch 3",
                           f"nclkit train --data m.jsonl --out {tmp_path} --resume")
    assert line.count("\n") == 0


def test_ctrl_c_before_any_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "train", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert main(["train", "--data", "m.jsonl", "--out", str(tmp_path)]) == 130
    _one_line_error(capsys, "before the first checkpoint")


@pytest.mark.slow
def test_a_worker_error_is_one_line(tmp_path, capsys):
    recs = [_pair(tmp_path / "d", f"im{i}", hw=(64, 64)) for i in range(8)]
    recs = [Record(r.image, r.mask, 1, "t", "train", r.id) for r in recs]
    data = Path(recs[5].image).read_bytes()
    Path(recs[5].image).write_bytes(data[: len(data) // 2])  # the header is intact: only decoding fails
    manifest = write_manifest(recs, tmp_path / "m.jsonl")
    rc = main(["train", "--data", str(manifest), "--out", str(tmp_path / "run"), "--epochs", "1", "--no-progress",
               "--set", "crop_size=64", "--set", "batch_size=4", "--set", "num_workers=1",
               "--set", "cache_images=false"])
    assert rc == 2
    line = _one_line_error(capsys, "im5.png", "cannot decode")
    assert "Original Traceback" not in line and "DataLoader worker" not in line


# --- preparers --------------------------------------------------------------------------------------------

def test_nist16_short_row_is_one_line(tmp_path, capsys):
    ref = tmp_path / "reference" / "manipulation" / "NC2016-manipulation-ref.csv"
    ref.parent.mkdir(parents=True)
    ref.write_text("ProbeFileName|ProbeMaskFileName|IsTarget\nprobe/b.jpg\nprobe/a.jpg|mask/a.png|Y\n")
    with pytest.raises(DataError, match=r"line 2 has 1 fields, expected 3"):
        prepare_nist16(tmp_path, tmp_path / "m.jsonl")
    assert main(["prepare", "nist16", "--root", str(tmp_path), "--out", str(tmp_path / "m.jsonl")]) == 2
    _one_line_error(capsys, "NC2016-manipulation-ref.csv", "line 2")


@pytest.mark.parametrize("out", ["x.json", "x.txt"])
def test_prepare_out_with_a_non_jsonl_suffix_is_refused(out, tmp_path, capsys):
    with pytest.raises(DataError, match=r"must end in \.jsonl"):
        manifest_paths(tmp_path / out, "coverage")
    assert main(["prepare", "coverage", "--root", str(tmp_path), "--out", str(tmp_path / out)]) == 2
    _one_line_error(capsys, out, ".jsonl")
    assert not (tmp_path / out).exists()


def test_prepare_scripts_print_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "data_scripts" / "prepare_coverage.py"), "--root",
                           str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.jsonl")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "nowhere" in proc.stderr


# --- 7. other formerly silent cases -----------------------------------------------------------------------

def test_a_multi_page_tiff_is_its_first_page_not_colour_channels(tmp_path):
    pages = [Image.fromarray(np.full((6, 8), v, np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    with pytest.warns(UserWarning, match="3 pages; only the first"):
        image = load_image(tmp_path / "pages.tif")
    assert image.shape == (6, 8, 3) and (image == 10).all()


def test_a_planar_rgb_tiff_is_still_colour(tmp_path):
    tifffile.imwrite(tmp_path / "planar.tif", np.stack([np.full((6, 8), v, np.uint8) for v in (10, 20, 30)]),
                     photometric="rgb", planarconfig="separate")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(tmp_path / "planar.tif")[0, 0].tolist() == [10, 20, 30]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_large_photo_has_a_clear_limit_and_an_override(suffix, tmp_path, monkeypatch):
    path = tmp_path / f"big{suffix}"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(path)
    monkeypatch.setenv("NCLKIT_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(DataError, match="limit of 1,000 pixels.*NCLKIT_MAX_IMAGE_PIXELS=1200") as err:
        load_image(path)
    assert "corrupt" not in str(err.value)
    monkeypatch.setenv("NCLKIT_MAX_IMAGE_PIXELS", "0")
    assert load_image(path).shape == (30, 40, 3)
    monkeypatch.delenv("NCLKIT_MAX_IMAGE_PIXELS")
    assert load_image(path).shape == (30, 40, 3)  # the default admits 100 MP photos (about 89 MP in Pillow)


class _NaNModel(torch.nn.Module):
    """Finite but exploded weights end here: every output is NaN."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x[:, :1] * self.w * math.nan


def test_a_nan_prediction_is_an_error_not_an_empty_map(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(FloatingPointError, match="output is NaN"):
        predict_files(_NaNModel(), [tmp_path / "a.png"], tmp_path / "out")
