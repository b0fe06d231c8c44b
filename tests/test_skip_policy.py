"""``--fail-on-skip-except`` (tests/skip_policy.py, what CI runs with): a run whose only skips match the allowed
reason passes, any other skip (of a test or of a whole module) fails it and is named, expected failures are not skips,
and without the option nothing changes. Each case is a real pytest run of a small test folder."""
import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

ONLY_CUDA = '''
import pytest

@pytest.mark.skipif(True, reason="needs CUDA")
def test_on_a_gpu():
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_known_bug():
    assert False

def test_runs():
    pass
'''
MISSING_EXTRA = '''
import pytest

def test_without_the_extra():
    pytest.skip("the docs extra is not installed")
'''
MISSING_MODULE = '''
import pytest

pytest.importorskip("a_module_that_is_not_installed")

def test_never_collected():
    pass
'''


def run(folder: Path, *options: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "skip_policy", "-p", "no:cacheprovider", "-rs", "-q",
                           *options, str(folder)], cwd=folder, env=env, capture_output=True, text=True, timeout=120)


def test_skips_with_the_allowed_reason_pass_and_any_other_fails_the_run_naming_it(tmp_path):
    (tmp_path / "test_cuda.py").write_text(ONLY_CUDA)
    result = run(tmp_path, "--fail-on-skip-except=CUDA")
    assert result.returncode == 0, result.stdout
    assert "SKIPPED [1]" in result.stdout and "needs CUDA" in result.stdout  # -rs lists the skip

    (tmp_path / "test_extra.py").write_text(MISSING_EXTRA)
    (tmp_path / "test_module.py").write_text(MISSING_MODULE)
    result = run(tmp_path, "--fail-on-skip-except=CUDA")
    assert result.returncode == 1, result.stdout
    named = result.stdout.split("skips not allowed")[1].split("the run fails")[0]  # the section, not -rs
    assert "test_extra.py::test_without_the_extra: the docs extra is not installed" in named
    assert "test_module.py: could not import 'a_module_that_is_not_installed'" in named
    assert "needs CUDA" not in named and "known bug" not in named
    assert "2 test(s) skipped for a reason other than 'CUDA': the run fails" in result.stdout
    assert run(tmp_path).returncode == 0  # without the option a skip is a skip
    for name in ("test_cuda.py", "test_extra.py"):
        (tmp_path / name).unlink()
    assert run(tmp_path, "--fail-on-skip-except=CUDA").returncode == 1  # a skipped module alone: no tests, still 1


def test_ci_runs_both_test_runs_under_the_policy():
    ci = (TESTS.parent / ".ci" / "run").read_text()
    runs = [line for line in ci.splitlines() if line.startswith("python3 -m pytest")]
    assert len(runs) == 2 and all(line.endswith('"${SKIPS[@]}"') for line in runs), runs
    assert "SKIPS=(-rfEs --fail-on-skip-except=CUDA)" in ci  # failures, errors and skips listed; CUDA skips only
