"""Command line: `nclkit train | eval | robustness | predict | prepare | synth | fetch`, each with --help.

Errors a user can cause (a missing file, an unreadable image, an empty manifest, a checkpoint of
another preset, an unwritable --out, a diverged run, a missing optional package) end with one clear
line on stderr and exit status 2, not a traceback; Ctrl-C ends with one line (for train: where the
last checkpoint is and how to resume) and status 130; a reader that closes the output early
(`| head -1`) ends it quietly with status 141, as it does other Unix tools. Outputs are checked
writable and every config value is checked before any work starts.
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shlex
import sys
import warnings
from functools import partial
from pathlib import Path

import torch

from .atomic import WriteError, write_text_atomic
from .data import DataError, describe_data, read_manifest, scan_records
from .data.manifest import PROTOCOLS
from .data.preparers import PREPARERS, folder_records
from .data.io import IMAGE_SUFFIXES
from .data.preparers.common import manifest_paths
from .data.forge import forge_from_photos
from .data.synthetic import make_synthetic
from .engine.attacks import parse_attack
from .engine.checkpoint import load_model
from .engine.devices import cpu_threads, pick_device
from .engine.evaluator import choose_image_rule, evaluate, pixel_threshold_on_val, write_report
from .engine.metrics import IMAGE_SCORES
from .engine.outputs import ensure_writable_dir, last_checkpoint_note, read_log
from .engine.reports import json_safe
from .engine.robustness import robustness_markdown, robustness_table
from .engine.trainer import train
from .presets import PRESETS, VARIANTS, Config, apply_overrides, get_config
from .viz import predict_files, save_prediction_figure

__all__ = ["main", "build_parser"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}; expected a whole number >= 1")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text}; expected a probability in [0, 1]")
    return value


def _add_config_args(p: argparse.ArgumentParser, variant: bool = True) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="quick: small model for a CPU on the synthetic set; real: the CPU recipe for real photos "
                        "(CASIA v1 size); paper: ResNet-101, OS 8, 512 px, batch 4; course_gpu: the paper's recipe "
                        "cut to a free T4 (ResNet-50, OS 16, 256 px) (default: quick; with --resume, the run's own "
                        "config)")
    if variant:
        p.add_argument("--variant", choices=VARIANTS,
                       help="Table 5 row: base (BCE), pivot (BCE + NCL), full (NCL + PC; default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config value, e.g. --set lr=0.01 --set pivot_block=2 (repeatable)")


def _saved_config(path: Path) -> Config:
    """A run's config.json, every value checked; errors name the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); fix the file") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason}); fix the file") from None
    return Config.from_dict(data, source=path)


def _config(args):
    saved = Path(args.out) / "config.json" if getattr(args, "resume", False) else None
    if saved is not None and args.preset is None and saved.is_file():
        cfg = _saved_config(saved)  # resume: only flags given now change it
    else:
        cfg = get_config(args.preset or "quick")
    extra = {}
    if getattr(args, "variant", None):
        extra["variant"] = args.variant
    if getattr(args, "epochs", None) is not None:
        extra["epochs"] = args.epochs
    if extra:
        cfg = cfg.replace(**extra)
    return apply_overrides(cfg, args.overrides)


def _run_threads(run_dir: Path) -> int | None:
    """The CPU threads a run trained with, from its log's last row (None: not logged)."""
    try:
        rows = read_log(run_dir)
        return rows[-1].get("threads") if rows else None
    except (ValueError, AttributeError):  # a row cut short, or not an object
        return None


def _set_cpu_threads(args) -> None:
    """On a CPU: a resumed run keeps its thread count (the same arithmetic); a new one leaves out the
    cores other processes keep busy (engine.devices.cpu_threads), and says so. OMP_NUM_THREADS, where set, wins."""
    if pick_device(args.device).type != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return
    own = torch.get_num_threads()
    threads = (_run_threads(Path(args.out)) if args.resume else None) or cpu_threads()
    if threads < own and not args.resume:
        print(f"other processes keep {own - threads} of {own} cores busy: training with {threads} thread(s), "
              f"faster than {own} sharing a busy core (OMP_NUM_THREADS={own} keeps {own})", flush=True)
    torch.set_num_threads(threads)


