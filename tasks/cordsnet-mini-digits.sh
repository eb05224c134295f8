#!/usr/bin/env bash
# Recipe of checkpoints/cordsnet-mini-digits.pth — a *mini, non-upstream* CordsNet R2
# (image 16x16, full width: areas 64x4x4) trained from a random init on scikit-learn's digits
# with upstream's stage-5 loss (rnntk.cordsnet.train.train_mini_digits):
# 100 spontaneous + 100 stimulus steps, cross-entropy on stimulus steps 70-99 weighted by
# logspace(-3, 0, 30), 20 post-stimulus steps (upstream: 100) with the 1e-3 settling penalty on
# the last 10; AdamW lr 3e-3 (upstream's 1e-5 is for fine-tuning), grad-norm clip 1, batch 32,
# 3 epochs over the first 1,500 digits (the other 297 held out). CPU: ~141 steps.
#
# Usage: bash tasks/cordsnet-mini-digits.sh [RUN_DIR]   (then check the two commands below)
#
# Upstream training stages 1-4 (CNN pre-training with BN folding, inverse initialisation,
# linear model, PReLU annealing) are not supported by rnntk: they need ImageNet-scale data,
# a ResNet-18 start file and GPU-days; see README "CordsNet" for the reasons.
set -euo pipefail
OUT=${1:-runs/cordsnet-mini-digits}
python - "$OUT" <<'PY'
import sys
from rnntk.cordsnet.train import train_mini_digits
print(train_mini_digits(sys.argv[1], epochs=3, n_train=1500, batch_size=32, lr=3e-3, width=1.0, image_size=16, seed=0))
PY
cp "$OUT/model.pt" checkpoints/cordsnet-mini-digits.pth
rnntk cordsnet-eval --checkpoint checkpoints/cordsnet-mini-digits.pth --data digits --record-stride 10 --force --out "$OUT-eval"
rnntk cordsnet-eigs checkpoints/cordsnet-mini-digits.pth --force --out "$OUT-eigs"
