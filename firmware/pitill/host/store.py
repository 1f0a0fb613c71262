"""The host's store of record: accounts, their movements, and every message answered.

Two engines behind one class, the same SQL and the same tests:
- SQLite in WAL mode with synchronous=FULL in the data directory (one file, nothing to install):
  a write transaction is BEGIN IMMEDIATE, one writer at a time, across processes too;
- PostgreSQL (`--database postgresql://…`, psycopg 3) for a festival's many terminals and several
  host processes: a write transaction is SERIALIZABLE, and one that collides with another
  (serialization failure, or the same message's key inserted twice at once) raises Conflict and
  is run again from the start by its caller.
Every message is handled in one write transaction that first looks the message up by its dedup
key (terminal id, message class, STAN, local date and time): a repeat gets the stored answer and
changes nothing. So two terminals selling on one card can never both spend the same balance.
Money is integer minor units; a balance may go negative only
through a debit of money a terminal already handed over (HostStore.debit: an offline sale, the
reversal of a spent top-up), flagged a debt, never through an online sale. No amount and no credited
balance is above MAX_BALANCE_MINOR, the 12 digits of ISO 8583 fields 4 and 54 (SQLite turned a
larger sum into a float and every page showing that account failed).

Schema versions are applied in order (MIGRATIONS) and recorded in `meta`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitill.card.hotlist import hotlist_entry
from pitill.card.sun import counter_is_fresh
from pitill.core.types import format_amount
from pitill.errors import ConfigError, StorageError
from pitill.host.cards import CardRef, SunKeys, load_sun_keys

DB_NAME = "host.sqlite3"
SECRET_NAME = "host-card-key"  # the HMAC key of the card lookup keys (0600)
BUSY_TIMEOUT_MS = 10_000
MAX_BALANCE_MINOR = 999_999_999_999  # fields 4 and 54 carry 12 digits

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE accounts (
        id {id},
        card_key TEXT NOT NULL UNIQUE,
        card_shown TEXT NOT NULL,
        holder TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('active', 'blocked', 'lost', 'replaced')),
        balance_minor BIGINT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE movements (
        id {id},
        account_id BIGINT NOT NULL REFERENCES accounts(id),
        kind TEXT NOT NULL,
        amount_minor BIGINT NOT NULL,
        balance_after_minor BIGINT NOT NULL,
        flag TEXT NOT NULL DEFAULT '',
        terminal_id TEXT NOT NULL DEFAULT '',
        stan BIGINT,
        at TEXT NOT NULL
    );
    CREATE INDEX movements_by_account ON movements (account_id, id);
    CREATE TABLE messages (
        terminal_id TEXT NOT NULL,
        class TEXT NOT NULL,
        stan BIGINT NOT NULL,
        local_datetime TEXT NOT NULL,
        mti TEXT NOT NULL,
        transmission TEXT NOT NULL,
        amount_minor BIGINT,
        response_code TEXT NOT NULL,
        auth_code TEXT NOT NULL DEFAULT '',
        balance_minor BIGINT,
        movement_id BIGINT REFERENCES movements(id),
        reversed_by BIGINT,
        at TEXT NOT NULL,
        PRIMARY KEY (terminal_id, class, stan, local_datetime)
    );
    CREATE INDEX messages_by_original ON messages (terminal_id, class, stan, transmission);
    """,
    """
    CREATE TABLE terminals (
        terminal_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
        enrolled_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL DEFAULT '',
        last_stan BIGINT
    );
    """,
    """
    CREATE TABLE operators (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'cashier')),
        password_hash TEXT NOT NULL,
        failures BIGINT NOT NULL DEFAULT 0,
        locked_until TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL
    );
    CREATE TABLE operator_actions (
        id {id},
        at TEXT NOT NULL,
        operator TEXT NOT NULL,
        action TEXT NOT NULL,
        card_shown TEXT NOT NULL DEFAULT '',
        amount_minor BIGINT
    );
    CREATE TABLE links (
        id {id},
        terminal_id TEXT NOT NULL,
        instance TEXT NOT NULL,
        up_at TEXT NOT NULL,
        down_at TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX links_by_terminal ON links (terminal_id, id);
    CREATE INDEX movements_by_time ON movements (at);
    CREATE INDEX messages_by_time ON messages (at);
    """,
    # A reversal's field 39 (17 voided by the supervisor, 68 answer lost): end of day counts
    # the first kind (host/settlement.py).
    """
    ALTER TABLE messages ADD COLUMN reason TEXT NOT NULL DEFAULT '';
    """,
    """
    ALTER TABLE accounts ADD COLUMN hotlist_entry TEXT;
    CREATE TABLE hotlist_changes (
        id {id},
        entry TEXT NOT NULL,
        listed INTEGER NOT NULL CHECK (listed IN (0, 1)),
        at TEXT NOT NULL
    );
    """,
    # The last SUN read counter the host took from each NTAG 424 DNA card, and the one a charged
    # message took (its reversal gives it back: authorize.py).
    """
    ALTER TABLE accounts ADD COLUMN sun_counter BIGINT;
    ALTER TABLE messages ADD COLUMN sun_counter BIGINT;
    """,
    # A message's processing code (field 3): a refused offline refund (20) is no loss
    # (host/settlement.py). Earlier messages that moved money as a refund were refunds; one
    # refused before this version cannot be told from a sale and keeps '' (counted as before).
    """
    ALTER TABLE messages ADD COLUMN processing_code TEXT NOT NULL DEFAULT '';
    UPDATE messages SET processing_code = '200000' WHERE movement_id IN (
        SELECT id FROM movements WHERE kind IN ('refund', 'offline_refund', 'refund_reversal'));
    """,
)
HOTLIST_KEY_LABEL = b"pitill hotlist key v1"
HOTLISTED = ("blocked", "lost", "replaced")  # the statuses terminals refuse offline


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Account:
    id: int
    card_shown: str
    holder: str
    status: str
    balance_minor: int

    @property
    def debt_minor(self) -> int:
        return max(0, -self.balance_minor)