def cmd_train(args) -> int:
    cfg = _config(args)
    threads = torch.get_num_threads()
    _set_cpu_threads(args)
    try:
        summary = train(cfg, args.data, args.out, resume=args.resume, device=args.device,
                        progress=not args.no_progress, tensorboard=args.tensorboard,
                        overwrite=args.overwrite, allow_changes=args.allow_changes)
    finally:
        torch.set_num_threads(threads)  # main() may run again in this process (a notebook, a test)
    print(json.dumps(summary, indent=2))
    return 0


def _check_report_path(out: str) -> None:
    """A report path that can be written, checked before hours of evaluation."""

    if Path(out).is_dir():
        raise ValueError(f"--out {out} is a folder; give the report's .json file name")
    ensure_writable_dir(Path(out).parent)


def _model_and_records(args):
    """The checkpoint's model on the chosen device, and the manifest's records of args.split (files checked)."""

    device = pick_device(args.device)
    records = read_manifest(args.data, split=args.split)
    if getattr(args, "limit", None):
        records = records[: args.limit]
    scan_records(records)  # every file's header, before the model is even loaded
    model, _ = load_model(args.checkpoint, device=device)
    return device, model, records


def _eval_records(args):
    """The records `eval` scores: a manifest's split, or a folder of images paired with a folder of masks."""

    if args.data and (args.images or args.masks):
        raise ValueError("give either --data (a manifest) or --images/--masks (folders), not both")
    if args.data:
        return read_manifest(args.data, split=args.split)
    if not (args.images and args.masks):
        raise ValueError("eval needs --data MANIFEST, or --images DIR together with --masks DIR")
    return folder_records(args.images, args.masks, authentic=args.authentic)


def cmd_eval(args) -> int:
    _check_report_path(args.out)
    if args.attack:
        parse_attack(args.attack)
    if args.image_score == "val" and not args.data:
        raise ValueError("--image-score val chooses on the val split of --data; with folders, name a rule")
    if args.pixel_threshold == "val" and not args.data:
        raise ValueError("--pixel-threshold val chooses on the val split of --data; with folders, leave it out")
    records = _eval_records(args)
    if args.limit:
        records = records[: args.limit]
    scan_records(records)  # every file's header, before the model is even loaded
    device = pick_device(args.device)
    model, _ = load_model(args.checkpoint, device=device)
    rule, threshold, choice = args.image_score, args.image_threshold, None
    if rule == "val":
        choice = _image_score_on_val(model, args, device)
        rule, threshold = choice["rule"], choice["threshold"]
        print(f"image score chosen on {args.data} split val: {rule} > {threshold:.4g} (val image AUC "
              f"{choice['val_image_auc']:.3f})")
    pixel = _pixel_threshold_on_val(model, args, device)
    extra = (pixel["threshold"],) if pixel else ()
    result = evaluate(model, records, device=device, attack=args.attack, global_metrics=args.all_protocols,
                      best_threshold=True, permuted=args.all_protocols, progress=not args.no_progress,
                      image_score=rule, image_threshold=threshold, thresholds=extra)
    if choice is not None:
        result["image_score_choice"] = choice
    if pixel:
        t = pixel["threshold"]
        result["pixel_f1_val_threshold"] = result["pixel_f1"] if t == 0.5 else result[f"pixel_f1@{t:g}"]
        result["pixel_threshold_choice"] = pixel
    result["checkpoint"] = str(args.checkpoint)
    result["split"] = args.split if args.data else "all (folders)"
    write_report(result, args.out)
    if args.figure:
        save_prediction_figure(model, records, Path(args.out).with_suffix(".png"))
    shown = {k: result[k] for k in ("pixel_f1", "pixel_f1_val_threshold", "pixel_f1_best_threshold", "pixel_auc",
                                    "image_auc", "image_balanced_accuracy", "n_images", "n_tampered", "n_authentic")
             if k in result}
    print(json.dumps(shown, indent=2))
    print(f"data: {result['protocol']['data']}")
    return 0


