#!/bin/bash
# Preemptible Slurm array for any rnntk run command.
#   sbatch tasks/slurm-array.sh                         # rnntk selftest, 10 seeds
#   sbatch --array=0-31 tasks/slurm-array.sh selftest --config tasks/selftest.toml
# Each task's seed is its array index (--seed auto). On preemption or the time limit Slurm
# sends SIGTERM; rnntk checkpoints and exits 143; after --requeue the task resumes its folder.
#SBATCH --job-name=rnntk
#SBATCH --array=0-9
#SBATCH --cpus-per-task=2
#SBATCH --time=01:00:00
#SBATCH --signal=B:TERM@120
#SBATCH --requeue
#SBATCH --output=slurm-%A_%a.log
set -euo pipefail
cmd=${1:-selftest}
shift || true
out="runs/${cmd}-array${SLURM_ARRAY_JOB_ID:-local}/task-${SLURM_ARRAY_TASK_ID:-0}"
if [ -f "$out/run.h5" ]; then
  exec rnntk "$cmd" --resume "$out"                 # requeued: continue from ckpt-last.pt
else
  exec rnntk "$cmd" "$@" --seed auto --out "$out"   # exec: the signal reaches Python
fi
