"""The dashboard's operators: names, roles, passwords hashed with scrypt, and login lockout.

- A password is stored by pitill.kdf (scrypt, memory-hard: N=2**15, r=8 takes 32 MiB per
  attempt; a 16-byte random salt per operator; the parameters travel with the hash). Passwords
  are never logged nor kept.
- MAX_FAILURES wrong passwords in a row lock the name for LOCKOUT_S (in the store: every host
  process sharing it sees the lock). An unknown name costs the same scrypt work as a known one
  and gets the same answer, so a login page does not tell which names exist.
- Two roles: a cashier searches and views accounts and tops them up; an admin does everything,
  including block, unblock, replace, pay out and managing operators. ROLE_CAN is the one home
  of that rule.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from pitill.errors import ConfigError
from pitill.host.store import HostStore, now_iso
from pitill.kdf import hash_secret, secret_matches

log = logging.getLogger(__name__)

ROLES = ("admin", "cashier")
ROLE_CAN = {
    "cashier": frozenset({"view", "topup"}),
    "admin": frozenset({"view", "topup", "payout", "block", "replace", "operators"}),
}
SCRYPT_N = 2**15  # 32 MiB per check with r=8 (pitill.kdf); the supervisor PIN's is 2**14
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024  # scrypt takes any length; a megabyte "password" is an attack
MAX_FAILURES = 5
LOCKOUT_S = 15 * 60
NAME_CHARS = 40


@dataclass(frozen=True)
class Operator:
    name: str
    role: str

    def can(self, action: str) -> bool:
        return action in ROLE_CAN[self.role]


def hash_password(password: str) -> str:
    return hash_secret(password, SCRYPT_N)


def password_matches(password: str, stored: str) -> bool:
    return secret_matches(password, stored)


# What an unknown name is checked against: the same work, never a match.
_NOBODY = hash_password(os.urandom(16).hex())


def check_name(name: str) -> str:
    if not name or len(name) > NAME_CHARS or not all(c.isalnum() or c in "._-" for c in name):
        raise ConfigError(
            f"operator name {name[:NAME_CHARS]!r}: 1-{NAME_CHARS} letters, digits, '.', '_' or '-'"
        )
    return name


def check_password(password: str) -> str:
    if not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS:
        raise ConfigError(
            f"the password has {len(password)} characters: give {MIN_PASSWORD_CHARS} to "
            f"{MAX_PASSWORD_CHARS}"
        )
    return password


def add_operator(store: HostStore, name: str, role: str, password: str) -> Operator:
    """Add NAME, or set its role and password if it exists (and lift a lockout)."""
    check_name(name)
    if role not in ROLES:
        raise ConfigError(f"role {role!r}: must be admin or cashier")
    check_password(password)
    # the same password keeps its hash: a role changed leaves the operator's sessions open,
    # a new password (or the name removed and added again) ends them (the dashboard's _need)
    before = store.execute("SELECT password_hash FROM operators WHERE name = ?", (name,)).fetchone()
    if before is not None and password_matches(password, str(before[0])):
        hashed = str(before[0])
    else:
        hashed = hash_password(password)
    with store.transaction():
        store.execute(
            "INSERT INTO operators (name, role, password_hash, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
            "password_hash = excluded.password_hash, failures = 0, locked_until = ''",
            (name, role, hashed, now_iso()),
        )
    return Operator(name, role)


def remove_operator(store: HostStore, name: str) -> None:
    with store.transaction():
        if store.execute("DELETE FROM operators WHERE name = ?", (name,)).rowcount == 0:
            raise ConfigError(f"operator {name!r}: no such operator")


def operator_state(store: HostStore, name: str) -> tuple[str, str] | None:
    """NAME's role and stored password hash now, or None if there is no such operator any
    more (a session holds the hash it logged in with: another one means a new password)."""
    row = store.execute(
        "SELECT role, password_hash FROM operators WHERE name = ?", (name,)
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def operators(store: HostStore) -> list[tuple[str, str, str]]:
    """(name, role, locked until or '') of every operator."""
    return [
        (str(name), str(role), str(locked))
        for name, role, locked in store.execute(
            "SELECT name, role, locked_until FROM operators ORDER BY name"
        )
    ]


class LoginRefused(ConfigError):
    """Wrong name or password, or a name locked out: one message for all three, so that the
    answer never tells a guesser which names exist (a locked name would)."""


REFUSED = (
    f"wrong name or password (after {MAX_FAILURES} wrong tries a name waits "
    f"{LOCKOUT_S // 60} minutes, or an admin runs `pitill host operator add` again)"
)


def login(store: HostStore, name: str, password: str, now: datetime) -> Operator:
    """The operator NAME if PASSWORD is theirs and they are not locked out; else LoginRefused
    (a failure counts towards the lockout)."""
    stamp = now.isoformat(timespec="seconds")
    row = store.execute(
        "SELECT role, password_hash, failures, locked_until FROM operators WHERE name = ?",
        (name,),
    ).fetchone()
    if len(password) > MAX_PASSWORD_CHARS:
        password = ""
    if row is None:
        password_matches(password, _NOBODY)
        raise LoginRefused(REFUSED)
    role, stored, _failures, locked_until = row
    matches = password_matches(password, stored)  # also while locked: the same time taken
    if locked_until and locked_until > stamp:
        log.info("operator %r refused: locked until %s", name, locked_until)  # for the admin
        raise LoginRefused(REFUSED)
    if matches:
        with store.transaction():
            store.execute(
                "UPDATE operators SET failures = 0, locked_until = '' WHERE name = ?", (name,)
            )
        return Operator(name, role)
    with store.transaction():
        (failures,) = store.execute(
            "UPDATE operators SET failures = failures + 1 WHERE name = ? RETURNING failures",
            (name,),
        ).fetchone()
        if int(failures) >= MAX_FAILURES:
            until = (now + timedelta(seconds=LOCKOUT_S)).isoformat(timespec="seconds")
            store.execute(
                "UPDATE operators SET failures = 0, locked_until = ? WHERE name = ?",
                (until, name),
            )
    raise LoginRefused(REFUSED)


def record_action(
    store: HostStore, operator: Operator, action: str, card_shown: str, amount_minor: int | None
) -> None:
    """Who did what from the dashboard (the movements themselves carry no operator)."""
    with store.transaction():
        store.execute(
            "INSERT INTO operator_actions (at, operator, action, card_shown, amount_minor) "
            "VALUES (?, ?, ?, ?, ?)",
            (now_iso(), operator.name, action, card_shown, amount_minor),
        )
