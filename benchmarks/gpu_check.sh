#!/usr/bin/env bash
# The prepared GPU check, for a session lent a GPU (one short call, about 5 minutes):
#   the GPU-marked tests (AMP + scaler resume, nccl with 1 process, the CUDA noise generator), the student
#   step benchmark on the GPU, and a short paper-profile RobustSeg student run (teacher 200 iterations).
# Usage: bash benchmarks/gpu_check.sh OUT_DIR
set -euo pipefail
out=${1:-/tmp/gpu-check}
mkdir -p "$out"
python -m venv .venv-gpu && .venv-gpu/bin/pip install -q -e ".[dev]"
py=.venv-gpu/bin/python
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
$py -m pytest -q -m gpu tests 2>&1 | tee "$out/gpu-tests.txt"
$py -m pytest -q -s benchmarks/test_student_step.py 2>&1 | tee "$out/student-step.txt"
export RSBENCH_CACHE="$out/cache"
$py -m rsbench train teacher -d deliver-synth -p paper --iters 200 --out "$out/teacher" 2>&1 | tail -5 | tee "$out/teacher.txt"
$py -m rsbench train robustseg -d deliver-synth -p paper --iters 200 --stage student --teacher "$out/teacher/last.pt" \
    --out "$out/student" 2>&1 | tail -5 | tee "$out/student.txt"
