"""The distrusted wall clock: the trusted instant, the expiry date, an obviously wrong clock."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from pitill import BUILD_DATE
from pitill.wallclock import (
    BUILD_INSTANT,
    LATEST_PLAUSIBLE,
    clock_problem,
    expiry_yymm,
    trusted,
)

NEWEST = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)


def test_the_trusted_instant_never_goes_before_the_newest_recorded() -> None:
    assert trusted(NEWEST - timedelta(days=2000), NEWEST) == NEWEST  # booted years back
    later = NEWEST + timedelta(hours=3)
    assert trusted(later, NEWEST) == later  # NTP stepped it forward: follow
    assert trusted(later, None) == later
    broken = LATEST_PLAUSIBLE + timedelta(days=1)
    assert trusted(broken, NEWEST) == NEWEST  # a clock decades ahead is not believed
    assert trusted(broken, None) == BUILD_INSTANT


def test_expiry_is_never_checked_against_a_date_before_the_build() -> None:
    assert expiry_yymm(datetime(1970, 1, 1, tzinfo=UTC)) == BUILD_DATE.strftime("%y%m")
    assert expiry_yymm(NEWEST) == "2706"


@pytest.mark.parametrize(
    ("wall", "newest", "said"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), None, "before this pitill was built"),
        (LATEST_PLAUSIBLE + timedelta(days=1), None, "decades after this pitill was built"),
        (NEWEST - timedelta(days=1), NEWEST, "behind the newest date in the journal"),
    ],
)
def test_an_obviously_wrong_clock_is_named(
    wall: datetime, newest: datetime | None, said: str
) -> None:
    problem = clock_problem(wall, newest)
    assert problem is not None and said in problem and f"{wall.astimezone():%Y-%m-%d}" in problem


def test_a_right_clock_and_a_small_ntp_step_back_are_not_problems() -> None:
    assert clock_problem(NEWEST, NEWEST) is None
    assert clock_problem(NEWEST + timedelta(days=30), NEWEST) is None
    assert clock_problem(NEWEST - timedelta(seconds=30), NEWEST) is None
    assert clock_problem(BUILD_INSTANT, None) is None


def test_build_date_is_not_after_the_newest_commit() -> None:
    """BUILD_DATE is bumped at release; one in the future would flag every right clock."""
    root = Path(__file__).resolve().parent.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("machine: no git checkout to read the newest commit from")
    out = subprocess.run(
        ["git", "-C", str(root), "log", "-1", "--format=%cs"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout.strip()
    if not out:
        pytest.skip("machine: git shows no commit to compare with")
    assert date.fromisoformat(out) >= BUILD_DATE
