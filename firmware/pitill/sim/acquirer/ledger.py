"""The sandbox host's ledger: one fsynced JSON line per financial message, the dedup keys, and
the net charge the reconciliation reads (pitill.sim.reconcile).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pitill.core.responses import REVERSAL_REASON_CUSTOMER_CANCELLATION
from pitill.core.settlement import Reconciliation, add_to_reconciliation
from pitill.errors import DataDirError
from pitill.sim.acquirer.policy import MESSAGE_CLASS, MessageClass, accepted
from pitill.upstream.messages import PROCESSING_CODE_REFUND, Batch, Request

log = logging.getLogger("pitill.sim.acquirer")

LEDGER_NAME = "acquirer-ledger.jsonl"

# --- ledger ----------------------------------------------------------------------------------

DedupKey = tuple[str, str, int, str]  # message class, terminal id, STAN, MMDDhhmmss


@dataclass(frozen=True)
class Decision:
    response_code: str
    auth_code: str = ""
    rrn: str = ""


def read_ledger(path: Path) -> list[dict[str, Any]]:
    """The ledger's entries; a torn last line (a crash mid-write, never answered) is skipped."""
    entries = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s line %d is not JSON (torn write?); skipped", path, number)
    return entries


def net_charged_minor(entries: Sequence[dict[str, Any]]) -> int:
    """Money the host moved: approved sales and advices, less reversed ones; duplicates free.
    A refund (processing code 20) moves it the other way: it counts negative, and so its
    reversal gives it back positive."""
    total = 0
    for entry in entries:
        if entry["duplicate"] or not accepted(entry):
            continue
        sign = -1 if is_refund_entry(entry) else 1
        klass = MESSAGE_CLASS[entry["mti"]]
        if klass is MessageClass.REVERSAL:
            total -= sign * entry["amount_minor"] if entry.get("reversed") else 0
        else:
            total += sign * entry["amount_minor"]
    return total


def day_totals(entries: Sequence[dict[str, Any]], terminal_id: str, batch: Batch) -> Reconciliation:
    """What this host holds for one terminal's day (an 0500's batch: the STANs of its seqs),
    by the rule of core/settlement.py: sales and advices it took, plus reversals of voided sales
    (reason 17); a sale reversed because its answer was lost (68) counts nowhere."""
    first = [
        e for e in entries if e["terminal_id"] == terminal_id and not e["duplicate"] and accepted(e)
    ]
    kinds = {"20": "refund", "21": "topup", "31": "balance"}

    def kind_of(entry: dict[str, Any]) -> str:
        return kinds.get(str(entry.get("processing_code", ""))[:2], "card")

    lost: set[tuple[int, str]] = set()
    totals: dict[str, int] = {}
    for entry in first:
        if MESSAGE_CLASS[entry["mti"]] is not MessageClass.REVERSAL or not entry.get("reversed"):
            continue
        _mti, stan, local = entry["original"].split(":")
        if not batch.holds(int(stan)):
            continue
        if entry.get("reason") == REVERSAL_REASON_CUSTOMER_CANCELLATION:
            amount = int(entry["amount_minor"])
            add_to_reconciliation(
                totals, kind_of(entry), reversal=True, count=1, amount_minor=amount
            )
        else:
            lost.add((int(stan), local))
    for entry in first:
        klass = MESSAGE_CLASS[entry["mti"]]
        if klass is MessageClass.REVERSAL or not batch.holds(entry["stan"]):
            continue
        if klass is MessageClass.SALE and (entry["stan"], entry["local_datetime"]) in lost:
            continue
        amount = int(entry["amount_minor"])
        add_to_reconciliation(totals, kind_of(entry), reversal=False, count=1, amount_minor=amount)
    return Reconciliation(**totals)


def is_refund_entry(entry: dict[str, Any]) -> bool:
    """The ledger entry is a refund or its reversal (field 3 20xxxx; older ledgers lack it)."""
    return str(entry.get("processing_code", "")).startswith(PROCESSING_CODE_REFUND[:2])


def _dedup_key(entry_or_request: Request | dict[str, Any]) -> DedupKey:
    if isinstance(entry_or_request, Request):
        r = entry_or_request
        return MESSAGE_CLASS[r.mti], r.terminal_id, r.stan, r.local_datetime
    e = entry_or_request
    return MESSAGE_CLASS[e["mti"]], e["terminal_id"], e["stan"], e["local_datetime"]


def _sale_key(
    terminal_id: str, stan: int, local_datetime: str, klass: MessageClass = MessageClass.SALE
) -> DedupKey:
    """The key of a sale (or, with klass ADVICE, an offline sale) a reversal may name."""
    return klass, terminal_id, stan, local_datetime


class _Ledger:
    """Append-only JSON lines, each fsynced; reloading rebuilds what the host remembers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def open(self) -> list[dict[str, Any]]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._drop_torn_tail()
            entries = read_ledger(self.path)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            reason = (exc.strerror or str(exc)).lower()
            raise DataDirError(
                f"the host's ledger {self.path} cannot be opened: {reason}; check the data "
                "directory and that this user may write there"
            ) from None
        return entries

    def append(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            raise RuntimeError("the acquirer ledger is not open; start the host first")
        self._file.write(json.dumps(entry, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _drop_torn_tail(self) -> None:
        """A line without its newline was never fsynced nor answered: cut it before appending."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping a torn last line of %d bytes", self.path, len(data) - keep)
            with self.path.open("r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())