def _pixel_threshold_on_val(model, args, device) -> dict | None:
    """`--pixel-threshold`: the pixel threshold best on the manifest's val split, or None where not asked."""
    if args.pixel_threshold == "none" or (args.pixel_threshold == "auto" and (not args.data or args.split == "val")):
        return None
    val = [r for r in read_manifest(args.data) if r.split == "val" and r.label == 1]
    if not val:
        if args.pixel_threshold == "auto":
            return None
        raise ValueError(f"{args.data}: --pixel-threshold val needs tampered images in split 'val'")
    scan_records(val)
    chosen = pixel_threshold_on_val(model, val, device=device, max_side=None, progress=not args.no_progress)
    print(f"pixel threshold chosen on {args.data} split val: {chosen['threshold']:g} (val F1 {chosen['val_pixel_f1']:.3f})")
    return chosen


def _image_score_on_val(model, args, device) -> dict:
    """`--image-score val`: the rule and threshold that do best on the manifest's val split."""
    val = read_manifest(args.data, split="val")
    if len({r.label for r in val}) < 2:
        raise ValueError(f"{args.data}: --image-score val needs tampered and authentic images in split 'val'")
    scan_records(val)
    return choose_image_rule(model, val, device=device, progress=not args.no_progress)


def cmd_robustness(args) -> int:
    _check_report_path(args.out)
    device, model, records = _model_and_records(args)
    table = robustness_table(model, records, seed=args.seed, device=device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(json_safe(table), indent=2) + "\n")
    write_text_atomic(out.with_suffix(".md"), robustness_markdown(table) + "\n")
    print(robustness_markdown(table))
    return 0


def cmd_predict(args) -> int:
    ensure_writable_dir(args.out)
    device = pick_device(args.device)
    model, _ = load_model(args.checkpoint, device=device)
    summary = predict_files(model, args.inputs, args.out, threshold=args.threshold)
    print(summary)
    return 0 if summary.ok else 1


def cmd_prepare(args) -> int:
    manifest_paths(args.out, args.name)  # a bad --out fails before the dataset is read
    prepare = PREPARERS[args.name]
    extra = {}
    if args.protocol is not None:
        if "protocol" not in inspect.signature(prepare).parameters:
            raise ValueError(f"--protocol: {args.name} has one protocol; only casia1 takes --protocol")
        extra["protocol"] = args.protocol
    out = prepare(Path(args.root), Path(args.out), **extra)
    print(f"wrote {out}: {describe_data(read_manifest(out))}")
    return 0


def cmd_synth(args) -> int:
    if args.shapes and not args.from_photos:
        raise ValueError("--shapes shapes the forgeries of --from-photos; give both")
    if args.from_photos:
        path = forge_from_photos(args.from_photos, args.out, num=args.num, seed=args.seed, shapes_manifest=args.shapes)
    else:
        path = make_synthetic(args.out, num=args.num, seed=args.seed, size=args.size)
    print(f"wrote {path}: {describe_data(read_manifest(path))}")
    return 0


def cmd_fetch(args) -> int:
    from .data.fetch import fetch

    pairs = [a.split("=", 1) for a in args.archive]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"--archive {args.archive}: expected SOURCE=ZIP")
    fetch(args.name, args.out, archives=dict(pairs))
    return 0


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train NCL (or a Table 5 variant) on a manifest's train split")
    _add_config_args(p)
    p.add_argument("--data", required=True, help="manifest .jsonl with train (and val) splits")
    p.add_argument("--out", required=True, help="run folder: best.pt, last.pt, log.jsonl, config.json")
    p.add_argument("--epochs", type=_positive_int, help="number of epochs (default: the preset's)")
    p.add_argument("--resume", action="store_true",
                   help="continue exactly from RUN_DIR/last.pt, with the run's own config unless flags change it")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out (deletes it)")
    p.add_argument("--allow-changes", action="store_true",
                   help="with --resume: continue even though the variant, epochs or other settings differ")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--tensorboard", action="store_true", help="also log to RUN_DIR/tensorboard")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)


