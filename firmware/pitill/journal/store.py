"""The journal: every transaction in one SQLite file, one durable commit per state change.

DATA_DIR/journal.sqlite3 runs in WAL mode with synchronous=FULL, so a commit returns only once
its WAL frames are fsynced: a sale the customer was told about survives a power cut. Order is
the persisted seq, never the wall clock (a Pi has no RTC); the injected clock only stamps the
local date/time the host uses to deduplicate, through wallclock.trusted: a stamp is never earlier
than the newest one already in the journal, even when the clock was set back.

Each card transaction carries its card fingerprint (seal.py), so the offline sales of one card
are counted from this file, not from memory: a restart or a short return of the host does not
reset the per-card limit.

A full PAN never reaches this file: masked_pan is the only unsealed card column and the card of
an offline sale waiting to be forwarded sits in sealed_card (AES-GCM, see seal.py). The blob is
set to NULL in the commit that records the host's answer; secure_delete overwrites the freed
bytes in the database and a WAL checkpoint (TRUNCATE) runs once no sealed data is left, so the
old WAL frames go too. (An SD card's wear levelling may still keep old blocks: see seal.py.)
The card of an online sale sits sealed in reversal_card from its AUTHORIZING row until the
0210 is recorded, or, when its outcome stayed unknown, until the 0430 is: the 0420 carries it
(fields 2, 14, 22), also after a restart (DECISIONS.md, "A reversal carries its card").

At open the file is integrity-checked (dbfile.py); a corrupt file is moved aside, never
deleted, and a fresh journal started, with `moved_aside` / `notice` telling the shell.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from pitill.card.hotlist import hotlist_entry, program_card
from pitill.card.model import Card, CardTier
from pitill.core.refund import REFUND_COUNTED, REFUNDABLE
from pitill.core.responses import (
    UNABLE_TO_LOCATE_ORIGINAL,
    ResponseClass,
    advice_class,
    advice_held,
)
from pitill.core.txn import SaleOnRecord, Txn, stan_for
from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.errors import SealError, StorageError
from pitill.journal import days
from pitill.journal.dbfile import (
    JournalMovedAside,
    check_rows,
    integrity_problem,
    open_database,
    storage_error,
    transaction,
)
from pitill.journal.model import OfflineExposure, OwedRow, StatusTotal
from pitill.journal.seal import Sealer
from pitill.records import ForwardItem, ForwardKind, HotlistPage, JournalRow
from pitill.wallclock import clock_problem, parse_instant, recordable, to_utc, trusted

JOURNAL_FILE_NAME = "journal.sqlite3"
# Seqs (and so STANs) reserved durably ahead for online sales (see Journal._record): at most
# this many reversals by STAN alone after a power loss; topped up once half is used.
STAN_BLOCK = 32
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
TO_FORWARD = (TxnStatus.REVERSAL_PENDING, TxnStatus.PENDING)  # in the order they are sent
# Answered for good: the forwarder never sends these again. REVERSAL_REFUSED is answered but
# NOT reversed (the host refused the 0420): it waits for a person, not for the forwarder.
ACKNOWLEDGED = (
    TxnStatus.FORWARDED,
    TxnStatus.DECLINED_AFTER,
    TxnStatus.REVERSED,
    TxnStatus.REVERSAL_REFUSED,
    TxnStatus.ADVICE_REFUSED,  # held for a person (its card in held_card), never resent by itself
)
# Answered by the host but waiting for a person (`pitill doctor` fails while any is left).
NEEDS_ATTENTION = (TxnStatus.REVERSAL_REFUSED, TxnStatus.ADVICE_REFUSED)
Clock = Callable[[], datetime]
# Offline approvals of a card: they count against its per-card limit until the host approves
# that card online (DECLINED_AFTER too: the host refused it, all the more reason to count it).
OFFLINE_APPROVALS = (
    TxnStatus.PENDING,
    TxnStatus.FORWARDED,
    TxnStatus.DECLINED_AFTER,
    TxnStatus.ADVICE_REFUSED,  # not through: held for a person, still an offline approval
)
# The rows that keep a card fingerprint: those the count reads (an online approval resets it).
# Any other row has none, and save_runtime wipes it from rows older than the window: with the
# key file and the masked PAN, a fingerprint could be matched against the few PANs they leave.
FINGERPRINTED = (*OFFLINE_APPROVALS, TxnStatus.APPROVED)
NEWEST_WALL_KEY = "newest_wall_utc"
# The highest seq whose STAN went to the host in a message of no transaction (an echo): seqs
# and STANs are one counter, so the next transaction's seq is past it (see take_message_seq).
MESSAGE_SEQ_KEY = "message_seq_through"
_TOP_SQL = (
    "SELECT max(coalesce((SELECT max(seq) FROM txns), 0),"
    f" coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{MESSAGE_SEQ_KEY}'), 0))"
)
MODE_SETTING = "offline_mode"  # the OfflineMode chosen from the FN menu
HOTLIST_KEY_SETTING = "hotlist_key"  # the program's hotlist key, hex, as the host sent it
HOTLIST_VERSION_SETTING = "hotlist_version"  # the last hotlist change applied

# Refunds count against their sale in these statuses (core/refund.py: the cap's one home).
_COUNTED = tuple(status.value for status in sorted(REFUND_COUNTED))
_COUNTED_MARKS = ", ".join("?" for _ in _COUNTED)
# A sale as the void and refund decisions read it (SaleOnRecord), from `txns s`.
_SALE_COLUMNS = (
    "seq, kind, mode, status, amount_minor, currency, masked_pan, created_runtime_s, attempts,"
    " coalesce((SELECT sum(amount_minor) FROM txns r WHERE r.refunds_seq = s.seq"
    f" AND r.status IN ({_COUNTED_MARKS})), 0)"
)
_ROW_FIELDS = tuple(field.name for field in dataclasses.fields(JournalRow))  # = column names
_ROW_COLUMNS = ", ".join(_ROW_FIELDS)
_HISTORY_SQL = "INSERT INTO txn_history (seq, status, at, note) VALUES (?, ?, ?, ?)"
_IN_CHUNK = 500  # seqs per `seq IN (...)` query: well under SQLite's limit on parameters
# The reconciliation report's one query: a handful of rows however long the journal is.
REPORT_TOTALS_SQL = (
    "SELECT kind, mode, status, MIN(currency), COUNT(*), COALESCE(SUM(amount_minor), 0),"
    " card_tier FROM txns GROUP BY kind, mode, status, card_tier"
    " ORDER BY kind, mode, status, card_tier"
)


@dataclass(frozen=True)
class HistoryEntry:
    """One state change of a transaction, in the order it was committed."""

    seq: int
    status: TxnStatus
    at: str  # ISO local date/time from the shell's clock: for people, never for ordering
    note: str


def read_boot_id() -> str:
    """This boot of the machine (Linux); "" when unknown, which counts as a new boot."""
    try:
        return BOOT_ID_PATH.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""


class Journal:
    """The store of record. Methods are thread-safe (one lock around the one connection)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        sealer: Sealer,
        clock: Clock,
        notice: JournalMovedAside | None,
        boot_id: str = "",
    ) -> None:
        self._conn = conn
        self.path = path
        self._sealer = sealer
        self._clock = clock
        self._lock = threading.RLock()
        self._closed = False
        self.notice = notice
        self._file: _FileWatch | None = None  # set by open(): is the file still at its path?
        self._newest_wall: datetime | None = None  # the newest wall-clock date recorded (UTC)
        self._boot_id = boot_id
        self._reserved_through = 0  # seqs up to here were reserved durably (STAN_BLOCK)
        self._counts: dict[tuple[TxnStatus, ...], tuple[tuple[Any, ...], int]] = {}  # _count

    @classmethod
    def open(
        cls,
        data_dir: Path,
        sealer: Sealer,
        clock: Clock = datetime.now,
        monotonic: Callable[[], float] = time.monotonic,
        boot_id: Callable[[], str] = read_boot_id,
    ) -> Journal:
        """Open (or create) DATA_DIR/journal.sqlite3, check it, migrate it, check the seal key.

        Raises StorageError when the file cannot be opened or written, SealError when it holds
        sealed card data that the sealer's key cannot open.
        """
        path = data_dir / JOURNAL_FILE_NAME
        conn, notice = open_database(path)
        try:
            check_rows(conn, path)  # an edited row stops the start here, not a sale later
            for seq, blob in conn.execute(
                "SELECT seq, coalesce(sealed_card, reversal_card) FROM txns"
                " WHERE sealed_card IS NOT NULL OR reversal_card IS NOT NULL ORDER BY seq"
            ):
                sealer.check(seq, blob)  # fail closed now, not when the backlog is sent
            held = _FileWatch(path)
        except sqlite3.Error as exc:
            conn.close()
            raise storage_error(path, "open", exc) from exc
        except BaseException:
            conn.close()
            raise
        journal = cls(conn, path, sealer, clock, notice, boot_id())
        journal._file = held
        journal._start_runtime(monotonic)
        journal._fingerprint_old_pending_sales()
        journal._load_newest_wall()
        return journal

    @property
    def moved_aside(self) -> Path | None:
        """Where a corrupt journal found at open was moved, or None."""
        return self.notice.moved_to if self.notice is not None else None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(StorageError):
                self.save_runtime(close_block=True)
            self._conn.close()
            if self._file is not None:
                self._file.close()
            self._closed = True

    # -- the running-time clock ------------------------------------------------------------

    def _start_runtime(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._opened_mono_s = monotonic()
        with self._read("read of the running time") as conn:
            row = conn.execute("SELECT runtime_s FROM runtime WHERE id = 1").fetchone()
        self._runtime_base_s = float(row[0]) if row else 0.0

    def runtime_s(self) -> float:
        """Seconds this terminal has been running, summed over every boot (persisted)."""
        return self._runtime_base_s + self._monotonic() - self._opened_mono_s

    def save_runtime(self, card_window_s: float | None = None, close_block: bool = False) -> None:
        """Persist the running time (the app calls it every minute and at shutdown) and the
        newest date seen; with `card_window_s`, wipe the card fingerprints of rows older than
        that (they no longer count for any card), in the same commit; at a clean close
        (`close_block`), also give back the reserved seqs not used (no reversals owed for them)."""
        runtime_s = self.runtime_s()
        self.trusted_now()  # notes the wall clock if it is the newest yet
        newest = self._newest_wall
        with self._write("save of the running time") as conn:
            conn.execute("UPDATE runtime SET runtime_s = ? WHERE id = 1", (runtime_s,))
            if newest is not None:
                self._set_meta(conn, NEWEST_WALL_KEY, newest.isoformat(timespec="seconds"))
            if card_window_s is not None:
                conn.execute(
                    "UPDATE txns SET card_fp = NULL"
                    " WHERE card_fp IS NOT NULL AND created_runtime_s < ?",
                    (runtime_s - card_window_s,),
                )
            if close_block:
                self._close_block(conn)

    def offline_exposure(self) -> OfflineExposure:
        """Offline approvals the host has not acknowledged: count, amount, age of the oldest.

        The age is the larger of the running-time age (never jumps, misses power-off time) and
        the wall-clock age when the wall clock is not behind the sale (no RTC: it may be).
        """
        with self._read("read of the offline exposure") as conn:
            count, total, oldest_runtime_s, oldest_local = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0), MIN(created_runtime_s),"
                " MIN(local_datetime) FROM txns WHERE status = 'PENDING' AND kind = 'card'"
            ).fetchone()
        if not count:
            return OfflineExposure(0, 0, 0.0)
        age_s = max(0.0, self.runtime_s() - float(oldest_runtime_s))
        try:
            created = datetime.strptime(str(oldest_local), "%y%m%d%H%M%S")
            wall_age_s = (self._local_now() - created).total_seconds()
        except ValueError:
            wall_age_s = 0.0
        if 0 <= wall_age_s < 366 * 86400:
            age_s = max(age_s, wall_age_s)
        return OfflineExposure(int(count), int(total), age_s)

    def offline_refunds_minor(self) -> int:
        """Offline card refunds the host has not acknowledged yet: their total (the limit
        offline.refund_max_total_minor counts it)."""
        with self._read("read of the offline refunds") as conn:
            (total,) = conn.execute(
                "SELECT COALESCE(SUM(amount_minor), 0) FROM txns"
                " WHERE status = 'PENDING' AND kind = 'refund'"
            ).fetchone()
        return int(total)

    # -- the trusted date (wallclock.py) -------------------------------------------------------

    def trusted_now(self) -> datetime:
        """The instant the terminal trusts (aware, UTC): the wall clock, but never earlier than
        the newest date this journal has recorded or the build date."""
        wall = to_utc(self._clock())
        with self._lock:
            if recordable(wall) and (self._newest_wall is None or wall > self._newest_wall):
                self._newest_wall = wall
            return trusted(wall, self._newest_wall)

    def clock_problem(self) -> str | None:
        """What is obviously wrong with the wall clock (wallclock.clock_problem), or None."""
        wall = to_utc(self._clock())
        with self._lock:
            return clock_problem(wall, self._newest_wall)

    def _local_now(self) -> datetime:
        """The trusted instant as naive local time: what the stamps in the journal are."""
        return self.trusted_now().astimezone().replace(tzinfo=None)

    def _load_newest_wall(self) -> None:
        with self._read("read of the newest date") as conn:
            self._newest_wall = newest_wall(conn)

    # -- offline sales of one card (by its fingerprint, see seal.py) ----------------------------

    def offline_sales_of_card(self, identity: str, window_s: float) -> int:
        """Offline approvals of this card since the host last approved it online, made within
        the last `window_s` of running time: what its per-card offline limit counts.

        Whether they were forwarded meanwhile does not matter (a short return of the host must
        not reset the count); an online approval of the card does (the host has seen it).
        """
        fingerprint = self._sealer.fingerprint(identity, create_key=False)
        if fingerprint is None:
            return 0  # no key yet: no card was ever fingerprinted here
        statuses = {f"s{i}": status.value for i, status in enumerate(OFFLINE_APPROVALS)}
        marks = ", ".join(f":{name}" for name in statuses)
        with self._read("count of the card's offline sales") as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM txns WHERE card_fp = :fp AND seq > coalesce("
                "(SELECT max(seq) FROM txns WHERE card_fp = :fp AND status = 'APPROVED'), 0)"
                f" AND mode = 'offline' AND status IN ({marks}) AND created_runtime_s >= :since",
                {"fp": fingerprint, "since": self.runtime_s() - window_s, **statuses},
            ).fetchone()
        return int(count)

    def _fingerprint(self, identity: str) -> str:
        try:
            fingerprint = self._sealer.fingerprint(identity)
        except SealError as exc:
            raise StorageError(f"cannot fingerprint a card: {exc}") from exc
        assert fingerprint is not None
        return fingerprint

    def _fingerprint_old_pending_sales(self) -> None:
        """Journals from before the fingerprint (schema 4): the offline sales still pending have
        their card sealed, so they get their fingerprint once and keep counting for their card."""
        with self._read("read of sales without a card fingerprint") as conn:
            found = conn.execute(
                "SELECT seq, sealed_card FROM txns WHERE status = 'PENDING' AND card_fp IS NULL"
            ).fetchall()
        if not found:
            return
        prints = [
            (self._fingerprint(self._sealer.open(seq, blob).identity), seq) for seq, blob in found
        ]
        with self._write("fingerprint of the pending sales") as conn:
            conn.executemany("UPDATE txns SET card_fp = ? WHERE seq = ?", prints)

    # -- the program's hotlist (card/hotlist.py) ------------------------------------------------

    def hotlist_version(self) -> int:
        """The version of the hotlist this journal holds (0: none yet)."""
        value = self.setting(HOTLIST_VERSION_SETTING)
        return int(value) if value and value.isdigit() else 0

    def hotlist_count(self) -> int:
        with self._read("count of the hotlist") as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM hotlist").fetchone()
        return int(count)

    def apply_hotlist(self, page: HotlistPage, asked: int) -> bool:
        """Apply one answer to a hotlist request for the changes after `asked`, in one commit.

        False when the page cannot be applied on top of this list: the program's key changed
        (another program, a new host secret) or the host's version went back (a restored
        store). The list is then dropped, the version set to 0, and the caller asks again.
        """
        with self._write("update of the hotlist") as conn:
            row = conn.execute(
                "SELECT value FROM meta WHERE key = ?", (HOTLIST_KEY_SETTING,)
            ).fetchone()
            stored_key = str(row[0]) if row else ""
            if (stored_key and stored_key != page.key_hex) or page.version < asked:
                conn.execute("DELETE FROM hotlist")
                self._set_meta(conn, HOTLIST_KEY_SETTING, page.key_hex)
                self._set_meta(conn, HOTLIST_VERSION_SETTING, "0")
                return False
            for entry, listed in page.changes:
                if listed:
                    conn.execute("INSERT OR IGNORE INTO hotlist (entry) VALUES (?)", (entry,))
                else:
                    conn.execute("DELETE FROM hotlist WHERE entry = ?", (entry,))
            self._set_meta(conn, HOTLIST_KEY_SETTING, page.key_hex)
            self._set_meta(conn, HOTLIST_VERSION_SETTING, str(page.version))
        return True

    def is_hotlisted(self, card: Card) -> bool:
        """Whether the program's hotlist, as last received, holds this card."""
        key_hex = self.setting(HOTLIST_KEY_SETTING)
        if not key_hex:
            return False
        entry = hotlist_entry(bytes.fromhex(key_hex), program_card(card))
        with self._read("hotlist lookup") as conn:
            found = conn.execute("SELECT 1 FROM hotlist WHERE entry = ?", (entry,)).fetchone()
        return found is not None

    # -- settings that survive a restart (the meta table) ---------------------------------------

    def setting(self, key: str) -> str | None:
        with self._read(f"read of setting {key}") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row is not None else None

    def save_setting(self, key: str, value: str) -> None:
        """Write one setting durably (one commit)."""
        with self._write(f"save of setting {key}") as conn:
            self._set_meta(conn, key, value)

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writes: each is one transaction, one commit, one fsync of the WAL ---------------------

    def record(self, txn: Txn, note: str = "") -> JournalRow:
        """Insert or update `txn` and append its history, in one commit.

        An offline PENDING card sale gets its card sealed into sealed_card. Raises StorageError
        when the change is not durable: the caller must then not tell anyone it succeeded.
        """
        if txn.seq < 1:
            raise StorageError(f"cannot record seq {txn.seq}: sequence numbers start at 1")
        now = self._local_now()
        card_fp = None
        # A sale's card only: a refund to a card is not an offline sale of it (and a refund
        # finds its sale by the sale's fingerprint).
        if txn.card is not None and txn.status in FINGERPRINTED and txn.kind is TxnKind.CARD:
            card_fp = self._fingerprint(txn.card.identity)
        with self._lock:
            return self._record(txn, note, now, card_fp)

    def _record(self, txn: Txn, note: str, now: datetime, card_fp: str | None) -> JournalRow:
        # One wait per online sale: the AUTHORIZING row of a new sale whose seq is reserved is
        # committed without an fsync (the answer's commit fsyncs it). A process crash keeps it
        # (page cache); a power loss may not, and recover_at_boot then reverses every reserved
        # seq without a row. A commit that is fsynced anyway tops the reservation up once half
        # of it is used (a page more in that commit, no fsync more); a seq past it (records
        # failed in a row) is reserved in its own, fsynced AUTHORIZING commit.
        authorizing = txn.status is TxnStatus.AUTHORIZING and self.get(txn.seq) is None
        lazy = authorizing and txn.seq <= self._reserved_through
        reserve_through = 0
        if not lazy and txn.seq + STAN_BLOCK // 2 > self._reserved_through:
            reserve_through = txn.seq + STAN_BLOCK
        with self._write(f"record of seq {txn.seq}", fsync=not lazy) as conn:
            if reserve_through:
                self._reserve(conn, reserve_through, now, txn.currency)
            old = conn.execute(
                "SELECT status, masked_pan, sealed_card, reversal_card FROM txns WHERE seq = ?",
                (txn.seq,),
            ).fetchone()
            old_status, old_masked_pan, old_blob, old_reversal = (
                old if old is not None else (None, "", None, None)
            )
            if old_status in ACKNOWLEDGED and old_status != txn.status:
                # Only the forwarder's mark_forwarded() writes these; undoing one could send twice.
                raise StorageError(
                    f"seq {txn.seq} was already acknowledged by the host ({old_status}); "
                    f"refusing to change it to {txn.status} (a bug in the caller)"
                )
            values = {
                "seq": txn.seq,
                "kind": txn.kind.value,
                "mode": txn.mode.value,
                "amount_minor": txn.amount_minor,
                "currency": txn.currency,
                "status": txn.status.value,
                "masked_pan": txn.masked_pan or old_masked_pan,
                "response_code": txn.response_code,
                "auth_code": txn.auth_code,
                "tendered_minor": txn.tendered_minor,
                "change_minor": txn.change_minor,
                "reverses_seq": txn.reverses_seq,
                "balance_minor": txn.balance_minor,
                "refunds_seq": txn.refunds_seq,
                "sealed_card": self._sealed_card_for(txn, old_blob),
                "reversal_card": self._reversal_card_for(txn, old_reversal),
            }
            if txn.card is not None:
                values |= _card_columns(txn.card)
            values["card_fp"] = card_fp
            if old is None:
                values |= {
                    "created_runtime_s": self.runtime_s(),
                    "stan": stan_for(txn.seq),
                    "local_datetime": _local(now),
                    "created_at": _iso(now),
                }
            # The row as written comes back from the write itself: no read after it.
            change = _write_sql(tuple(values), insert=old is None)
            (written,) = conn.execute(change, values).fetchall()
            row = _to_row(written)
            self._append_history(conn, txn.seq, txn.status, now, note)
        self._reserved_through = max(self._reserved_through, reserve_through)
        return row

    def mark_attempt(self, seq: int) -> int:
        """Count one more send of a waiting item, durably, BEFORE it is sent; returns the count.

        After a crash, attempts > 0 tells the forwarder the host may have seen it: use the repeat.
        """
        return self.mark_attempts([seq])[0]

    def mark_attempts(self, seqs: Sequence[int]) -> list[int]:
        """mark_attempt for a batch of items, in one commit (one fsync for the whole batch).

        Set-based (a few statements for the whole batch, not four per item): a backlog of
        10,000 spent more time here than on the wire (make bench P4)."""
        now = self._local_now()
        with self._write(f"attempt of {_seq_list(seqs)}") as conn:
            found = self._waiting(conn, seqs)
            counts, notes = [], []
            for seq in seqs:
                status, attempts = found[seq]
                found[seq] = (status, attempts + 1)  # a seq given twice counts twice
                counts.append(attempts + 1)
                notes.append((seq, status.value, _iso(now), f"send attempt {attempts + 1}"))
            conn.executemany("UPDATE txns SET attempts = attempts + 1 WHERE seq = ?", _one(seqs))
            conn.executemany(_HISTORY_SQL, notes)
        return counts

    def mark_forwarded(self, seq: int, response_code: str) -> JournalRow:
        """Record the host's final answer to a waiting item and wipe its sealed card data.

        A reversal becomes REVERSED when the host took it (core/responses.py: approved, or 94
        duplicate), else REVERSAL_REFUSED: a 30 (format error) or any other final refusal means
        the sale was NOT reversed, so it is never counted as such (DECISIONS.md, "A refused
        reversal is never counted as reversed"); except a 25 (no original) to a reversal by STAN
        alone of a seq with no record (stan_only, after a power loss): the host never saw that
        STAN, nothing to reverse, so REVERSED with a note saying so. An advice becomes FORWARDED
        when the host accepted it; ADVICE_REFUSED when the answer says the host did not process
        the message (30 format error...: responses.advice_held): its card moves to held_card,
        kept sealed for a person to re-queue it (requeue_refused_advice) or record it declined
        (decline_refused_advice); else DECLINED_AFTER (an issuer's decline: the merchant's loss).
        """
        return self.mark_forwarded_many([(seq, response_code)])[0]

    def mark_forwarded_many(
        self,
        answers: Sequence[tuple[int, str]],
        unsent: Sequence[int] = (),
        *,
        read_back: bool = True,
    ) -> list[JournalRow]:
        """mark_forwarded for a batch of (seq, response code), in one commit; `unsent` are items
        of the batch whose attempt was counted but that were never sent (the batch stopped
        first): their count is taken back in the same commit, so they do not go as repeats.
        Returns the rows as committed ([] with read_back=False: the forwarder needs none)."""
        if not answers and not unsent:
            return []
        for seq, response_code in answers:
            if not (len(response_code) == 2 and response_code.isalnum()):
                raise StorageError(
                    f"response code {response_code!r} of seq {seq} is not 2 characters"
                )
        seqs = [seq for seq, _ in answers]
        if len(set(seqs)) != len(seqs):  # the second would undo nothing but note a second answer
            raise StorageError(f"two answers for one seq among {_seq_list(seqs)} (a bug)")
        now = self._local_now()
        with self._write(f"forwarding of {len(answers)} item(s)") as conn:
            found = self._waiting(conn, seqs)
            changes, notes = [], []
            for seq, response_code in answers:
                status = found[seq][0]
                taken = advice_class(response_code) is ResponseClass.APPROVED  # the host took it
                note = f"host answered {response_code}"
                if status is TxnStatus.REVERSAL_PENDING and taken:
                    final = TxnStatus.REVERSED
                elif status is TxnStatus.REVERSAL_PENDING and self._never_seen(
                    conn, seq, response_code
                ):
                    final = TxnStatus.REVERSED
                    note += ": no sale under this STAN (its seq had no record), nothing to reverse"
                elif status is TxnStatus.REVERSAL_PENDING:
                    final = TxnStatus.REVERSAL_REFUSED
                    note += ": NOT reversed, the sale may stand; settle it with the acquirer"
                elif taken:
                    final = TxnStatus.FORWARDED
                elif advice_held(response_code):
                    final = TxnStatus.ADVICE_REFUSED
                    note += ": not processed, the card never judged; held for a person"
                    conn.execute(
                        "INSERT OR REPLACE INTO held_card (seq, sealed_card) SELECT seq,"
                        " sealed_card FROM txns WHERE seq = ? AND sealed_card IS NOT NULL",
                        (seq,),
                    )
                else:
                    final = TxnStatus.DECLINED_AFTER
                changes.append((final.value, response_code, seq))
                notes.append((seq, final.value, _iso(now), note))
            conn.executemany(
                "UPDATE txns SET status = ?, response_code = ?, sealed_card = NULL,"
                " reversal_card = NULL WHERE seq = ?",
                changes,
            )
            conn.executemany(_HISTORY_SQL, notes)
            conn.executemany(
                "UPDATE txns SET attempts = attempts - 1 WHERE seq = ? AND attempts > 0",
                _one(unsent),
            )
            rows = _fetch_rows(conn, seqs) if read_back else []
        self._truncate_wal_when_nothing_sealed()
        return rows

    @staticmethod
    def _never_seen(conn: sqlite3.Connection, seq: int, response_code: str) -> bool:
        """A 25 to a STAN-only reversal of a reserved seq with no record: no 0200 reached the
        host under it (25 to a real sale's reversal stays refused: it may hold it otherwise)."""
        if response_code != UNABLE_TO_LOCATE_ORIGINAL:
            return False
        found = conn.execute("SELECT stan_only FROM txns WHERE seq = ?", (seq,)).fetchone()
        return bool(found[0])

    def settle_refused_reversal(self, seq: int, note: str) -> JournalRow:
        """A person had the acquirer reverse a REVERSAL_REFUSED sale by hand (or it confirmed it
        never held the charge): the row becomes REVERSED, the note in its history, one commit.
        The 0500 counts REVERSED and REVERSAL_REFUSED alike, so a day's totals do not change."""
        now = self._local_now()
        with self._write(f"settlement of seq {seq}") as conn:
            _expect_status(
                conn,
                seq,
                TxnStatus.REVERSAL_REFUSED,
                "a reversal the host refused",
                "nothing to settle; `pitill doctor` lists the refused ones",
            )
            conn.execute(
                "UPDATE txns SET status = ? WHERE seq = ?", (TxnStatus.REVERSED.value, seq)
            )
            self._append_history(conn, seq, TxnStatus.REVERSED, now, f"settled by hand: {note}")
            return _fetch_row(conn, seq)

    def requeue_refused_advice(self, seq: int, note: str) -> JournalRow:
        """A person fixed what made the host refuse an advice unprocessed (ADVICE_REFUSED): the
        row is PENDING again, its card back from held_card, and the forwarder sends it (as a
        repeat when it went before). The note goes in its history; one commit."""
        now = self._local_now()
        with self._write(f"re-queue of seq {seq}") as conn:
            _expect_held_advice(conn, seq)
            held = conn.execute("SELECT sealed_card FROM held_card WHERE seq = ?", (seq,))
            found = held.fetchone()
            if found is None:
                raise StorageError(
                    f"seq {seq} has no card kept to send it again with: record it declined "
                    "instead (pitill journal decline)"
                )
            conn.execute(
                "UPDATE txns SET status = ?, sealed_card = ? WHERE seq = ?",
                (TxnStatus.PENDING.value, found[0], seq),
            )
            conn.execute("DELETE FROM held_card WHERE seq = ?", (seq,))
            self._append_history(conn, seq, TxnStatus.PENDING, now, f"re-queued by hand: {note}")
            return _fetch_row(conn, seq)

    def decline_refused_advice(self, seq: int, note: str) -> JournalRow:
        """A person records a held advice (ADVICE_REFUSED) as declined: DECLINED_AFTER (the
        shop's loss, or for a refund the customer still owed), its kept card wiped; one commit."""
        now = self._local_now()
        with self._write(f"decline of seq {seq}") as conn:
            _expect_held_advice(conn, seq)
            conn.execute("DELETE FROM held_card WHERE seq = ?", (seq,))
            conn.execute(
                "UPDATE txns SET status = ? WHERE seq = ?", (TxnStatus.DECLINED_AFTER.value, seq)
            )
            note = f"declined by hand: {note}"
            self._append_history(conn, seq, TxnStatus.DECLINED_AFTER, now, note)
            row = _fetch_row(conn, seq)
        self._truncate_wal_when_nothing_sealed()
        return row

    def recover_at_boot(self) -> list[int]:
        """Queue a reversal for every txn caught mid-authorization by a crash; their seqs.

        After a power loss (the machine booted since the open block of seqs was reserved), a
        sale's AUTHORIZING row may be gone although its 0200 went out: every reserved seq
        past the last row gets a reversal by STAN alone (stan_only; a host answers 25, "unable
        to locate original", for a STAN it never saw: such a row becomes REVERSED, nothing to
        reverse, see mark_forwarded_many). After a process crash on the same boot the page cache
        kept every row: nothing more. Then a new block is reserved, in this commit.
        """
        now = self._local_now()
        with self._write("boot recovery") as conn:
            orphans = self._reverse_lost_seqs(conn, now)
            seqs = [
                int(seq)
                for (seq,) in conn.execute(
                    "SELECT seq FROM txns WHERE status = ? ORDER BY seq",
                    (TxnStatus.AUTHORIZING.value,),
                )
            ]
            for seq in seqs:
                conn.execute(
                    "UPDATE txns SET status = ? WHERE seq = ?",
                    (TxnStatus.REVERSAL_PENDING.value, seq),
                )
                self._append_history(
                    conn, seq, TxnStatus.REVERSAL_PENDING, now, "crash during authorization"
                )
            self._close_block(conn)
            (top,) = conn.execute(_TOP_SQL).fetchone()
            self._reserve(conn, int(top) + STAN_BLOCK, now, "")
        self._reserved_through = int(top) + STAN_BLOCK
        return seqs + orphans

    def _reserve(
        self, conn: sqlite3.Connection, through: int, now: datetime, currency: str
    ) -> None:
        """Seqs up to `through` may have their 0200 sent before their row is fsynced (in this
        commit, which must be fsynced). `now` is a lower bound of their local date/time."""
        conn.execute(
            "UPDATE stan_block SET reserved_through = max(reserved_through, ?), boot_id = ?,"
            " reserved_at = ?, currency = coalesce(nullif(?, ''), currency) WHERE id = 1",
            (through, self._boot_id, _local(now), currency),
        )

    def _reverse_lost_seqs(self, conn: sqlite3.Connection, now: datetime) -> list[int]:
        reserved_through, boot_id, reserved_at, currency = conn.execute(
            "SELECT reserved_through, boot_id, reserved_at, currency FROM stan_block WHERE id = 1"
        ).fetchone()
        (top,) = conn.execute(_TOP_SQL).fetchone()  # an echo's seq is owed no reversal
        if reserved_through <= top or (self._boot_id and boot_id == self._boot_id):
            return []
        seqs = list(range(int(top) + 1, int(reserved_through) + 1))
        for seq in seqs:
            conn.execute(
                "INSERT INTO txns (seq, kind, mode, amount_minor, currency, status, stan,"
                " local_datetime, stan_only, created_at, created_runtime_s)"
                " VALUES (?, ?, ?, 0, ?, ?, ?, ?, 1, ?, ?)",
                (
                    seq,
                    TxnKind.CARD.value,
                    TxnMode.ONLINE.value,
                    currency,
                    TxnStatus.REVERSAL_PENDING.value,
                    stan_for(seq),
                    reserved_at,  # no sale of the block is older: the host's lower bound
                    _iso(now),
                    self.runtime_s(),
                ),
            )
            self._append_history(
                conn,
                seq,
                TxnStatus.REVERSAL_PENDING,
                now,
                "reserved STAN without a record after a power loss: reversed by STAN alone",
            )
        return seqs

    def _close_block(self, conn: sqlite3.Connection) -> None:
        """No reserved seq is left open: the next online sale reserves a new block."""
        (top,) = conn.execute(_TOP_SQL).fetchone()
        conn.execute("UPDATE stan_block SET reserved_through = ? WHERE id = 1", (int(top),))
        self._reserved_through = 0

    def adopt(self, owed: Sequence[OwedRow], source: str) -> list[tuple[int, int]]:
        """Take in rows still owed to the host from another journal file (a salvage), in one
        commit; the (old seq, new seq) of each one taken. A row already here (same STAN and
        local date/time: the host's key) is skipped, so adopting twice adds nothing. The STAN
        and local date/time are kept (the host knows the sale by them); the card is sealed again
        under its new seq; a sale caught mid-authorization becomes a reversal."""
        taken: list[tuple[int, int]] = []
        now = self._local_now()
        with self._write(f"salvage from {source}") as conn:
            # Past any seq still reserved too: those STANs may be owed a reversal at next boot.
            (top,) = conn.execute(
                "SELECT max(coalesce((SELECT max(seq) FROM txns), 0), reserved_through)"
                " FROM stan_block WHERE id = 1"
            ).fetchone()
            new_seq = int(top)
            for row in owed:
                if conn.execute(
                    "SELECT 1 FROM txns WHERE stan = ? AND local_datetime = ?",
                    (row.stan, row.local_datetime),
                ).fetchone():
                    continue
                new_seq += 1
                pending = row.status is TxnStatus.PENDING
                # Rows waiting for a person stay so (and flagged); any other is a reversal owed.
                kept = row.status in NEEDS_ATTENTION
                status = row.status if pending or kept else TxnStatus.REVERSAL_PENDING
                sealed = None
                if row.card is not None:
                    try:
                        sealed = self._sealer.seal(new_seq, row.card)
                    except SealError as exc:
                        raise StorageError(f"cannot seal the card of seq {new_seq}: {exc}") from exc
                values = {
                    "seq": new_seq,
                    "kind": row.kind.value,
                    "mode": row.mode.value,
                    "amount_minor": row.amount_minor,
                    "currency": row.currency,
                    "status": status.value,
                    "masked_pan": row.masked_pan,
                    "stan": row.stan,
                    "local_datetime": row.local_datetime,
                    "response_code": row.response_code,
                    "attempts": row.attempts,
                    "sealed_card": sealed if pending else None,
                    "reversal_card": sealed if status is TxnStatus.REVERSAL_PENDING else None,
                    "card_fp": self._fingerprint(row.card.identity) if row.card else None,
                    "created_at": row.created_at,
                    "created_runtime_s": self.runtime_s(),
                }
                columns = ", ".join(values)
                marks = ", ".join(f":{name}" for name in values)
                conn.execute(f"INSERT INTO txns ({columns}) VALUES ({marks})", values)
                if status is TxnStatus.ADVICE_REFUSED and sealed is not None:
                    conn.execute(
                        "INSERT INTO held_card (seq, sealed_card) VALUES (?, ?)", (new_seq, sealed)
                    )
                note = f"salvaged from {source} (seq {row.seq} there, {row.status.value})"
                self._append_history(conn, new_seq, status, now, note)
                taken.append((row.seq, new_seq))
        return taken

    # -- reads ---------------------------------------------------------------------------------

    def next_seq(self) -> int:
        """The seq for the next transaction: one past the highest recorded or taken by a
        message (1 when empty)."""
        with self._read("next_seq") as conn:
            (top,) = conn.execute(_TOP_SQL).fetchone()
            return int(top) + 1

    def take_message_seq(self, at_least: int) -> int:
        """A seq (so its STAN) for a message of no transaction (an 0800, an 0500): `at_least`
        (the core's next seq) or, when the journal already holds or gave out that one, one past
        its highest; no transaction may take it, also after a restart. One commit, without an
        fsync while the seq is in the reserved block (after a power loss the block's seqs are
        all skipped: reversed by STAN alone, harmless for a message's); past it, the block
        moves on, fsynced. Returns the seq taken."""
        if at_least < 1:
            raise StorageError(f"cannot take seq {at_least}: sequence numbers start at 1")
        now = self._local_now()
        with self._lock:
            with self._read("next_seq") as conn:
                (top,) = conn.execute(_TOP_SQL).fetchone()
            seq = max(at_least, int(top) + 1)
            reserve = seq > self._reserved_through
            with self._write(f"message seq {seq}", fsync=reserve) as conn:
                if reserve:
                    self._reserve(conn, seq + STAN_BLOCK, now, "")
                self._set_meta(conn, MESSAGE_SEQ_KEY, str(seq))
            if reserve:
                self._reserved_through = seq + STAN_BLOCK
        return seq

    def pending_count(self) -> int:
        """Card transactions still to go upstream (advices and reversals)."""
        return self._count(TO_FORWARD)

    def reversals_pending_count(self) -> int:
        """Reversals still to go upstream (cached like pending_count: cheap to ask often)."""
        return self._count((TxnStatus.REVERSAL_PENDING,))

    def forwarded_count(self) -> int:
        """Card transactions the host has acknowledged through the forwarder."""
        return self._count(ACKNOWLEDGED)

    def get(self, seq: int) -> JournalRow | None:
        with self._read(f"read of seq {seq}") as conn:
            exists = conn.execute("SELECT 1 FROM txns WHERE seq = ?", (seq,)).fetchone()
            return _fetch_row(conn, seq) if exists else None

    def rows(self) -> list[JournalRow]:
        """Every transaction, by seq."""
        with self._read("read of all rows") as conn:
            return [
                _to_row(r) for r in conn.execute(f"SELECT {_ROW_COLUMNS} FROM txns ORDER BY seq")
            ]

    def report_totals(self) -> list[StatusTotal]:
        """Count and amount per (kind, mode, status): what the reconciliation report needs."""
        with self._read("report totals") as conn:
            return report_totals_of(conn)

    def history(self, seq: int) -> list[HistoryEntry]:
        """The state changes of `seq`, in commit order."""
        with self._read(f"history of seq {seq}") as conn:
            return [
                HistoryEntry(int(s), TxnStatus(status), at, note)
                for s, status, at, note in conn.execute(
                    "SELECT seq, status, at, note FROM txn_history WHERE seq = ? ORDER BY id",
                    (seq,),
                )
            ]

    def next_forward_item(self) -> ForwardItem | None:
        """The one message to send next: every reversal first, then advices, each by seq.

        The card of an advice is unsealed here; raises SealError when it cannot be.
        """
        items = self.next_forward_items(1)
        return items[0] if items else None

    def next_forward_items(self, limit: int, advices_after: int = 0) -> list[ForwardItem]:
        """The next `limit` messages in sending order: reversals first, then advices, by seq;
        with `advices_after`, only the advices past that seq (those up to it are in flight)."""
        found: list[Any] = []
        with self._read("read of the next items to forward") as conn:
            # One index-ordered query per status (the (status, seq) index): sorting the whole
            # backlog to take its head cost 6 ms a message at 10,000 pending.
            for status in TO_FORWARD:
                after = advices_after if status is TxnStatus.PENDING else 0
                found += conn.execute(
                    f"SELECT {_ROW_COLUMNS}, sealed_card, reversal_card FROM txns"
                    " WHERE status = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (status.value, after, limit - len(found)),
                ).fetchall()
                if len(found) >= limit:
                    break
        items = []
        for record in found:
            row, blob, reversal = _to_row(record[:-2]), record[-2], record[-1]
            if row.status is TxnStatus.REVERSAL_PENDING:
                card = self._sealer.open(row.seq, reversal) if reversal is not None else None
                items.append(ForwardItem(ForwardKind.REVERSAL, row, card))
            else:
                items.append(ForwardItem(ForwardKind.ADVICE, row, self._sealer.open(row.seq, blob)))
        return items

    # -- void of the last sale (FN 3) ------------------------------------------------------------

    def last_sale(self) -> SaleOnRecord | None:
        """The newest sale (declines, VOID rows, refunds, top-ups and balance inquiries are not
        sales), with its running-time age and what refunds gave back of it."""
        with self._read("read of the last sale") as conn:
            found = conn.execute(
                f"SELECT {_SALE_COLUMNS} FROM txns s WHERE status NOT IN (?, ?)"
                " AND kind IN ('card', 'cash') ORDER BY seq DESC LIMIT 1",
                (*_COUNTED, TxnStatus.DECLINED.value, TxnStatus.VOID.value),
            ).fetchone()
        return None if found is None else self._sale_on_record(found)

    def recent_sales(self, limit: int, card_identity: str | None = None) -> list[SaleOnRecord]:
        """The newest `limit` sales a refund may name (core/refund.py REFUNDABLE) that are not
        refunded in full, newest first; with `card_identity`, only that card's (found by its
        fingerprint, so within offline.max_age_s of the sale: older ones are picked by hand)."""
        where, arguments = [], []
        for kind, statuses in REFUNDABLE.items():
            marks = ", ".join("?" for _ in statuses)
            where.append(f"(kind = ? AND status IN ({marks}))")
            arguments += [kind.value, *(status.value for status in sorted(statuses))]
        refundable = " OR ".join(where)
        if card_identity is not None:
            fingerprint = self._sealer.fingerprint(card_identity, create_key=False)
            if fingerprint is None:
                return []  # no key yet: no card was ever fingerprinted here
            refundable = f"card_fp = ? AND ({refundable})"
            arguments = [fingerprint, *arguments]
        with self._read("read of the recent sales") as conn:
            found = conn.execute(
                f"SELECT {_SALE_COLUMNS} FROM txns s WHERE {refundable}"
                " AND amount_minor > coalesce((SELECT sum(amount_minor) FROM txns r"
                f" WHERE r.refunds_seq = s.seq AND r.status IN ({_COUNTED_MARKS})), 0)"
                " ORDER BY seq DESC LIMIT ?",
                (*_COUNTED, *arguments, *_COUNTED, limit),
            ).fetchall()
        return [self._sale_on_record(values) for values in found]

    def _sale_on_record(self, values: Sequence[Any]) -> SaleOnRecord:
        seq, kind, mode, status, amount, currency, masked, created_s, attempts, refunded = values
        with self._read("read of the closed days") as conn:
            closed_through = days.last_closed_seq(conn)
        return SaleOnRecord(
            seq=int(seq),
            kind=TxnKind(kind),
            mode=TxnMode(mode),
            status=TxnStatus(status),
            amount_minor=int(amount),
            currency=str(currency),
            masked_pan=str(masked),
            age_s=max(0.0, self.runtime_s() - float(created_s)),
            sent=int(attempts) > 0,
            refunded_minor=int(refunded),
            day_closed=int(seq) <= closed_through,
        )

    def record_void(
        self, seq: int, from_status: TxnStatus, to_status: TxnStatus, void: Txn
    ) -> bool:
        """In one commit: sale `seq` goes from `from_status` to `to_status` (its sealed card
        wiped) and the VOID row `void` is inserted. False, and nothing written, when the sale
        is no longer in `from_status` or was sent meanwhile (the forwarder counts an attempt
        durably before it sends, under the same lock, so an advice in flight is never voided).
        An offline sale the host acknowledged (FORWARDED) becomes a reversal with no send
        counted yet: its first 0420 is not a repeat.
        """
        now = self._local_now()
        with self._write(f"void of seq {seq}") as conn:
            changed = conn.execute(
                "UPDATE txns SET status = ?, sealed_card = NULL, voided_by_seq = ?, attempts = 0"
                " WHERE seq = ? AND status = ? AND (attempts = 0 OR status = ?)",
                (to_status.value, void.seq, seq, from_status.value, TxnStatus.FORWARDED.value),
            ).rowcount
            if changed != 1:
                return False  # nothing written: the commit below is empty
            masked = conn.execute("SELECT masked_pan FROM txns WHERE seq = ?", (seq,)).fetchone()
            self._append_history(conn, seq, to_status, now, f"voided by seq {void.seq}")
            values = {
                "seq": void.seq,
                "kind": void.kind.value,
                "mode": void.mode.value,
                "amount_minor": void.amount_minor,
                "currency": void.currency,
                "status": void.status.value,
                "masked_pan": masked[0],
                "reverses_seq": seq,
                "created_runtime_s": self.runtime_s(),
                "stan": stan_for(void.seq),
                "local_datetime": now.strftime("%y%m%d%H%M%S"),
                "created_at": _iso(now),
            }
            columns = ", ".join(values)
            marks = ", ".join(f":{name}" for name in values)
            conn.execute(f"INSERT INTO txns ({columns}) VALUES ({marks})", values)
            self._append_history(conn, void.seq, void.status, now, f"void of seq {seq}")
        return True

    # -- end of day (FN 5): journal/days.py ------------------------------------------------------

    def close_day(self) -> days.DayRecord:
        """Close the open day at the newest seq, in one commit (host check owed). Quick: the
        Z report, an aggregate over the day, is read apart (journal.report.read_z_report)."""
        now = self._local_now()
        with self._write("end of day") as conn:
            (newest,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM txns").fetchone()
            return days.insert_closed_day(conn, int(newest), now, days.HostCheck.OWED)

    def z_report(self, day: int) -> days.ZReport:
        """The Z report of day `day` (closed, or the open one), on this connection: for tests
        and tools; the app reads it on a read-only connection of its own, off the loop."""
        with self._read(f"Z report of day {day}") as conn:
            (record,) = days.find_days(conn, str(day))
            return days.z_report(conn, record)

    def newest_before(self, before_seq: int = 0) -> JournalRow | None:
        """The newest row older than `before_seq` (0: the newest of all): FN 6's reprints."""
        bound = before_seq if before_seq > 0 else 2**63 - 1
        with self._read("read of a receipt") as conn:
            found = conn.execute(
                "SELECT seq FROM txns WHERE seq < ? ORDER BY seq DESC LIMIT 1", (bound,)
            ).fetchone()
            return _fetch_row(conn, int(found[0])) if found else None

    def days_owed_to_host(self) -> list[int]:
        """Closed days whose host check (0500) has not been done, oldest first."""
        with self._read("read of the days owed to the host") as conn:
            return [d.day for d in days.closed_days(conn) if d.host_status is days.HostCheck.OWED]

    def set_host_check(self, day: int, status: days.HostCheck, code: str, note: str) -> None:
        """The host's verdict on a day (one commit): agreed, or disagreed with what differs."""
        now = self._local_now()
        with self._write(f"host check of day {day}") as conn:
            days.set_host_check(conn, day, status, code, note, now)

    def last_sun_counter(self, identity: str) -> int | None:
        """The highest SUN read counter journaled for the card (Card.identity), None if never.

        Found by the card's keyed fingerprint (the txns_by_card index), like its offline count:
        the UID itself is not stored (the sun_uid column of migration 3 stays empty).
        """
        fingerprint = self._sealer.fingerprint(identity, create_key=False)
        if fingerprint is None:
            return None  # no key yet: no card was ever fingerprinted here
        with self._read("SUN counter lookup") as conn:
            (counter,) = conn.execute(
                "SELECT MAX(sun_counter) FROM txns WHERE card_fp = ? AND sun_counter >= 0",
                (fingerprint,),
            ).fetchone()
        return None if counter is None else int(counter)

    def integrity_ok(self) -> bool:
        with self._read("integrity check") as conn:
            return integrity_problem(conn) is None

    # -- helpers -------------------------------------------------------------------------------

    def _sealed_card_for(self, txn: Txn, old_blob: bytes | None) -> bytes | None:
        if txn.status is not TxnStatus.PENDING:
            return None  # card data is kept only while a sale waits to be forwarded
        if old_blob is not None:
            return old_blob
        if txn.card is None or txn.kind not in (TxnKind.CARD, TxnKind.REFUND):
            raise StorageError(
                f"seq {txn.seq} is PENDING without card data: it could never be forwarded, so "
                "it is not recorded (a bug in the caller)"
            )
        try:
            return self._sealer.seal(txn.seq, txn.card)
        except SealError as exc:
            raise StorageError(f"cannot seal the card of seq {txn.seq}: {exc}") from exc

    def _reversal_card_for(self, txn: Txn, old_blob: bytes | None) -> bytes | None:
        """The sealed card an online sale keeps while a reversal may be owed for it."""
        if txn.status not in (TxnStatus.AUTHORIZING, TxnStatus.REVERSAL_PENDING):
            return None  # answered (or never sent): no reversal can need it any more
        if old_blob is not None or txn.card is None:
            return old_blob  # a void's reversal, a row lost to a power cut: no card (17, STAN)
        try:
            return self._sealer.seal(txn.seq, txn.card)
        except SealError as exc:
            raise StorageError(f"cannot seal the card of seq {txn.seq}: {exc}") from exc

    def _waiting(
        self, conn: sqlite3.Connection, seqs: Sequence[int]
    ) -> dict[int, tuple[TxnStatus, int]]:
        """(status, attempts) of each of `seqs`, read in a few queries; StorageError naming the
        first that is not waiting to be forwarded."""
        found: dict[int, tuple[TxnStatus, int]] = {}
        unique = list(dict.fromkeys(seqs))
        for start in range(0, len(unique), _IN_CHUNK):
            chunk = unique[start : start + _IN_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            for seq, status, attempts in conn.execute(
                f"SELECT seq, status, attempts FROM txns WHERE seq IN ({marks})", chunk
            ):
                found[int(seq)] = (TxnStatus(status), int(attempts))
        for seq in seqs:
            status = found[seq][0] if seq in found else None
            if status not in TO_FORWARD:
                raise StorageError(f"seq {seq} is not waiting to be forwarded (status {status})")
        return found

    def _append_history(
        self, conn: sqlite3.Connection, seq: int, status: TxnStatus, now: datetime, note: str
    ) -> None:
        conn.execute(_HISTORY_SQL, (seq, status.value, _iso(now), note))

    def _count(self, statuses: tuple[TxnStatus, ...]) -> int:
        """Rows in these statuses, counted on the (status, seq) index alone: the forwarding
        statuses only ever belong to card transactions, so no kind filter is needed."""
        marks = ", ".join("?" for _ in statuses)
        with self._read("count") as conn:
            # Counting walks the index (0.3 ms at 10,000 pending) and the backlog is asked
            # after every commit and kick: the count is kept until a row changes, here
            # (total_changes) or through another connection (data_version).
            (version,) = conn.execute("PRAGMA data_version").fetchone()
            key = (statuses, conn.total_changes, int(version))
            if (kept := self._counts.get(statuses)) is not None and kept[0] == key:
                return kept[1]
            (count,) = conn.execute(
                f"SELECT count(*) FROM txns WHERE status IN ({marks})",
                tuple(s.value for s in statuses),
            ).fetchone()
            self._counts[statuses] = (key, int(count))
            return int(count)

    def _truncate_wal_when_nothing_sealed(self) -> None:
        """Drop old WAL frames (which may hold wiped sealed blobs) once none are needed."""
        with self._lock:
            try:
                # status PENDING <=> sealed_card IS NOT NULL (a CHECK constraint), and only
                # AUTHORIZING and REVERSAL_PENDING rows may hold a reversal_card; uses the index
                if not self._conn.execute(
                    "SELECT 1 FROM txns WHERE status IN (?, ?, ?) LIMIT 1",
                    (
                        TxnStatus.PENDING.value,
                        TxnStatus.AUTHORIZING.value,
                        TxnStatus.REVERSAL_PENDING.value,
                    ),
                ).fetchone():
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.Error:
                pass  # best effort: the wipe itself is already durable; the next one retries

    @contextlib.contextmanager
    def _write(self, what: str, *, fsync: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._file is not None:
                self._file.check(what)  # no write into a file nobody will find
            with transaction(self._conn, self.path, what, fsync=fsync) as conn:
                yield conn
            if self._file is not None:
                self._file.check(what)  # gone during the commit: not durable where it counts

    @contextlib.contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise storage_error(self.path, what, exc) from exc


class _FileWatch:
    """Notices the journal file being deleted, renamed or replaced under the running terminal.

    SQLite keeps writing to the file it opened, even once unlinked: without this, sales would be
    "durable" in a file that vanishes at the next restart. A descriptor of our own on the same
    file is compared (device, inode, link count) with what the path names now.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._name = os.fspath(path)  # stat()ed twice a commit: no Path conversion each time
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise StorageError(f"cannot open the journal {path}: {exc.strerror}") from exc

    def check(self, what: str) -> None:
        assert self._fd is not None
        held = os.fstat(self._fd)
        try:
            now = os.stat(self._name)
        except FileNotFoundError:
            now = None
        except OSError as exc:
            raise StorageError(
                f"journal {what} failed: cannot stat {self.path} ({exc.strerror}); it is NOT "
                "durable. Check the SD card and the data directory"
            ) from exc
        if (
            now is not None
            and held.st_nlink > 0
            and (now.st_dev, now.st_ino)
            == (
                held.st_dev,
                held.st_ino,
            )
        ):
            return
        if held.st_nlink == 0:
            change = "deleted"
        elif now is None:
            change = "renamed or moved away"
        else:
            change = "replaced by another file"
        raise StorageError(
            f"journal {what} failed: {self.path} was {change} while pitill was running; nothing "
            "is durable until it is back. Stop pitill, put the journal back (look for a renamed "
            "or moved copy; never start over while one exists), then start it again"
        )

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _card_columns(card: Card) -> dict[str, Any]:
    """How the card was read, its tier, and for a SUN tap its read counter (replay check)."""
    columns: dict[str, Any] = {"card_read_by": card.read_by.value, "card_tier": card.tier.value}
    if card.tier is CardTier.SUN:
        columns["sun_counter"] = card.sun_counter  # found again by the row's card_fp
    return columns


def newest_wall(conn: sqlite3.Connection) -> datetime | None:
    """The newest date a journal recorded (UTC): the one saved with the running time, or the
    last transaction's stamp if that is newer (a crash may come before the minute's save)."""
    saved = conn.execute("SELECT value FROM meta WHERE key = ?", (NEWEST_WALL_KEY,))
    last = conn.execute("SELECT created_at FROM txns ORDER BY seq DESC LIMIT 1")
    found = [parse_instant(row[0]) for row in (*saved.fetchall(), *last.fetchall())]
    return max((moment for moment in found if moment is not None), default=None)


def report_totals_of(conn: sqlite3.Connection) -> list[StatusTotal]:
    """REPORT_TOTALS_SQL on any connection (the app's reader thread, `pitill report`)."""
    totals = []
    for kind, mode, status, currency, count, total, tier in conn.execute(REPORT_TOTALS_SQL):
        try:
            totals.append(
                StatusTotal(
                    TxnKind(kind),
                    TxnMode(mode),
                    TxnStatus(status),
                    str(currency),
                    count,
                    total,
                    str(tier or ""),
                )
            )
        except ValueError as exc:
            raise StorageError(
                f"the journal has {count} row(s) of kind {kind!r}, mode {mode!r}, status "
                f"{status!r} that this pitill does not know ({exc}): is it a newer pitill's?"
            ) from exc
    return totals


def _fetch_row(conn: sqlite3.Connection, seq: int) -> JournalRow:
    return _to_row(
        conn.execute(f"SELECT {_ROW_COLUMNS} FROM txns WHERE seq = ?", (seq,)).fetchone()
    )


def _fetch_rows(conn: sqlite3.Connection, seqs: Sequence[int]) -> list[JournalRow]:
    """The rows of `seqs`, in that order, read in a few queries (not one per row)."""
    found: dict[int, JournalRow] = {}
    for start in range(0, len(seqs), _IN_CHUNK):
        chunk = list(seqs[start : start + _IN_CHUNK])
        marks = ", ".join("?" for _ in chunk)
        query = f"SELECT {_ROW_COLUMNS} FROM txns WHERE seq IN ({marks})"
        found.update((row.seq, row) for row in map(_to_row, conn.execute(query, chunk)))
    return [found[seq] for seq in seqs]


@functools.lru_cache(maxsize=64)
def _write_sql(columns: tuple[str, ...], *, insert: bool) -> str:
    """record()'s INSERT or UPDATE of these columns, returning the row: built once per shape."""
    if insert:
        marks = ", ".join(f":{name}" for name in columns)
        change = f"INSERT INTO txns ({', '.join(columns)}) VALUES ({marks})"
    else:
        sets = ", ".join(f"{name} = :{name}" for name in columns if name != "seq")
        change = f"UPDATE txns SET {sets} WHERE seq = :seq"
    return f"{change} RETURNING {_ROW_COLUMNS}"


def _one(seqs: Sequence[int]) -> list[tuple[int]]:
    """Parameters for executemany over one seq each."""
    return [(seq,) for seq in seqs]


def _seq_list(seqs: Sequence[int]) -> str:
    """The seqs of a batch for a message: all of a few, the first and last of many."""
    if len(seqs) <= 8:
        return "seq " + ", ".join(map(str, seqs))
    return f"{len(seqs)} seqs ({seqs[0]} ... {seqs[-1]})"


def _to_row(values: Sequence[Any]) -> JournalRow:
    row = dict(zip(_ROW_FIELDS, values, strict=True))
    row["kind"] = TxnKind(row["kind"])
    row["mode"] = TxnMode(row["mode"])
    row["status"] = TxnStatus(row["status"])
    row["stan_only"] = bool(row["stan_only"])
    return JournalRow(**row)


def _local(moment: datetime) -> str:
    """The local date/time stamp the host deduplicates on (with terminal id and STAN)."""
    return moment.strftime("%y%m%d%H%M%S")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _expect_status(
    conn: sqlite3.Connection, seq: int, status: TxnStatus, what: str, otherwise: str
) -> None:
    """Refuse a by-hand command on a row that is not `status` (or no row): one line, its status."""
    found = conn.execute("SELECT status FROM txns WHERE seq = ?", (seq,)).fetchone()
    if found is None or found[0] != status.value:
        now = found[0] if found is not None else "no such seq"
        raise StorageError(f"seq {seq} is not {what} ({now}): {otherwise}")


def _expect_held_advice(conn: sqlite3.Connection, seq: int) -> None:
    _expect_status(
        conn,
        seq,
        TxnStatus.ADVICE_REFUSED,
        "an advice the host refused unprocessed",
        "nothing to do; `pitill doctor` lists the held ones",
    )
