"""The supervisor PIN: a salted scrypt hash in the journal's meta table, and the lock after
wrong tries, counted on the journal's running-time clock so that a restart does not reset it.

The core never sees the hash: the shell answers its VerifyPin with PinChecked (app.py). Checking
is slow on purpose (scrypt), so it runs off the event loop.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from dataclasses import dataclass
from pathlib import Path

from pitill.core.types import PIN_MAX_DIGITS, PIN_MIN_DIGITS
from pitill.errors import ConfigError
from pitill.journal.store import Journal
from pitill.kdf import hash_secret, secret_matches

PIN_HASH_SETTING = "supervisor_pin"  # "scrypt$n$r$p$salt_hex$hash_hex"
PIN_FAILURES_SETTING = "supervisor_pin_failures"  # wrong tries since the last right one
PIN_LOCKED_UNTIL_SETTING = "supervisor_pin_locked_until_runtime_s"  # on Journal.runtime_s

# scrypt cost: N=2**14, r=8, p=1 takes 16 MiB and about 0.3 s on a Pi Zero 2 W (512 MB of RAM,
# and the terminal must keep selling meanwhile), about 50 ms on a laptop; see DECISIONS.md.
SCRYPT_N = 2**14  # r, p, salt and hash sizes: pitill.kdf

TRIES_BEFORE_LOCK = 5
FIRST_LOCK_S = 60.0  # after 5 wrong tries; each further 5 double it
MAX_LOCK_S = 3600.0
# PINs anyone would try first: the doctor treats them as "the default" (pitill ships none).
TRIVIAL_PINS = ("0000", "1234", "1111", "12345678")


def check_pin_format(pin: str) -> str:
    """The PIN if it is 4-8 digits, else ConfigError saying what is wrong."""
    if not (pin.isascii() and pin.isdigit()) or not PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS:
        raise ConfigError(
            f"a supervisor PIN is {PIN_MIN_DIGITS} to {PIN_MAX_DIGITS} digits (0-9), "
            f"got {len(pin)} character(s); key it again"
        )
    return pin


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """The stored form of a PIN: scrypt with a fresh random salt, parameters kept with it."""
    return hash_secret(pin, SCRYPT_N, salt)


def pin_matches(pin: str, stored: str) -> bool:
    """Whether `pin` hashes to `stored` (compared in constant time). A malformed record: False."""
    return secret_matches(pin, stored)


def lock_s(failures: int) -> float:
    """How long the menu locks after the `failures`-th wrong try in a row: 0 between locks,
    then 60 s, 120 s, 240 s... at every fifth, at most an hour."""
    if failures == 0 or failures % TRIES_BEFORE_LOCK:
        return 0.0
    return float(min(MAX_LOCK_S, FIRST_LOCK_S * 2 ** (failures // TRIES_BEFORE_LOCK - 1)))


@dataclass(frozen=True)
class PinVerdict:
    ok: bool
    tries_left: int  # wrong tries until the next lock
    locked_for_s: float  # > 0: the menu is locked this long (the PIN was not even checked)


class PinGuard:
    """The PIN and its lock, kept in the journal (thread-safe: the journal is)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def is_set(self) -> bool:
        return self.journal.setting(PIN_HASH_SETTING) is not None

    def set_pin(self, pin: str) -> None:
        """Store a new PIN (StorageError if the journal cannot) and clear the wrong tries."""
        stored = hash_pin(check_pin_format(pin))
        self.journal.save_setting(PIN_HASH_SETTING, stored)
        self.journal.save_setting(PIN_FAILURES_SETTING, "0")
        self.journal.save_setting(PIN_LOCKED_UNTIL_SETTING, "0")

    def failures(self) -> int:
        return int(self.journal.setting(PIN_FAILURES_SETTING) or 0)

    def locked_for_s(self) -> float:
        """Running time left on the lock (0 when not locked)."""
        until_s = float(self.journal.setting(PIN_LOCKED_UNTIL_SETTING) or 0)
        return max(0.0, until_s - self.journal.runtime_s())

    def verify(self, pin: str) -> PinVerdict:
        """Check a keyed PIN and count the outcome durably. While locked nothing is checked."""
        locked = self.locked_for_s()
        if locked > 0:
            return PinVerdict(False, 0, locked)
        stored = self.journal.setting(PIN_HASH_SETTING)
        if stored is not None and pin_matches(pin, stored):
            self.journal.save_setting(PIN_FAILURES_SETTING, "0")
            return PinVerdict(True, TRIES_BEFORE_LOCK, 0.0)
        failures = self.failures() + 1
        self.journal.save_setting(PIN_FAILURES_SETTING, str(failures))
        lock = lock_s(failures)
        if lock > 0:
            until_s = self.journal.runtime_s() + lock
            self.journal.save_setting(PIN_LOCKED_UNTIL_SETTING, f"{until_s:.1f}")
            self.journal.save_runtime()  # the lock is measured on it: keep it across a crash
        return PinVerdict(False, TRIES_BEFORE_LOCK - failures % TRIES_BEFORE_LOCK, lock)


def pin_state(settings: dict[str, str]) -> str:
    """For the doctor, from the journal's settings: "unset", "trivial" or "set"."""
    stored = settings.get(PIN_HASH_SETTING)
    if stored is None:
        return "unset"
    if any(pin_matches(pin, stored) for pin in TRIVIAL_PINS):
        return "trivial"
    return "set"


# --- `pitill pin set` ----------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pin = commands.add_parser(
        "pin",
        help="set the supervisor PIN that guards the FN menu",
        description=(
            "Set the supervisor PIN (4-8 digits) that guards mode changes, the report and every "
            "supervisor power. It is stored only as a salted scrypt hash in the journal. Run it "
            "while the terminal is stopped (at install); on the terminal, FN asks for a new PIN "
            "while none is set. On a terminal the PIN is asked twice, hidden; from a pipe, the "
            "first line of standard input is the PIN."
        ),
        epilog="examples:\n  sudo pitill pin set --data-dir /var/lib/pitill\n"
        "  echo 2580 | pitill pin set --data-dir data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = pin.add_subparsers(dest="pin_command", metavar="ACTION", required=True)
    set_pin = actions.add_parser("set", help="set or change the supervisor PIN")
    set_pin.add_argument(
        "--data-dir", type=Path, default=Path("/var/lib/pitill"), help="the terminal's data dir"
    )
    set_pin.set_defaults(handler=_pin_set_command)


def _read_new_pin() -> str:
    if not sys.stdin.isatty():
        return check_pin_format(sys.stdin.readline().strip())
    first = check_pin_format(getpass.getpass("New supervisor PIN: "))
    if getpass.getpass("Same PIN again: ") != first:
        raise ConfigError("the two PINs differ; nothing was changed, run pitill pin set again")
    return first


def _pin_set_command(args: argparse.Namespace) -> int:
    from pitill.journal.datadir import DataDirLock, check_journal_present, note_journal_opened
    from pitill.journal.seal import KEY_FILE_NAME, Sealer

    pin = _read_new_pin()
    data_dir: Path = args.data_dir
    with DataDirLock.acquire(data_dir):  # refused while the terminal runs on this directory
        check_journal_present(data_dir)
        sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
        with Journal.open(data_dir, sealer) as journal:
            note_journal_opened(data_dir)
            PinGuard(journal).set_pin(pin)
    print(f"supervisor PIN set in {data_dir}")
    if pin in TRIVIAL_PINS:
        print("warning: that PIN is among the first anyone tries; pitill doctor will flag it")
    return 0
