#!/bin/bash
# Why does the reduced double reach plateau? One rnntk sofo-train run per lever, all from the
# former cpu-small preset (BASE below: n=32, B=32, dt=10 ms so T=200, K=32, 300 iterations,
# lr 1, damping 1e-3) with ONE option changed (later flags win), plus the loss floor of a
# scripted computed-torque controller (config "floor").
#
#   bash tasks/sofo-double-reach-plateau.sh [OUT_DIR] [CONFIG ...]     # default: every CPU config
#   bash tasks/sofo-double-reach-plateau.sh runs/plateau floor base hidden64
#   RNNTK_DEVICE=cuda bash tasks/sofo-double-reach-plateau.sh runs/plateau paper   # GPU only
#
# Each run prints one line to OUT_DIR/table.tsv: config, iterations, wall-clock (s), final
# validation loss, median end-of-hold distance to target 1 and 2 over reachable validation
# targets (cm, 64 fixed trials with fixed noise), reach_success (fraction of reachable holds
# ending within 2 cm). On 2 CPU cores the whole CPU sweep takes about 1-2 hours; every run
# is independent, so pass the configs you want. Results: see the SOFO section of README.md.
set -euo pipefail
out=${1:-runs/sofo-plateau}
shift || true
mkdir -p "$out"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

BASE="--hidden 32 --batch 32 --dt 0.01 -K 32 --iters 300 --lr 1.0 --damping 1e-3 --adam-lr 1e-2"
declare -A CFG=(
  [base]=""                                       # the cpu-small preset as it was
  [iters1500]="--iters 1500"                      # 5x the iterations
  [hidden64]="--hidden 64"                        # capacity
  [hidden128]="--hidden 128"
  [K64]="-K 64"                                   # tangents
  [K128]="-K 128"
  [n64K64]="--hidden 64 -K 64 --iters 600"
  [dt5ms]="--dt 0.005"                            # tau/dt = 4 (T = 400)
  [dt2ms]="--dt 0.002"                            # upstream's tau/dt = 10 (T = 1000)
  [damp1e-5]="--damping 1e-5 --lr 0.1"            # upstream's damping (stable with lr 0.1)
  [damp1e-2]="--damping 1e-2"
  [nonoise]="--no-noise"                          # no multiplicative rate noise
  [batch128]="--batch 128"
  [adam]="--optimizer adam --adam-lr 1e-2 --iters 600"
  [gain0.5]="--init-gain 0.5"                     # initial recurrent spectral radius (upstream's: ~0.09)
  [gain0.9]="--init-gain 0.9"
  [gain1.2]="--init-gain 1.2"
  [gain0.9it1500]="--init-gain 0.9 --iters 1500"  # slow memory from the start and 5x the iterations
  [single]="--task single-reach"                  # one reach, same preset: is reaching itself learnt?
  [paper]="--hidden 64 --batch 256 --dt 0.002 -K 128 --iters 5000 --lr 0.1 --damping 1e-5"  # upstream sizes (GPU)
)
ORDER=(base iters1500 hidden64 hidden128 K64 K128 n64K64 dt5ms dt2ms damp1e-5 damp1e-2 nonoise batch128 adam gain0.5 gain0.9 gain1.2 gain0.9it1500 single)
[ $# -gt 0 ] && ORDER=("$@")

row() {  # config run_dir -> one TSV line from summary.json
  python - "$1" "$2" <<'EOF'
import json, sys
name, d = sys.argv[1], sys.argv[2]
s = json.load(open(f"{d}/summary.json"))
f = s["final"]
pre = "sofo_" if "sofo_reach_error_hold1" in f else ("adam_" if "adam_reach_error_hold1" in f else "")
cm = lambda k: f"{100 * f[pre + k]:.1f}"
print("\t".join([name, str(s["step"]), f"{s['wall_s']:.0f}", f"{f[pre + 'val_loss_final']:.4f}", cm("reach_error_hold1"),
                 cm("reach_error_hold2") if pre + "reach_error_hold2" in f else "-", f"{f[pre + 'reach_success']:.2f}"]))
EOF
}

[ -s "$out/table.tsv" ] || printf "config\titers\twall_s\tval_loss\thold1_cm\thold2_cm\treach_success\n" > "$out/table.tsv"
for name in "${ORDER[@]}"; do
  if [ "$name" = floor ]; then  # scripted controller on the same 64 validation trials (seed 0)
    python - <<'EOF' | tee -a "$out/table.tsv"
import copy
import torch
from rnntk.sofo.models.arm import central_spot
from rnntk.sofo.problems import ReachProblem
from rnntk.sofo.tasks import reach
# floor: reach target 1, then target 2. The other scripted paths skip target 1 (first waypoint
# replaced): skip1 goes to target 2 at go 1; centre1 stays at the centre until go 2, then
# goes to target 2. Loss and errors always against the real targets.
for dt in (0.01, 0.002):
    prob = ReachProblem("double-reach", hidden=32, dt=dt)
    b = prob.sample(64, torch.Generator().manual_seed(10_007))  # the validation trials of seed 0
    tr = b.trials
    tg = tr.extra["hold_targets"]
    for kind, first in (("floor", tg[:, 0]), ("skip1", tg[:, 1]), ("centre1", torch.tensor(central_spot()).expand_as(tg[:, 0]))):
        way = copy.copy(tr)
        way.extra = {**tr.extra, "hold_targets": torch.stack([first, tg[:, 1]], 1)}
        hand = reach.scripted_reach(way)
        loss = prob.mse.scale / tr.batch * float((tr.mask[..., None].double() * (hand - tr.targets.double()) ** 2).sum())
        s = reach.reach_summary(reach.reach_errors(hand, tr.extra["hold_masks"], tg))
        print(f"{kind}_dt{dt:g}\t-\t-\t{loss:.4f}\t{100 * s['reach_error_hold1']:.1f}\t{100 * s['reach_error_hold2']:.1f}\t{s['reach_success']:.2f}")
EOF
    continue
  fi
  [ -v "CFG[$name]" ] || { echo "unknown config $name (one of: floor ${!CFG[*]})" >&2; exit 2; }
  # shellcheck disable=SC2086
  rnntk sofo-train --task double-reach --optimizer sofo $BASE ${CFG[$name]} --eval-every 50 \
    --out "$out/$name" --force --quiet > /dev/null
  row "$name" "$out/$name" | tee -a "$out/table.tsv"
done
