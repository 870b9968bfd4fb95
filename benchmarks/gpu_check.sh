#!/usr/bin/env bash
# The GPU check in one go (about 8 minutes on one H100-class GPU), from the repository root:
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]        (default runs/gpu-check)
#
# 1. benchmarks/gpu_check.py: examples/s of StrAttack and cw-l2 at batch 180 and 1,000 on MNIST,
#    CIFAR-10 and a 224×224 model, peak GPU memory, the model's forward+backward share
# 2. make bench on the GPU: every benchmark of benchmarks/run.py with --device cuda (quick)
# 3. the test suite's CUDA variants (pytest -k cuda)
# Each step has its own time limit; a step that fails or runs out of time does not stop the
# others. Everything is written to OUT_DIR (*.json, *.log); the exit status is the number of
# steps that failed.
set -u
OUT=${1:-runs/gpu-check}
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}
export PYTHONPATH=${PYTHONPATH:-$PWD}
mkdir -p "$OUT"
failed=0
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2; shift 2
    echo "== $name (at most $limit s)"
    if timeout "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1; then
        echo "== $name: ok"
    else
        echo "== $name: FAILED (exit $?)"; failed=$((failed + 1))
    fi
}
$PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')" \
    || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
step throughput 270 $PY benchmarks/gpu_check.py --device cuda --minutes 3 --out "$OUT/gpu_check.json"
step bench 150 $PY benchmarks/run.py --device cuda --out "$OUT/bench.json"
step cuda-tests 60 $PY -m pytest -q -k cuda tests
exit $failed
