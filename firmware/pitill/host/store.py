"""The host's store of record: accounts, their movements, and every message answered.

SQLite in WAL mode with synchronous=FULL in the data directory (one file, nothing to install).
Every message is handled in one write transaction (BEGIN IMMEDIATE: one writer at a time, so two
terminals selling on one card cannot both spend the same balance) that first looks the message
up by its dedup key (terminal id, message class, STAN, local date and time): a repeat gets the
stored answer and changes nothing. Money is integer minor units; a balance may go negative only
through an offline sale (a debt), never through an online one.

Schema versions are applied in order (MIGRATIONS) and recorded in `meta`.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pitill.core.types import format_amount
from pitill.errors import ConfigError, StorageError
from pitill.host.cards import CardRef

DB_NAME = "host.sqlite3"
SECRET_NAME = "host-card-key"  # the HMAC key of the card lookup keys (0600)
BUSY_TIMEOUT_MS = 10_000

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE accounts (
        id INTEGER PRIMARY KEY,
        card_key TEXT NOT NULL UNIQUE,
        card_shown TEXT NOT NULL,
        holder TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('active', 'blocked', 'lost', 'replaced')),
        balance_minor INTEGER NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE movements (
        id INTEGER PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(id),
        kind TEXT NOT NULL,
        amount_minor INTEGER NOT NULL,
        balance_after_minor INTEGER NOT NULL,
        flag TEXT NOT NULL DEFAULT '',
        terminal_id TEXT NOT NULL DEFAULT '',
        stan INTEGER,
        at TEXT NOT NULL
    );
    CREATE INDEX movements_by_account ON movements (account_id, id);
    CREATE TABLE messages (
        terminal_id TEXT NOT NULL,
        class TEXT NOT NULL,
        stan INTEGER NOT NULL,
        local_datetime TEXT NOT NULL,
        mti TEXT NOT NULL,
        transmission TEXT NOT NULL,
        amount_minor INTEGER,
        response_code TEXT NOT NULL,
        auth_code TEXT NOT NULL DEFAULT '',
        balance_minor INTEGER,
        movement_id INTEGER REFERENCES movements(id),
        reversed_by INTEGER,
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
        last_stan INTEGER
    );
    """,
)


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


