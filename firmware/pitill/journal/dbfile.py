"""The journal's SQLite file: opening it safely, its schema and migrations, and transactions.

Opening creates the file owner-only, runs PRAGMA integrity_check (a file that fails it is moved
aside as journal.sqlite3.corrupt-<n>, never deleted), sets WAL mode, synchronous=FULL,
secure_delete and foreign keys on the connection, and migrates the schema (PRAGMA user_version).
Every sqlite3 error leaves here as a StorageError that says it is NOT durable and what to do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from pitill.core.types import TxnKind, TxnMode, TxnStatus
from pitill.errors import StorageError

# Each entry moves the schema one version up (PRAGMA user_version); never edit a shipped entry,
# append a new one. txn_history has no index on seq on purpose: it would add a page (~4 KiB of
# WAL, a quarter of the bytes) to every commit on the SD card, for a lookup only people make.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE txns (
            seq INTEGER PRIMARY KEY CHECK (seq > 0),
            kind TEXT NOT NULL,
            mode TEXT NOT NULL,
            amount_minor INTEGER NOT NULL,
            currency TEXT NOT NULL,
            status TEXT NOT NULL,
            masked_pan TEXT NOT NULL DEFAULT '',
            stan INTEGER NOT NULL,
            local_datetime TEXT NOT NULL,
            response_code TEXT NOT NULL DEFAULT '',
            auth_code TEXT NOT NULL DEFAULT '',
            tendered_minor INTEGER NOT NULL DEFAULT 0,
            change_minor INTEGER NOT NULL DEFAULT 0,
            reverses_seq INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            sealed_card BLOB,
            created_at TEXT NOT NULL,
            -- card data is kept exactly while a sale waits to be forwarded, never longer
            CHECK ((status = 'PENDING') = (sealed_card IS NOT NULL))
        )""",
        "CREATE INDEX txns_by_status ON txns (status, seq)",
        """CREATE TABLE txn_history (
            id INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL REFERENCES txns (seq),
            status TEXT NOT NULL,
            at TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT ''
        )""",
    ),
    (
        # The terminal's running time, persisted: a Pi has no RTC, so the age of a pending sale
        # is measured on this clock (and on the wall clock when that one looks sane).
        "ALTER TABLE txns ADD COLUMN created_runtime_s REAL NOT NULL DEFAULT 0",
        """CREATE TABLE runtime (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            runtime_s REAL NOT NULL
        )""",
        "INSERT INTO runtime VALUES (1, 0)",
    ),
    (
        # How each card was read and its security tier (docs/cards.md); for an NTAG 424 DNA tap
        # its UID and SUN read counter, so a counter that does not go up is refused (a replay).
        "ALTER TABLE txns ADD COLUMN card_read_by TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE txns ADD COLUMN card_tier TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE txns ADD COLUMN sun_uid TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE txns ADD COLUMN sun_counter INTEGER NOT NULL DEFAULT -1",
        # Partial: only SUN rows pay for it on the SD card.
        "CREATE INDEX txns_by_sun_uid ON txns (sun_uid, sun_counter) WHERE sun_counter >= 0",
    ),
    (
        # The card fingerprint (seal.py) counts one card's offline sales without its PAN; the
        # partial index costs nothing for cash sales. meta keeps what must survive a restart
        # beside the sales: the mode chosen from the FN menu, the newest wall-clock date seen.
        "ALTER TABLE txns ADD COLUMN card_fp TEXT",
        "CREATE INDEX txns_by_card ON txns (card_fp, seq) WHERE card_fp IS NOT NULL",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    (
        # A sale the supervisor voided names its VOID row (whose reverses_seq names the sale):
        # the forwarder sends its reversal with reason 17, customer cancellation.
        "ALTER TABLE txns ADD COLUMN voided_by_seq INTEGER NOT NULL DEFAULT 0",
    ),
    (
        # One wait per online sale (store.py): seqs are reserved durably ahead, so the
        # AUTHORIZING row may be committed without an fsync. After a power loss, every
        # reserved seq without a row gets a reversal by STAN alone (stan_only = 1).
        "ALTER TABLE txns ADD COLUMN stan_only INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE stan_block (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            reserved_through INTEGER NOT NULL,
            boot_id TEXT NOT NULL,
            reserved_at TEXT NOT NULL,
            currency TEXT NOT NULL
        )""",
        "INSERT INTO stan_block VALUES (1, 0, '', '', '')",
    ),
    (
        # A closed-loop host answers with the card's balance (field 54): shown and printed.
        "ALTER TABLE txns ADD COLUMN balance_minor INTEGER",
    ),
    (
        # End of day (journal/days.py): day N is the seqs after day N-1's last_seq up to its
        # own; the host's check of it (the 0500/0510) is kept beside it, owed until it is done.
        """CREATE TABLE days (
            day INTEGER PRIMARY KEY CHECK (day > 0),
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            closed_at TEXT NOT NULL,
            host_status TEXT NOT NULL,
            host_code TEXT NOT NULL DEFAULT '',
            host_note TEXT NOT NULL DEFAULT '',
            host_checked_at TEXT NOT NULL DEFAULT ''
        )""",
    ),
    (
        # The program's hotlist (card/hotlist.py): entries only, never a card number; its key
        # and version are in meta.
        "CREATE TABLE hotlist (entry TEXT PRIMARY KEY) WITHOUT ROWID",
    ),
    (
        # A refund (FN 4) names the sale it gives money back for; the partial index sums a
        # sale's refunds (the cap) and costs nothing for any other row.
        "ALTER TABLE txns ADD COLUMN refunds_seq INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX txns_by_refunded_sale ON txns (refunds_seq) WHERE refunds_seq > 0",
    ),
    (
        # The card of an online sale, sealed like sealed_card, while its reversal may be owed:
        # from the AUTHORIZING row until the host's answer (the 0210), or, when it is reversed,
        # until the 0430. The 0420 carries it (fields 2, 14, 22; DECISIONS.md). No index: the
        # rows that hold one are found by status.
        "ALTER TABLE txns ADD COLUMN reversal_card BLOB CHECK (reversal_card IS NULL"
        " OR status IN ('AUTHORIZING', 'REVERSAL_PENDING'))",
    ),
    (
        # The sealed card of an advice the host did not process (ADVICE_REFUSED, a 30 format
        # error...), moved here from txns.sealed_card (whose CHECK keeps it to PENDING rows) so
        # the advice can go again after a fix; deleted when a person re-queues it (back to
        # sealed_card) or records it declined (DECISIONS.md, "An advice the host did not process
        # is held, not declined").
        """CREATE TABLE held_card (
            seq INTEGER PRIMARY KEY REFERENCES txns (seq),
            sealed_card BLOB NOT NULL
        )""",
    ),
)

_SUFFIXES = ("", "-wal", "-shm")  # a database and the files SQLite keeps beside it
_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_HINTS = {
    sqlite3.SQLITE_FULL: "free space on the SD card",
    sqlite3.SQLITE_IOERR: "the SD card may be failing: check `dmesg` and replace it",
    sqlite3.SQLITE_READONLY: "the data directory is read-only: check the mount and permissions",
    sqlite3.SQLITE_CANTOPEN: "check that the data directory exists and is writable",
    sqlite3.SQLITE_CORRUPT: "restart pitill: the journal is checked and moved aside at boot",
}


class JournalMovedAside(StorageError):
    """Notice: the journal file failed its integrity check at open and was moved aside."""

    def __init__(self, path: Path, moved_to: Path, reason: str) -> None:
        super().__init__(
            f"journal {path} failed its integrity check ({reason}); it was moved to {moved_to} "
            "and a new journal started. Offline sales still in the old file were NOT forwarded: "
            "keep that file and have it examined"
        )
        self.path = path
        self.moved_to = moved_to
        self.reason = reason


@contextlib.contextmanager
def transaction(
    conn: sqlite3.Connection, path: Path, what: str, *, fsync: bool = True
) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT; any failure rolls back and raises StorageError (not durable).

    fsync=False commits with synchronous=NORMAL: the WAL frames are written (a process crash
    keeps them, they are in the page cache) but not fsynced; the next fsync=True commit makes
    them durable too. Only for a row that a power loss may take (see store.py, STAN_BLOCK).
    """
    try:
        if not fsync:
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        _rollback(conn)
        raise storage_error(path, what, exc) from exc
    except BaseException:
        _rollback(conn)
        raise
    finally:
        if not fsync:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA synchronous = FULL")


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back on its own (it can after SQLITE_FULL / IOERR).
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def storage_error(path: Path, what: str, exc: sqlite3.Error) -> StorageError:
    code = getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_ERROR) & 0xFF
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    hint = _HINTS.get(code, f"check the journal {path} and its directory")
    return StorageError(f"journal {what} failed ({name}: {exc}); it is NOT durable. {hint}")