def _eval_parser(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint: per-image pixel F1@0.5 and AUC, image-level metrics")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", help="manifest .jsonl (or use --images and --masks)")
    p.add_argument("--split", default="test", help="the manifest's split to score (default: test)")
    p.add_argument("--images", help="a folder of tampered images, instead of --data")
    p.add_argument("--masks", help="their masks, paired by name: NAME.ext or NAME_gt/_mask/... .ext; white = tampered")
    p.add_argument("--authentic", help="optional folder of authentic images (image-level metrics)")
    p.add_argument("--out", required=True, help="report .json (a .md table is written beside it)")
    p.add_argument("--attack", help="robustness attack KIND:VALUE, e.g. jpeg:50, blur:3, noise:5, resize:0.78")
    p.add_argument("--all-protocols", action="store_true", help="also global, best-threshold and permuted F1")
    p.add_argument("--figure", action="store_true", help="also save a figure of sample predictions (.png)")
    p.add_argument("--image-score", default="max", choices=(*IMAGE_SCORES, "val"),
                   help="how a map becomes an image score for the image-level metrics (default max); val: the "
                        "rule and threshold best on the manifest's val split (never on the split scored)")
    p.add_argument("--image-threshold", type=_probability, default=0.5,
                   help="an image counts as tampered when its score is above this (default 0.5)")
    p.add_argument("--pixel-threshold", default="auto", choices=("auto", "val", "none"),
                   help="F1 also at the pixel threshold best on the manifest's val split, beside F1@0.5 and the "
                        "oracle F1 (each image's best threshold). auto (default): when --data has tampered val "
                        "images and the split scored is another; val: always (an error without them); none: never")
    p.add_argument("--limit", type=_positive_int, help="evaluate only the first N records")
    p.add_argument("--device")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_eval)


def _robustness_parser(sub) -> None:
    p = sub.add_parser("robustness", help="the paper's Table 3: every attack on one split")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True, help="table .json (a .md table is written beside it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    p.set_defaults(func=cmd_robustness)


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="probability maps and overlays for your own images")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("inputs", nargs="+", help="image files or folders")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--threshold", type=_probability, default=0.5, help="overlay pixels with prob > this (0..1)")
    p.add_argument("--device")
    p.set_defaults(func=cmd_predict)


def _prepare_parser(sub) -> None:
    p = sub.add_parser("prepare", help="turn a benchmark's published layout into a manifest")
    p.add_argument("name", choices=sorted(PREPARERS))
    p.add_argument("--root", required=True, help="the benchmark's folder, as published")
    p.add_argument("--out", required=True, help="manifest .jsonl to write")
    p.add_argument("--protocol", choices=sorted(p for (name, p) in PROTOCOLS if name == "casia1"),
                   help="casia1 only: standard (all test, default) or grouped (nclkit's own train/val/test "
                        "split, grouped by source photo)")
    p.set_defaults(func=cmd_prepare)


