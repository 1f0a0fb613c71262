"""One wait per sale: an online sale's AUTHORIZING commit is not fsynced (its seq was reserved
durably, a block at a time), and a power loss that takes it is answered by reversing every
reserved STAN that has no record. Real SQLite files; a power loss is made by cutting the WAL back
to its last fsync (what an SD card keeps when the page cache is lost); strace counts the fsyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from journal_helpers import StepClock, offline_sale, online_sale, row_of

from pitill.config import TerminalConfig
from pitill.core.types import TxnStatus
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, STAN_BLOCK, Journal
from pitill.records import ForwardKind
from pitill.sim.acquirer import AcquirerHost, net_charged_minor
from pitill.upstream.connect import close_stream
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import Message, build_reversal, decode, encode

WAL = JOURNAL_FILE_NAME + "-wal"


def open_in(data: Path, boot: str) -> Journal:
    sealer = Sealer.load_or_create(data / KEY_FILE_NAME)
    return Journal.open(data, sealer, clock=StepClock(), boot_id=lambda: boot)


def power_loss_copy(data: Path, target: Path, wal_synced_bytes: int) -> Path:
    """The data dir as the card holds it after a power cut: the WAL's unsynced tail is gone."""
    shutil.copytree(data, target)
    with open(target / WAL, "r+b") as wal:
        wal.truncate(wal_synced_bytes)
    (target / (JOURNAL_FILE_NAME + "-shm")).unlink(missing_ok=True)
    return target


def test_a_power_loss_during_authorization_reverses_every_reserved_stan(tmp_path: Path) -> None:
    data = tmp_path / "data"
    journal = open_in(data, "boot-1")
    assert journal.recover_at_boot() == []  # reserves seqs 1..STAN_BLOCK, as every start does
    journal.record(online_sale(1))
    journal.record(online_sale(1, TxnStatus.APPROVED))
    synced = (data / WAL).stat().st_size
    journal.record(online_sale(2))  # not fsynced: the 0200 may be on its way now
    assert (data / WAL).stat().st_size > synced

    # kill -9 (the machine stays up): the page cache keeps the row, nothing more is reversed
    crashed = open_in(shutil.copytree(data, tmp_path / "crashed"), "boot-1")
    assert crashed.recover_at_boot() == [2]
    assert crashed.next_seq() == 3 and crashed.pending_count() == 1

    # a power loss: the row is gone with the page cache; every reserved STAN left is reversed
    lost = open_in(power_loss_copy(data, tmp_path / "lost", synced), "boot-2")
    assert lost.get(2) is None
    assert lost.recover_at_boot() == list(range(2, STAN_BLOCK + 1))
    assert lost.next_seq() == STAN_BLOCK + 1  # never reuse a STAN whose 0200 may be out there
    items = lost.next_forward_items(STAN_BLOCK)
    assert [i.row.seq for i in items] == list(range(2, STAN_BLOCK + 1))
    assert all(i.kind is ForwardKind.REVERSAL and i.row.stan_only for i in items)
    message = build_reversal(items[0], TerminalConfig())
    assert message["11"] == "000002"
    assert message["90"][4:20] == "000002" + "0000000000"  # original time unknown: STAN alone
    assert row_of(lost, 1).status is TxnStatus.APPROVED  # the sale before is untouched

    # a new block is reserved; a crash now (same boot) reverses only the sale it caught
    lost.record(online_sale(STAN_BLOCK + 1))
    lost.close()
    again = open_in(tmp_path / "lost", "boot-2")
    assert again.recover_at_boot() == [STAN_BLOCK + 1]  # only the one caught mid-authorization
    again.close()
    journal.close()


def test_a_clean_stop_closes_the_block(tmp_path: Path) -> None:
    data = tmp_path / "data"
    journal = open_in(data, "boot-1")
    journal.record(online_sale(1))
    journal.record(online_sale(1, TxnStatus.APPROVED))
    journal.close()
    after_reboot = open_in(data, "boot-2")
    assert after_reboot.recover_at_boot() == []
    assert after_reboot.next_seq() == 2
    after_reboot.close()


CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from pitill.card.model import Card
    from pitill.core.txn import Txn
    from pitill.core.types import TxnKind, TxnMode, TxnStatus as S
    from pitill.journal.seal import KEY_FILE_NAME, Sealer
    from pitill.journal.store import Journal

    kind, sales, data = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    journal = Journal.open(data, Sealer.load_or_create(data / KEY_FILE_NAME))
    journal.recover_at_boot()  # as every start does: it reserves the first STANs
    journal.record(Txn(1, TxnKind.CASH, TxnMode.OFFLINE, 100, "EUR", S.COMPLETED))
    card = Card(pan="4000000000000002", expiry_yymm="2812")
    for seq in range(2, sales + 2):
        if kind == "online":
            sale = Txn(seq, TxnKind.CARD, TxnMode.ONLINE, 100, "EUR", S.AUTHORIZING, card)
            journal.record(sale)
            journal.record(sale.with_status(S.APPROVED, response_code="00"))
        elif kind == "offline":
            journal.record(Txn(seq, TxnKind.CARD, TxnMode.OFFLINE, 100, "EUR", S.PENDING, card))
        else:
            journal.record(Txn(seq, TxnKind.CASH, TxnMode.OFFLINE, 100, "EUR", S.COMPLETED))
    os._exit(0)  # no close: a close checkpoints, which is not what is measured here
    """
)


def wal_syncs(tmp_path: Path, kind: str, sales: int) -> int:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    trace = tmp_path / f"trace-{kind}-{sales}"
    subprocess.run(
        [
            *("strace", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace)),
            *(sys.executable, str(script), kind, str(sales), str(tmp_path / f"{kind}-{sales}")),
        ],
        check=True,
        timeout=60,
    )
    counts: Counter[str] = Counter()
    for line in trace.read_text().splitlines():
        if "sync(" in line and "<" in line:
            counts[line.split("<", 1)[1].split(">", 1)[0].rsplit("/", 1)[-1]] += 1
    return counts[WAL]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("kind", ["online", "offline", "cash"])
def test_each_kind_of_sale_waits_for_one_fsync(tmp_path: Path, kind: str) -> None:
    sales = 3 * STAN_BLOCK  # the reservation is topped up several times, in fsynced commits
    try:
        extra = wal_syncs(tmp_path, kind, sales) - wal_syncs(tmp_path, kind, 0)
    except subprocess.CalledProcessError:  # pragma: no cover - ptrace not permitted here
        pytest.skip("strace cannot trace in this environment")
    assert extra == sales  # an online sale: its answer's commit, nothing else


def sale_0200(stan: int, amount_minor: int, when: str) -> Message:
    return {
        "t": "0200",
        "2": "4111111111111111",
        "3": "000000",
        "4": f"{amount_minor:012d}",
        "7": when,
        "11": f"{stan:06d}",
        "12": when[4:],
        "13": when[:4],
        "14": "3012",
        "22": "902",
        "35": "4111111111111111=30121010000",  # the swipe's track 2
        "41": "PITILL01",
        "42": "PITILLSHOP00001",
        "49": "978",
    }


def test_the_host_reverses_by_stan_alone_and_charges_nobody_for_an_unknown_stan(
    tmp_path: Path,
) -> None:
    """The sandbox host over TCP: the 0420s a power loss leaves behind (built by the terminal's
    own code from the recovered journal) undo the lost sale and touch nothing else."""
    data = tmp_path / "data"
    clock = StepClock(datetime(2025, 10, 20, 9, 30))
    journal = Journal.open(
        data, Sealer.load_or_create(data / KEY_FILE_NAME), clock=clock, boot_id=lambda: "boot-1"
    )
    journal.recover_at_boot()  # reserved at 1020093000: the lower bound of the block
    journal.record(online_sale(1))
    journal.record(online_sale(1, TxnStatus.APPROVED))
    synced = (data / WAL).stat().st_size
    journal.record(online_sale(2))  # its 0200 reached the host and was approved; then the cut
    lost = power_loss_copy(data, tmp_path / "lost", synced)
    journal.close()
    recovered = open_in(lost, "boot-2")
    recovered.recover_at_boot()
    reversals = {
        item.row.stan: build_reversal(item, TerminalConfig())
        for item in recovered.next_forward_items(STAN_BLOCK)
    }
    recovered.close()

    async def scenario() -> list[Message]:
        async with AcquirerHost(tmp_path / "host", today_yymm=lambda: "2510") as host:
            reader, writer = await asyncio.open_connection("127.0.0.1", host.port)

            async def ask(message: Message) -> Message:
                writer.write(frame(encode(message)))
                await writer.drain()
                async with asyncio.timeout(10):
                    payload = await read_frame(reader)
                assert payload is not None
                return decode(payload)

            try:
                return [
                    await ask(sale_0200(3, 700, "1019120000")),  # a day before: not this block
                    await ask(sale_0200(2, 4200, "1020093005")),  # the sale whose row was lost
                    await ask(reversals[2]),
                    await ask(reversals[3]),
                    await ask(reversals[4]),  # a STAN the host never saw
                ]
            finally:
                await close_stream(writer)

    answers = asyncio.run(scenario())
    assert [a["39"] for a in answers] == ["00"] * 5
    ledger = AcquirerHost(tmp_path / "host").ledger()
    assert [e.get("reversed") for e in ledger[2:]] == [True, False, False]
    assert ledger[2]["original"] == "0200:000002:1020093005"
    assert net_charged_minor(ledger) == 700  # the lost sale undone, the older one kept


def test_a_seq_taken_by_an_echo_is_never_a_transactions(tmp_path: Path) -> None:
    """Echoes take their STAN from the sales' counter (the shell's StanSource): the journal keeps
    the seq taken across a crash and a clean restart, and reverses no echo after a power loss."""
    data = tmp_path / "data"
    journal = open_in(data, "boot-1")
    journal.recover_at_boot()  # reserves 1..STAN_BLOCK
    journal.record(online_sale(1))
    journal.record(online_sale(1, TxnStatus.APPROVED))
    journal.take_message_seq(2)  # in the block: one commit, no fsync
    assert journal.next_seq() == 3
    journal.take_message_seq(STAN_BLOCK + 5)  # past the block: the block moves on, fsynced
    synced = (data / WAL).stat().st_size

    crashed = open_in(shutil.copytree(data, tmp_path / "crashed"), "boot-1")
    assert crashed.recover_at_boot() == []
    assert crashed.next_seq() == STAN_BLOCK + 6  # past the echo, after a kill -9 too
    crashed.close()
    lost = open_in(power_loss_copy(data, tmp_path / "lost", synced), "boot-2")
    reversed_seqs = lost.recover_at_boot()
    assert reversed_seqs == list(range(STAN_BLOCK + 6, 2 * STAN_BLOCK + 6))  # the new block's
    assert 2 not in reversed_seqs and STAN_BLOCK + 5 not in reversed_seqs
    lost.close()
    journal.close()


class SyncedJournal(Journal):
    """The real journal, noting the WAL's size after each commit it makes fsynced: what a power
    cut at that moment leaves on the card at least."""

    synced_wal_bytes = 0

    @contextlib.contextmanager
    def _write(self, what: str, *, fsync: bool = True) -> Iterator[sqlite3.Connection]:
        with super()._write(what, fsync=fsync) as conn:
            yield conn
        if fsync:
            self.synced_wal_bytes = (self.path.parent / WAL).stat().st_size


def test_no_stan_is_given_twice_across_a_crash_or_a_power_loss_at_any_moment(
    tmp_path: Path,
) -> None:
    """A shell's run, as the journal sees it: 0800s and 0500s take seqs (take_message_seq, from
    the core's next seq), online sales record AUTHORIZING before their 0200 and then the answer,
    offline sales one record. After each step the machine loses power (the WAL cut back to its
    last fsync, a new boot id) or the program is killed (all kept, same boot): at the next
    start no seq given to a message before (a STAN that may be at the host) goes to a message
    again; the ones a power loss may have taken are reversed by STAN alone, never reused."""
    data = tmp_path / "data"
    sealer = Sealer.load_or_create(data / KEY_FILE_NAME)
    journal = SyncedJournal.open(data, sealer, clock=StepClock(), boot_id=lambda: "boot-1")
    assert isinstance(journal, SyncedJournal)
    journal.recover_at_boot()
    core_next = journal.next_seq()  # the core's next seq (Booted), moved as the shell moves it
    given: list[int] = []  # seqs whose STAN went out in a message
    shop = ["echo", "online", "echo", "echo", "offline", "pending", "echo", "online"] * 5
    idle = ["echo"] * (STAN_BLOCK + 8)  # an hour of echoes, no sale: past the reserved block
    steps = [*shop, *idle, *shop]
    for n, kind in enumerate(steps):
        if kind == "echo":  # an 0800 (or 0500): SeqTaken moves the core past it
            seq = journal.take_message_seq(core_next)
            given.append(seq)
            core_next = seq + 1
        elif kind == "offline":
            journal.record(offline_sale(core_next))
            given.append(core_next)
            core_next += 1
        else:  # an 0200 goes after its AUTHORIZING record; "pending": no answer yet
            journal.record(online_sale(core_next))
            given.append(core_next)
            if kind == "online":
                journal.record(online_sale(core_next, TxnStatus.APPROVED))
            core_next += 1
        assert len(set(given)) == len(given)  # while running, too
        if n % 3:
            continue  # every third step: keep the test short, every kind of step is met
        cut = tmp_path / f"cut-{n}"
        for boot, copy in (
            ("boot-1", shutil.copytree(data, cut / "killed")),  # kill -9: the page cache kept all
            ("boot-2", power_loss_copy(data, cut / "lost", journal.synced_wal_bytes)),
        ):
            again = open_in(copy, boot)
            reversed_seqs = again.recover_at_boot()
            restart_next = again.next_seq()
            after = [again.take_message_seq(restart_next)]  # the first 0800 after the start
            after.append(again.next_seq())  # and the first sale
            assert not set(after) & set(given), (n, boot, after)
            # What a power loss took is reversed by STAN alone (its 0200 may have gone out);
            # that reversal names the STAN, it gives it to no new message.
            lost = {s for s in given if again.get(s) is None} - set(reversed_seqs)
            assert not lost & _transaction_seqs(steps, given), (n, boot, lost)
            again.close()
    journal.close()


def _transaction_seqs(steps: list[str], given: list[int]) -> set[int]:
    """The seqs of transactions among those given (not 0800s)."""
    return {seq for kind, seq in zip(steps, given, strict=False) if kind != "echo"}


def test_a_25_to_a_stan_only_reversal_is_nothing_to_reverse_but_refuses_a_real_sales(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    journal = open_in(data, "boot-1")
    journal.recover_at_boot()
    journal.record(online_sale(1))
    journal.record(online_sale(1, TxnStatus.APPROVED))
    synced = (data / WAL).stat().st_size
    journal.record(online_sale(2))

    # a power loss against a host answering 25 ("unable to locate original") to every reversal
    lost = open_in(power_loss_copy(data, tmp_path / "lost", synced), "boot-2")
    seqs = lost.recover_at_boot()
    rows = lost.mark_forwarded_many([(seq, "25") for seq in seqs])
    assert [r.status for r in rows] == [TxnStatus.REVERSED] * len(seqs)
    assert "nothing to reverse" in lost.history(seqs[0])[-1].note

    # a real sale caught mid-authorization (same boot): a 25 may hide it under another key
    crashed = open_in(shutil.copytree(data, tmp_path / "crashed"), "boot-1")
    assert crashed.recover_at_boot() == [2]
    (row,) = crashed.mark_forwarded_many([(2, "25")])
    assert row.status is TxnStatus.REVERSAL_REFUSED
