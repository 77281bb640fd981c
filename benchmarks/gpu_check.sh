#!/usr/bin/env bash
# The prepared GPU check, for a session lent a GPU (one short call, about 5 minutes):
#   the GPU-marked tests (AMP + scaler resume, nccl with 1 process, the CUDA noise generator), the student
#   step benchmark on the GPU, and a short paper-profile RobustSeg student run (teacher 200 iterations).
#   With RSBENCH_CMNEXT_FILE (a local cmnext_b2_deliver_rgbdel.pth) and RSBENCH_DELIVER_ROOT (the real DELIVER
#   folder) set, existing, and a GPU present: EMM of that released CMNeXt-B2 at 1024, its group means (0..3
#   modalities missing) printed beside the published targets (benchmarks/emm_group_means.py); else one line
#   saying what was skipped and why.
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
cmnext_file=${RSBENCH_CMNEXT_FILE:-}
deliver_root=${RSBENCH_DELIVER_ROOT:-}
if [[ -z "$cmnext_file" || -z "$deliver_root" ]]; then
    echo "skipped released CMNeXt EMM: set RSBENCH_CMNEXT_FILE (cmnext_b2_deliver_rgbdel.pth) and RSBENCH_DELIVER_ROOT" \
        | tee "$out/cmnext-emm.txt"
elif [[ ! -f "$cmnext_file" || ! -d "$deliver_root" ]]; then
    echo "skipped released CMNeXt EMM: no file at RSBENCH_CMNEXT_FILE=$cmnext_file or no folder at" \
        "RSBENCH_DELIVER_ROOT=$deliver_root" | tee "$out/cmnext-emm.txt"
elif ! $py -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "skipped released CMNeXt EMM: no CUDA device visible to torch" | tee "$out/cmnext-emm.txt"
else
    $py -m rsbench eval --released cmnext_b2_deliver_rgbdel --weights "$cmnext_file" --dataset deliver \
        --root "$deliver_root" --protocol emm --convention zero-absent --batch-size 8 \
        --out "$out/cmnext-emm.json" 2>&1 | tail -40 \
        | tee "$out/cmnext-emm.txt"
    $py benchmarks/emm_group_means.py "$out/cmnext-emm.json" 2>&1 | tee -a "$out/cmnext-emm.txt"
fi
