"""Shared parts of the reliability suite: the size knob, test PANs, script writing, running
`pitill sim` as a child, and the audit of the host ledger against the journal (the fast sim config
is tests/fast_config.py, shared with every other suite).

The audit is the project's one reconciliation (pitill.sim.reconcile: lost, duplicated, phantom,
unsettled), for this suite's terminal id; `healed` says the backlog should have settled.
"""

from __future__ import annotations

import json
import os
import random
import re
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fast_config import UPSTREAM_KEYS
from pitill.card.model import luhn_ok
from pitill.sim.acquirer import LEDGER_NAME, read_ledger
from pitill.sim.reconcile import (
    TOLD_PAID,
    JournalEntry,
    Reconciliation,
    read_journal,
    reconcile,
)
from pitill_cli import PITILL

TERMINAL_ID = "PITILL01"
EXPIRY_YYMM = "3012"
SCALE_ENV = "PITILL_TORTURE_SCALE"


def scale() -> float:
    """PITILL_TORTURE_SCALE: 1 by default (bounded for `make test`), e.g. 7 for a long run."""
    raw = os.environ.get(SCALE_ENV, "").strip()
    try:
        value = float(raw) if raw else 1.0
    except ValueError:
        raise ValueError(f"{SCALE_ENV}={raw!r}: must be a number such as 1 or 7") from None
    return max(value, 0.1)


def scaled(count: int) -> int:
    return max(1, round(count * scale()))


# The name's last addresses are remembered: a dead name is ridden out (DEGRADED), not an outage.
DNS_RIDDEN_OUT = "cache_resolved" in UPSTREAM_KEYS


def pan_for(index: int, prefix: str = "45") -> str:
    """A distinct Luhn-valid 16-digit test PAN per index (never a sim card with a set answer)."""
    body = f"{prefix}{index:0{15 - len(prefix)}d}"
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


# --- scripts --------------------------------------------------------------------------------


HEAL = ("upstream up", "expect link online", "expect pending 0")
DECLINED_ENDINGS = (5, 51)  # amounts the sandbox host declines (05, 51)


@dataclass
class ScriptWriter:
    """Writes a sim script of sales through outages; every sale has its own amount and PAN.

    Amounts are unique within one script, so a screen ("APPROVED ... EUR 12.40") names its sale.
    """

    rng: random.Random
    pan_base: int
    lines: list[str] = field(default_factory=list)
    used_amounts: set[int] = field(default_factory=set)
    sales: int = 0

    def emit(self, *lines: str) -> None:
        self.lines.extend(lines)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"

    def amount(self, low_minor: int, high_minor: int, declined: bool = False) -> int:
        """A fresh amount; the host approves it, or declines it (51) when `declined`."""
        for _ in range(10_000):
            amount = self.rng.randint(low_minor, high_minor)
            if declined:
                amount = amount // 100 * 100 + 51
            elif amount % 100 in DECLINED_ENDINGS:
                continue
            if amount not in self.used_amounts:
                self.used_amounts.add(amount)
                return amount
        raise AssertionError("ran out of distinct amounts: make the script shorter")

    def next_pan(self) -> str:
        self.sales += 1
        return pan_for(self.pan_base + self.sales)

    def card_sale(self, amount_minor: int, marker: str = "", expect: str = "APPROVED") -> None:
        comment = f"  # {marker}" if marker else ""
        self.emit(
            f"press {keys_for(amount_minor)} OK{comment}",
            f"swipe {self.next_pan()} {EXPIRY_YYMM}",
        )
        if expect:
            self.emit(f'expect screen "{expect}"', "press OK")

    def online_sale(self) -> None:
        self.card_sale(self.amount(100, 99_999))

    def offline_sale(self) -> None:
        self.card_sale(self.amount(100, 2500))  # within the default floor limit

    def cash_sale(self, marker: str = "", expect: bool = True) -> int:
        """Over the floor limit while offline: cash only, tender, change. Returns the amount."""
        amount = self.amount(2600, 9999)
        tender = amount + self.rng.randint(1, 5000)
        comment = f"  # {marker}" if marker else ""
        self.emit(f"press {keys_for(amount)} OK{comment}", "expect state CASH_ONLY", "press OK")
        self.emit(f"press {keys_for(tender)} OK")
        if expect:
            self.emit("expect state CHANGE", "press OK")
        return amount

    def outage(self) -> None:
        """Down, blackhole or a dead name; sometimes a sale races the monitor; then heal."""
        mode = self.rng.choice(("down", "blackhole", "dns-fail"))
        self.emit(f"upstream {mode}")
        if mode == "dns-fail" and DNS_RIDDEN_OUT:
            # the host still answers on the remembered address: sales go on online
            self.emit("expect link degraded")
            self.online_sale()
            self.emit("upstream up", "expect link online")
            return
        if self.rng.random() < 0.5:
            self.offline_sale()  # swiped before the monitor noticed: timeout or refusal
        self.emit("expect link offline")
        for _ in range(self.rng.randint(0, 3)):
            self.offline_sale()
        if self.rng.random() < 0.4:
            self.cash_sale()
        self.emit("upstream up", "expect link online")
        if self.rng.random() < 0.6:
            self.emit("expect pending 0")

    def episode(self) -> None:
        roll = self.rng.random()
        if roll < 0.45:
            self.online_sale()
        elif roll < 0.5:
            self.card_sale(self.amount(100, 99_999, declined=True), expect="DECLINED")
        else:
            self.outage()


