"""The supervisor PIN in the shell: a salted scrypt hash, a lock that grows and survives a
restart (on the journal's running-time clock), `pitill pin set` and the doctor's warning."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pitill.journal.listing import read_settings
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import Journal
from pitill.supervisor import (
    PIN_HASH_SETTING,
    PinGuard,
    check_pin_format,
    hash_pin,
    lock_s,
    pin_matches,
    pin_state,
)
from pitill_cli import PITILL


class Mono:
    """A monotonic clock the test moves by hand (the journal's running time follows it)."""

    def __init__(self) -> None:
        self.s = 1000.0

    def __call__(self) -> float:
        return self.s


def open_journal(data_dir: Path, mono: Mono) -> Journal:
    sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
    return Journal.open(data_dir, sealer, monotonic=mono)


def test_the_stored_form_is_a_salted_scrypt_hash_never_the_pin() -> None:
    first, second = hash_pin("2580"), hash_pin("2580")
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$16384$8$1$") and "2580" not in first
    assert pin_matches("2580", first) and pin_matches("2580", second)
    assert not pin_matches("2581", first)
    assert not pin_matches("2580", "md5$abc")  # an unknown scheme never matches


@pytest.mark.parametrize("bad", ["123", "123456789", "12a4", "", "１２３４"])
def test_a_pin_is_four_to_eight_ascii_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="4 to 8 digits"):
        check_pin_format(bad)


def test_the_lock_grows_at_every_fifth_wrong_try() -> None:
    assert [lock_s(n) for n in range(1, 5)] == [0.0] * 4
    assert (lock_s(5), lock_s(10), lock_s(15), lock_s(50)) == (60.0, 120.0, 240.0, 3600.0)


def test_five_wrong_tries_lock_and_the_lock_survives_a_restart(tmp_path: Path) -> None:
    mono = Mono()
    with open_journal(tmp_path, mono) as journal:
        guard = PinGuard(journal)
        guard.set_pin("2580")
        verdicts = [guard.verify("1111") for _ in range(5)]
        assert [v.tries_left for v in verdicts[:4]] == [4, 3, 2, 1]
        assert verdicts[4].locked_for_s == 60.0 and not verdicts[4].ok
        assert "2580" not in (tmp_path / "journal.sqlite3").read_bytes().decode("latin-1")
    mono.s = 5.0  # a new boot: the monotonic clock starts over, the running time does not
    with open_journal(tmp_path, mono) as journal:
        guard = PinGuard(journal)
        assert 59.0 < guard.locked_for_s() <= 60.0
        locked = guard.verify("2580")  # even the right PIN is not checked while locked
        assert not locked.ok and locked.locked_for_s > 59.0
        mono.s += 61.0
        assert guard.locked_for_s() == 0.0
        for _ in range(4):
            assert not guard.verify("0000").ok
        assert guard.verify("0000").locked_for_s == 120.0  # the tenth wrong try: twice as long
        mono.s += 121.0
        assert guard.verify("2580").ok
        assert guard.failures() == 0


def test_pin_set_from_a_pipe_and_the_doctor(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def doctor_line() -> str:
        out = subprocess.run(
            [*PITILL, "doctor", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        return next(line for line in out.splitlines() if "supervisor PIN" in line)

    assert doctor_line().startswith("FAIL  supervisor PIN: not set")
    run = subprocess.run(
        [*PITILL, "pin", "set", "--data-dir", str(data)],
        input="1234\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "warning" in run.stdout
    assert doctor_line().startswith("FAIL  supervisor PIN: a PIN anyone tries first")
    run = subprocess.run(
        [*PITILL, "pin", "set", "--data-dir", str(data)],
        input="80417\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and "warning" not in run.stdout
    assert doctor_line().startswith("ok    supervisor PIN: set")
    stored = read_settings(data)[PIN_HASH_SETTING]
    assert pin_matches("80417", stored) and pin_state(read_settings(data)) == "set"


def test_pin_set_refuses_a_bad_pin_in_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [*PITILL, "pin", "set", "--data-dir", str(tmp_path / "d")],
        input="12\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "pitill: a supervisor PIN is 4 to 8 digits (0-9), got 2 character(s); key it again"
    ]
