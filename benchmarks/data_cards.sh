#!/usr/bin/env bash
# Data cards of the generated datasets: quick-profile teacher trained on all modalities and on
# each single modality (600 iterations, the quick profile shortened as when these cards were made),
# evaluated on val with all of its modalities (nanmean mIoU).
# Usage: bash benchmarks/data_cards.sh [OUT_DIR]   (about 15 minutes on 2 CPU cores)
set -euo pipefail
out=${1:-runs/data-cards}
declare -A mods=(
  [deliver-synth]="rgb depth event lidar"
  [muses-synth]="frame event lidar"
  [mcubes-synth]="rgb aolp dolp nir"
)
for ds in deliver-synth muses-synth mcubes-synth; do
  for m in all ${mods[$ds]}; do
    run="$out/$ds/$m"
    if [ ! -f "$run/full.json" ]; then
      mkdir -p "$out/$ds"
      if [ "$m" = all ]; then sel=(); else sel=(--modalities "$m"); fi
      if [ -f "$run/last.pt" ]; then sel+=(--resume); fi  # an interrupted run continues
      rsbench train teacher --dataset "$ds" --profile quick --iters 600 --out "$run" "${sel[@]}" > "$run.log" 2>&1 || { cat "$run.log"; exit 1; }
    fi
    [ -f "$run/full.json" ] || rsbench eval --checkpoint "$run/last.pt" --protocol full --out "$run/full.json" > /dev/null
    python3 -c "import json,sys; r=json.load(open('$run/full.json')); print(f\"$ds\t$m\t{r['summary']['full']:.2f}\")"
  done
done
