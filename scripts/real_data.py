"""Tables 5 and 6 on real forgeries, with training seeds, and the cross-dataset rows.

    python scripts/real_data.py --train casia1=data/casia1_grouped.jsonl --train coverage=data/coverage.jsonl \
        --cross casia1_standard=data/casia1_standard.jsonl --preset real --seeds 0,1,2
    python scripts/real_data.py --train casia1=data/casia1_grouped.jsonl --rows full,block2,block5   # Table 6
    python scripts/real_data.py --train coverage=data/coverage.jsonl --set coverage:epochs=200   # 60 photos: 10x the epochs

For every training set, every row and every seed: train from scratch with the preset (or reuse a
finished run with --reuse), select on "val", evaluate once on the set's own "test" split. Rows are
Table 5's variants (base, pivot, full: pivot after block 1) and Table 6's other pivot positions
(block2, block5: full NCL with the pivot after that block). Every full-NCL model is also evaluated on the test split of every other
training set (cross-dataset), and `--extra NAME=CHECKPOINT` adds an already trained model (e.g.
the synthetic quickstart model) to the cross-dataset rows. Writes per training set
`table5_real_<set>_<preset>.json` for the Table 5 rows and `table6_real_<set>_<preset>.json` (full
as "block1", block2, block5) when a block row was asked for (per-seed rows, mean and sd over seeds,
the all-tampered reference row), `val_curves_table<5|6>_<set>_<preset>.png` (validation F1 and AUC
per epoch, each row's mean over seeds) and `cross_dataset_<preset>.json`; `--render` prints them as Markdown.

Per-image pixel F1 at 0.5 and tie-aware per-image AUC, as everywhere in nclkit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from nclkit.data import describe_data, read_manifest
from nclkit.engine import ensure_trained, evaluate, load_model
from nclkit.engine.devices import pick_device, precision_name
from nclkit.engine.evaluator import all_tampered_f1, choose_image_rule, pixel_threshold_on_val
from nclkit.engine.metrics import image_level_metrics
from nclkit.engine.outputs import read_log
from nclkit.engine.reports import json_safe, markdown_table, pct
from nclkit.presets import (
    ABLATION_TABLES, ABLATIONS, PRESETS, VARIANTS, ablation_label, apply_overrides, get_config,
)

from table_runs import add_run_arguments, provenance  # a sibling: this folder is on the path when run

SUMMARISED = ("pixel_f1", "pixel_f1_val_threshold", "pixel_auc", "pixel_f1_best_threshold", "image_auc",
              "image_balanced_accuracy")
KEEP = (*SUMMARISED, "n_tampered", "n_authentic")
_IMAGE_RULES: dict[Path, dict] = {}
# What a model is scored with on any test set without an own val split: the image rule and pixel threshold
# of its training set's val split; an --extra model without one keeps max > 0.5 and pixel threshold 0.5.
NO_VAL_RULE = {"rule": "max", "threshold": 0.5, "pixel_threshold": 0.5}


def image_rule(checkpoint: Path, val_records, device) -> dict:
    """The image-score rule and threshold, and the pixel threshold, of a model, chosen on its own training
    set's validation split."""
    if checkpoint not in _IMAGE_RULES:
        model, _ = load_model(checkpoint, device=device)
        pixel = pixel_threshold_on_val(model, val_records, device=device)
        _IMAGE_RULES[checkpoint] = {**choose_image_rule(model, val_records, device=device),
                                    "pixel_threshold": pixel["threshold"]}
    return _IMAGE_RULES[checkpoint]


def score(checkpoint: Path, records, device, rule: dict) -> dict:
    """Test metrics of one model, F1 at its val-chosen pixel threshold among them."""
    model, _ = load_model(checkpoint, device=device)
    t = rule["pixel_threshold"]
    res = evaluate(model, records, device=device, best_threshold=True, progress=False, thresholds=(t,),
                   image_score=rule["rule"], image_threshold=rule["threshold"])
    res["pixel_f1_val_threshold"] = res["pixel_f1"] if t == 0.5 else res[f"pixel_f1@{t:g}"]
    both = res["n_tampered"] and res["n_authentic"]
    max_auc = image_level_metrics([r["scores"]["max"] for r in res["per_image"]],
                                  [r["label"] for r in res["per_image"]])["image_auc"] if both else None
    return {**{k: res.get(k) for k in KEEP}, "image_auc_max": max_auc, "image_rule": rule,
            "data": res["protocol"]["data"]}


