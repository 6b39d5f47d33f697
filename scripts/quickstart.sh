#!/usr/bin/env bash
# The main job on a fresh machine: install nclkit, make the built-in synthetic forgery set, train the
# quick preset (full NCL) on it, evaluate on its test split, and write a report with numbers and a figure.
# Everything lands in runs/quickstart/ (override with NCLKIT_RUN=folder); a re-run replaces the earlier
# training run there (--overwrite).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${NCLKIT_RUN:-runs/quickstart}"
python -m pip install --quiet --disable-pip-version-check -e .
nclkit synth --out "$RUN/synthetic" --num 1000 --seed 0
start=$(date +%s)
nclkit train --preset quick --data "$RUN/synthetic/manifest.jsonl" --out "$RUN/train" --no-progress --overwrite
train_s=$(( $(date +%s) - start ))
nclkit eval --checkpoint "$RUN/train/best.pt" --data "$RUN/synthetic/manifest.jsonl" --split test \
    --out "$RUN/report.json" --figure --no-progress
python - "$RUN" "$train_s" <<'PY'
import json, sys
run, wall = sys.argv[1], int(sys.argv[2])
rep = json.load(open(f"{run}/report.json"))
summ = json.load(open(f"{run}/train/summary.json"))
print(f"training: {summ['train_seconds']:.0f} s of training ({wall} s wall, incl. validation) for {summ['epochs_done']} epochs")
print(f"test split: per-image pixel F1@0.5 = {rep['pixel_f1']:.3f}, at the val-chosen threshold "
      f"{rep['pixel_threshold_choice']['threshold']:g} = {rep['pixel_f1_val_threshold']:.3f}, oracle (each image's "
      f"best threshold) = {rep['pixel_f1_best_threshold']:.3f}, pixel AUC = {rep['pixel_auc']:.3f} "
      f"over {rep['n_tampered']} tampered images")
print(f"report: {run}/report.json, {run}/report.md, figure {run}/report.png")
PY
