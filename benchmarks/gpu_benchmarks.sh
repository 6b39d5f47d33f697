#!/usr/bin/env bash
# nclkit's benchmarks on one GPU, within a time budget.
#
#   bash benchmarks/gpu_benchmarks.sh OUT_DIR      # from the repository root
#
# Installs nothing but nclkit itself (torch, torchvision, opencv, scikit-learn ... must be installed),
# stays under BUDGET seconds (default 470, i.e. < 8 minutes) and writes everything under OUT_DIR
# (at most 7 files, all at the top level):
#   benchmarks.log                  everything printed below
#   train_step_paper.json           paper preset, batch 4, 512 px, eager (the numbers that count)
#   profile_paper.txt               torch.profiler tables of one base and one full step, by self GPU time
#   metrics.txt                     benchmarks/metrics.py (nclkit's per-image AUC/F1 vs scikit-learn)
#   train_step_paper_compile.json   nclkit's training step under torch.compile (if time allows)
#   train_step_paper_cudnn.json     eager with torch.backends.cudnn.benchmark = True (if time allows)
set -uo pipefail
OUT="${1:?usage: bash benchmarks/gpu_benchmarks.sh OUT_DIR}"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
BUDGET=${BUDGET:-470}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/benchmarks.log") 2>&1

left() { echo $((BUDGET - SECONDS)); }
banner() { echo; echo "=== [t=${SECONDS}s, $(left)s left] $*"; }

banner "machine"
nvidia-smi || echo "nvidia-smi failed (exit $?)"
nproc

banner "install nclkit (no dependencies)"
if ! $PY -m pip install -q -e . --no-deps --no-build-isolation; then
    echo "pip install -e . failed; importing nclkit from the working tree instead"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
$PY -c "import sys, torch, torchvision, nclkit; print('python', sys.version.split()[0], '| torch', torch.__version__,
'| torchvision', torchvision.__version__, '| cuda', torch.version.cuda, '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NO CUDA DEVICE')"

banner "train_step: paper preset, eager (reference_fp32, base, pivot, full)"
timeout 200 $PY benchmarks/train_step.py --preset paper --seconds 60 \
    --out "$OUT/train_step_paper.json" --profile "$OUT/profile_paper.txt"
echo "train_step exit status $?"

banner "metrics: nclkit vs scikit-learn"
timeout 60 $PY benchmarks/metrics.py | tee "$OUT/metrics.txt"
echo "metrics exit status $?"

if [ "$(left)" -gt 150 ]; then
    banner "train_step: paper preset, torch.compile (pivot left out to save a compile)"
    cap=$(($(left) - 90)); [ "$cap" -gt 260 ] && cap=260
    timeout "$cap" $PY benchmarks/train_step.py --preset paper --seconds 30 --compile --skip-pivot \
        --out "$OUT/train_step_paper_compile.json"
    echo "train_step (compile) exit status $? (124 = stopped by its ${cap}s cap)"
else
    banner "skipping the torch.compile run: too little time left"
fi

if [ "$(left)" -gt 75 ]; then
    banner "train_step: paper preset, cudnn.benchmark on"
    timeout $(($(left) - 5)) $PY benchmarks/train_step.py --preset paper --seconds 20 --cudnn-benchmark \
        --out "$OUT/train_step_paper_cudnn.json"
    echo "train_step (cudnn.benchmark) exit status $?"
else
    banner "skipping the cudnn.benchmark run: too little time left"
fi

banner "done"
ls -l "$OUT"
