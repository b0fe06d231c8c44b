"""Every command README.md, the documentation pages and the Results page (benchmarks/README.md) show runs as
written: each ``augshift``, ``augshift-timm``, ``python ...`` and launcher (``accelerate launch``, ``torchrun``)
command is parsed by the real argument parser of the program it starts, so a missing required option or a misspelt
flag fails here; a launcher's options also pass the launcher's own checks (accelerate's
``_validate_launch_command``, torchrun's ``config_from_args``), and a launch asked for N processes must start N.
Parsing only, except the slow test that runs the CPU ``accelerate launch`` command of the guides on tiny data."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DOCUMENTS, free_port

ROOT = Path(__file__).resolve().parents[1]
PAGES = (*DOCUMENTS, ROOT / "benchmarks" / "README.md")  # the Results page's commands too
EXAMPLE_VARIABLES = {"SLURM_ARRAY_TASK_ID": "0"}  # set by the scheduler the README's command runs under
MODULES = {  # python -m NAME -> the module whose main() the command runs
    "augshift.integrations.timm": "augshift.integrations.timm.launcher",
    "augshift.integrations.accelerate.train": "augshift.integrations.accelerate.train",
    "augshift.integrations.transformers.run_image_classification":
        "augshift.integrations.transformers.run_image_classification",
}
NOT_PARSED = ("pip",)  # not ours: an install (the command after its && is parsed)


class Parsed(BaseException):
    """Raised once the program's parser accepted the arguments: stops before any work."""


def readme_commands() -> list[str]:
    """The pages' shell commands (``bash`` and ``sh`` blocks), continuation lines joined, variables of earlier lines
    expanded."""
    commands = []
    for block in (found for page in PAGES for found in re.findall(r"```(?:bash|sh)\n(.*?)```", page.read_text(), re.S)):
        variables = dict(EXAMPLE_VARIABLES)
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
            assignment = re.fullmatch(r"(\w+)=(.*)", line)
            if assignment:
                variables[assignment.group(1)] = shlex.split(assignment.group(2))[0]
            elif line:
                commands.append(re.sub(r"\$\{?(\w+)\}?", lambda m: variables[m.group(1)], line))
    return commands


def launched(words: list[str]) -> tuple[str, list[str]]:
    """``(program, arguments)`` of what a launcher command starts (``-m module`` or a script), checked by the
    launcher's own parser and then by the checks it makes before it starts anything: accelerate's
    ``_validate_launch_command`` (it refuses ``--multi_gpu`` with ``--cpu``), torchrun's ``config_from_args``. A
    command asking for N > 1 processes must reach a launcher that starts N: accelerate's simple launcher (``--cpu``,
    or no ``--multi_gpu``) starts one, whatever ``--num_processes`` says."""
    if words[:2] == ["accelerate", "launch"]:
        from accelerate.commands.launch import _validate_launch_command, launch_command_parser

        args = launch_command_parser().parse_args(words[2:])
        asked = args.num_processes or 1
        args, _, _ = _validate_launch_command(args)
        several = args.multi_gpu and not args.cpu  # multi_gpu_launcher: torchrun with num_processes workers
        assert asked == 1 or several, (f"{shlex.join(words)}: accelerate would start one process, not {asked} "
                                       "(--num_processes > 1 needs --multi_gpu, and the launcher's --cpu starts one)")
        return ("-m " if args.module else "") + args.training_script, args.training_script_args
    from torch.distributed.run import config_from_args, get_args_parser

    args = get_args_parser().parse_args(words[1:])
    config_from_args(args)  # what torchrun checks before it starts anything: nodes, restarts, rendezvous, ranks
    return ("-m " if args.module else "") + args.training_script, args.training_script_args


def program_main(program: str, request, monkeypatch):
    """The ``main(argv)`` that ``program`` runs, and the argument to put first (augshift-timm's train.py, the shared
    copy of timm's: those commands skip without it)."""
    if program == "augshift":
        return importlib.import_module("augshift.cli").main, []
    if program == "augshift-timm" or program == "-m augshift.integrations.timm":
        return (importlib.import_module("augshift.integrations.timm.launcher").main,
                [str(request.getfixturevalue("timm_train_py"))])
    if program.startswith("-m "):
        name = program[3:]
        assert name in MODULES, f"README runs an unknown module {name!r}"
        return importlib.import_module(MODULES[name]).main, []
    path = ROOT / program
    assert path.is_file() and program.startswith("benchmarks/"), \
        f"README runs {program} by a repository path; run an installed module with python -m"
    monkeypatch.syspath_prepend(str(path.parent))  # a benchmark imports its neighbours
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main, []


def parse_only(monkeypatch) -> None:
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        if self.prog.endswith("config"):  # timm's first parser reads only -c
            return original(self, args, namespace)
        raise Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)
    try:
        from transformers import HfArgumentParser
    except ImportError:  # pragma: no cover - the transformers extra is installed in CI
        return
    original_dataclasses = HfArgumentParser.parse_args_into_dataclasses
    monkeypatch.setattr(HfArgumentParser, "parse_args_into_dataclasses",
                        lambda self, *a, **k: (_ for _ in ()).throw(Parsed(original_dataclasses(self, *a, **k))))


