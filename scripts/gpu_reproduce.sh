#!/usr/bin/env bash
# One prepared GPU run of the COVERAGE reproduction (issue 7), for a lent H100/H200 (device tool):
#   run(command="bash scripts/gpu_reproduce.sh 1,3", carry=["carry"], timeout_s=600)
# Needs carry/COVERAGE, made here first by: python scripts/make_coverage_carry.py --root ../shared/data/COVERAGE --out carry/COVERAGE
# Tables as the first argument (default 1,3; then 5,6 in a second call). Results land in $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
TABLES="${1:-1,3}"
OUT="${OUT:-runs/gpu}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt" || true
python -m pip install --quiet --no-deps -e . 2>&1 | tail -1
python -m nclkit.cli prepare coverage --root carry/COVERAGE --out "$OUT/coverage.jsonl"
python scripts/reproduce.py --scale paper --data "$OUT/coverage.jsonl" --dataset coverage \
    --tables "$TABLES" --runs "$OUT/runs" --out "$OUT/reproduction" --set num_workers=8 2>&1 | tee "$OUT/reproduce.log"
# keep the numbers and figures, not the checkpoints (too big to bring back)
find "$OUT/runs" -name '*.pt' -delete
