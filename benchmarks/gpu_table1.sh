#!/usr/bin/env bash
# The paper's Table 1 at 3x3 with the official recipe, as one prepared run on one H100 / H200 (under 10 minutes):
# GAPNet and PermuteNet on the official trunk (resnet18_stride16: ResNet-18 without max-pool, from scratch), Adam
# lr 1e-3 betas (0.5, 0.999), batch 48, flips, the full 50k / 10k CIFAR-10 split, location task; 20 epochs is
# the paper's length, EPOCHS (default 8) shortens it to fit one device call. Per-epoch test accuracy (the
# training curves), last and best epoch, per-cell maps. The class column: TASKS=location,class (twice the time).
#
# Needs the same git-ignored folders as gpu_checks.sh (.whl/ wheels of datasets 5.2.0, dill 0.4.1,
# multiprocess 0.70.19 for python 3.12; .gpu_data/cifar10/{train,test}-00000-of-00001.parquet).
# Results go to $OUT/table1 and $OUT/log.txt.
set -u
OUT=${OUT:-/tmp/gpu-table1}
EPOCHS=${EPOCHS:-8}
TASKS=${TASKS:-location}
source "$(dirname "$0")/gpu_setup.sh"
timeout 540 python3 benchmarks/position.py --preset paper --grids 3 --tasks "$TASKS" --device cuda \
    --data .gpu_data/cifar10 --out "$OUT/table1" -- --epochs "$EPOCHS" >>"$log" 2>&1
head -1 "$log"
grep -h "^|" "$OUT/table1/table1.md"
