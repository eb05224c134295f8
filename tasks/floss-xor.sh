#!/bin/bash
# Success vs delay, with and without flossing (the paper's headline sweep, at CPU size).
#   bash tasks/floss-xor.sh [OUT_DIR] [SEEDS] [DELAYS...]
# One line of JSON per run in OUT_DIR/outcomes.jsonl; each run is single-threaded so two run at
# once on a 2-core machine. On a cluster, submit the same commands as a Slurm array instead.
set -euo pipefail
out=${1:-runs/floss-xor}
seeds=${2:-3}
shift 2 2>/dev/null || true
delays=${*:-"20 30 40 50"}
mkdir -p "$out"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
jobs=()
for d in $delays; do
  for s in $(seq 0 $((seeds - 1))); do
    for mode in floss none; do
      extra=""; [ "$mode" = none ] && extra="--no-floss"
      jobs+=("rnntk floss --config tasks/floss-xor.toml --delay $d --seed $s --out $out/d$d-s$s-$mode --quiet $extra")
    done
  done
done
printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} sh -c '{} | tail -n1' >> "$out/outcomes.jsonl"
