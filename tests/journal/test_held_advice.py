"""An advice the host refused without processing it is held, not declined (DECISIONS.md, "An
advice the host did not process is held, not declined").

A 30 (format error) to an 0220 means the host never judged the card: a bug in how pitill builds
advices, or a strict host, would otherwise turn a whole offline backlog into the shop's loss. The
row becomes ADVICE_REFUSED with its card kept sealed (held_card), is not sent again by itself, is
shown by `pitill report`, the Z report and `pitill doctor`, and a person re-queues it after a fix
or records it declined. An issuer's decline (51) stays DECLINED_AFTER. Real parts: the sandbox
host on 127.0.0.1 answering 30 to advices, the real UpstreamClient and Forwarder, `pitill` run
as a process; salvage of a journal damaged as tests/journal/test_salvage.py damages one.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
from pathlib import Path

from journal_helpers import (
    OpenJournal,
    client_for,
    damage_the_status_index,
    drain,
    offline_sale,
    row_of,
)

from pitill.config import UpstreamConfig
from pitill.core.settlement import ADVICE_REFUSED_LINE, reconciliation
from pitill.core.types import TxnStatus
from pitill.dayend import check_with_host
from pitill.journal.days import HostCheck, day_lines, find_days
from pitill.journal.forwarder import Forwarder
from pitill.journal.report import read_report, read_reversal_trouble
from pitill.journal.salvage import salvage
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, Journal
from pitill.sim.acquirer import AcquirerHost
from pitill.sim.acquirer.policy import acknowledge
from pitill.upstream.messages import Request
from pitill_cli import PITILL

UPSTREAM = UpstreamConfig(forward_retry_s=0.01, forward_retry_max_s=0.05, forward_jitter_s=0.0)
# The host's answer to each advice, by amount: 30 and 58 say it did not process the message,
# 51 is the issuer's decline.
ANSWERS = {4200: "30", 1300: "58", 700: "51"}


def strict_host(request: Request, today_yymm: str) -> str:
    return ANSWERS.get(request.amount_minor or 0, "00")


def pitill(*arguments: str) -> subprocess.CompletedProcess[str]:
    """`pitill` run as a process, as a user would."""
    return subprocess.run([*PITILL, *arguments], capture_output=True, text=True, timeout=120)


def held_cards(data: Path) -> dict[int, bytes]:
    with sqlite3.connect(data / JOURNAL_FILE_NAME) as raw:
        found = dict(raw.execute("SELECT seq, sealed_card FROM held_card"))
    raw.close()
    return found


def doctor_line(data: Path, name: str) -> tuple[str, int]:
    doctor = pitill("doctor", "--data-dir", str(data))
    return next(x for x in doctor.stdout.splitlines() if f" {name}:" in x), doctor.returncode


def test_an_advice_answered_30_is_held_with_its_card_then_requeued_or_declined_by_hand(
    open_journal: OpenJournal, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    journal = open_journal(data)
    for seq, amount in ((1, 4200), (2, 1300), (3, 700)):
        journal.record(offline_sale(seq, amount_minor=amount))

    async def strict() -> dict[str, int]:
        async with AcquirerHost(tmp_path / "host", advice_policy=strict_host) as host:
            client = client_for(host.port)
            forwarder = Forwarder(journal, client, UPSTREAM, rng=random.Random(1))
            await drain(journal, forwarder)
            answered = dict(host.counts)
            forwarder.kick()  # a new item recorded: the held ones must not go again
            for _ in range(20):
                await asyncio.sleep(0.005)
            assert host.counts["financial"] == answered["financial"], "sent again"
            await forwarder.stop()
            # FN 5: the held advices hold nothing back, and the host holds none of them: agreed
            journal.close_day()
            assert await check_with_host(journal, client, 1, "EUR")
            await client.close()
            return answered

    counts = asyncio.run(strict())
    assert counts["financial"] == 3
    assert (row_of(journal, 1).status, row_of(journal, 1).response_code) == (
        TxnStatus.ADVICE_REFUSED,
        "30",
    )
    assert row_of(journal, 2).status is TxnStatus.ADVICE_REFUSED  # 58: this terminal's set-up
    assert row_of(journal, 3).status is TxnStatus.DECLINED_AFTER  # 51: the issuer judged it
    assert sorted(held_cards(data)) == [1, 2]  # kept sealed to send again; 3's is wiped
    assert "never judged" in journal.history(1)[-1].note
    assert journal.pending_count() == 0 and journal.next_forward_items(8) == []

    report = read_report(data)  # what `pitill report` and the FN report show
    assert (report.advices_refused.count, report.advices_refused.amount_minor) == (2, 5500)
    assert (report.declined_after.count, report.declined_after.amount_minor) == (1, 700)
    assert f"{ADVICE_REFUSED_LINE} 2 55.00" in report.screen_lines()
    assert "ADVICE REFUSED" in report.text() and "journal requeue" in report.text()
    assert read_reversal_trouble(data).advices_refused == (
        (1, 1, 4200, "EUR", "30"),
        (2, 2, 1300, "EUR", "58"),
    )

    z = journal.z_report(1)
    assert (z.day.host_status, z.owed_to_host) == (HostCheck.AGREED, 0)
    assert (z.totals.advices_refused.count, z.totals.advices_refused.amount_minor) == (2, 5500)
    assert f"{ADVICE_REFUSED_LINE} 2 55.00" in z.screen_lines()
    assert ADVICE_REFUSED_LINE in z.text()
    with sqlite3.connect(data / JOURNAL_FILE_NAME) as raw:
        (day,) = find_days(raw, "1")
        assert reconciliation(day_lines(raw, day)).debits == 0  # the host took none of them
    raw.close()
    journal.close()

    line, code = doctor_line(data, "advices")
    assert line.startswith("FAIL") and "seq 1, STAN 000001 42.00 EUR (code 30)" in line, line
    assert code == 1

    # A person: seq 3 was an issuer's decline, nothing to do; seq 2 the acquirer will not take.
    wrong = pitill("journal", "decline", "--data-dir", str(data), "--seq", "3", "--note", "x")
    assert wrong.returncode != 0 and "not an advice the host refused" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1  # one line, no traceback
    declined = pitill(
        "journal", "decline", "--data-dir", str(data), "--seq", "2", "--note", "ticket 4712"
    )
    assert declined.returncode == 0, declined.stderr
    assert "is DECLINED_AFTER" in declined.stdout
    # ...and the cause of seq 1's 30 was fixed: send it again.
    requeued = pitill(
        "journal", "requeue", "--data-dir", str(data), "--seq", "1", "--note", "host fixed"
    )
    assert requeued.returncode == 0, requeued.stderr
    assert "STAN 000001, 42.00 EUR) is PENDING again" in requeued.stdout
    assert held_cards(data) == {}  # the decline wiped 2's card, the re-queue moved 1's back

    journal = open_journal(data)
    assert row_of(journal, 2).status is TxnStatus.DECLINED_AFTER
    assert journal.history(2)[-1].note == "declined by hand: ticket 4712"

    async def fixed() -> None:
        async with AcquirerHost(tmp_path / "host", advice_policy=acknowledge) as host:
            client = client_for(host.port)
            forwarder = Forwarder(journal, client, UPSTREAM, rng=random.Random(1))
            await drain(journal, forwarder)
            await forwarder.stop()
            await client.close()

    asyncio.run(fixed())
    assert (row_of(journal, 1).status, row_of(journal, 1).response_code) == (
        TxnStatus.FORWARDED,
        "00",
    )
    journal.close()
    line, code = doctor_line(data, "advices")
    assert line.startswith("ok"), line


def test_salvage_carries_held_advices_and_refused_reversals_over_still_flagged(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    sealer = Sealer.load_or_create(data / KEY_FILE_NAME)
    journal = Journal.open(data, sealer)
    journal.record(offline_sale(1, amount_minor=4200))
    journal.record(offline_sale(2, amount_minor=900))
    journal.mark_forwarded(1, "30")  # held, its card kept
    journal.recover_at_boot()
    journal.record(offline_sale(3, amount_minor=500))
    with journal._write("a reversal the host refused") as conn:  # as mark_forwarded leaves one
        conn.execute(
            "UPDATE txns SET status = 'REVERSAL_PENDING', sealed_card = NULL WHERE seq = 3"
        )
    journal.mark_forwarded(3, "30")
    assert row_of(journal, 3).status is TxnStatus.REVERSAL_REFUSED
    journal.close()
    damage_the_status_index(data / JOURNAL_FILE_NAME)
    fresh = Journal.open(data, sealer)
    assert fresh.moved_aside is not None
    fresh.close()
    assert read_reversal_trouble(data).advices_refused == ()  # the new journal lost them

    (result,) = salvage(data, [])
    assert not result.problems, result.problems
    trouble = read_reversal_trouble(data)
    assert [(stan, code) for _, stan, _, _, code in trouble.advices_refused] == [(1, "30")]
    assert [(stan, code) for _, stan, _, _, code in trouble.refused] == [(3, "30")]
    journal = Journal.open(data, sealer)
    (held_seq,) = (seq for seq, stan, *_ in trouble.advices_refused if stan == 1)
    assert held_seq in held_cards(data)  # its card came along: it can still be re-queued
    row = journal.requeue_refused_advice(held_seq, "after salvage")
    assert row.status is TxnStatus.PENDING
    (item,) = [i for i in journal.next_forward_items(8) if i.row.seq == held_seq]
    assert item.card is not None and item.card.pan == offline_sale(1).card.pan  # type: ignore[union-attr]
    assert salvage_again_adds_nothing(journal, data)
    journal.close()


def salvage_again_adds_nothing(journal: Journal, data: Path) -> bool:
    journal.close()
    (result,) = salvage(data, [])
    return result.taken == []
