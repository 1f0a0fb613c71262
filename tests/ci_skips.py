"""Under CI=true a skipped test is a failed test, except a skip for what no CI machine has.

A test that needs a tool (gcc, strace, shellcheck, systemd-analyze, udevadm, faketime...) skips on a
developer's machine that lacks it, but .ci/run installs every such tool, so in CI a skip means
CI quietly tested less: it fails instead. What no CI machine of this kind can have (a writable
/dev/uinput, a udevadm new enough to verify rules: Debian 12 ships 252) is skipped with a reason
that starts with MACHINE; those stay skips. Every skip is named at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

MACHINE = "machine:"  # the prefix of a skip reason that CI accepts


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    if reason.startswith(MACHINE):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true and this test skipped: {reason!r}. CI must run it: install what it needs in "
        f".ci/run (a skip for what no CI machine can have starts its reason with {MACHINE!r})."
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.section(f"skips (CI allows only reasons starting {MACHINE!r})")
    for report in skipped:
        terminalreporter.write_line(f"{report.nodeid}: {skip_reason(report)}")
