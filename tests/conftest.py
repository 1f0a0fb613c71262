"""Shared by every test directory: puts tests/ on sys.path for the plain helper modules here,
and gives every test the one MockFactory fixture (`factory`)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

# --import-mode=importlib puts no test directory on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest_plugins = ["pytester"]  # tests/test_ci_skips.py runs pytest inside pytest

# Under CI=true a skip fails unless it is for what no CI machine has (see ci_skips.py).
from ci_skips import pytest_runtest_makereport, pytest_terminal_summary  # noqa: E402

__all__ = ["pytest_runtest_makereport", "pytest_terminal_summary"]


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """gpiozero's MockFactory, the one way tests drive pins (buttons, LEDs, relay, keypad)."""
    factory = MockFactory()
    yield factory
    factory.reset()  # close() alone leaves the mock's reservations behind