def _synth_parser(sub) -> None:
    p = sub.add_parser("synth", help="write the built-in synthetic forgery set, or forgeries of your own photos, "
                                     "and its manifest")
    p.add_argument("--out", required=True, help="output folder (manifest.jsonl goes inside)")
    p.add_argument("--num", type=_positive_int, default=1000, help="number of images, or of forgeries with "
                   "--from-photos (default 1000)")
    p.add_argument("--from-photos", metavar="DIR",
                   help="forge your own authentic photos instead (splice, copy-move, removal; nclkit.data.forge): "
                        "the photos are split 80/10/10 first, each split forged from its own photos only")
    p.add_argument("--shapes", metavar="MANIFEST",
                   help="with --from-photos: shape the forged regions like this manifest's real masks "
                        "(default: random object-like shapes)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128, help="image side in px (default 128, the quick preset's crop)")
    p.set_defaults(func=cmd_synth)


def _fetch_parser(sub) -> None:
    p = sub.add_parser("fetch", help="download a real benchmark from its public copies and check every file")
    p.add_argument("name", choices=["casia1"], help="casia1: CASIA v1.0 with Pham et al.'s ground truth")
    p.add_argument("--out", required=True, help="the dataset folder to create (published layout)")
    p.add_argument("--archive", action="append", default=[], metavar="SOURCE=ZIP",
                   help="use a zip downloaded by hand instead of downloading it (casia1: images=, groundtruth=)")
    p.set_defaults(func=cmd_fetch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nclkit", description="NCL image manipulation localization (ICCV 2023)")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_train_parser, _eval_parser, _robustness_parser, _predict_parser, _prepare_parser, _synth_parser,
                _fetch_parser):
        add(sub)
    return parser


def _one_line(err: BaseException) -> str:
    """The error's message; for one raised in a DataLoader worker, without the worker's traceback."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        text = re.sub(r"^[\w.]+: ", "", last)  # "nclkit.data.errors.DataError: msg" -> "msg"
    return text


def _interrupted(args) -> str:
    """What Ctrl-C leaves behind, and for train how to go on."""
    if args.command != "train":
        return "interrupted"

    if not (Path(args.out) / "last.pt").is_file():
        return "interrupted before the first checkpoint; nothing to resume (run the same command again)"
    return f"interrupted; {_resume_hint(args)}"


def _resume_hint(args) -> str:
    """Where train's last checkpoint is and the command that continues from it."""
    if not (Path(args.out) / "last.pt").is_file():
        return "no checkpoint was written; run the same command again"
    return (f"{last_checkpoint_note(args.out)}; continue with: "
            f"nclkit train --data {shlex.quote(args.data)} --out {shlex.quote(args.out)} --resume")


# Optional packages a command may need, with the nclkit extra that installs each.
_EXTRAS = {"tensorboard": "tensorboard", "ipywidgets": "notebooks", "sklearn": "notebooks"}


def _missing_package(err: ImportError) -> str:
    """The ImportError's message with the pip command that fixes it."""
    text = _one_line(err)
    if "pip install" in text:
        return text
    top = (err.name or "").split(".")[0]
    fix = f"pip install 'nclkit[{_EXTRAS[top]}]'" if top in _EXTRAS else "pip install --upgrade nclkit"
    return f"{text}; a package is missing: {fix}"


def _closed_pipe() -> int:
    """The reader of stdout has gone (`| head -1`): stop quietly with status 128 + SIGPIPE, as Unix tools do."""
    try:  # point stdout at devnull: the interpreter's last flush would raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no real descriptor (a captured stdout)
        pass
    return 141


def _warning_line(command: str, message, category, filename, lineno, line=None) -> str:
    """A warning as one line, as errors are: `nclkit train: warning: ...` (no source line of nclkit's)."""
    return f"nclkit {command}: warning: {message}\n"


def _dashed_file(argv: list[str]) -> str | None:
    """The first argument before `--` that names a file but starts with "-", so argparse would read it as an
    option (`-x.png`); None when there is none."""
    for arg in argv:
        if arg == "--":
            return None
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 \
                and (Path(arg).suffix.lower() in IMAGE_SUFFIXES or Path(arg).exists()):
            return arg
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    dashed = _dashed_file(argv)
    if dashed is not None:
        command = f"nclkit {argv[0]}" if argv and not argv[0].startswith("-") else "nclkit"
        print(f"{command}: error: {dashed} starts with '-', so it reads as an option; name the file ./{dashed}, "
              "or put -- before the file names", file=sys.stderr)
        return 2
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("nclkit: interrupted", file=sys.stderr)
        return 130
    saved, warnings.formatwarning = warnings.formatwarning, partial(_warning_line, args.command)
    try:
        return _run_command(args)
    finally:
        warnings.formatwarning = saved


def _run_command(args) -> int:
    """Run the parsed command: its errors as one line and status 2, Ctrl-C as 130, a closed pipe as 141."""
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
        return code
    except KeyboardInterrupt:
        print(f"nclkit {args.command}: {_interrupted(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except (DataError, ValueError, OSError, ArithmeticError, ImportError) as err:
        # ArithmeticError: TrainingDiverged; OSError: a full disk, a folder that vanished ...
        if os.environ.get("NCLKIT_DEBUG"):
            raise
        text = _missing_package(err) if isinstance(err, ImportError) else _one_line(err)
        if isinstance(err, WriteError) and args.command == "train":
            text += f"; {_resume_hint(args)}"
        print(f"nclkit {args.command}: error: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
