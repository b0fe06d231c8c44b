#!/usr/bin/env bash
# The paper's Table 1 within a GPU time budget: one prepared command on one H100 / H200, under 9 minutes (BUDGET seconds,
# default 520). GAPNet and PermuteNet on the official trunk (resnet18_stride16: ResNet-18 without max-pool, from
# scratch), Adam lr 1e-3 betas (0.5, 0.999), batch 48, flips, the full 50k / 10k CIFAR-10 split, bf16 +
# channels-last + the captured step, canvases built on the GPU. benchmarks/time_budget.py table1 first times the training
# step of PermuteNet 3x3 alone and two at once (~2 min with compilation), then runs, as far as the time goes and each
# at the largest epoch count that fits (at most 20, the paper's): PermuteNet and GAPNet 3x3 location, 3x3 class,
# 7x7 location, 7x7 class (a model pair side by side on the GPU when that measured faster). Per run: the per-epoch
# test accuracy (the training curve), last and best epoch with 95% intervals, the per-cell maps; table1.md collects
# them next to the paper's numbers with the epochs.
#
# Needs what gpu_checks.sh needs: the wheels the machine lacks (WHEELS, default wheels/) and the CIFAR-10 parquet
# folder (CIFAR10, default data/cifar10); see gpu_setup.sh.
# $OUT gets log.txt, table1.md, plan.json and results.tar.gz (every result file: JSON, markdown, curves, maps).
set -u
START=$(date +%s)
OUT=${OUT:-/tmp/gpu-table1}
BUDGET=${BUDGET:-520}
source "$(dirname "$0")/gpu_setup.sh"
work=/tmp/gpu-results
mkdir -p "$work"
left=$((BUDGET - ($(date +%s) - START) - 30))
timeout "$left" python3 benchmarks/time_budget.py table1 --budget "$((left - 20))" --data "$CIFAR10" \
    --out "$work" >>"$log" 2>&1
cp "$work/table1/table1.md" "$OUT/table1.md" 2>/dev/null
cp "$work/plan.json" "$OUT/plan.json" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$work" . 2>/dev/null
head -1 "$log"
grep -h "^|" "$OUT/table1.md" 2>/dev/null