COMMANDS = readme_commands()
WRITES = [c for c in COMMANDS if shlex.split(c)[0] == "printf"]  # files the next commands read (augshift.yaml)
TEST_RUNS = [c for c in COMMANDS if shlex.split(c)[:3] == ["python", "-m", "pytest"]]
CI_RUNS = [c for c in COMMANDS if shlex.split(c)[0] == ".ci/run"]  # the development page's CI script
INSTALLS = [c for c in COMMANDS if shlex.split(c)[:2] == ["pip", "install"] and "&&" not in c]
PARSED = [c for c in COMMANDS if c not in WRITES and c not in TEST_RUNS and c not in CI_RUNS and c not in INSTALLS]


def test_the_readme_shows_commands_of_every_kind():
    firsts = {shlex.split(c)[0] for c in COMMANDS}
    assert {"augshift", "augshift-timm", "python", "accelerate", "torchrun"} <= firsts
    assert not any("integrations/" in c for c in COMMANDS)  # examples run from the installed package
    assert not [c for c in PARSED if shlex.split(c)[0] in NOT_PARSED and "&&" not in c]  # every other one is parsed


def test_the_pages_test_command_is_the_ones_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    runs = {"not slow": 'python3 -m pytest -m "not slow"', "slow": "python3 -m pytest -m slow"}  # CI's two runs
    assert TEST_RUNS and all(shlex.split(c)[:4] == ["python", "-m", "pytest", "-m"] and shlex.split(c)[4:] in
                             (["not slow"], ["slow"]) for c in TEST_RUNS)
    assert all(runs[shlex.split(c)[4]] in ci for c in TEST_RUNS)
    assert 'python -m pytest -m "not slow"' in (ROOT / "README.md").read_text()  # the README's test command
    assert all(c == ".ci/run" for c in CI_RUNS) and os.access(ROOT / ".ci" / "run", os.X_OK)


def test_the_pages_install_this_package_with_extras_it_defines():
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    installs = [word for c in INSTALLS + [c.split("&&")[0] for c in PARSED if c.startswith("pip ")]
                for word in shlex.split(c)[2:] if not word.startswith("-")]
    assert installs
    for requirement in installs:
        name, _, asked = re.fullmatch(r"([\w.-]+)(\[([\w,-]+)\])?", requirement).groups()
        assert name in ("augshift", "."), requirement
        assert set((asked or "").split(",")) - {""} <= extras, f"{requirement}: no such extra ({sorted(extras)})"


def test_the_files_the_pages_write_are_what_their_commands_read(tmp_path):
    """The ``printf ... > augshift.yaml`` line writes the timm config the next command passes with ``-c``."""
    import yaml

    assert WRITES
    for command in WRITES:
        subprocess.run(command, shell=True, cwd=tmp_path, check=True)
    config = yaml.safe_load((tmp_path / "augshift.yaml").read_text())
    assert config == {"augshift": True, "augshift_weight": 0.5, "augshift_consistency": True}
    assert any("-c augshift.yaml" in c for c in PARSED)


@pytest.mark.parametrize("command", PARSED)
def test_readme_command_parses(command, monkeypatch, tmp_path, request):
    words = shlex.split(command.split("&&")[-1] if command.startswith("pip ") else command)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # torchrun's checks set it
    for write in WRITES:  # the files the pages write for the commands after them
        subprocess.run(write, shell=True, cwd=tmp_path, check=True)
    if words[0] in ("accelerate", "torchrun"):
        program, arguments = launched(words)
    elif words[0] == "python":
        program, arguments = (f"-m {words[2]}", words[3:]) if words[1] == "-m" else (words[1], words[2:])
    else:
        program, arguments = words[0], words[1:]
    main, first = program_main(program, request, monkeypatch)
    if first:  # augshift-timm TRAIN_PY: the README's train.py is the user's copy of timm's
        assert arguments[0] == "train.py", command
        arguments = arguments[1:]
    parse_only(monkeypatch)
    with pytest.raises(Parsed):
        main([*first, *arguments])


CPU_LAUNCHES = [c for c in COMMANDS if c.startswith("accelerate launch") and " --cpu " in f"{c} "]
TINY = ["--train-limit", "64", "--eval-limit", "40", "--epochs", "1", "--batch-size", "16", "--eval-batch-size", "16"]


def test_the_guides_show_a_cpu_launch():
    assert CPU_LAUNCHES, "no `accelerate launch ... --cpu` command on the pages: the CPU multi-process command is gone"


@pytest.mark.slow
@pytest.mark.parametrize("command", CPU_LAUNCHES)
def test_cpu_launch_runs_as_written(command, cifar10_dir, tmp_path):
    """The CPU ``accelerate launch`` command of the pages, run as written on this machine with the data path, the
    output and tiny sizes substituted (argparse: the last value wins): it must start and join every process it asks
    for, which ``--multi_gpu --cpu`` (refused by accelerate) and ``--cpu`` alone (one process) do not."""
    words = shlex.split(command)
    launcher, script = words[2:words.index("-m")], words[words.index("-m"):]
    script[script.index("--data") + 1] = str(cifar10_dir)
    processes = int(launcher[launcher.index("--num_processes") + 1])
    done = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", *launcher, "--main_process_port", str(free_port()),
         "--num_cpu_threads_per_process", "1", *script, *TINY, "--output", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    (epoch,) = json.loads((tmp_path / "out" / "metrics.json").read_text())["epochs"]
    assert len(epoch["rank_weight_digests"]) == processes and epoch["eval"]["samples"] == 40
