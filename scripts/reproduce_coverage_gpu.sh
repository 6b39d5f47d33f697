#!/usr/bin/env bash
# The paper-scale reproduction on COVERAGE (the paper's 75/25 split) on one GPU.
#
#   bash scripts/reproduce_coverage_gpu.sh DATA_DIR OUT_DIR [TABLES]
#
# DATA_DIR: COVERAGE in its published layout (the TIFFs, or the PNG copy of scripts/copy_coverage_png.py).
# OUT_DIR:  where the manifest, the logs, the tables and the figures go (checkpoints are deleted at the
#           end to keep the folder small).
# TABLES:   the paper's tables to reproduce, comma-separated (default 1,3; then 5,6 in a second call).
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi
DATA="$1"
OUT="$2"
TABLES="${3:-1,3}"
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt" || true
python -m nclkit.cli prepare coverage --root "$DATA" --out "$OUT/coverage.jsonl"
python scripts/reproduce.py --scale paper --data "$OUT/coverage.jsonl" --dataset coverage \
    --tables "$TABLES" --runs "$OUT/runs" --out "$OUT/reproduction" --set num_workers=8 2>&1 | tee "$OUT/reproduce.log"
# keep the numbers and figures, not the checkpoints (hundreds of MiB each)
find "$OUT/runs" -name '*.pt' -delete
