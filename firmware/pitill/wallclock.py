"""The wall clock, distrusted: a Pi has no RTC, so its date may be years off until NTP answers.

The trusted instant is the later of the wall clock and the newest date the journal has recorded:
the journal stamps transactions with it, so their local date and time (ISO 8583 fields 12/13)
never go backwards. Card expiry is checked against the trusted date, and never against one before
the build date (pitill.BUILD_DATE), so a clock set back cannot make an expired card valid. A wall
clock that is obviously wrong (before the build date, decades after it, or behind the journal's
newest date) is a problem the screen and `pitill doctor` show. Ages and offline windows do not
use this clock: they run on the journal's persisted running time.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from pitill import BUILD_DATE

BUILD_INSTANT = datetime.combine(BUILD_DATE, time(), UTC)
# A date this far past the build is a broken clock, not a long life: never recorded as seen.
LATEST_PLAUSIBLE = BUILD_INSTANT + timedelta(days=20 * 366)
# NTP may step a clock back by a little; a clock further behind the journal is wrong.
BEHIND_TOLERANCE = timedelta(minutes=2)
FIX = (
    "enable NTP (sudo timedatectl set-ntp true) and check the network reaches a time server, "
    'or set the clock by hand (sudo date -s "YYYY-MM-DD hh:mm")'
)


def to_utc(moment: datetime) -> datetime:
    """An aware UTC instant; a naive datetime is read as local time (what datetime.now gives)."""
    return moment.astimezone(UTC)


def recordable(wall: datetime) -> bool:
    """May this wall-clock reading become the journal's newest date? (Not a broken future.)"""
    return wall <= LATEST_PLAUSIBLE


def trusted(wall: datetime, newest: datetime | None) -> datetime:
    """The instant the terminal trusts: the wall clock, never before the newest recorded date."""
    if newest is None:
        return wall if recordable(wall) else BUILD_INSTANT
    return max(wall, newest) if recordable(wall) else newest


def expiry_yymm(trusted_instant: datetime) -> str:
    """The YYMM a card's expiry is checked against: the trusted date, never before the build."""
    return max(trusted_instant, BUILD_INSTANT).astimezone().strftime("%y%m")


def clock_problem(wall: datetime, newest: datetime | None) -> str | None:
    """What is obviously wrong with the wall clock (one line), or None when it looks right."""
    shown = f"{wall.astimezone():%Y-%m-%d %H:%M}"
    if wall < BUILD_INSTANT:
        return f"the clock says {shown}, before this pitill was built ({BUILD_DATE})"
    if wall > LATEST_PLAUSIBLE:
        return f"the clock says {shown}, decades after this pitill was built ({BUILD_DATE})"
    if newest is not None and wall < newest - BEHIND_TOLERANCE:
        return (
            f"the clock says {shown}, behind the newest date in the journal "
            f"({newest.astimezone():%Y-%m-%d %H:%M})"
        )
    return None


def parse_instant(text: object) -> datetime | None:
    """An ISO date/time as stored in the journal (naive = local time), or None if it is not one."""
    try:
        return to_utc(datetime.fromisoformat(str(text)))
    except (TypeError, ValueError, OverflowError):
        return None
