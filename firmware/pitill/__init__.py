"""pitill: the software of a Raspberry Pi payment terminal that keeps selling through an outage."""

from datetime import date

__version__ = "0.1.0"
# The day this version was built: a wall clock before it is wrong (a Pi without an RTC boots with
# an old date), and no card is checked for expiry against an earlier date. Bumped at release;
# tests/test_wallclock.py checks it is not after the newest commit.
BUILD_DATE = date(2026, 11, 30)
