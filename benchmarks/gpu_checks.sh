#!/usr/bin/env bash
# Table 2 within a GPU time budget: one prepared command on one H100 / H200, under 9 minutes (BUDGET seconds, default 520):
#  0. where the machine has 2 or more GPUs (nvidia-smi -L), a 2-GPU NCCL check first (~1 min): the Accelerate example
#     trains one epoch on 256 CIFAR-10 images under torchrun --nproc_per_node 2 (NCCL); its gathered evaluation must
#     equal a 1-process evaluation of the saved model (benchmarks/time_budget.py nccl prints equal / does NOT equal);
#  1. throughput (benchmarks/throughput.py, up to ~4 min, compilation included): resnet18, resnetblur18 and
#     resnet18+augshift, the eager fast path and the captured step alone, and 5 runs with the captured step sharing
#     the GPU: images/s, epoch seconds, TFLOP/s and the fraction of bf16 peak, compile seconds, the projected wall
#     time of the whole paper preset and of its CIFAR-10 rows for one seed;
#  2. the CIFAR-10 rows of the paper's Table 2 for seed 0 -- resnet18, resnetblur18, resnet18+augshift (cosine, the
#     library default), resnet18+augshift:mse@3 (the paper's loss at the weight the CPU ablation favours),
#     resnetblur18+augshift -- at the paper recipe (CIFAR stem, full 50k / 10k, flips, one-cycle SGD lr 0.1, batch
#     128, bf16 + channels-last + the captured step), all five sharing the GPU, for the largest epoch count (at most
#     200) that the throughput of 1. lets finish in the time left (benchmarks/time_budget.py table2 chooses it and writes
#     plan.json); the table under the whole protocol family, last and best epoch, 95% intervals, the epochs and the
#     device (results.md / results.json);
#  3. the CUDA tests, if a minute is left.
# The machine needs no internet: what it lacks comes from a folder of wheels and the data from a local folder
# (WHEELS, default wheels/; CIFAR10, default data/cifar10; see gpu_setup.sh for the recipe).
# $OUT gets log.txt, throughput.md, table2.md, plan.json and results.tar.gz (every result file of the run).
set -u
START=$(date +%s)
OUT=${OUT:-/tmp/gpu-checks}
BUDGET=${BUDGET:-520}
source "$(dirname "$0")/gpu_setup.sh"
work=/tmp/gpu-results
mkdir -p "$work"
left() { echo $((BUDGET - ($(date +%s) - START))); }
if [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
    echo "== 2-GPU NCCL check" >>"$log"
    timeout 90 python3 benchmarks/time_budget.py nccl --data "$CIFAR10" --out "$work/nccl" >>"$log" 2>&1
fi
echo "== throughput" >>"$log"
timeout 240 python3 benchmarks/throughput.py --device cuda --models resnet18,resnetblur18,resnet18+augshift \
    --paths fast,compiled --steps 40 --warmup 3 --concurrency 5 --out "$work/throughput" >>"$log" 2>&1
echo "== Table 2, CIFAR-10, seed 0, epochs chosen from the throughput ($(left) s left)" >>"$log"
timeout $(($(left) - 20)) python3 benchmarks/time_budget.py table2 --budget $(($(left) - 80)) \
    --throughput "$work/throughput/results.json" --data "$CIFAR10" --out "$work/table2" >>"$log" 2>&1
if [ "$(left)" -gt 70 ]; then
    echo "== CUDA tests" >>"$log"
    timeout $(($(left) - 15)) python3 -m pytest -q -m "not slow" -k cuda -p no:cacheprovider tests >"$work/tests.txt" 2>&1
fi
cp "$work/throughput/results.md" "$OUT/throughput.md" 2>/dev/null
cp "$work/table2/results.md" "$OUT/table2.md" 2>/dev/null
cp "$work/table2/plan.json" "$OUT/plan.json" 2>/dev/null
tar czf "$OUT/results.tar.gz" -C "$work" . 2>/dev/null
head -1 "$log"
grep -h "^|" "$OUT/throughput.md" "$OUT/table2.md" 2>/dev/null
grep -h "Projected" "$OUT/throughput.md" 2>/dev/null
tail -1 "$work/tests.txt" 2>/dev/null