def _stats(rows: list[dict], key: str) -> dict:
    values = [r[key] for r in rows if r.get(key) is not None]
    return {"mean": statistics.fmean(values) if values else None,
            "sd": statistics.stdev(values) if len(values) > 1 else None, "n": len(values)}


def save_val_curves(run_dirs: dict[str, list[Path]], reference: float, path: Path) -> None:
    """Validation F1@0.5 and AUC per epoch, one line per row (mean over its seeds, the band min..max)."""
    import matplotlib
    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for row_name, dirs in run_dirs.items():
        logs = [read_log(d) for d in dirs]
        epochs = sorted({r["epoch"] for log in logs for r in log if "val_pixel_f1" in r})
        for ax, key in zip(axes, ("val_pixel_f1", "val_pixel_auc")):
            values = np.array([[next((r[key] for r in log if r["epoch"] == e and key in r), np.nan) for e in epochs]
                               for log in logs])
            ax.plot(epochs, np.nanmean(values, axis=0), marker="o", label=f"{row_name} ({len(dirs)} seeds)")
            ax.fill_between(epochs, np.nanmin(values, axis=0), np.nanmax(values, axis=0), alpha=0.2)
    axes[0].axhline(reference, color="gray", linestyle=":", label="every pixel tampered")
    axes[1].axhline(0.5, color="gray", linestyle=":", label="chance")
    for ax, title in zip(axes, ("validation F1@0.5 (per image)", "validation AUC (per image)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(s: dict | None) -> str:
    """A row's mean ± sd over seeds, in percent."""
    if s is None or s["mean"] is None:
        return "n/a"
    return pct(s["mean"]) + (f" ± {pct(s['sd'])}" if s["sd"] is not None else "")


def render(out_dir: Path) -> str:
    lines = []
    for path in sorted(out_dir.glob("table[56]_real_*.json")):
        d = json.loads(path.read_text())
        lines += [f"### Table {d.get('table', '5')} on {d['dataset']} ({d['preset']} preset, seeds {d['seeds']}) — {path.name}", "",
                  f"Data: {d['data']}", "", f"Device: {d['device']}, torch {d['torch']}. Command: `{d['command']}`"
                  + (f" (config changes for this set: {', '.join(d['overrides'])})" if d.get("overrides") else ""), ""]
        rows = [["every pixel tampered (reference)", pct(d["all_tampered_f1"]), "—", "50.0", "—", "50.0", "50.0", "—"]]
        for v, s in d["summary"].items():
            secs = statistics.fmean(r["train_seconds"] for r in d["runs"][v])
            rows.append([v, _fmt(s["pixel_f1"]), _fmt(s.get("pixel_f1_val_threshold")), _fmt(s["pixel_auc"]),
                         _fmt(s["pixel_f1_best_threshold"]), _fmt(s.get("image_auc")),
                         _fmt(s.get("image_balanced_accuracy")), f"{secs:.0f}"])
        lines += markdown_table(["row", "F1@0.5 (per image)", "F1 at the val threshold", "AUC (per image)",
                                 "F1 at each image's best threshold (oracle)", "image AUC", "image balanced accuracy",
                                 "train s (mean)"], rows)
        lines.append("")
    for path in sorted(out_dir.glob("cross_dataset_*.json")):
        d = json.loads(path.read_text())
        lines += [f"### Cross-dataset ({d['preset']} preset) — {path.name}", ""]
        lines += markdown_table(["trained on", "tested on", "F1@0.5 (per image)", "F1 at the val threshold",
                                 "AUC (per image)", "image AUC", "image balanced accuracy", "every pixel tampered F1"],
                                [[r["trained_on"], r["tested_on"], _fmt(r["pixel_f1"]),
                                  _fmt(r.get("pixel_f1_val_threshold")), _fmt(r["pixel_auc"]),
                                  _fmt(r.get("image_auc")), _fmt(r.get("image_balanced_accuracy")),
                                  pct(r["all_tampered_f1"])] for r in d["rows"]])
        lines.append("")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", action="append", default=[], metavar="NAME=MANIFEST",
                   help="a training set with train/val/test splits (repeatable)")
    p.add_argument("--cross", action="append", default=[], metavar="NAME=MANIFEST",
                   help="an extra test set for the cross-dataset rows; its whole manifest is scored")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=CHECKPOINT",
                   help="an already trained model to score on every test set (cross-dataset rows)")
    p.add_argument("--preset", default="real", choices=sorted(PRESETS))
    p.add_argument("--rows", "--variants", dest="rows", default=",".join(VARIANTS),
                   help=f"rows to train, of {', '.join(ABLATIONS)} (default: Table 5's)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="[NAME:]KEY=VALUE",
                   help="a config override for every training set, or with NAME: for that one only "
                        "(e.g. coverage:epochs=200 for a set whose epoch is a tenth of another's)")
    add_run_arguments(p, runs="runs/real_data")
    return p


