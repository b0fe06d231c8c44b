"""A pytest plugin that makes skips visible and fatal: ``--fail-on-skip-except=REGEX`` fails the run (exit status 1)
when a test, or a whole module at collection, is skipped for a reason the regular expression does not match
(``re.search``), and lists those skips at the end. A run with only matching skips, or without the option, keeps its
exit status; expected failures (``xfail``) are not skips.

CI runs ``pytest -rs --fail-on-skip-except=CUDA``: a test may skip on a machine without a GPU, and for no other
reason (a missing extra, a missing shared data folder, a user the test cannot run as).
"""
from __future__ import annotations

import re
import pytest

OPTION = "--fail-on-skip-except"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, metavar="REGEX", default=None,
                     help="fail the run when a test skips for a reason this regular expression does not match "
                          "(e.g. CUDA: only tests that need a GPU may skip)")


def pytest_configure(config: pytest.Config) -> None:
    allowed = config.getoption(OPTION)
    if allowed is not None:
        config.pluginmanager.register(SkipPolicy(re.compile(allowed)), "skip_policy_checker")


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason a skipped report gives (``Skipped: `` dropped)."""
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


class SkipPolicy:
    """Collects the skips whose reason ``allowed`` does not match, reports them and fails the session."""

    def __init__(self, allowed: re.Pattern) -> None:
        self.allowed = allowed
        self.unexpected: list[tuple[str, str]] = []  # (test id, reason)

    def _record(self, report) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = skip_reason(report)
            if not self.allowed.search(reason):
                self.unexpected.append((report.nodeid, reason))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.unexpected and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        if not self.unexpected:
            return
        terminalreporter.section(f"skips not allowed ({OPTION}={self.allowed.pattern})", red=True)
        for nodeid, reason in self.unexpected:
            terminalreporter.line(f"{nodeid}: {reason}")
        terminalreporter.line(f"{len(self.unexpected)} test(s) skipped for a reason other than "
                              f"{self.allowed.pattern!r}: the run fails", red=True)

