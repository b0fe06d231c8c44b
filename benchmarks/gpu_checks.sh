#!/usr/bin/env bash
# The engine's GPU checks, as one prepared run on one H100 / H200 (under 8 minutes): training throughput of
# the old loop, the fast path and 4 runs sharing the GPU (benchmarks/throughput.py), the fast path's accuracy
# against fp32 over 15 epochs of the paper recipe (benchmarks/fast_path.py), then the CUDA tests.
#
# It needs what an offline GPU machine lacks, in two git-ignored folders of the checkout:
#   .whl/       wheels of datasets 5.2.0, dill 0.4.1 and multiprocess 0.70.19 (python 3.12)
#   .gpu_data/  a copy of the CIFAR-10 parquet folder (cifar10/{train,test}-00000-of-00001.parquet)
# Results go to $OUT/throughput, $OUT/fast_path, $OUT/tests.txt and $OUT/log.txt.
set -u
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 HF_HOME=/tmp/hf_home
log="$OUT/log.txt"
{
    python3 -c "import torch, timm, pyarrow; print('torch', torch.__version__, 'timm', timm.__version__, 'pyarrow', pyarrow.__version__, torch.cuda.get_device_name(0))"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
} >"$log" 2>&1
export PYTHONPATH=/tmp/site
echo "== throughput" >>"$log"
timeout 170 python3 benchmarks/throughput.py --device cuda --steps 150 --warmup 20 --concurrency 4 \
    --out "$OUT/throughput" >>"$log" 2>&1
echo "== fast path accuracy" >>"$log"
timeout 230 python3 benchmarks/fast_path.py --data .gpu_data/cifar10 --devices cuda:0,cuda:0,cuda:0,cuda:0 \
    --workdir /tmp/fast_path --out "$OUT/fast_path" >>"$log" 2>&1
echo "== CUDA tests" >>"$log"
timeout 50 python3 -m pytest -q -m "not slow" -k cuda -p no:cacheprovider tests >"$OUT/tests.txt" 2>&1
head -1 "$log"
grep -h "^|" "$OUT/throughput/results.md" "$OUT/fast_path/results.md"
grep -h "Projected" "$OUT/throughput/results.md"
tail -1 "$OUT/tests.txt"
