"""The shell's side of end of day (FN 5) and of reprints (FN 6): the journal, the host, the paper.

End of day: the day is closed in one journal commit first (so a printer or host that fails
changes nothing about it), then the Z report is printed and, when the host may be reached and
every transaction of the day has been sent to it, the 0500 asks it to check the day's totals
(fields 74-89, core/settlement.py). Its 0510 verdict is journaled beside the day: agreed, or
disagreed with what differs (shown, printed, in `pitill report --day`). A day closed offline,
or with sales still waiting, keeps its check owed; `settle_owed` sends it once the day's last
transaction is through (the app calls it when the link comes back and after each forwarding).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from pitill.core.responses import APPROVED, RETRY_CODES
from pitill.core.settlement import Reconciliation
from pitill.core.types import TxnStatus, format_amount
from pitill.errors import StorageError, UpstreamError
from pitill.journal.days import HostCheck, ZReport
from pitill.journal.report import read_z_report
from pitill.journal.store import Journal
from pitill.logs import log_event
from pitill.receipt import ReceiptSink, outcome_lines
from pitill.records import JournalRow
from pitill.upstream.messages import Batch

log = logging.getLogger(__name__)


class Reconciler(Protocol):
    """What end of day needs of the upstream client (UpstreamClient.reconcile)."""

    async def reconcile(
        self, batch: Batch, totals: Reconciliation, currency: str, timeout_s: float | None = None
    ) -> tuple[str, Reconciliation | None]: ...


async def read_z(journal: Journal, day: int) -> ZReport:
    """The day's Z report, read in a thread on a read-only connection (never on the loop)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, read_z_report, journal.path.parent, day)


async def check_with_host(journal: Journal, client: Reconciler, day: int, currency: str) -> bool:
    """Send the 0500 of closed day `day` if all its transactions are at the host; journal the
    verdict. False when the check is still owed (rows still to send, host unreachable, retry)."""
    z = await read_z(journal, day)
    if z.owed_to_host:
        return False
    batch = Batch(day, z.day.first_stan, z.day.last_stan)
    try:
        code, theirs = await client.reconcile(batch, z.host_totals, z.currency or currency)
    except UpstreamError as exc:
        log_event(log, "day_check_not_sent", level=logging.WARNING, day=day, error=str(exc))
        return False
    if code in RETRY_CODES:
        log_event(log, "day_check_retry", level=logging.WARNING, day=day, code=code)
        return False
    agrees = code == APPROVED
    note = ""
    if not agrees:
        differ = z.host_totals.differences(theirs) if theirs is not None else []
        note = "; ".join(differ) if differ else f"host code {code}"  # each "ours/host"
    status = HostCheck.AGREED if agrees else HostCheck.DISAGREED
    journal.set_host_check(day, status, code, note)
    level = logging.INFO if agrees else logging.ERROR
    log_event(log, "day_checked", level=level, day=day, code=code, agrees=agrees, note=note)
    return True


async def close_day(
    journal: Journal,
    client: Reconciler,
    receipts: ReceiptSink | None,
    *,
    online: bool,
    currency: str,
    width: int = 32,
) -> tuple[bool, tuple[str, ...], ZReport | None]:
    """FN 5: (closed, the Z report's screen lines, the report). The commit comes first."""
    try:
        day = journal.close_day()
    except StorageError as exc:
        log_event(log, "day_not_closed", level=logging.ERROR, error=str(exc))
        return False, ("Day NOT closed",), None
    log_event(log, "day_closed", day=day.day, first_seq=day.first_seq, last_seq=day.last_seq)
    if online:
        try:
            await check_with_host(journal, client, day.day, currency)
        except StorageError as exc:  # the verdict could not be kept: it stays owed
            log_event(log, "day_check_not_saved", level=logging.ERROR, error=str(exc))
    try:
        z = await read_z(journal, day.day)
    except StorageError as exc:  # closed; its report can be read later (pitill report --day)
        log_event(log, "z_not_read", level=logging.ERROR, error=str(exc))
        return True, (f"Day {day.day} closed", "Z: report --day"), None
    lines = z.screen_lines()
    if receipts is not None:
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, receipts.print_text, f"z-day-{z.day.day:04d}", z.text(width)
            )
        except Exception as exc:  # a printer fails in many ways: the day is closed anyway
            log_event(log, "z_not_printed", level=logging.WARNING, error=f"{exc}")
            lines = (*lines, "Z report NOT printed")
    return True, lines, z


async def settle_owed(journal: Journal, client: Reconciler, currency: str) -> int:
    """Send the owed checks of closed days whose transactions are all through; how many."""
    done = 0
    for day in journal.days_owed_to_host():
        if await check_with_host(journal, client, day, currency):
            done += 1
    return done


# --- reprint (FN 6) --------------------------------------------------------------------------


def summary(row: JournalRow) -> str:
    """One screen line for a receipt: its amount and outcome ("12.50 APPROVED")."""
    sign = "-" if row.status is TxnStatus.VOID else ""
    return f"{sign}{format_amount(row.amount_minor)} {outcome_lines(row)[0]}"
