#!/usr/bin/env bash
# Reproduction table: every method card's quick profile on every -synth dataset, evaluated
# with all modality subsets on val (nanmean mIoU): EMM as published (missing inputs zero-filled)
# and EMM-drop (missing modalities removed from the fusion). Prints a Markdown table.
# Usage: bash benchmarks/reproduction.sh [WORK_DIR] [DATASETS...]
# Runs land in WORK_DIR/runs/DATASET/METHOD-quick/ (the teacher is trained once per dataset
# and reused by every student); finished runs and records are reused when rerun.
# METHODS="moddrop kd" limits the runs (to split the work over parallel chains); the table is
# printed for whatever has been evaluated.
set -euo pipefail
work=${1:-runs-reproduction}
shift || true
if [ $# -gt 0 ]; then datasets=("$@"); else datasets=(deliver-synth muses-synth mcubes-synth); fi
all_methods="teacher moddrop kd robustseg robustseg-paper robustseg-no-hpdm robustseg-no-rrm robustseg-zero"
read -r -a methods <<< "${METHODS:-$all_methods}"
mkdir -p "$work" && cd "$work"
for ds in "${datasets[@]}"; do
  for m in "${methods[@]}"; do
    run="runs/$ds/$m-quick"
    if [ ! -f "$run/emm.json" ]; then
      if [ ! -f "$run/last.pt" ]; then
        rsbench train "$m" --dataset "$ds" --profile quick > "$ds-$m.log" 2>&1 || { cat "$ds-$m.log"; exit 1; }
      fi
      rsbench eval --checkpoint "$run/last.pt" --protocol all-subsets --out "$run/emm.json" > /dev/null
    fi
    if [ ! -f "$run/emm-drop.json" ]; then
      rsbench eval --checkpoint "$run/last.pt" --protocol all-subsets --fill drop --out "$run/emm-drop.json" > /dev/null
    fi
  done
done
ALL_METHODS="$all_methods" python3 - "${datasets[@]}" <<'PY'
import json, os, sys
methods = os.environ["ALL_METHODS"].split()
print("| dataset | method | full mIoU | EMM Avg | EMM E(0.2) | EMM worst | EMM-drop Avg | EMM-drop E(0.2) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for ds in sys.argv[1:]:
    for m in methods:
        if not os.path.exists(f"runs/{ds}/{m}-quick/emm-drop.json"):
            continue
        z = json.load(open(f"runs/{ds}/{m}-quick/emm.json"))["summary"]
        d = json.load(open(f"runs/{ds}/{m}-quick/emm-drop.json"))["summary"]
        print(f"| {ds} | {m} | {z['full']:.2f} | {z['avg']:.2f} | {z['e0.2']:.2f} | {z['worst']:.2f} "
              f"| {d['avg']:.2f} | {d['e0.2']:.2f} |")
PY
