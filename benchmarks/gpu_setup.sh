# Sourced by the prepared GPU runs (gpu_checks.sh, gpu_table1.sh), which work on a machine without internet: makes
# $OUT, sets the offline environment, records the versions and the GPU in the first line of $OUT/log.txt and installs
# this checkout with what the machine lacks from a folder of wheels, the generic offline recipe:
#   where there is network:  pip download --dest wheels/ --python-version 3.12 --only-binary=:all: datasets
#                            (the packages the GPU machine lacks; torch, timm and pyarrow are usually there)
#   on the GPU machine:      pip install --no-index --find-links wheels/ -e .
# WHEELS names that folder (default: wheels/ in the checkout); CIFAR10 the folder of the CIFAR-10 parquet files in
# the hub layout ({train,test}-00000-of-00001.parquet; default: data/cifar10).
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 HF_HOME=/tmp/hf_home
WHEELS=${WHEELS:-wheels}
CIFAR10=${CIFAR10:-data/cifar10}
log="$OUT/log.txt"
{
    python3 -c "import torch, timm, pyarrow; print('torch', torch.__version__, 'timm', timm.__version__, 'pyarrow', pyarrow.__version__, torch.cuda.get_device_name(0))"
    python3 -m pip install -q --no-index --find-links "$WHEELS" --no-build-isolation -e .
} >"$log" 2>&1
