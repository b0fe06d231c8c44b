# Sourced by the prepared GPU runs (gpu_checks.sh, gpu_table1.sh) on an offline GPU machine: makes $OUT, sets the
# offline environment, records the versions and the GPU in the first line of $OUT/log.txt, installs the carried
# wheels (.whl/: datasets 5.2.0, dill 0.4.1, multiprocess 0.70.19 for python 3.12) and this checkout.
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 HF_HOME=/tmp/hf_home
log="$OUT/log.txt"
{
    python3 -c "import torch, timm, pyarrow; print('torch', torch.__version__, 'timm', timm.__version__, 'pyarrow', pyarrow.__version__, torch.cuda.get_device_name(0))"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    python3 -m pip install -q --no-index --no-deps --no-build-isolation -e .
} >"$log" 2>&1
export PYTHONPATH=/tmp/site
