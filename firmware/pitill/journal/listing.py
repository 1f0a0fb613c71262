"""`pitill journal list`: every transaction of a data directory, as a table or JSON lines.

Readers open the file read-only and take no lock: they never block the running terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pitill.core.responses import is_response_code, lookup
from pitill.core.types import TxnKind, TxnMode, TxnStatus, format_amount
from pitill.errors import StorageError
from pitill.journal.datadir import moved_aside_files
from pitill.journal.dbfile import check_rows
from pitill.journal.store import JOURNAL_FILE_NAME, newest_wall
from pitill.records import JournalRow

COLUMNS = (
    "seq",
    "created_at",  # the shell's wall clock when the sale was first recorded, ISO 8601
    "kind",
    "mode",
    "amount_minor",
    "currency",
    "status",
    "masked_pan",
    "card_tier",  # stripe, uid_only or sun (docs/cards.md); "" for cash
    "response_code",  # the host's (or the terminal's own Y3/Z3) field 39; "" for cash
)


def read_rows(data_dir: Path) -> list[dict[str, object]]:
    """The listing columns of every transaction, read-only: no key needed, nothing unsealed."""
    with read_only(data_dir) as (conn, path):
        check_rows(conn, path)  # a hand-edited row is one line naming it, not a traceback
        cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM txns ORDER BY seq")
        return [dict(zip(COLUMNS, row, strict=True)) for row in cursor]


@contextlib.contextmanager
def read_only(data_dir: Path) -> Iterator[tuple[sqlite3.Connection, Path]]:
    """The journal opened read-only (no lock: the running terminal is never blocked)."""
    path = data_dir / JOURNAL_FILE_NAME
    if not path.exists():
        raise StorageError(f"no journal at {path}: is --data-dir the terminal's data directory?")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            yield conn, path
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the journal {path}: {exc}") from exc


def _has_meta(conn: sqlite3.Connection) -> bool:
    """Journals before schema 4 have no meta table: no settings, no saved date."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
    return found.fetchone() is not None


def read_row(data_dir: Path, seq: int | None = None) -> JournalRow:
    """One transaction (the newest without `seq`), read-only, nothing unsealed (receipts)."""
    names = [f.name for f in dataclasses.fields(JournalRow)]
    with read_only(data_dir) as (conn, path):
        check_rows(conn, path)
        where, args = ("WHERE seq = ?", (seq,)) if seq is not None else ("", ())
        found = conn.execute(
            f"SELECT {', '.join(names)} FROM txns {where} ORDER BY seq DESC LIMIT 1", args
        ).fetchone()
    if found is None:
        which = f"no transaction with seq {seq}" if seq is not None else "no transaction yet"
        raise StorageError(f"journal {path}: {which}; `pitill journal list` shows what it holds")
    row: dict[str, Any] = dict(zip(names, found, strict=True))
    row |= {"kind": TxnKind(row["kind"]), "mode": TxnMode(row["mode"])}
    row["status"] = TxnStatus(row["status"])
    return JournalRow(**row)


def read_settings(data_dir: Path) -> dict[str, str]:
    """The settings the terminal keeps in its journal (the mode chosen from the FN menu...)."""
    with read_only(data_dir) as (conn, _):
        if not _has_meta(conn):
            return {}
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}


def read_newest_wall(data_dir: Path) -> datetime | None:
    """The newest date the journal recorded (UTC), None for a journal without one."""
    with read_only(data_dir) as (conn, _):
        return newest_wall(conn) if _has_meta(conn) else None


def moved_aside_line(data_dir: Path) -> str:
    """One line about damaged journals moved aside in `data_dir`, or "" when there are none."""
    files = moved_aside_files(data_dir)
    if not files:
        return ""
    names = ", ".join(str(p) for p in files)
    return (
        f"moved aside: {names} (a damaged journal; its pending sales are not in this one: "
        f"`pitill journal salvage --data-dir {data_dir}` recovers them)"
    )


def print_listing(data_dir: Path, as_json: bool = False) -> int:
    rows = read_rows(data_dir)
    notice = moved_aside_line(data_dir)
    if as_json:
        for row in rows:
            print(json.dumps(row))
        if notice:
            print(notice, file=sys.stderr)  # stdout stays one transaction a line
        return 0
    print(
        f"{'seq':>5}  {'time':19}  {'kind':4}  {'mode':7}  {'amount':>10}  {'cur':3}  "
        f"{'status':16}  {'pan':16}  {'tier':8}  response"
    )
    for row in rows:
        amount = format_amount(int(str(row["amount_minor"])))
        when = str(row["created_at"] or "").replace("T", " ")
        print(
            f"{row['seq']:>5}  {when:19}  {row['kind']:4}  {row['mode']:7}  {amount:>10}  "
            f"{row['currency']:3}  {row['status']:16}  {row['masked_pan'] or '':16}  "
            f"{row['card_tier'] or '':8}  {_response(str(row['response_code'] or ''))}"
        )
    print(f"{len(rows)} transaction(s)")
    if notice:
        print(notice)
    return 0


def _response(code: str) -> str:
    """The code and what it means ("05 do not honour"); empty when there is none (cash)."""
    return f"{code} {lookup(code).meaning}" if is_response_code(code) else code
