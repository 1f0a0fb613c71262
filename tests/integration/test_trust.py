"""Limits nobody resets by accident, a mode that outlives a restart, a clock nobody trusts blindly.

Real `pitill sim --script` processes on one data directory; the clock tests run the sim under
Debian's faketime (libfaketime), which moves the process's wall clock and nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from pitill_cli import PITILL, SCENARIOS, journal_rows
from pitill_cli import run_pitill as pitill

# Debian puts it under the architecture's directory (x86_64-linux-gnu, aarch64-linux-gnu...).
LIBFAKETIME = next(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"), Path("/nonexistent"))
PAN = "4111111111111111"


def sim(
    script: str | Path, data: Path, env: dict[str, str] | None = None, *extra: str
) -> subprocess.Popen[str]:
    path = script if isinstance(script, Path) else SCENARIOS / script
    return subprocess.Popen(
        [*PITILL, "sim", "--script", str(path), "--data-dir", str(data), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def run_sim(script: str | Path, data: Path, env: dict[str, str] | None = None) -> str:
    process = sim(script, data, env, "--expect-timeout", "15")
    out, _ = process.communicate(timeout=180)
    assert process.returncode == 0, out
    return out


def stamps(data: Path) -> list[tuple[int, str, str]]:
    """(seq, created_at, local_datetime) of every transaction, from the SQLite file itself."""
    conn = sqlite3.connect(f"file:{data / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        return conn.execute(
            "SELECT seq, created_at, local_datetime FROM txns ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


# --- the per-card offline limit ------------------------------------------------------------------


def test_per_card_limit_holds_across_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_sim("card_limit_part1.pitill", data)
    run_sim("card_limit_part2.pitill", data)
    rows = journal_rows(data)
    assert [(r["amount_minor"], r["status"]) for r in rows] == [
        (100, "FORWARDED"),
        (200, "FORWARDED"),
        (300, "FORWARDED"),
        (500, "PENDING"),  # the other card; the 4.00 sale of the first card was refused
    ]


def test_per_card_limit_holds_across_a_short_return_of_the_host(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_sim("card_limit_blip.pitill", data)
    rows = journal_rows(data)
    assert [(r["amount_minor"], r["mode"], r["status"]) for r in rows] == [
        (100, "offline", "FORWARDED"),
        (200, "offline", "FORWARDED"),
        (300, "offline", "FORWARDED"),
        (500, "online", "APPROVED"),  # after the refused 4.00: the host saw the card again
        (600, "offline", "PENDING"),
    ]


def test_no_pan_nor_a_plain_hash_of_it_in_the_journal(tmp_path: Path) -> None:
    import hashlib

    data = tmp_path / "data"
    run_sim("card_limit_part1.pitill", data)
    raw = b"".join(p.read_bytes() for p in data.glob("journal.sqlite3*"))
    assert PAN.encode() not in raw
    for digest in (hashlib.sha256(PAN.encode()), hashlib.sha1(PAN.encode())):
        assert digest.hexdigest().encode() not in raw and digest.digest() not in raw
    conn = sqlite3.connect(data / "journal.sqlite3")
    prints = {fp for (fp,) in conn.execute("SELECT card_fp FROM txns")}
    conn.close()
    assert len(prints) == 1 and len(prints.pop()) == 32  # one card, 128-bit fingerprint


# --- the mode chosen from the FN menu ------------------------------------------------------------


def test_mode_chosen_from_the_menu_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    run_sim("mode_part1.pitill", data)
    run_sim("mode_part2.pitill", data)
    report = pitill("report", "--data-dir", str(data))
    assert "offline mode: require online (chosen from the FN menu" in report.stdout
    doctor = pitill("doctor", "--data-dir", str(data))
    assert "ok    offline mode: require online, chosen from the FN menu" in doctor.stdout
    assert "the config says prefer online" in doctor.stdout


# --- the clock -----------------------------------------------------------------------------------

needs_faketime = pytest.mark.skipif(
    not LIBFAKETIME.exists() or shutil.which("faketime") is None,
    reason="needs Debian's faketime (apt-get install faketime)",
)


def faked(offset_file: Path) -> dict[str, str]:
    """libfaketime moving the wall clock by the offset written in `offset_file` (re-read each
    second); the monotonic clock stays real, as when NTP steps a Pi's clock. (With the monotonic
    clock left alone, libfaketime 0.9.10 makes time.sleep fail with EINVAL; the simulator's
    paths use asyncio and select timeouts, which work.)"""
    return {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset_file),
        "FAKETIME_CACHE_DURATION": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_FORCE_MONOTONIC_FIX": "1",
    }


def wait_for_step(events: Path, text: str, process: subprocess.Popen[str]) -> None:
    """Until the sim's events file shows it started the step `text` (bounded)."""
    for _ in range(1200):
        if events.exists() and any(
            json.loads(line).get("text") == text
            for line in events.read_text().splitlines()
            if '"step"' in line
        ):
            return
        assert process.poll() is None, process.communicate()[0]
        time.sleep(0.05)
    raise AssertionError(f"the sim never reached the step {text!r}")


@needs_faketime
def test_a_clock_set_years_back_then_jumping_forward(tmp_path: Path) -> None:
    data = tmp_path / "data"
    offset = tmp_path / "faketime"
    # A first run 40 days ahead: the journal's newest date is then in a later month than today.
    offset.write_text("+40d\n")
    run_sim("clock_part1.pitill", data, faked(offset))
    ((_, newest_stamp, _),) = stamps(data)
    newest = datetime.fromisoformat(newest_stamp)
    assert newest > datetime.now() + timedelta(days=39)

    # Then the Pi boots without an RTC, six years back, and NTP sets the clock mid-run.
    offset.write_text("-2190d\n")
    events = tmp_path / "events.jsonl"
    process = sim("clock_part2.pitill", data, faked(offset), "--events", str(events))
    try:
        wait_for_step(events, "wait 1", process)
        offset.write_text("+41d\n")  # NTP answers: the clock jumps past the journal's newest date
        out, _ = process.communicate(timeout=180)
    finally:
        process.kill()
    assert process.returncode == 0, out

    # The journal: the sale made while the clock said 2020 is stamped at the newest date the
    # journal had seen (never earlier); the one after the jump carries the corrected time.
    _, back, after = stamps(data)
    assert datetime.fromisoformat(back[1]) >= newest
    assert back[2] >= newest.strftime("%y%m%d%H%M%S")  # ISO 8583 local date/time (fields 12/13)
    assert datetime.fromisoformat(after[1]) > datetime.now() + timedelta(days=40)

    # The doctor says what is wrong with a clock set back, in one line, and what to do.
    offset.write_text("-2190d\n")
    doctor = pitill("doctor", "--data-dir", str(data), env=faked(offset))
    assert doctor.returncode == 1
    line = next(x for x in doctor.stdout.splitlines() if x.startswith("FAIL  clock:"))
    assert "before this pitill was built" in line
    assert "timedatectl set-ntp true" in doctor.stdout
    offset.write_text("+0\n")
    doctor = pitill("doctor", "--data-dir", str(data), env=faked(offset))
    line = next(x for x in doctor.stdout.splitlines() if "clock:" in x)
    assert line.startswith("FAIL") and "behind the newest date in the journal" in line
    offset.write_text("+42d\n")
    doctor = pitill("doctor", "--data-dir", str(data), env=faked(offset))
    assert any(x.startswith("ok    clock:") for x in doctor.stdout.splitlines()), doctor.stdout