@dataclass(frozen=True)
class Movement:
    kind: str
    amount_minor: int
    balance_after_minor: int
    flag: str
    terminal_id: str
    stan: int | None
    at: str


class Conflict(StorageError):
    """The transaction collided with another one (PostgreSQL): run it again from the start."""


class Engine:
    """What differs between SQLite and PostgreSQL: connecting, placeholders, transactions."""

    name = "sqlite"
    identity = "INTEGER PRIMARY KEY"  # an auto-numbered id

    def __init__(self, conn: Any, where: str) -> None:
        self.conn = conn
        self.where = where

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self.conn.execute(sql, params)

    def begin(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(f"{self.where}: cannot write ({exc})") from None

    def commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise StorageError(f"{self.where}: the commit failed ({exc})") from None

    def rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def has_table(self, name: str) -> bool:
        return bool(
            self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        )

    def close(self) -> None:
        self.conn.close()


class PostgresEngine(Engine):
    name = "postgresql"
    identity = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        import psycopg

        try:
            # psycopg's placeholders are %s, so a literal % (LIKE 'x%') is written %%
            return self.conn.execute(sql.replace("%", "%%").replace("?", "%s"), params)
        except (psycopg.errors.SerializationFailure, psycopg.errors.UniqueViolation) as exc:
            raise Conflict(f"{self.where}: {exc.sqlstate}, another transaction was first") from None
        except psycopg.errors.DeadlockDetected as exc:
            raise Conflict(f"{self.where}: deadlock ({exc.sqlstate})") from None

    def begin(self) -> None:
        self.conn.execute("BEGIN ISOLATION LEVEL SERIALIZABLE")

    def commit(self) -> None:
        import psycopg

        try:
            self.conn.execute("COMMIT")
        except psycopg.errors.SerializationFailure as exc:
            raise Conflict(f"{self.where}: {exc.sqlstate} at commit") from None

    def has_table(self, name: str) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()
        return row is not None and row[0] is not None


def _connect_postgres(url: str) -> PostgresEngine:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "--database postgresql://… needs psycopg: pip install 'pitill[host]'"
        ) from None
    shown = url.split("@")[-1]  # never the password
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"database {shown}: cannot connect ({first})") from None
    return PostgresEngine(conn, f"database {shown}")


