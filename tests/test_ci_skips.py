"""CI cannot quietly test less: under CI=true a skip fails (unless for what no CI machine has)
and a test that hangs fails."""

from __future__ import annotations

import pytest

INNER_TESTS = """
import pytest

def test_needs_a_tool():
    pytest.skip("strace is not installed")

@pytest.mark.skipif(True, reason="machine: /dev/uinput is absent or not writable")
def test_needs_a_device():
    pass

def test_plain():
    pass

@pytest.mark.xfail(reason="a known bug")
def test_known_bug():
    assert False
"""


def run_inner(pytester: pytest.Pytester, ci: str) -> pytest.RunResult:
    pytester.makeconftest("from ci_skips import pytest_runtest_makereport, pytest_terminal_summary")
    pytester.makepyfile(INNER_TESTS)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CI", ci)
        return pytester.runpytest("-p", "no:cacheprovider")


def test_under_ci_a_skip_for_a_missing_tool_fails(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, "true")
    result.assert_outcomes(passed=1, failed=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["*CI=true and this test skipped: 'strace is not installed'*"])
    result.stdout.fnmatch_lines(["*test_needs_a_device: machine: /dev/uinput*"])


def test_outside_ci_a_skip_stays_a_skip_and_is_named(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, "")
    result.assert_outcomes(passed=1, skipped=2, xfailed=1)
    result.stdout.fnmatch_lines(["*test_needs_a_tool: strace is not installed"])


def test_a_hanging_test_fails_after_the_global_timeout(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("timeout"), "pip install -e '.[dev]'"
    assert 0 < float(pytestconfig.getini("timeout")) <= 300
