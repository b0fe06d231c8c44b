"""Shared test set-up: offline Hugging Face, a project-local HF_HOME, few threads, the shared CIFAR-10."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from skip_policy import pytest_addoption, pytest_configure  # noqa: F401  (--fail-on-skip-except, for CI)

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HOME", str(ROOT / ".hf_home"))
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE"):
    os.environ.setdefault(_name, "1")

import torch  # noqa: E402  (after the environment is set)

torch.set_num_threads(min(2, torch.get_num_threads()))

CIFAR10_DIR = Path(os.environ.get("AUGSHIFT_CIFAR10", ROOT.parent / "shared" / "data" / "cifar10"))
TIMM_TRAIN_PY = Path(os.environ.get("AUGSHIFT_TIMM_TRAIN", ROOT.parent / "shared" / "timm" / "train.py"))
UPSTREAM_DIR = Path(os.environ.get("AUGSHIFT_UPSTREAM", ROOT.parent / "shared" / "upstream"))


@pytest.fixture(autouse=True)
def _root_logging_restored():
    """Scripts run in-process (timm's train.py: `setup_default_logging`) add root handlers bound to the test's
    captured stderr; later tests would log into that closed stream. Each test ends with the root logger it began with."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def cifar10_dir() -> Path:
    """The shared CIFAR-10 parquet folder (hub schema `img`/`label`); skips when absent."""
    if not (CIFAR10_DIR / "test-00000-of-00001.parquet").is_file():
        pytest.skip(f"shared CIFAR-10 parquet not found at {CIFAR10_DIR} (set AUGSHIFT_CIFAR10)")
    return CIFAR10_DIR


@pytest.fixture(scope="session")
def timm_train_py() -> Path:
    """The real timm train.py from pytorch-image-models; skips when absent."""
    if not TIMM_TRAIN_PY.is_file():
        pytest.skip(f"timm train.py not found at {TIMM_TRAIN_PY} (set AUGSHIFT_TIMM_TRAIN)")
    return TIMM_TRAIN_PY


@pytest.fixture(scope="session")
def upstream_dir() -> Path:
    """The unmodified upstream examples (transformers' run_image_classification.py, Accelerate's cv_example.py);
    skips when absent."""
    if not (UPSTREAM_DIR / "accelerate" / "cv_example.py").is_file():
        pytest.skip(f"upstream examples not found at {UPSTREAM_DIR} (set AUGSHIFT_UPSTREAM)")
    return UPSTREAM_DIR


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory) -> Path:
    """The documentation site, built once with warnings as errors (`mkdocs build --strict`): its folder."""
    import subprocess
    import sys

    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=ROOT,
                           capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr[-3000:]
    return out


@pytest.fixture
def ctrl_c_raises():
    """SIGINT raises KeyboardInterrupt during the test, as at a terminal, even in a run started in the background
    (a shell starts background jobs with SIGINT ignored, and Python then installs no handler of its own)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
