"""The disk fills between the host's approval and its record: the card is reversed, no restart.

A real `pitill sim` child with the LD_PRELOAD shim (iofault.c): once the sale's AUTHORIZING row is
durable, every journal write and fsync fails with ENOSPC ("iofault after AUTHORIZING ENOSPC"), so
the sandbox host approves a sale whose approval cannot be written. While the disk is still full,
the host's ledger must show the 0420 for that sale (the reversal does not wait for the journal),
and the journal still says AUTHORIZING. Then the disk empties ("iofault 0 EIO"): the same
process records what happened (REVERSED), and the ledger equals the journal.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from reliability_kit import (
    EXPIRY_YYMM,
    ScriptWriter,
    audit,
    journal_rows,
    keys_for,
    ledger,
    sim_command,
)

from fast_config import write_config
from pitill.sim.acquirer import MESSAGE_CLASS, MessageClass

SHIM_SOURCE = Path(__file__).with_name("iofault.c")
FULL_DISK_WAIT_S = 6  # how long the script keeps the disk full (the test stops waiting sooner)

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or not Path("/proc/self/fd").is_dir(),
    reason="needs gcc and /proc (Linux) for the LD_PRELOAD shim",
)


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shim") / "iofault.so"
    flags = ["-shared", "-fPIC", "-O1", "-Wall", "-Werror"]
    subprocess.run(["gcc", *flags, "-o", str(out), str(SHIM_SOURCE), "-ldl"], check=True)
    return out


def reversals_of(data_dir: Path, stan: int) -> list[dict[str, object]]:
    if not (data_dir / "acquirer-ledger.jsonl").exists():
        return []
    return [
        e
        for e in ledger(data_dir)
        if MESSAGE_CLASS[str(e["mti"])] is MessageClass.REVERSAL and e["stan"] == stan
    ]


def test_an_approval_the_full_disk_refused_is_reversed_while_the_disk_is_still_full(
    shim: Path, tmp_path: Path
) -> None:
    writer = ScriptWriter(random.Random(7), pan_base=770_000)
    amount = writer.amount(100, 2500)
    writer.emit(
        "expect link online",
        f"press {keys_for(amount)} OK  # iofault after AUTHORIZING ENOSPC",
        f"swipe {writer.next_pan()} {EXPIRY_YYMM}",
        "expect state STORAGE_FAULT",
        f"wait {FULL_DISK_WAIT_S}",
        "press OK  # iofault 0 EIO",  # the disk has room again
        "expect state IDLE",
        "wait 1",
    )
    data, events, trace = tmp_path / "data", tmp_path / "events.jsonl", tmp_path / "trace.txt"
    script = tmp_path / "sale.pitill"
    script.write_text(writer.text(), encoding="utf-8")
    config = write_config(tmp_path / "sim.toml")
    env = dict(os.environ) | {
        "LD_PRELOAD": str(shim),
        "IOFAULT_EVENTS": "events.jsonl",
        "IOFAULT_TRACE": str(trace),
    }
    command = sim_command(script, data, config, events)
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        sent: list[dict[str, object]] = []
        markers: list[str] = []
        for _ in range(1000):  # up to 10 s; the disk stays full for FULL_DISK_WAIT_S
            text = trace.read_text() if trace.exists() else ""
            markers = [line for line in text.splitlines() if line.startswith("M ")]
            if len(markers) > 1:
                break  # the disk has room again: too late to see the reversal go without it
            if "H full" in text:
                (sale,) = journal_rows(data)
                sent = reversals_of(data, sale.stan)
                if sent:
                    break
            time.sleep(0.01)
        assert "F " in trace.read_text(), "no journal write failed: the disk never filled"
        assert sent, "no 0420 reached the host while the disk was full"
        assert len(markers) == 1, "the disk was emptied before the check: make the wait longer"
        assert str(sent[0]["mti"]) == "0420"
        (sale,) = journal_rows(data)
        assert sale.status == "AUTHORIZING"  # nothing could be written: the reversal went anyway
        out, _ = child.communicate(timeout=FULL_DISK_WAIT_S + 60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, out.decode(errors="replace")
    (sale,) = journal_rows(data)
    assert sale.status == "REVERSED"  # recorded by the same process once the disk had room
    assert audit(journal_rows(data), ledger(data), healed=True).problems() == []
