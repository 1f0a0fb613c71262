"""One terminal per data dir: real processes hold and contend for the lock (journal/datadir.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pitill_cli
from pitill.journal.datadir import EVIDENCE_NAMES, LOCK_FILE_NAME, DataDirLock
from pitill.upstream.resolver_cache import RESOLVED_HOSTS_NAME
from pitill_cli import PITILL

REPO = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time; from pathlib import Path; from pitill.journal.datadir import DataDirLock\n"
    "lock = DataDirLock.acquire(Path(sys.argv[1])); print('held', flush=True); time.sleep(120)\n"
)


def run_pitill(*args: str) -> subprocess.CompletedProcess[str]:
    return pitill_cli.run_pitill(*args, cwd=REPO)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A separate process holding the lock of tmp_path/data (an empty data dir otherwise)."""
    data = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield process, data
    finally:
        process.kill()
        process.wait(timeout=30)


def write_script(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["sim", "run", "drill"])
def test_a_second_terminal_is_refused_in_one_line_and_writes_nothing(
    tmp_path: Path, holder: tuple[subprocess.Popen[str], Path], command: str
) -> None:
    process, data = holder
    script = write_script(tmp_path / "s.pitill", "expect link online")
    argv = {
        "sim": ("sim", "--script", str(script), "--data-dir", str(data)),
        "run": ("run", "--config", str(REPO / "hw/pitill.example.toml"), "--data-dir", str(data)),
        "drill": ("drill", "--data-dir", str(data)),
    }[command]
    done = run_pitill(*argv)
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    *before, line = done.stderr.splitlines()  # the drill announces itself first
    assert len(before) == (command == "drill")
    assert f"data directory {data} is in use by another pitill (PID {process.pid})" in line
    assert sorted(p.name for p in data.iterdir()) == [LOCK_FILE_NAME]  # no journal, key, ledger
    assert (data / LOCK_FILE_NAME).read_text() == f"{process.pid}\n"  # the holder's, untouched


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(data)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    with pytest.raises(OSError, match=f"PID {process.pid}"):
        DataDirLock.acquire(data)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with DataDirLock.acquire(data) as lock:  # the kernel released it: no stale lock to clear
        assert lock.held
        assert (data / LOCK_FILE_NAME).read_text() == f"{os.getpid()}\n"
    assert not lock.held


def test_readers_do_not_wait_for_a_running_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    script = write_script(
        tmp_path / "hold.pitill", "expect link online", "press 1 0 0 OK", "wait 60"
    )
    terminal = subprocess.Popen(
        [*PITILL, "sim", "--script", str(script), "--data-dir", str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        for _ in range(600):  # bounded: until the terminal has its journal (at most 60 s)
            if (data / "journal.sqlite3").exists() and terminal.poll() is None:
                break
            time.sleep(0.1)
        assert terminal.poll() is None
        with pytest.raises(OSError, match=f"PID {terminal.pid}"):
            DataDirLock.acquire(data)
        listing = run_pitill("journal", "list", "--data-dir", str(data))
        report = run_pitill("report", "--data-dir", str(data))
        assert listing.returncode == 0, listing.stderr
        assert report.returncode == 0, report.stderr
        assert "transaction(s)" in listing.stdout
        assert "Reconciliation report" in report.stdout
    finally:
        terminal.kill()
        terminal.communicate(timeout=30)


def test_a_refused_sim_in_the_same_process_keeps_the_holder_lock(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with DataDirLock.acquire(data) as first:
        with pytest.raises(OSError, match="in use by another pitill"):
            DataDirLock.acquire(data)  # flock is per open file: a second open is refused too
        assert first.held
    with DataDirLock.acquire(data):
        pass


def test_the_evidence_names_are_the_owners_names() -> None:
    assert RESOLVED_HOSTS_NAME in EVIDENCE_NAMES


def test_a_refused_starter_always_reads_the_holders_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every write to the lock file leaves a PID on its first line at every step: a second pitill
    reading it at that moment names the holder, never "PID unknown" (seen once in CI, when the
    journal's note truncated the file before writing it again)."""
    from pitill.journal import datadir

    data = tmp_path / "data"
    seen: list[str] = []

    def after(call: object) -> object:
        def spy(fd: int, *args: object) -> object:
            result = call(fd, *args)  # type: ignore[operator]
            seen.append(os.pread(fd, 256, 0).decode().split("\n")[0])
            return result

        return spy

    monkeypatch.setattr(datadir.os, "ftruncate", after(os.ftruncate))
    monkeypatch.setattr(datadir.os, "pwrite", after(os.pwrite))
    (data).mkdir()
    (data / LOCK_FILE_NAME).write_text("4242\n")  # a holder that died
    with DataDirLock.acquire(data):
        datadir.note_journal_opened(data)
    assert seen and all(line.isdigit() for line in seen), seen
    assert seen[-1] == str(os.getpid())