class HostStore:
    """One connection to the store; use from one thread at a time (the server runs it in a
    worker thread of its own)."""

    def __init__(self, engine: Engine, secret: bytes, sun_keys: SunKeys | None = None) -> None:
        self.engine = engine
        self.secret = secret
        self.sun_keys = sun_keys  # the program's NTAG 424 DNA keys, None: no SUN cards
        self.path = engine.where

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """SQL with ? placeholders, on whichever engine this store runs."""
        return self.engine.execute(sql, params)

    @classmethod
    def open(cls, data_dir: Path, database: str | None = None) -> HostStore:
        """The store: SQLite in data_dir, or the PostgreSQL database at `database` (a
        postgresql:// URL). The card key lives in data_dir either way (never in the database:
        a copy of the database alone must not reveal which cards it holds)."""
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            secret = _load_or_create_secret(data_dir / SECRET_NAME)
        except OSError as exc:
            raise StorageError(f"host data directory {data_dir}: {exc.strerror}") from None
        if database:
            if not database.startswith(("postgresql://", "postgres://")):
                raise ConfigError(
                    f"--database {database.split('@')[-1]!r}: give a postgresql:// URL (or "
                    "leave it out for SQLite in --data-dir)"
                )
            engine: Engine = _connect_postgres(database)
        else:
            path = data_dir / DB_NAME
            try:
                conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except sqlite3.Error as exc:
                raise StorageError(f"{path}: cannot open the host's database ({exc})") from None
            engine = Engine(conn, str(path))
        store = cls(engine, secret, load_sun_keys(data_dir))
        for _ in range(10):  # two processes starting at once: one creates, the other waits
            try:
                store._migrate()
                break
            except Conflict:
                continue
        return store

    def close(self) -> None:
        self.engine.close()

    def _migrate(self) -> None:
        with self.transaction():
            version = 0
            if self.engine.has_table("meta"):
                row = self.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"{self.path}: schema {version} is newer than this pitill knows "
                    f"({len(MIGRATIONS)}); upgrade pitill"
                )
            for script in MIGRATIONS[version:]:
                for statement in script.replace("{id}", self.engine.identity).split(";"):
                    if statement.strip():
                        self.execute(statement)
            self.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(len(MIGRATIONS)),),
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[HostStore]:
        """One write transaction, committed or rolled back whole (see the module docstring)."""
        self.engine.begin()
        try:
            yield self
        except BaseException:
            self.engine.rollback()
            raise
        self.engine.commit()

    # --- accounts ----------------------------------------------------------------------------

    def account(self, card: CardRef) -> Account | None:
        row = self.execute(
            "SELECT id, card_shown, holder, status, balance_minor FROM accounts WHERE card_key = ?",
            (card.key(self.secret),),
        ).fetchone()
        return Account(*row) if row else None

    def take_sun_counter(self, account_id: int, counter: int) -> bool:
        """Record `counter` as the card's last SUN tap, inside the caller's transaction, when it
        is fresh (card/sun.py counter_is_fresh: strictly above the last one taken); False for a
        replay. The conditional UPDATE makes it one step on both engines: of two hosts taking
        the same counter at once, one changes no row (or collides and is run again)."""
        (last,) = self.execute(
            "SELECT sun_counter FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        if not counter_is_fresh(None if last is None else int(last), counter):
            return False
        done = self.execute(
            "UPDATE accounts SET sun_counter = ? WHERE id = ? "
            "AND (sun_counter IS NULL OR sun_counter < ?)",
            (counter, account_id, counter),
        )
        return bool(done.rowcount == 1)

    def require(self, card: CardRef) -> Account:
        found = self.account(card)
        if found is None:
            raise ConfigError(
                f"card {card.shown}: no account; add it with `pitill host account add`"
            )
        return found

    def add_account(self, card: CardRef, balance_minor: int = 0, holder: str = "") -> Account:
        with self.transaction():
            if self.account(card) is not None:
                raise ConfigError(f"card {card.shown}: already has an account")
            (account_id,) = self.execute(
                "INSERT INTO accounts (card_key, card_shown, holder, status, balance_minor, "
                "created_at, hotlist_entry) VALUES (?, ?, ?, 'active', 0, ?, ?) RETURNING id",
                (card.key(self.secret), card.shown, holder, now_iso(), self.hotlist_entry(card)),
            ).fetchone()
            if balance_minor:
                _positive(balance_minor)
                self._move(account_id, "topup", balance_minor)
        return self.require(card)

    def _move(
        self,
        account_id: int,
        kind: str,
        amount_minor: int,
        *,
        terminal_id: str = "",
        stan: int | None = None,
        debit: bool = False,
    ) -> tuple[int, int]:
        """Add `amount_minor` (signed) to the balance; (movement id, balance after). A `debit`
        that leaves the balance below zero is flagged a debt (see `debit`)."""
        self.execute(
            "UPDATE accounts SET balance_minor = balance_minor + ? WHERE id = ?",
            (amount_minor, account_id),
        )
        (balance,) = self.execute(
            "SELECT balance_minor FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        flag = "debt" if debit and balance < 0 else ""
        (movement_id,) = self.execute(
            "INSERT INTO movements (account_id, kind, amount_minor, balance_after_minor, flag, "
            "terminal_id, stan, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (account_id, kind, amount_minor, balance, flag, terminal_id, stan, now_iso()),
        ).fetchone()
        return int(movement_id), int(balance)

    def topup(self, card: CardRef, amount_minor: int) -> tuple[Account, int]:
        """Credit the account; (the account after, the debt this paid off)."""
        _positive(amount_minor)
        with self.transaction():
            account = self.require(card)
            if account.status == "replaced":
                raise ConfigError(f"card {card.shown}: replaced; top up its new card")
            self.credit(account, amount_minor)
        return self.require(card), min(account.debt_minor, amount_minor)

    def credit(
        self, account: Account, amount_minor: int, *, terminal_id: str = "", stan: int | None = None
    ) -> tuple[int, int]:
        """The one top-up rule, inside a transaction (the CLI's and a terminal's): the amount
        goes onto the balance, so a debt (a negative balance) is paid first and only the rest
        can be spent; (movement id, balance after). A balance past MAX_BALANCE_MINOR is refused
        (ConfigError) before anything moves."""
        if account.balance_minor + amount_minor > MAX_BALANCE_MINOR:
            raise ConfigError(
                f"card {account.card_shown}: a top-up of {format_amount(amount_minor)} would take "
                f"the balance past {format_amount(MAX_BALANCE_MINOR)}; top up less"
            )
        return self._move(account.id, "topup", amount_minor, terminal_id=terminal_id, stan=stan)

    def debit(
        self, account_id: int, kind: str, amount_minor: int, *, terminal_id: str, stan: int
    ) -> tuple[int, int]:
        """The one debt rule, inside a transaction: take `amount_minor` (> 0) off the balance,
        and when that leaves it below zero flag the movement a debt (the settlement's debts
        count the shortfall it made). Money a terminal already handed over makes debts: an
        offline sale past the balance, the reversal of a top-up or refund whose money the
        card has spent since. The next credit pays a debt first (it is the negative balance).
        An online sale checks the balance before, so it never gets here overdrawn."""
        return self._move(
            account_id, kind, -amount_minor, terminal_id=terminal_id, stan=stan, debit=True
        )

    def payout(self, card: CardRef, amount_minor: int) -> Account:
        """Pay money back to the holder (or refund): never more than the balance."""
        _positive(amount_minor)
        with self.transaction():
            account = self.require(card)
            if amount_minor > account.balance_minor:
                raise ConfigError(
                    f"card {card.shown}: the balance {format_amount(account.balance_minor)} is "
                    f"less than {format_amount(amount_minor)}; pay out at most the balance"
                )
            self._move(account.id, "payout", -amount_minor)
        return self.require(card)

    def set_status(self, card: CardRef, status: str) -> Account:
        if status not in ("active", "blocked", "lost"):
            raise ConfigError(f"status {status!r}: must be active, blocked or lost")
        with self.transaction():
            account = self.require(card)
            if account.status == "replaced":
                raise ConfigError(f"card {card.shown}: replaced by another card")
            self.execute(
                "UPDATE accounts SET status = ?, hotlist_entry = ? WHERE id = ?",
                (status, self.hotlist_entry(card), account.id),
            )
            listed = status in HOTLISTED
            if listed != (account.status in HOTLISTED):
                self._hotlist_change(self.hotlist_entry(card), listed)
        return self.require(card)

    def replace(self, old: CardRef, new: CardRef) -> Account:
        """Move the balance (and a debt) to a new card; the old one is refused from now on."""
        with self.transaction():
            account = self.require(old)
            if account.status == "replaced":
                raise ConfigError(f"card {old.shown}: already replaced")
            if self.account(new) is not None:
                raise ConfigError(f"card {new.shown}: already has an account")
            (new_id,) = self.execute(
                "INSERT INTO accounts (card_key, card_shown, holder, status, balance_minor, "
                "created_at, hotlist_entry) VALUES (?, ?, ?, 'active', 0, ?, ?) RETURNING id",
                (
                    new.key(self.secret),
                    new.shown,
                    account.holder,
                    now_iso(),
                    self.hotlist_entry(new),
                ),
            ).fetchone()
            if account.balance_minor:
                self._move(account.id, "moved_out", -account.balance_minor)
                self._move(new_id, "moved_in", account.balance_minor)
            self.execute("UPDATE accounts SET status = 'replaced' WHERE id = ?", (account.id,))
            if account.status not in HOTLISTED:
                self._hotlist_change(self.hotlist_entry(old), True)
        return self.require(new)

    # --- the hotlist (card/hotlist.py) ----------------------------------------------------------

    @property
    def hotlist_key(self) -> bytes:
        """The program's hotlist key, derived from the host's secret: the same in every host
        process of the program, never stored, and no help in finding an account's card_key."""
        return hmac.new(self.secret, HOTLIST_KEY_LABEL, hashlib.sha256).digest()

    def hotlist_entry(self, card: CardRef) -> str:
        if isinstance(card, StoredCard):  # the dashboard holds no card number: the row's entry
            if not card.hotlist_entry:
                raise ConfigError(
                    f"card {card.shown}: its account predates the hotlist; block, unblock or "
                    "replace it once with `pitill host account …` and the card number"
                )
            return card.hotlist_entry
        return hotlist_entry(self.hotlist_key, card.canonical)

    def _hotlist_change(self, entry: str, listed: bool) -> None:
        """Append one change, inside the caller's transaction. On PostgreSQL the table is
        locked first, so changes commit in the order of their ids and a terminal that read up
        to one id never misses a lower one committed later."""
        if self.engine.name == "postgresql":
            self.execute("LOCK TABLE hotlist_changes IN SHARE ROW EXCLUSIVE MODE")
        self.execute(
            "INSERT INTO hotlist_changes (entry, listed, at) VALUES (?, ?, ?)",
            (entry, int(listed), now_iso()),
        )

    def hotlist_changes(self, after: int, limit: int) -> tuple[list[tuple[int, str, bool]], bool]:
        """The changes after version `after`, oldest first, at most `limit`; and whether more
        wait after them."""
        rows = self.execute(
            "SELECT id, entry, listed FROM hotlist_changes WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit + 1),
        ).fetchall()
        changes = [(int(i), str(entry), bool(listed)) for i, entry, listed in rows[:limit]]
        return changes, len(rows) > limit

    def hotlisted(self) -> list[str]:
        """Every entry on the list now (for people and tests; terminals get the changes)."""
        marks = ", ".join("?" * len(HOTLISTED))
        return [
            str(entry)
            for (entry,) in self.execute(
                f"SELECT hotlist_entry FROM accounts WHERE status IN ({marks})"
                " AND hotlist_entry IS NOT NULL ORDER BY hotlist_entry",
                HOTLISTED,
            )
        ]

    def history(self, account: Account, limit: int = 50) -> list[Movement]:
        rows = self.execute(
            "SELECT kind, amount_minor, balance_after_minor, flag, terminal_id, stan, at "
            "FROM movements WHERE account_id = ? ORDER BY id DESC LIMIT ?",
            (account.id, limit),
        ).fetchall()
        return [Movement(*row) for row in rows]

    def movements_by_kind(self) -> dict[str, dict[str, int]]:
        """Count and sum of every movement ever, by kind and flag ("offline_sale:debt")."""
        return {
            # int(): PostgreSQL sums BIGINTs as NUMERIC (Decimal)
            f"{kind}{':' + flag if flag else ''}": {"count": int(count), "amount_minor": int(total)}
            for kind, flag, count, total in self.execute(
                "SELECT kind, flag, COUNT(*), SUM(amount_minor) FROM movements "
                "GROUP BY kind, flag ORDER BY kind, flag"
            )
        }

    def backup(self, target: Path) -> int:
        """An online copy of the SQLite store to `target` (the host may keep serving: SQLite's
        backup API copies a consistent snapshot); the number of accounts in it."""
        if not isinstance(self.engine.conn, sqlite3.Connection):
            raise ConfigError(
                "pitill host backup copies the SQLite store; back a PostgreSQL database up with "
                "pg_dump (or the engine's own backups)"
            )
        if target.exists():
            raise ConfigError(f"backup {target}: exists already; give a new file name")
        try:
            copy = sqlite3.connect(target)
        except sqlite3.Error as exc:
            raise StorageError(f"backup {target}: cannot create it ({exc})") from None
        try:
            self.engine.conn.backup(copy)
            (count,) = copy.execute("SELECT COUNT(*) FROM accounts").fetchone()
            (check,) = copy.execute("PRAGMA integrity_check").fetchone()
        finally:
            copy.close()
        if check != "ok":
            raise StorageError(f"backup {target}: the copy fails its integrity check ({check})")
        target.chmod(0o600)
        return int(count)

    def movements_csv(self, since: str = "", until: str = "9999") -> Iterator[list[str]]:
        """Every movement booked in [since, until) as CSV rows (masked cards only), oldest
        first, with a header."""
        yield ["at", "card", "kind", "amount_minor", "balance_after_minor", "flag", "terminal_id",
               "stan"]  # fmt: skip
        for row in self.execute(
            "SELECT m.at, a.card_shown, m.kind, m.amount_minor, m.balance_after_minor, m.flag, "
            "m.terminal_id, m.stan FROM movements m JOIN accounts a ON a.id = m.account_id "
            "WHERE m.at >= ? AND m.at < ? ORDER BY m.id",
            (since, until),
        ):
            yield ["" if value is None else str(value) for value in row]

    # --- terminals -----------------------------------------------------------------------------

    def enroll(self, terminal_id: str, name: str, fingerprint: str) -> None:
        """Record a terminal's certificate; a re-enrolment replaces the old one (revoking it)."""
        with self.transaction():
            self.execute(
                "INSERT INTO terminals (terminal_id, name, fingerprint, status, enrolled_at) "
                "VALUES (?, ?, ?, 'active', ?) ON CONFLICT (terminal_id) DO UPDATE SET "
                "name = excluded.name, fingerprint = excluded.fingerprint, status = 'active', "
                "enrolled_at = excluded.enrolled_at",
                (terminal_id, name, fingerprint, now_iso()),
            )

    def terminals(self) -> list[Terminal]:
        return [
            Terminal(*row)
            for row in self.execute(
                "SELECT terminal_id, name, fingerprint, status, enrolled_at, last_seen_at, "
                "last_stan FROM terminals ORDER BY terminal_id"
            )
        ]

    def terminal(self, terminal_id: str) -> Terminal | None:
        found = [t for t in self.terminals() if t.terminal_id == terminal_id]
        return found[0] if found else None

    def revoke(self, terminal_id: str) -> None:
        with self.transaction():
            done = self.execute(
                "UPDATE terminals SET status = 'revoked' WHERE terminal_id = ?", (terminal_id,)
            )
            if done.rowcount == 0:
                raise ConfigError(
                    f"terminal id {terminal_id!r}: not enrolled; revoke takes the 8-character id "
                    "that `pitill host terminal list` shows first, not the name"
                )

    def seen(self, terminal_id: str, stan: int) -> None:
        with self.transaction():
            self.execute(
                "UPDATE terminals SET last_seen_at = ?, last_stan = ? WHERE terminal_id = ?",
                (now_iso(), stan, terminal_id),
            )

    def link_up(self, terminal_id: str, instance: str) -> int:
        """A terminal connected to the host process `instance`: its link's row id."""
        with self.transaction():
            (link_id,) = self.execute(
                "INSERT INTO links (terminal_id, instance, up_at) VALUES (?, ?, ?) RETURNING id",
                (terminal_id, instance, now_iso()),
            ).fetchone()
        return int(link_id)

    def link_down(self, link_id: int) -> None:
        with self.transaction():
            self.execute(
                "UPDATE links SET down_at = ? WHERE id = ? AND down_at = ''", (now_iso(), link_id)
            )

    def close_links(self, instance: str) -> None:
        """A host process (re)starting at `instance`: its earlier connections are gone."""
        with self.transaction():
            self.execute(
                "UPDATE links SET down_at = ? WHERE instance = ? AND down_at = ''",
                (now_iso(), instance),
            )

    def account_by_id(self, account_id: int) -> tuple[Account, CardRef] | None:
        """An account and a CardRef that finds it again (by its stored key: the dashboard
        never holds the card number), so the rules above apply to it unchanged."""
        row = self.execute(
            "SELECT id, card_shown, holder, status, balance_minor, card_key, hotlist_entry "
            "FROM accounts WHERE id = ?",
            (account_id,),
        ).fetchone()
        if row is None:
            return None
        return Account(*row[:5]), StoredCard("", row[1], row[5], row[6] or "")

    def search_accounts(self, text: str, limit: int = 50) -> list[Account]:
        """Accounts whose holder contains `text`, or whose shown card ends with it (last 4)."""
        pattern = "%" + text.replace("\\", "").replace("%", "").replace("_", "") + "%"
        rows = self.execute(
            "SELECT id, card_shown, holder, status, balance_minor FROM accounts "
            "WHERE LOWER(holder) LIKE LOWER(?) OR card_shown LIKE ? ORDER BY id LIMIT ?",
            (pattern, pattern, limit),
        ).fetchall()
        return [Account(*row) for row in rows]

    def accounts_to_watch(self, limit: int = 100) -> tuple[list[Account], list[Account]]:
        """(accounts owing a debt, largest first; blocked or lost cards), at most `limit` each."""
        columns = "SELECT id, card_shown, holder, status, balance_minor FROM accounts "
        owing = self.execute(
            columns + "WHERE balance_minor < 0 ORDER BY balance_minor, id LIMIT ?", (limit,)
        ).fetchall()
        refused = self.execute(
            columns + "WHERE status IN ('blocked', 'lost') ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [Account(*row) for row in owing], [Account(*row) for row in refused]


@dataclass(frozen=True)
class StoredCard(CardRef):
    """A card known only by what its account's row keeps: its lookup key and its hotlist entry
    (see HostStore.account_by_id)."""

    card_key: str = ""
    hotlist_entry: str = ""

    def key(self, secret: bytes) -> str:
        return self.card_key


@dataclass(frozen=True)
class Terminal:
    terminal_id: str
    name: str
    fingerprint: str
    status: str
    enrolled_at: str
    last_seen_at: str
    last_stan: int | None


def _positive(amount_minor: int) -> None:
    if not 0 < amount_minor <= MAX_BALANCE_MINOR:
        raise ConfigError(
            f"amount {format_amount(amount_minor)}: must be more than 0 and at most "
            f"{format_amount(MAX_BALANCE_MINOR)}"
        )


def _load_or_create_secret(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = secrets.token_bytes(32)
        fd = path.open("xb")  # never overwrite a key that appeared meanwhile
        with fd:
            path.chmod(0o600)
            fd.write(data)
    if len(data) != 32:
        raise StorageError(f"{path}: not a host card key (32 bytes); restore it from the backup")
    return data
