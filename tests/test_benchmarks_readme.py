"""The commands of benchmarks/README.md run as written, with small-size options appended (argparse: last wins)."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "benchmarks" / "README.md"
TINY = {  # appended to each README command: tiny sizes, temporary outputs
    "invariance.py": "--train-limit 64 --eval-limit 40 --epochs 1 --batch-size 32 --curve-size 5 --seeds 0",
    "ablation.py": "--train-limit 64 --eval-limit 40 --epochs 1 --batch-size 32 --variants 0,1,6 --threads 2",
    "cost.py": "--batch-32 4 --batch-224 2 --repeats 1",
    "bench_shift.py": "--quick",
    "throughput.py": "--models resnet18 --steps 1 --warmup 1 --rounds 1 --pool 64 --batch-size 8",
    "fast_path.py": "--models resnet18 --epochs 1 --train-limit 64 --eval-limit 40 --stem standard",
    "combine.py": "",
    "position.py": "--grids 3 --tasks location -- --epochs 1 --train-limit 32 --eval-limit 10",
    "finetune.py": "--train-limit 64 --eval-limit 40 --epochs 1 --batch-size 32 --seeds 0",
    "cli_startup.py": "--repeats 1",
}


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line]


def test_readme_lists_every_benchmark():
    scripts = {Path(word).name for command in readme_commands() for word in shlex.split(command) if word.endswith(".py")}
    assert scripts == set(TINY)


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c in readme_commands() if c.startswith("python ") and "cuda" not in c] +
                         [c for c in readme_commands() if c.startswith("torchrun") and "invariance" in c])
def test_readme_command_runs(command, tmp_path, cifar10_dir):
    words = shlex.split(command)
    script = next(Path(w).name for w in words if w.endswith(".py"))
    if words[0] == "torchrun":  # the same launcher, from this interpreter
        words = [sys.executable, "-m", "torch.distributed.run", "--standalone", *words[1:]]
    else:
        words[0] = sys.executable
    tiny = shlex.split(TINY[script])
    extra = ["--out", str(tmp_path / "out")]
    if script == "finetune.py":  # the checkpoint the invariance command trains: here a resnet18 saved at random init
        import torch

        from augshift.models import create_model

        torch.save(create_model("resnet18", 10).state_dict(), tmp_path / "best.pt")
        words[words.index("--checkpoint") + 1] = str(tmp_path / "best.pt")
    if script in ("invariance.py", "ablation.py", "fast_path.py", "finetune.py"):
        extra += ["--workdir", str(tmp_path / "work")]
    if "--" in tiny:  # position.py: options for augshift locate go last
        cut = tiny.index("--")
        words += tiny[:cut] + extra + tiny[cut:]
    else:
        words += tiny + extra
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AUGSHIFT_CIFAR10": str(cifar10_dir)}
    subprocess.run(words, check=True, cwd=ROOT, env=env, timeout=900)
    produced = {p.name for p in (tmp_path / "out").iterdir()}
    assert any(name.endswith(".json") for name in produced) and any(name.endswith(".md") for name in produced)
    for path in (tmp_path / "out").glob("*.json"):
        assert json.loads(path.read_text())["command"]