class HostStore:
    """One SQLite connection; use from one thread at a time (the server runs it in a worker)."""

    def __init__(self, conn: sqlite3.Connection, secret: bytes, path: Path) -> None:
        self.conn = conn
        self.secret = secret
        self.path = path

    @classmethod
    def open(cls, data_dir: Path) -> HostStore:
        try:
            data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            secret = _load_or_create_secret(data_dir / SECRET_NAME)
            path = data_dir / DB_NAME
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except OSError as exc:
            raise StorageError(f"host data directory {data_dir}: {exc.strerror}") from None
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        store = cls(conn, secret, path)
        store._migrate()
        return store

    def close(self) -> None:
        self.conn.close()

    def _migrate(self) -> None:
        with self.transaction():
            has_meta = self.conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            version = 0
            if has_meta:
                row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise StorageError(
                    f"{self.path}: schema {version} is newer than this pitill knows "
                    f"({len(MIGRATIONS)}); upgrade pitill"
                )
            for script in MIGRATIONS[version:]:
                for statement in script.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(len(MIGRATIONS)),),
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: taken at once (IMMEDIATE), committed or rolled back whole."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(f"{self.path}: cannot write ({exc})") from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise StorageError(f"{self.path}: the commit failed ({exc})") from None

    # --- accounts ----------------------------------------------------------------------------

    def account(self, card: CardRef) -> Account | None:
        row = self.conn.execute(
            "SELECT id, card_shown, holder, status, balance_minor FROM accounts WHERE card_key = ?",
            (card.key(self.secret),),
        ).fetchone()
        return Account(*row) if row else None

    def require(self, card: CardRef) -> Account:
        found = self.account(card)
        if found is None:
            raise ConfigError(
                f"card {card.shown}: no account; add it with `pitill host account add`"
            )
        return found

    def add_account(self, card: CardRef, balance_minor: int = 0, holder: str = "") -> Account:
        with self.transaction() as conn:
            if self.account(card) is not None:
                raise ConfigError(f"card {card.shown}: already has an account")
            cursor = conn.execute(
                "INSERT INTO accounts (card_key, card_shown, holder, status, balance_minor, "
                "created_at) VALUES (?, ?, ?, 'active', 0, ?)",
                (card.key(self.secret), card.shown, holder, now_iso()),
            )
            account_id = int(cursor.lastrowid or 0)
            if balance_minor:
                self._move(conn, account_id, "topup", balance_minor)
        return self.require(card)

    def _move(
        self,
        conn: sqlite3.Connection,
        account_id: int,
        kind: str,
        amount_minor: int,
        *,
        flag: str = "",
        terminal_id: str = "",
        stan: int | None = None,
    ) -> tuple[int, int]:
        """Add `amount_minor` (signed) to the balance; (movement id, balance after)."""
        conn.execute(
            "UPDATE accounts SET balance_minor = balance_minor + ? WHERE id = ?",
            (amount_minor, account_id),
        )
        (balance,) = conn.execute(
            "SELECT balance_minor FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        cursor = conn.execute(
            "INSERT INTO movements (account_id, kind, amount_minor, balance_after_minor, flag, "
            "terminal_id, stan, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (account_id, kind, amount_minor, balance, flag, terminal_id, stan, now_iso()),
        )
        return int(cursor.lastrowid or 0), int(balance)

    def topup(self, card: CardRef, amount_minor: int) -> tuple[Account, int]:
        """Credit the account; (the account after, the debt this paid off)."""
        _positive(amount_minor)
        with self.transaction() as conn:
            account = self.require(card)
            if account.status == "replaced":
                raise ConfigError(f"card {card.shown}: replaced; top up its new card")
            self._move(conn, account.id, "topup", amount_minor)
        return self.require(card), min(account.debt_minor, amount_minor)

    def payout(self, card: CardRef, amount_minor: int) -> Account:
        """Pay money back to the holder (or refund): never more than the balance."""
        _positive(amount_minor)
        with self.transaction() as conn:
            account = self.require(card)
            if amount_minor > account.balance_minor:
                raise ConfigError(
                    f"card {card.shown}: the balance {format_amount(account.balance_minor)} is "
                    f"less than {format_amount(amount_minor)}; pay out at most the balance"
                )
            self._move(conn, account.id, "payout", -amount_minor)
        return self.require(card)

    def set_status(self, card: CardRef, status: str) -> Account:
        if status not in ("active", "blocked", "lost"):
            raise ConfigError(f"status {status!r}: must be active, blocked or lost")
        with self.transaction() as conn:
            account = self.require(card)
            if account.status == "replaced":
                raise ConfigError(f"card {card.shown}: replaced by another card")
            conn.execute("UPDATE accounts SET status = ? WHERE id = ?", (status, account.id))
        return self.require(card)

    def replace(self, old: CardRef, new: CardRef) -> Account:
        """Move the balance (and a debt) to a new card; the old one is refused from now on."""
        with self.transaction() as conn:
            account = self.require(old)
            if account.status == "replaced":
                raise ConfigError(f"card {old.shown}: already replaced")
            if self.account(new) is not None:
                raise ConfigError(f"card {new.shown}: already has an account")
            cursor = conn.execute(
                "INSERT INTO accounts (card_key, card_shown, holder, status, balance_minor, "
                "created_at) VALUES (?, ?, ?, 'active', 0, ?)",
                (new.key(self.secret), new.shown, account.holder, now_iso()),
            )
            new_id = int(cursor.lastrowid or 0)
            if account.balance_minor:
                self._move(conn, account.id, "moved_out", -account.balance_minor)
                self._move(conn, new_id, "moved_in", account.balance_minor)
            conn.execute("UPDATE accounts SET status = 'replaced' WHERE id = ?", (account.id,))
        return self.require(new)

    def history(self, account: Account, limit: int = 50) -> list[Movement]:
        rows = self.conn.execute(
            "SELECT kind, amount_minor, balance_after_minor, flag, terminal_id, stan, at "
            "FROM movements WHERE account_id = ? ORDER BY id DESC LIMIT ?",
            (account.id, limit),
        ).fetchall()
        return [Movement(*row) for row in rows]

    def totals(self) -> dict[str, Any]:
        """Money per movement kind and flag: what the program holds, took, owes and lost."""
        by_kind = {
            f"{kind}{':' + flag if flag else ''}": {"count": count, "amount_minor": total}
            for kind, flag, count, total in self.conn.execute(
                "SELECT kind, flag, COUNT(*), SUM(amount_minor) FROM movements "
                "GROUP BY kind, flag ORDER BY kind, flag"
            )
        }
        (held,) = self.conn.execute(
            "SELECT COALESCE(SUM(balance_minor), 0) FROM accounts WHERE balance_minor > 0"
        ).fetchone()
        (debts,) = self.conn.execute(
            "SELECT COALESCE(-SUM(balance_minor), 0) FROM accounts WHERE balance_minor < 0"
        ).fetchone()
        return {"movements": by_kind, "balances_minor": held, "debts_minor": debts}

    # --- terminals -----------------------------------------------------------------------------

    def enroll(self, terminal_id: str, name: str, fingerprint: str) -> None:
        """Record a terminal's certificate; a re-enrolment replaces the old one (revoking it)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO terminals (terminal_id, name, fingerprint, status, enrolled_at) "
                "VALUES (?, ?, ?, 'active', ?) ON CONFLICT (terminal_id) DO UPDATE SET "
                "name = excluded.name, fingerprint = excluded.fingerprint, status = 'active', "
                "enrolled_at = excluded.enrolled_at",
                (terminal_id, name, fingerprint, now_iso()),
            )

    def terminals(self) -> list[Terminal]:
        return [
            Terminal(*row)
            for row in self.conn.execute(
                "SELECT terminal_id, name, fingerprint, status, enrolled_at, last_seen_at, "
                "last_stan FROM terminals ORDER BY terminal_id"
            )
        ]

    def terminal(self, terminal_id: str) -> Terminal | None:
        found = [t for t in self.terminals() if t.terminal_id == terminal_id]
        return found[0] if found else None

    def revoke(self, terminal_id: str) -> None:
        with self.transaction() as conn:
            done = conn.execute(
                "UPDATE terminals SET status = 'revoked' WHERE terminal_id = ?", (terminal_id,)
            )
            if done.rowcount == 0:
                raise ConfigError(f"terminal {terminal_id!r}: not enrolled")

    def seen(self, terminal_id: str, stan: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE terminals SET last_seen_at = ?, last_stan = ? WHERE terminal_id = ?",
                (now_iso(), stan, terminal_id),
            )

    def losses(self) -> dict[str, int]:
        """Offline sales the host declined after the fact (unknown, blocked, lost cards)."""
        count, amount = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(amount_minor), 0) FROM messages "
            "WHERE class = 'advice' AND response_code != '00'"
        ).fetchone()
        return {"count": int(count), "amount_minor": int(amount)}


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
    if amount_minor <= 0:
        raise ConfigError(f"amount {amount_minor}: must be more than 0")


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