@dataclass
class Plan:
    """What the command line asks for, checked, with every test set read, before anything is trained."""
    args: argparse.Namespace
    train_sets: dict[str, str]   # name -> manifest with train/val/test
    extra: dict[str, str]        # name -> checkpoint, for the cross-dataset rows
    rows: list[str]
    seeds: list[int]
    device: torch.device
    out: Path
    common: dict                 # preset, seeds, command, device, torch: in every JSON file
    tests: dict[str, list]       # name -> the records each model is scored on
    vals: dict[str, list]        # training set -> its val records (the image-score rule is chosen there)
    reference: dict[str, float]  # name -> F1 of calling every pixel tampered

    def overrides_for(self, name: str) -> list[str]:
        """The global overrides, then those scoped to this training set (which win), without the scope."""
        items = self.args.overrides
        plain = [o for o in items if ":" not in o.split("=", 1)[0]]
        return plain + [o.split(":", 1)[1] for o in items if o.split("=", 1)[0].startswith(f"{name}:")]

    def run_path(self, name: str, row_name: str, seed: int) -> Path:
        return Path(self.args.runs) / f"{name}_{self.args.preset}" / f"{row_name}_seed{seed}"


def make_plan(p: argparse.ArgumentParser, args: argparse.Namespace, argv) -> Plan:
    pairs = lambda items: dict(item.split("=", 1) for item in items)  # noqa: E731
    train_sets, cross_sets = pairs(args.train), pairs(args.cross)
    rows = [v for v in args.rows.split(",") if v]
    unknown = sorted(set(rows) - set(ABLATIONS))
    if unknown:
        p.error(f"unknown rows {unknown}; expected some of {list(ABLATIONS)}")
    for item in args.overrides:
        scope = item.split("=", 1)[0].split(":", 1)
        if len(scope) == 2 and scope[0] not in train_sets:
            p.error(f"--set {item}: {scope[0]!r} is not a training set (known: {sorted(train_sets)})")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    device = pick_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tests = {name: read_manifest(m, split="test") for name, m in train_sets.items()}
    tests.update({name: read_manifest(m) for name, m in cross_sets.items()})
    return Plan(args, train_sets, pairs(args.extra), rows, seeds, device, out,
                {"preset": args.preset, "seeds": seeds, **provenance("real_data.py", argv, device)}, tests,
                {name: read_manifest(m, split="val") for name, m in train_sets.items()},
                {name: all_tampered_f1(recs) for name, recs in tests.items()})