def open_database(path: Path) -> tuple[sqlite3.Connection, JournalMovedAside | None]:
    """A checked, configured, migrated connection to `path`, and the notice if it was replaced.

    A file that fails its integrity check is moved aside and a new one created in its place.
    """
    conn = _connect(path)
    notice = None
    try:
        problem = integrity_problem(conn)
        if problem is not None:
            conn.close()
            notice = JournalMovedAside(path, _move_aside(path), problem)
            conn = _connect(path)
        _configure(conn, path)
        _migrate(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(path, "open", exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn, notice


def _connect(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Created owner-only first: SQLite gives the -wal and -shm files the same mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        raise StorageError(f"cannot create the journal {path}: {exc.strerror}") from exc
    try:
        # Autocommit mode (isolation_level=None): transactions are exactly our BEGIN/COMMIT.
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise storage_error(path, "open", exc) from exc


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if mode != "wal":
        raise StorageError(
            f"journal {path}: SQLite refused WAL mode (got {mode!r}); put the data directory on "
            "a local file system (not a network share)"
        )
    conn.execute("PRAGMA synchronous = FULL")  # fsync the WAL at every commit
    conn.execute("PRAGMA secure_delete = ON")  # overwrite deleted content (wiped card data)
    conn.execute("PRAGMA foreign_keys = ON")


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise StorageError(
            f"journal {path} has schema version {version}, newer than this pitill understands "
            f"({len(MIGRATIONS)}); install the newer pitill again, do not delete the journal"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        with transaction(conn, path, f"migration to schema version {number}"):
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


# What a row must hold for pitill to read it; a file edited by hand may hold anything else.
_ENUM_COLUMNS: dict[str, tuple[str, ...]] = {
    "status": tuple(s.value for s in TxnStatus),
    "kind": tuple(k.value for k in TxnKind),
    "mode": tuple(m.value for m in TxnMode),
}
_INTEGER_COLUMNS = (
    "amount_minor",
    "stan",
    "tendered_minor",
    "change_minor",
    "reverses_seq",
    "voided_by_seq",
    "refunds_seq",
)


def check_rows(conn: sqlite3.Connection, path: Path) -> None:
    """Raise StorageError naming the first row and column pitill cannot read (an edited file).

    One scan of the table, in SQLite: the same rule for start-up, `journal list` and `report`.
    """
    tests = [
        (column, f"{column} NOT IN ({', '.join('?' * len(values))})", values)
        for column, values in _ENUM_COLUMNS.items()
    ]
    tests += [(column, f"typeof({column}) != 'integer'", ()) for column in _INTEGER_COLUMNS]
    columns = [column for column, _, _ in tests]
    where = " OR ".join(f"({condition})" for _, condition, _ in tests)
    arguments = [value for _, _, values in tests for value in values]
    found = conn.execute(
        f"SELECT seq, {', '.join(columns)} FROM txns WHERE {where} ORDER BY seq LIMIT 1",
        arguments,
    ).fetchone()
    if found is None:
        return
    seq, values = found[0], dict(zip(columns, found[1:], strict=True))
    for column, allowed in _ENUM_COLUMNS.items():
        if values[column] not in allowed:
            what = f"is not a {column} pitill knows ({', '.join(allowed)})"
            break
    else:
        column = next(c for c in _INTEGER_COLUMNS if not isinstance(values[c], int))
        what = "is not a whole number"
    raise StorageError(
        f"journal {path}: row seq {seq}, column {column} holds {values[column]!r}, which {what}; "
        "the file was changed outside pitill: restore it from a backup or correct that row, "
        "then start again"
    )


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """None when PRAGMA integrity_check says ok; else what it (or SQLite) said is wrong."""
    try:
        results = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _CORRUPT_CODES:
            raise  # cannot read it (locked, I/O, permissions): not proof of corruption
        return str(exc)
    lines = "\n".join(results).splitlines()
    if lines == ["ok"]:
        return None
    more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
    return "; ".join(lines[:3]) + more


def _move_aside(path: Path) -> Path:
    """Rename path (and its -wal/-shm) to path.corrupt-<n>, n the first free number."""
    number = 1
    while any(path.with_name(f"{path.name}.corrupt-{number}{s}").exists() for s in _SUFFIXES):
        number += 1
    target = path.with_name(f"{path.name}.corrupt-{number}")
    try:
        for suffix in _SUFFIXES:
            # Keep the WAL beside its database under the name SQLite expects, for recovery.
            source = path.with_name(path.name + suffix)
            if source.exists():
                source.rename(target.with_name(target.name + suffix))
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageError(
            f"journal {path} is corrupt and could not be moved aside to {target}: {exc.strerror}; "
            "move it away by hand (do not delete it) and start again"
        ) from exc
    return target
