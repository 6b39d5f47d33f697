"""What the contrastive loss buys: rows of config changes trained with seeds, scored in domain and across data.

    python scripts/ncl_diagnosis.py --data data/casia1_grouped.jsonl --cross coverage=data/coverage.jsonl \
        --preset real --rows base,base_balanced,full_w0,full --seeds 0,1,2 --out runs/diagnosis
    python scripts/ncl_diagnosis.py --data data/casia1_grouped.jsonl --rows full,full_w0.1 --seeds 0 --diagnose
    python scripts/ncl_diagnosis.py --render runs/diagnosis

A row is a name from ROWS (a Table 5 variant with changes of omega, tau, sample weighting, pivot block or
the BCE's class balance) or any `name=key:value;key:value` of your own. For every row and seed: train the
preset with the row's changes on the manifest's train split (best checkpoint on val, as `nclkit train`),
choose a pixel threshold on val, and score the test split and every --cross manifest (all of its
images): pixel AUC, F1@0.5, F1 at the val threshold, the oracle F1 (each image's best threshold) and
the same for the last epoch's weights. `--diagnose` also records after every epoch, on a fixed batch of
training crops and with the model left untouched (nclkit.engine.diagnostics): the gradient norms that
omega * L_NCL and the pixel loss send into the tapped block, eq. 7's terms beside their chance values,
and a linear probe's patch AUC of the tapped features (fitted on training photos, scored on val).
Writes `<out>/rows.json` (every run, then mean and sd per row) and `<out>/<row>_seed<k>_diagnostics.jsonl`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from nclkit.data import ManifestDataset, read_manifest
from nclkit.engine import load_model, train
from nclkit.engine.devices import device_name, pick_device
from nclkit.engine.diagnostics import loss_gradients, patch_probe
from nclkit.engine.evaluator import pixel_threshold_on_val, threshold_scores
from nclkit.engine.reports import json_safe
from nclkit.engine.runs import run_progress
from nclkit.ncl.total_loss import NCLCriterion
from nclkit.presets import PRESETS, apply_overrides, get_config

# Each row: the Config changes that make it (on top of the preset).
ROWS: dict[str, dict] = {
    "base": {"variant": "base"},
    "base_balanced": {"variant": "base", "balanced_bce": True},
    "pivot": {"variant": "pivot"},
    "full": {"variant": "full"},
    **{f"full_w{w:g}": {"variant": "full", "omega": w} for w in (0.0, 0.001, 0.1, 0.3, 1.0)},
    **{f"full_tau{t:g}": {"variant": "full", "tau": t} for t in (0.05, 0.5)},
    "full_unweighted": {"variant": "full", "sample_weighting": False},
    "full_block2": {"variant": "full", "pivot_block": 2},
    "full_block5": {"variant": "full", "pivot_block": 5},
}
METRICS = ("auc", "f1", "f1_val_threshold", "f1_oracle")


def parse_row(text: str) -> tuple[str, dict]:
    """A ROWS name, or `name=key:value;key:value` with values as `--set` takes them."""
    if "=" not in text:
        if text not in ROWS:
            raise SystemExit(f"unknown row {text!r}; known: {', '.join(ROWS)} (or name=key:value;key:value)")
        return text, ROWS[text]
    name, spec = text.split("=", 1)
    items = [kv.replace(":", "=", 1) for kv in spec.split(";") if kv]
    parsed = apply_overrides(get_config("paper"), items).to_dict()  # typed and checked as `--set` does
    return name, {key: parsed[key] for key in (item.split("=", 1)[0].strip() for item in items)}


def diagnostics_hook(cfg, manifest: str, path: Path, device):
    """An epoch_end callback writing `loss_gradients` and the patch probe of the model as it trains."""
    train_records = [r for r in read_manifest(manifest, split="train") if r.label == 1]
    val_records = [r for r in read_manifest(manifest, split="val") if r.label == 1]
    crops = ManifestDataset(train_records[:16], cfg, train=True)
    with torch.random.fork_rng(devices=[]):  # the same 16 crops every time, the caller's stream untouched
        torch.manual_seed(0)
        batch = [crops[i] for i in range(len(crops))]
    image, mask, valid = (torch.stack([b[k] for b in batch]).to(device) for k in ("image", "mask", "valid"))
    criterion = NCLCriterion.from_config(cfg)
    path.write_text("")

    def hook(epoch: int, model) -> None:
        row = {"epoch": epoch, **loss_gradients(model, criterion, image, mask, valid),
               "probe_auc": patch_probe(model, train_records[:64], val_records, cfg.patch_size, cfg.eval_max_side)}
        with open(path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
    return hook


def run_row(args, name: str, changes: dict, seed: int, device, tests: dict, val) -> dict:
    cfg = apply_overrides(get_config(args.preset, **changes, seed=seed), args.overrides)
    run_dir = Path(args.out) / f"{name}_seed{seed}"
    if run_progress(run_dir, cfg.epochs)[0] != "complete":
        hook = diagnostics_hook(cfg, args.data, Path(args.out) / f"{name}_seed{seed}_diagnostics.jsonl", device) \
            if args.diagnose else None
        train(cfg, args.data, run_dir, device=device, progress=False, overwrite=True, epoch_end=hook)
    summary = json.loads((run_dir / "summary.json").read_text())
    row = {"row": name, "seed": seed, "changes": changes, "train_seconds": summary["train_seconds"],
           "best_epoch": (summary["best_val"] or {}).get("epoch")}
    for which in ("best", "last"):
        model, _ = load_model(run_dir / f"{which}.pt", device=device)
        chosen = pixel_threshold_on_val(model, val, device=device)
        row[which] = {"val_threshold": chosen["threshold"],
                      **{test: threshold_scores(model, recs, chosen["threshold"], device) for test, recs in tests.items()}}
    print(f"[diagnosis] {name} seed {seed}: " + "  ".join(
        f"{t} AUC {row['best'][t]['auc']:.3f} F1@val {row['best'][t]['f1_val_threshold']:.3f}" for t in tests),
        flush=True)
    return row


def summarise(runs: list[dict]) -> dict:
    out: dict = {}
    for r in runs:
        for which in ("best", "last"):
            for test, m in r[which].items():
                if not isinstance(m, dict):
                    continue
                for k in METRICS:
                    out.setdefault(r["row"], {}).setdefault(which, {}).setdefault(test, {}).setdefault(k, []).append(m[k])
    stat = lambda v: {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else None, "n": len(v)}  # noqa: E731
    return {row: {w: {t: {k: stat(v) for k, v in ms.items()} for t, ms in tests.items()} for w, tests in d.items()}
            for row, d in out.items()}


def render(out: Path) -> str:
    """The table of OUT/rows.json (or of a JSON file of the same form) as Markdown."""
    doc = json.loads((out if out.is_file() else out / "rows.json").read_text())
    tests = list(doc["tests"])
    head = "| row | " + " | ".join(f"{t} AUC | {t} F1@0.5 | {t} F1@val thr | {t} oracle F1" for t in tests) + " |"
    commands = doc.get("commands") or [doc["command"]]
    lines = [f"Device: {doc['device']}. " + "; ".join(f"`{c}`" for c in commands), "", head,
             "|---|" + "---|" * (4 * len(tests))]
    fmt = lambda s: "n/a" if s is None else (f"{100 * s['mean']:.1f}" + (f" ± {100 * s['sd']:.1f}" if s["sd"] else ""))  # noqa: E731
    for row, d in doc["summary"].items():
        cells = [fmt(d["best"][t][k]) for t in tests for k in METRICS]
        lines.append(f"| {row} (n={d['best'][tests[0]]['auc']['n']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save_curves(out: Path) -> Path | None:
    """`--diagnose`'s records per epoch, one line per run: the gradient omega * L_NCL sends into the tapped
    map relative to the pixel loss's, eq. 7's terms relative to chance, and the linear probe's patch AUC."""
    files = sorted(out.glob("*_diagnostics.jsonl"))
    if not files:
        return None
    import matplotlib
    matplotlib.use("Agg")  # a file, never a window
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4), layout="constrained")
    for f in files:
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        if not rows:
            continue
        name, epochs = f.name.replace("_diagnostics.jsonl", ""), [r["epoch"] for r in rows]
        axes[0].plot(epochs, [r["grad_ncl"] / r["grad_pixel"] for r in rows], label=name)
        axes[1].plot(epochs, [sum(r[f"ncl_t{i}"] for i in (1, 2, 3)) / sum(r[f"chance_t{i}"] for i in (1, 2, 3))
                              for r in rows], label=name)
        axes[2].plot(epochs, [r["probe_auc"] for r in rows], label=name)
    titles = ("|omega grad L_NCL| / |grad pixel loss| at the tapped map", "L_NCL / its value at chance (1 = nothing contrasted)",
              "linear probe: patch AUC of the tapped features (val)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    path = out / "diagnostics.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="manifest with train/val/test splits")
    p.add_argument("--cross", action="append", default=[], metavar="NAME=MANIFEST",
                   help="another data set, every tampered image scored (repeatable)")
    p.add_argument("--preset", default="real", choices=sorted(PRESETS))
    p.add_argument("--rows", default="base,full")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--diagnose", action="store_true", help="gradients, eq. 7 terms and the probe after every epoch")
    p.add_argument("--device", default=None)
    p.add_argument("--out", default="runs/diagnosis")
    p.add_argument("--render", metavar="OUT", help="print OUT/rows.json (or a JSON file of that form) as Markdown and stop")
    args = p.parse_args(argv)
    if args.render:
        print(render(Path(args.render)))
        if Path(args.render).is_dir():
            save_curves(Path(args.render))
        return 0
    if not args.data:
        p.error("--data is required")
    device = pick_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tests = {"test": read_manifest(args.data, split="test")}
    tests.update({n: read_manifest(m) for n, m in (c.split("=", 1) for c in args.cross)})
    val = read_manifest(args.data, split="val")
    path = out / "rows.json"
    doc = json.loads(path.read_text()) if path.exists() else {"runs": []}
    done = {(r["row"], r["seed"]) for r in doc["runs"]}
    for text in args.rows.split(","):
        name, changes = parse_row(text)
        for seed in (int(s) for s in args.seeds.split(",")):
            if (name, seed) in done:
                continue
            doc["runs"].append(run_row(args, name, changes, seed, device, tests, val))
            doc.update({"preset": args.preset, "data": args.data, "tests": list(tests),
                        "device": device_name(device), "torch": torch.__version__,
                        "command": "python scripts/ncl_diagnosis.py " + " ".join(argv or sys.argv[1:]),
                        "summary": summarise(doc["runs"])})
            path.write_text(json.dumps(json_safe(doc), indent=2) + "\n")
    print(render(out))
    save_curves(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