def keys_for(amount_minor: int) -> str:
    return " ".join(str(amount_minor))


def sim_command(
    script: Path, data_dir: Path, config: Path, events: Path | None = None, *extra: str
) -> list[str]:
    command = [*PITILL, "sim", "--config", str(config), "--script", str(script)]
    command += ["--data-dir", str(data_dir), "--expect-timeout", "10"]
    if events is not None:
        command += ["--events", str(events)]
    return [*command, *extra]


def run_sim(
    command: Sequence[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env=env
    )


def heal(data_dir: Path, config: Path, workdir: Path, events: Path | None = None) -> None:
    """Restart the terminal with the host up and wait until its backlog is empty."""
    script = workdir / "heal.pitill"
    script.write_text("\n".join(HEAL) + "\n", encoding="utf-8")
    result = run_sim(sim_command(script, data_dir, config, events))
    assert result.returncode == 0, f"heal run failed:\n{result.stdout}\n{result.stderr}"


# --- the journal, read-only, and the one reconciliation ------------------------------------

Row = JournalEntry


def connect_read_only(data_dir: Path) -> sqlite3.Connection:
    path = data_dir / "journal.sqlite3"
    assert path.exists(), f"no journal at {path}"
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def journal_rows(data_dir: Path) -> list[Row]:
    path = data_dir / "journal.sqlite3"
    assert path.exists(), f"no journal at {path}"
    return read_journal(path)


def integrity(data_dir: Path) -> str:
    conn = connect_read_only(data_dir)
    try:
        return "\n".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def ledger(data_dir: Path) -> list[dict[str, Any]]:
    return read_ledger(data_dir / LEDGER_NAME)


ACKNOWLEDGED = {kind.value: statuses for kind, statuses in TOLD_PAID.items()}


def audit(rows: Sequence[Row], entries: Sequence[dict[str, Any]], healed: bool) -> Reconciliation:
    """The ledger against the journal (pitill.sim.reconcile), for this suite's terminal."""
    return reconcile(rows, entries, TERMINAL_ID, settled=healed)


# --- what the customer was told: the events file -------------------------------------------

_MONEY = re.compile(r"^EUR (\d+)\.(\d\d)$")
_TENDERED = re.compile(r"^Tendered EUR (\d+)\.(\d\d)$")


@dataclass(frozen=True)
class Ack:
    """A sale the screen told the customer succeeded: an approval or a cash sale's change."""

    kind: str  # card | cash
    amount_minor: int


def _minor(match: re.Match[str]) -> int:
    return int(match.group(1)) * 100 + int(match.group(2))


def screen_texts(events: Path) -> Iterator[str]:
    if not events.exists():
        return
    for line in events.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by the kill
        if event.get("event") == "screen":
            yield str(event.get("text", ""))


def ack_of(text: str) -> Ack | None:
    lines = text.splitlines()
    title = lines[1] if len(lines) > 1 else ""
    if title == "APPROVED":
        for line in lines[2:]:
            if match := _MONEY.match(line):
                return Ack("card", _minor(match))
    if title == "CHANGE" and len(lines) > 3:
        change, tendered = _MONEY.match(lines[2]), _TENDERED.match(lines[3])
        if change and tendered:
            return Ack("cash", _minor(tendered) - _minor(change))
    return None


def acknowledgements(events: Path) -> list[Ack]:
    """Every sale the screens acknowledged, once each, in order."""
    acks: list[Ack] = []
    for text in screen_texts(events):
        ack = ack_of(text)
        if ack is not None and ack not in acks:
            acks.append(ack)
    return acks


def find_acked_row(rows: Sequence[Row], ack: Ack, after_seq: int = 0) -> Row | None:
    """The one journal row (seq > after_seq) holding this acknowledged sale, or None."""
    found = [
        r
        for r in rows
        if r.seq > after_seq
        and r.kind == ack.kind
        and r.amount_minor == ack.amount_minor
        and r.status in ACKNOWLEDGED[ack.kind]
    ]
    return found[0] if len(found) == 1 else None


def storage_faults(events: Path) -> int:
    return sum(1 for text in screen_texts(events) if "\nSTORAGE FAULT" in text)
