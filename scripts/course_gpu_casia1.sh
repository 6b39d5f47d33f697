#!/usr/bin/env bash
# The course's GPU recipe (`course_gpu` preset) on CASIA v1: Tables 5 and 6 with three seeds, on one GPU.
#
#   bash scripts/course_gpu_casia1.sh DATA_DIR OUT_DIR [--set KEY=VALUE ...]
#
# DATA_DIR: CASIA v1.0 in its published layout (Sp/, Au/ and the ground-truth folder).
# OUT_DIR:  where the manifest, the logs, the tables (JSON, Markdown) and the validation curves go;
#           checkpoints are deleted at the end to keep the folder small.
# --set:    config overrides for every run (e.g. a shorter schedule to try the script out).
# Environment: SEEDS (default 0,1,2), PRESET (default course_gpu), COVERAGE=DIR adds COVERAGE (published
# layout) as a cross-dataset test set.
#
# The seeds train side by side, one process each (three runs of this size leave most of a large GPU idle
# when run one after another); the tables are then put together from the finished runs.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi
DATA="$1"
OUT="$2"
shift 2
SEEDS="${SEEDS:-0,1,2}"
PRESET="${PRESET:-course_gpu}"
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
{ nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null || echo "no GPU: nvidia-smi not found"; } > "$OUT/device.txt"
python -m nclkit prepare casia1 --root "$DATA" --out "$OUT/casia1_grouped.jsonl" --protocol grouped
SETS=(--train "casia1=$OUT/casia1_grouped.jsonl")
if [ -n "${COVERAGE:-}" ]; then
    python -m nclkit prepare coverage --root "$COVERAGE" --out "$OUT/coverage.jsonl"
    SETS+=(--cross "coverage=$OUT/coverage.jsonl")
fi
ROWS=base,pivot,full,block2,block5
start=$(date +%s)
pids=()
for seed in ${SEEDS//,/ }; do
    python scripts/real_data.py "${SETS[@]}" --preset "$PRESET" --rows "$ROWS" --seeds "$seed" \
        --runs "$OUT/runs" --out "$OUT/seed$seed" "$@" > "$OUT/seed$seed.log" 2>&1 &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done
if [ "$status" -ne 0 ]; then
    echo "a seed's run failed: see $OUT/seed*.log" >&2
    tail -n 5 "$OUT"/seed*.log >&2
    exit 1
fi
echo "trained in $(( $(date +%s) - start )) s" | tee "$OUT/train_time.txt"
# Every run is complete: this call only scores them and writes the tables over all seeds.
python scripts/real_data.py "${SETS[@]}" --preset "$PRESET" --rows "$ROWS" --seeds "$SEEDS" \
    --runs "$OUT/runs" --out "$OUT/tables" --reuse "$@" > "$OUT/tables.log" 2>&1
python scripts/real_data.py --render --out "$OUT/tables" > "$OUT/tables.md"
find "$OUT/runs" -name '*.pt' -delete
echo "wrote $OUT/tables (JSON, PNG) and $OUT/tables.md in $(( $(date +%s) - start )) s"
