"""The journal's part of trust: one card's offline sales counted by fingerprint, the settings and
the newest date it keeps across restarts, and stamps that never go backwards."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from journal_helpers import card, offline_sale, online_sale

from pitill.card.model import Card, SunMessage
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.journal import dbfile
from pitill.journal.listing import read_newest_wall, read_settings
from pitill.journal.model import OwedRow
from pitill.journal.seal import KEY_FILE_NAME, Sealer
from pitill.journal.store import JOURNAL_FILE_NAME, MODE_SETTING, Journal
from pitill.wallclock import to_utc

DAY_S = 86400.0


class Clocks:
    """A wall clock and a monotonic clock moved by hand."""

    def __init__(self, wall: datetime = datetime(2027, 3, 1, 12, 0)) -> None:
        self.wall = wall
        self.mono_s = 100.0

    def open(self, data_dir: Path) -> Journal:
        sealer = Sealer.load_or_create(data_dir / KEY_FILE_NAME)
        return Journal.open(
            data_dir, sealer, clock=lambda: self.wall, monotonic=lambda: self.mono_s
        )


def sale_of(txn: Txn, index: int) -> Txn:
    """`txn` paid with test card `index` (the helpers give every seq its own card)."""
    return dataclasses.replace(txn, card=card(index))


def test_offline_sales_of_one_card_count_until_the_host_approves_it_online(tmp_path: Path) -> None:
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    pan = card(1).pan
    assert journal.offline_sales_of_card(pan, window_s=DAY_S) == 0  # no key yet: nothing to match
    journal.record(sale_of(offline_sale(1), 1))
    journal.record(sale_of(offline_sale(2), 2))  # another card
    journal.record(sale_of(offline_sale(3), 1))
    assert journal.offline_sales_of_card(pan, window_s=DAY_S) == 2
    journal.mark_attempts([1, 3])
    journal.mark_forwarded_many([(1, "00"), (3, "05")])  # forwarded, declined after: both count
    assert journal.offline_sales_of_card(pan, window_s=DAY_S) == 2
    journal.record(sale_of(online_sale(4, TxnStatus.AUTHORIZING), 1))
    assert journal.offline_sales_of_card(pan, window_s=DAY_S) == 2  # not approved yet
    journal.record(sale_of(online_sale(4, TxnStatus.APPROVED), 1))
    assert journal.offline_sales_of_card(pan, window_s=DAY_S) == 0  # the host saw the card
    journal.record(sale_of(offline_sale(5), 1))
    assert journal.offline_sales_of_card(pan, window_s=DAY_S) == 1
    journal.close()
    journal = clocks.open(tmp_path)  # a restart changes nothing
    assert journal.offline_sales_of_card(pan, window_s=DAY_S) == 1
    journal.close()


def test_fingerprints_are_kept_only_where_counted_and_only_within_the_window(
    tmp_path: Path,
) -> None:
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    journal.record(sale_of(online_sale(1, TxnStatus.AUTHORIZING), 1))
    journal.record(sale_of(online_sale(1, TxnStatus.REVERSAL_PENDING), 1))
    journal.record(sale_of(online_sale(2, TxnStatus.DECLINED), 1))
    journal.record(sale_of(offline_sale(3), 1))
    clocks.mono_s += 5000
    journal.record(sale_of(online_sale(4, TxnStatus.APPROVED), 2))

    def printed() -> list[int]:
        rows = journal._conn.execute("SELECT seq FROM txns WHERE card_fp IS NOT NULL ORDER BY seq")
        return [seq for (seq,) in rows]

    assert printed() == [3, 4]  # an offline approval and an online approval
    journal.save_runtime(card_window_s=7200)
    assert printed() == [3, 4]
    clocks.mono_s += 3000  # sale 3 is now 8000 s old, sale 4 3000 s
    journal.save_runtime(card_window_s=7200)
    assert printed() == [4]
    journal.close()


def test_the_per_card_window_runs_on_the_running_time(tmp_path: Path) -> None:
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    pan = card(1).pan
    journal.record(sale_of(offline_sale(1), 1))
    clocks.mono_s += 3600
    journal.record(sale_of(offline_sale(2), 1))
    clocks.wall -= timedelta(days=400)  # the wall clock plays no part
    assert journal.offline_sales_of_card(pan, window_s=7200) == 2
    clocks.mono_s += 5000
    assert journal.offline_sales_of_card(pan, window_s=7200) == 1  # the first is 8600 s old
    journal.record(sale_of(offline_sale(3), 1).with_status(TxnStatus.VOIDED))
    assert journal.offline_sales_of_card(pan, window_s=7200) == 1  # told NOT saved: no sale
    journal.close()


def test_an_nfc_card_is_one_card_whatever_its_read_counter(tmp_path: Path) -> None:
    journal = Clocks().open(tmp_path)
    taps = [
        Card.from_sun("04DE5F1EACC040", counter, SunMessage(bytes(16), bytes(8)))
        for counter in (1, 2)
    ]
    for seq, tap in enumerate(taps, start=1):
        journal.record(dataclasses.replace(offline_sale(seq), card=tap))
    assert journal.offline_sales_of_card(taps[0].identity, window_s=DAY_S) == 2
    assert journal.offline_sales_of_card(Card.from_uid("04A1B2C3D4E5F6").identity, DAY_S) == 0
    journal.close()


def test_the_fingerprint_is_keyed_never_a_plain_hash_of_the_pan(tmp_path: Path) -> None:
    pan = card(1).pan
    one = Sealer.load_or_create(tmp_path / "a" / KEY_FILE_NAME)
    other = Sealer.load_or_create(tmp_path / "b" / KEY_FILE_NAME)
    assert one.fingerprint(pan, create_key=False) is None  # asking never creates a key
    print_one, print_other = one.fingerprint(pan), other.fingerprint(pan)
    assert print_one == one.fingerprint(pan) and print_one != print_other
    assert print_one is not None and len(bytes.fromhex(print_one)) == 16
    for plain in (hashlib.sha256(pan.encode()).hexdigest(), hashlib.md5(pan.encode()).hexdigest()):
        assert print_one not in plain


def test_a_schema_3_journal_is_migrated_and_its_pending_sales_keep_counting(
    tmp_path: Path,
) -> None:
    """An old journal file, written as pitill wrote it before schema 4 (no card_fp, no meta)."""
    data = tmp_path / "data"
    data.mkdir()
    sealer = Sealer.load_or_create(data / KEY_FILE_NAME)
    conn = sqlite3.connect(data / JOURNAL_FILE_NAME, isolation_level=None)
    for statement in (*dbfile.MIGRATIONS[0], *dbfile.MIGRATIONS[1], *dbfile.MIGRATIONS[2]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 3")
    for seq, status, blob in (
        (1, "FORWARDED", None),
        (2, "PENDING", sealer.seal(2, card(1))),
        (3, "PENDING", sealer.seal(3, card(2))),
    ):
        conn.execute(
            "INSERT INTO txns (seq, kind, mode, amount_minor, currency, status, masked_pan,"
            " stan, local_datetime, sealed_card, created_at) VALUES"
            " (?, 'card', 'offline', 500, 'EUR', ?, '400000******0001', ?, '270301120000', ?,"
            " '2027-03-01T12:00:00')",
            (seq, status, seq, blob),
        )
    conn.close()

    journal = Clocks().open(data)
    (version,) = journal._conn.execute("PRAGMA user_version").fetchone()
    assert version == len(dbfile.MIGRATIONS) >= 5  # 5: voided_by_seq, 6: reserved STANs
    assert journal.offline_sales_of_card(card(1).pan, window_s=DAY_S) == 1
    assert journal.offline_sales_of_card(card(2).pan, window_s=DAY_S) == 1
    assert journal.setting(MODE_SETTING) is None
    assert journal.pending_count() == 2 and journal.next_seq() == 4
    journal.close()
    assert set(read_settings(data)) == {"newest_wall_utc"}  # saved at close; no mode chosen


def test_salvaged_offline_sales_count_for_their_card(tmp_path: Path) -> None:
    journal = Clocks().open(tmp_path)
    owed = OwedRow(
        seq=7,
        kind=TxnKind.CARD,
        mode=TxnMode.OFFLINE,
        amount_minor=500,
        currency="EUR",
        status=TxnStatus.PENDING,
        masked_pan=card(1).masked_pan,
        stan=7,
        local_datetime="270301110000",
        response_code="Y3",
        attempts=0,
        created_at="2027-03-01T11:00:00",
        card=card(1),
    )
    assert journal.adopt([owed], "journal.sqlite3.corrupt-1") == [(7, 1)]
    assert journal.offline_sales_of_card(card(1).pan, window_s=DAY_S) == 1
    journal.close()


def test_settings_survive_a_restart(tmp_path: Path) -> None:
    clocks = Clocks()
    journal = clocks.open(tmp_path)
    journal.save_setting(MODE_SETTING, "force_offline")
    journal.save_setting(MODE_SETTING, "require_online")
    journal.close()
    journal = clocks.open(tmp_path)
    assert journal.setting(MODE_SETTING) == "require_online"
    journal.close()
    assert read_settings(tmp_path)[MODE_SETTING] == "require_online"


def test_stamps_never_go_backwards_and_the_newest_date_survives_a_restart(tmp_path: Path) -> None:
    clocks = Clocks(datetime(2027, 3, 1, 12, 0))
    journal = clocks.open(tmp_path)
    journal.record(offline_sale(1))
    clocks.wall += timedelta(hours=2)
    assert journal.clock_problem() is None
    journal.close()  # saves the running time, and the newest date seen (14:00)

    clocks.wall = datetime(2027, 2, 1, 8, 0)  # reboot without an RTC: a month back
    journal = clocks.open(tmp_path)
    problem = journal.clock_problem()
    assert problem is not None and "behind the newest date in the journal" in problem
    assert journal.trusted_now() == to_utc(datetime(2027, 3, 1, 14, 0))
    row = journal.record(offline_sale(2))
    assert row.local_datetime == "270301140000"  # not 270201080000
    assert journal.history(2)[0].at == "2027-03-01T14:00:00"
    clocks.wall = datetime(2027, 3, 2, 9, 0)  # NTP steps the clock forward
    assert journal.clock_problem() is None
    assert journal.record(offline_sale(3)).local_datetime == "270302090000"
    journal.close()
    assert read_newest_wall(tmp_path) == to_utc(datetime(2027, 3, 2, 9, 0))
