#!/bin/bash
# SOFO vs Adam on the reduced double reach over several seeds; one JSON outcome per line.
#   bash tasks/sofo-seeds.sh [N_SEEDS] [OUT_DIR]
# Each seed runs both optimisers on identical data; compare runs with `rnntk inspect`.
set -euo pipefail
n=${1:-4}
out=${2:-runs/sofo-seeds}
mkdir -p "$out"
for seed in $(seq 0 $((n - 1))); do
  rnntk sofo-train --config tasks/sofo-double-reach.toml --seed "$seed" --out "$out/s$seed" --quiet \
    | tail -n1 | tee -a "$out/outcomes.jsonl"
done