def train_row(plan: Plan, name: str, manifest: str, row_name: str, seed: int) -> dict:
    """One row's run for one seed: trained (or reused), selected on val, scored on the set's test split."""
    cfg = apply_overrides(get_config(plan.args.preset, **ABLATIONS[row_name], seed=seed), plan.overrides_for(name))
    run_dir = plan.run_path(name, row_name, seed)
    t0 = time.perf_counter()
    summary = ensure_trained(cfg, manifest, run_dir, device=plan.device, reuse=plan.args.reuse).summary
    rule = image_rule(run_dir / "best.pt", plan.vals[name], plan.device)
    row = score(run_dir / "best.pt", plan.tests[name], plan.device, rule)
    row.update({"seed": seed, "train_seconds": summary["train_seconds"], "epochs": summary["epochs_done"],
                "stopped_by_time_budget": summary["stopped_by_time_budget"],
                "best_val": summary["best_val"], "precision": precision_name(cfg, plan.device)})
    print(f"[real_data] {name} {row_name} seed {seed}: F1 {row['pixel_f1']:.3f} AUC {row['pixel_auc']:.3f} "
          f"image AUC {row['image_auc'] or float('nan'):.3f} ({rule['rule']}) "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return row


def write_tables(plan: Plan, name: str, manifest: str, runs: dict[str, list[dict]]) -> None:
    """Table 5 and/or Table 6 of one training set, with their validation curves."""
    val_reference = all_tampered_f1(read_manifest(manifest, split="val"))
    for table, names in ABLATION_TABLES.items():
        # A table is written when one of its own rows was trained (full alone: Table 5), so that
        # training only Table 6's rows never overwrites a Table 5 file with its one shared row.
        if not (set(names) - {"full"}) & set(runs) and not (table == "5" and set(runs) == {"full"}):
            continue
        label = {v: ablation_label(table, v) for v in names if v in runs}
        chosen = {label[v]: runs[v] for v in label}
        save_val_curves({label[v]: [plan.run_path(name, v, seed) for seed in plan.seeds] for v in label},
                        val_reference, plan.out / f"val_curves_table{table}_{name}_{plan.args.preset}.png")
        doc = {"table": table, "dataset": name, **plan.common, "data": describe_data(plan.tests[name]),
               "all_tampered_f1": plan.reference[name],
               "config": apply_overrides(get_config(plan.args.preset), plan.overrides_for(name)).to_dict(),
               "overrides": plan.overrides_for(name),
               "summary": {v: {k: _stats(rows, k) for k in SUMMARISED} for v, rows in chosen.items()},
               "runs": chosen}
        path = plan.out / f"table{table}_real_{name}_{plan.args.preset}.json"
        path.write_text(json.dumps(json_safe(doc), indent=2) + "\n")
        print(f"[real_data] wrote {path}")


def write_cross(plan: Plan, full_models: dict[str, list[Path]]) -> None:
    """Every full-NCL model (and --extra) on the test split of every other set."""
    cross = []
    for trained_on, checkpoints in full_models.items():
        for tested_on, records in plan.tests.items():
            if tested_on == trained_on:
                continue
            rows = [score(c, records, plan.device, image_rule(c, plan.vals[trained_on], plan.device)
                          if trained_on in plan.vals else NO_VAL_RULE) for c in checkpoints]
            cross.append({"trained_on": trained_on, "tested_on": tested_on, "data": rows[0]["data"],
                          "all_tampered_f1": plan.reference[tested_on], "checkpoints": [str(c) for c in checkpoints],
                          **{k: _stats(rows, k) for k in SUMMARISED}, "runs": rows})
    if cross:
        path = plan.out / f"cross_dataset_{plan.args.preset}.json"
        path.write_text(json.dumps(json_safe({**plan.common, "rows": cross}), indent=2) + "\n")
        print(f"[real_data] wrote {path}")


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.render:  # only print the Markdown of the JSON files in --out
        print(render(Path(args.out)))
        return 0
    plan = make_plan(p, args, argv)
    full_models: dict[str, list[Path]] = {name: [Path(c)] for name, c in plan.extra.items()}
    for name, manifest in plan.train_sets.items():
        runs = {row: [train_row(plan, name, manifest, row, seed) for seed in plan.seeds] for row in plan.rows}
        if "full" in runs:
            full_models.setdefault(name, []).extend(plan.run_path(name, "full", s) / "best.pt" for s in plan.seeds)
        write_tables(plan, name, manifest, runs)
    write_cross(plan, full_models)
    print(render(plan.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
