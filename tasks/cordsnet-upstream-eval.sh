#!/usr/bin/env bash
# Evaluate an upstream CordsNet checkpoint (e.g. wmws2/cordsnet's cordsnetr8.pth, ImageNet R8)
# on a local ImageNet-style validation tree (VAL_DIR/<synset>/<image>.JPEG, sorted synsets =
# class indices), with upstream's protocol (100 spontaneous + 100 stimulus steps, alpha 0.2,
# resize 256 / centre crop 224 / ImageNet normalisation), recording the two top areas
# (6, 7) every 10 steps, and the per-area spectra of the recurrent convs.
# ~2 s per image on a 2-core CPU for R8: use --limit for a smoke run, a GPU (--device cuda) for more.
#
# Usage: bash tasks/cordsnet-upstream-eval.sh MODEL.pth VAL_DIR [LIMIT]
set -euo pipefail
MODEL=$1
VAL=$2
LIMIT=${3:-16}
rnntk cordsnet-eval --checkpoint "$MODEL" --data "folder:$VAL" --dataset-preset imagenet --limit "$LIMIT" \
  --record-layers 6,7 --record-stride 10 --record-pool avg2 --batch-size 8
rnntk cordsnet-eigs "$MODEL" --method arnoldi --k 20 --which both   # restarted Krylov-Schur to --tol 1e-8
