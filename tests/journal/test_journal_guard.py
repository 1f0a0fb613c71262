"""The journal cannot vanish unnoticed, and a hand-edited row is one line, never a traceback.

The terminal runs for real (SimWorld in this process: a real SQLite file, the sandbox host on
loopback, the reader on a pty) while the test deletes, renames or replaces its journal file;
the start-up refusals and the readers run as `pitill` processes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

import pitill_cli
from pitill.config import load_config
from pitill.core.state import Phase
from pitill.core.types import Key, LinkStatus
from pitill.sim.driver import Driver, amount_keys
from pitill.sim.world import SimWorld

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 20.0  # a bound on each wait, not an expectation
JOURNAL = "journal.sqlite3"


def run_pitill(*args: str) -> subprocess.CompletedProcess[str]:
    return pitill_cli.run_pitill(*args, cwd=REPO)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    return line


def journal_rows(data: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(f"file:{data / JOURNAL}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT seq, status FROM txns ORDER BY seq").fetchall()
    conn.close()
    return [(int(seq), str(status)) for seq, status in rows]


def delete(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def rename(path: Path) -> None:
    path.rename(path.with_name("moved-by-hand.sqlite3"))


def replace(path: Path) -> None:
    copy = path.with_name("copy.sqlite3")
    shutil.copyfile(path, copy)
    os.replace(copy, path)  # same name, same content, another file


async def sell_online(driver: Driver, amount_minor: int) -> Phase:
    assert await driver.until(lambda: driver.phase is Phase.IDLE, WAIT_S)
    await driver.type(*amount_keys(amount_minor), Key.OK)
    assert await driver.until(lambda: driver.phase is Phase.AWAIT_CARD, WAIT_S)
    await driver.swipe_named("approved")
    return await driver.until_phase(
        lambda phase: phase in (Phase.APPROVED, Phase.STORAGE_FAULT, Phase.DECLINED), WAIT_S
    )


@pytest.mark.parametrize("change", [delete, rename, replace])
def test_a_journal_changed_under_the_running_terminal_stops_the_next_sale(
    tmp_path: Path, change: object
) -> None:
    data = tmp_path / "data"
    world = SimWorld(load_config(None), data)
    seen: dict[str, object] = {}

    async def scenario() -> None:
        await world.start()
        try:
            driver = Driver(world)
            assert await driver.until_link(LinkStatus.ONLINE, WAIT_S)
            seen["first"] = await sell_online(driver, 1000)
            driver.press(Key.OK)
            assert callable(change)
            change(data / JOURNAL)
            seen["second"] = await sell_online(driver, 2000)
            seen["screen"] = driver.screen_text()
        finally:
            await world.stop()

    asyncio.run(scenario())
    assert seen["first"] is Phase.APPROVED
    assert seen["second"] is Phase.STORAGE_FAULT, seen["screen"]
    assert "STORAGE FAULT" in str(seen["screen"])
    if change is replace:  # the file at the path never saw the second sale
        # (its seq is past the monitor's echoes: they share the counter of seqs and STANs)
        assert [status for _, status in journal_rows(data)] == ["APPROVED"]


def test_a_missing_journal_beside_a_seal_key_is_refused_until_the_operator_says_so(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    script = tmp_path / "s.pitill"
    script.write_text("expect link online\npress 5 0 0 OK\nexpect state AWAIT_CARD\n")
    first = run_pitill("sim", "--script", str(script), "--data-dir", str(data))
    assert first.returncode == 0, first.stdout + first.stderr
    delete(data / JOURNAL)
    before = sorted(p.name for p in data.iterdir())

    line = one_line_error(run_pitill("sim", "--script", str(script), "--data-dir", str(data)))
    assert f"journal {data / JOURNAL} is missing, but {data} holds" in line
    assert "pitill.lock (a journal was opened here before)" in line
    assert "pitill journal init --force" in line
    assert sorted(p.name for p in data.iterdir()) == before  # no empty journal was started
    line = one_line_error(run_pitill("journal", "init", "--data-dir", str(data)))
    assert "refusing to start an empty journal" in line

    done = run_pitill("journal", "init", "--force", "--data-dir", str(data))
    assert done.returncode == 0, done.stderr
    assert "started a new, empty journal" in done.stdout and "pitill.lock" in done.stdout
    again = run_pitill("sim", "--script", str(script), "--data-dir", str(data))
    assert again.returncode == 0, again.stdout + again.stderr


def test_a_new_data_dir_starts_without_ceremony(tmp_path: Path) -> None:
    done = run_pitill("journal", "init", "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / JOURNAL).exists()
    assert (
        "already exists"
        in run_pitill("journal", "init", "--data-dir", str(tmp_path / "data")).stdout
    )


def edited_journal(tmp_path: Path, column: str, value: object) -> Path:
    """A data dir whose journal has one sale, then `column` of seq 2 set by hand to `value`."""
    data = tmp_path / "data"
    script = tmp_path / "s.pitill"
    script.write_text(
        "expect link online\n"
        "press 1 0 0 OK\nswipe approved\nexpect state APPROVED\npress OK\n"
        "press 2 0 0 OK\nswipe approved\nexpect state APPROVED\npress OK\n"
    )
    done = run_pitill("sim", "--script", str(script), "--data-dir", str(data))
    assert done.returncode == 0, done.stdout + done.stderr
    with sqlite3.connect(data / JOURNAL) as conn:
        # The second sale (its seq follows the monitor's echoes: one counter of seqs and STANs).
        conn.execute(
            f"UPDATE txns SET {column} = ? WHERE seq = (SELECT max(seq) FROM txns)", (value,)
        )
    conn.close()
    return data


@pytest.mark.parametrize(
    ("column", "value", "said"),
    [
        ("status", "PAID", "which is not a status pitill knows"),
        ("amount_minor", "12,50", "which is not a whole number"),
        ("amount_minor", 12.5, "which is not a whole number"),
    ],
)
def test_an_edited_row_is_one_line_naming_row_and_column(
    tmp_path: Path, column: str, value: object, said: str
) -> None:
    data = edited_journal(tmp_path, column, value)
    with sqlite3.connect(data / JOURNAL) as conn:
        (seq,) = conn.execute("SELECT max(seq) FROM txns").fetchone()
    conn.close()
    script = tmp_path / "idle.pitill"
    script.write_text("expect state IDLE\n")
    for argv in (
        ("journal", "list", "--data-dir", str(data)),
        ("journal", "list", "--json", "--data-dir", str(data)),
        ("report", "--data-dir", str(data)),
        ("report", "--json", "--data-dir", str(data)),
        ("sim", "--script", str(script), "--data-dir", str(data)),
    ):
        line = one_line_error(run_pitill(*argv))
        assert f"row seq {seq}, column {column} holds {value!r}, {said}" in line, argv
