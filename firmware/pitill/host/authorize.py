"""How the host answers each message: the program's rules, applied in one store transaction.

- A sale (0200) is approved while the balance covers it, else 51; an unknown card 14, a blocked
  or replaced one 62, a lost one 41. The answer carries the balance after it.
- A card is a PAN (field 2) or an NFC tap (field 48): `uid_only:UID`, or an NTAG 424 DNA's SUN
  message, verified with the program's keys and whose counter must rise (_account_for); a forged
  or replayed tap is 63.
- A top-up (0200, processing code 21, from a staffed terminal that took the cash) credits the
  account by the store's one top-up rule (a debt is paid first); a balance inquiry (code 31)
  moves nothing. Both refuse the same cards a sale does and answer with the balance.
- An offline sale (0220/0221) already happened: it is always taken (00). One that overdraws
  turns the balance negative and is flagged a debt (the next top-up pays it first). One on an
  unknown, blocked, lost or replaced card is recorded and declined after the fact (62/14/41):
  the merchant's loss, shown in the report, never dropped.
- A refund (processing code 20: an 0200 online, an 0220/0221 given offline) credits the card's
  account, never more than that card has spent at that terminal less what was refunded to it
  there (the refund message does not name its sale, so the host caps what it can tell): online
  over that is declined 13, an offline one over it is recorded and declined after the fact
  (with its processing code: a refused refund, no loss, host/settlement.py).
- A reversal (0420/0421) gives back exactly what its sale took, once; the reversal of a top-up
  or refund whose money the card has spent since leaves a debt (HostStore.debit, the offline
  sale's rule), paid first by the next top-up. A reversal of a sale the
  host never approved (or never saw) changes nothing and is answered 00. Its field 90 names an
  0200 (an online sale or refund) or an 0220/0221 (an offline sale already advised, voided).
- Every message is answered exactly once: a repeat (0221, 0421, or the same message again on
  another connection) finds its key in `messages` and gets the stored answer.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from pitill.card.model import CardTier
from pitill.card.sun import check_nfc_card_data
from pitill.core.responses import (
    APPROVED,
    INSUFFICIENT_FUNDS,
    INVALID_AMOUNT,
    INVALID_CARD,
    SECURITY_VIOLATION,
)
from pitill.errors import ConfigError, SunError
from pitill.host.cards import parse_card
from pitill.host.store import Account, Conflict, HostStore, now_iso
from pitill.records import HotlistPage
from pitill.upstream.messages import (
    ADVICE,
    ADVICE_REPEAT,
    ECHO_REQUEST,
    HOTLIST_CODE,
    HOTLIST_PAGE_ENTRIES,
    PROCESSING_CODE_BALANCE,
    PROCESSING_CODE_TOPUP,
    REVERSAL,
    REVERSAL_REPEAT,
    SALE_REQUEST,
    UNKNOWN_TRANSMISSION,
    Request,
    hotlist_data,
    is_refund,
)

log = logging.getLogger(__name__)

TOPUP_CODE = PROCESSING_CODE_TOPUP[:2]
BALANCE_CODE = PROCESSING_CODE_BALANCE[:2]
CONFLICT_RETRIES = 20  # a PostgreSQL transaction that collided is run again (see store.py)
RESTRICTED_CARD = "62"
LOST_CARD = "41"
REFUSED_BY_STATUS = {"blocked": RESTRICTED_CARD, "replaced": RESTRICTED_CARD, "lost": LOST_CARD}
CLASS_OF_MTI = {
    SALE_REQUEST: "sale",
    ADVICE: "advice",
    ADVICE_REPEAT: "advice",
    REVERSAL: "reversal",
    REVERSAL_REPEAT: "reversal",
}


@dataclass(frozen=True)
class Answer:
    response_code: str
    auth_code: str = ""
    balance_minor: int | None = None
    duplicate: bool = False  # a repeat: the stored answer, nothing changed
    data: str = ""  # field 48 of the answer (the hotlist's changes), "" for none


def hotlist_answer(store: HostStore, request: Request) -> Answer:
    """The hotlist's changes after the version the terminal has (field 48, 0 for none): blocked,
    lost and replaced cards on, unblocked ones off, as card/hotlist.py entries. A version this
    host never issued (a store restored from an older backup) is answered with version 0 and
    no changes: the terminal drops its list and asks again from 0."""
    have = int(request.card_data) if request.card_data.isdigit() else 0
    changes, more = store.hotlist_changes(have, HOTLIST_PAGE_ENTRIES)
    if have and not changes and not store.hotlist_changes(have - 1, 1)[0]:
        changes, more, have = [], True, 0
    version = changes[-1][0] if changes else have
    page = HotlistPage(
        store.hotlist_key.hex(), version, more, tuple((e, listed) for _, e, listed in changes)
    )
    return Answer(APPROVED, data=hotlist_data(page))


def authorize(store: HostStore, request: Request) -> Answer:
    """The answer to one request, its effects committed before it is returned."""
    if request.mti == ECHO_REQUEST:
        if request.network_code == HOTLIST_CODE:
            return hotlist_answer(store, request)
        return Answer(APPROVED)
    klass = CLASS_OF_MTI[request.mti]
    for attempt in range(CONFLICT_RETRIES):
        try:
            return _authorize_once(store, request, klass)
        except Conflict:
            if attempt == CONFLICT_RETRIES - 1:
                raise
            # back off a little, at random, so colliding transactions stop colliding
            time.sleep(random.uniform(0, 0.001 * 2 ** min(attempt, 7)))
    raise AssertionError("unreachable")


def _authorize_once(store: HostStore, request: Request, klass: str) -> Answer:
    key = (request.terminal_id, klass, request.stan, request.local_datetime)
    with store.transaction():
        stored = store.execute(
            "SELECT response_code, auth_code, balance_minor FROM messages WHERE terminal_id = ? "
            "AND class = ? AND stan = ? AND local_datetime = ?",
            key,
        ).fetchone()
        if stored is not None:
            return Answer(stored[0], stored[1], stored[2], duplicate=True)
        if klass == "reversal":
            answer, movement_id = _reverse(store, request)
        elif request.processing_code[:2] == TOPUP_CODE:
            answer, movement_id = _topup(store, request)
        elif request.processing_code[:2] == BALANCE_CODE:
            answer, movement_id = _balance(store, request), None
        elif is_refund(request):
            answer, movement_id = _refund(store, request, offline=klass == "advice")
        else:
            answer, movement_id = _charge(store, request, offline=klass == "advice")
        store.execute(
            "INSERT INTO messages (terminal_id, class, stan, local_datetime, mti, transmission, "
            "amount_minor, response_code, auth_code, balance_minor, movement_id, at, reason, "
            "processing_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *key,
                request.mti,
                request.transmission,
                request.amount_minor,
                answer.response_code,
                answer.auth_code,
                answer.balance_minor,
                movement_id,
                now_iso(),
                request.reason,
                request.processing_code,
            ),
        )
        if movement_id is not None and request.card_data.startswith(f"{CardTier.SUN.value}:"):
            # the counter this tap took (_account_for set it in this transaction): a reversal
            # gives it back, for the offline advice of the same tap (a timed-out sale)
            store.execute(
                "UPDATE messages SET sun_counter = (SELECT a.sun_counter FROM accounts a "
                "JOIN movements v ON v.account_id = a.id WHERE v.id = ?) WHERE terminal_id = ? "
                "AND class = ? AND stan = ? AND local_datetime = ?",
                (movement_id, *key),
            )
    return answer


def _account_for(store: HostStore, request: Request) -> tuple[Account | None, str]:
    """The account of the request's card, or None with the code that refuses it: the one way
    every message finds its card. A stripe card by its PAN (field 2); an NFC card by field 48:
    `uid_only:UID` is account uid:UID, a SUN tap is decrypted and its SDMMAC verified with the
    program's keys (card/sun.py), then account uid:UID of the UID inside, and its counter must
    rise above the last one this host took from that card (taken here, in the message's
    transaction). A forged or replayed tap is refused 63; without the program's keys a SUN tap
    cannot be told from a forgery and is refused 14."""
    counter = None
    try:
        if request.card_data and not request.pan:
            keys = store.sun_keys
            meta, master = (keys.meta_key, keys.master_key) if keys else (b"", b"")
            if not keys and request.card_data.startswith(f"{CardTier.SUN.value}:"):
                log.warning("a SUN tap, and no SUN keys: `pitill host sun-keys init` makes them")
                return None, INVALID_CARD
            tap = check_nfc_card_data(request.card_data, meta, master)
            card, counter = parse_card(f"uid:{tap.uid}"), tap.counter
        else:
            card = parse_card(request.pan)
    except SunError as exc:
        log.warning("host refuses a SUN tap: %s", exc)
        return None, SECURITY_VIOLATION
    except (ConfigError, ValueError):
        return None, INVALID_CARD
    account = store.account(card)
    if account is None:
        return None, INVALID_CARD
    if counter is not None and not store.take_sun_counter(account.id, counter):
        log.warning("host refuses card %s: SUN counter %d replayed", card.shown, counter)
        return None, SECURITY_VIOLATION
    refused = REFUSED_BY_STATUS.get(account.status)
    return (None, refused) if refused else (account, APPROVED)


def _amount_and_account(store: HostStore, request: Request) -> tuple[int, Account] | Answer:
    """A money message's amount (more than 0) and its card's account, or the answer refusing
    it: a refused advice is recorded, declined after the fact (host/settlement.py counts it)."""
    amount = request.amount_minor
    if amount is None or amount <= 0:
        return Answer(INVALID_AMOUNT)
    account, code = _account_for(store, request)
    if account is None:
        return Answer(code)
    return amount, account


def _approved(movement_id: int, balance_minor: int) -> tuple[Answer, int]:
    """The approval of a message that moved money: its auth code is the movement's id."""
    return Answer(APPROVED, f"{movement_id % 1_000_000:06d}", balance_minor), movement_id


def _charge(store: HostStore, request: Request, *, offline: bool) -> tuple[Answer, int | None]:
    found = _amount_and_account(store, request)
    if isinstance(found, Answer):
        return found, None
    amount, account = found
    if not offline and account.balance_minor < amount:
        return Answer(INSUFFICIENT_FUNDS, balance_minor=account.balance_minor), None
    movement_id, balance = store.debit(
        account.id,
        "offline_sale" if offline else "sale",
        amount,
        terminal_id=request.terminal_id,
        stan=request.stan,
    )
    return _approved(movement_id, balance)


def _topup(store: HostStore, request: Request) -> tuple[Answer, int | None]:
    if request.mti != SALE_REQUEST:
        return Answer(INVALID_AMOUNT), None  # a top-up is only ever online
    found = _amount_and_account(store, request)
    if isinstance(found, Answer):
        return found, None  # the cashier takes no cash for a card the program refuses
    amount, account = found
    try:
        movement_id, balance = store.credit(
            account, amount, terminal_id=request.terminal_id, stan=request.stan
        )
    except ConfigError:
        return Answer(INVALID_AMOUNT), None  # the balance would pass what it can hold
    return _approved(movement_id, balance)


# Movements of one card at one terminal whose sum is what it has spent there, less refunds.
_SPENDING = ("sale", "offline_sale", "reversal", "refund", "offline_refund", "refund_reversal")


def _refund(store: HostStore, request: Request, *, offline: bool) -> tuple[Answer, int | None]:
    found = _amount_and_account(store, request)
    if isinstance(found, Answer):
        return found, None
    amount, account = found
    marks = ", ".join("?" for _ in _SPENDING)
    (net,) = store.execute(  # a reversal taking money off (a top-up's) is no spending
        "SELECT COALESCE(SUM(amount_minor), 0) FROM movements WHERE account_id = ? "
        f"AND terminal_id = ? AND kind IN ({marks}) "
        "AND NOT (kind = 'reversal' AND amount_minor < 0)",
        (account.id, request.terminal_id, *_SPENDING),
    ).fetchone()
    if amount > -int(net):  # more than this card spent here, less its refunds
        return Answer(INVALID_AMOUNT, balance_minor=account.balance_minor), None
    movement_id, balance = store._move(
        account.id,
        "offline_refund" if offline else "refund",
        amount,
        terminal_id=request.terminal_id,
        stan=request.stan,
    )
    return _approved(movement_id, balance)


def _balance(store: HostStore, request: Request) -> Answer:
    account, code = _account_for(store, request)
    if account is None:
        return Answer(code)
    return Answer(APPROVED, balance_minor=account.balance_minor)


def _reverse(store: HostStore, request: Request) -> tuple[Answer, int | None]:
    original = request.original
    assert original is not None  # parse_request requires field 90 on a reversal
    # A terminal that lost the sale's row in a power cut knows only its STAN: the latest such
    # sale no older than the lower bound the reversal carries as its own local date/time.
    when, since = "m.transmission = ?", original.transmission
    if original.transmission == UNKNOWN_TRANSMISSION:
        when, since = "m.local_datetime >= ?", request.local_datetime
    # An 0220/0221 named: an offline sale already advised, voided at the terminal since.
    named = CLASS_OF_MTI.get(original.mti, "sale")
    named = named if named in ("sale", "advice") else "sale"
    found = store.execute(
        "SELECT m.local_datetime, v.account_id, v.amount_minor FROM messages m "
        "JOIN movements v ON v.id = m.movement_id WHERE m.terminal_id = ? AND m.class = ? "
        f"AND m.stan = ? AND {when} AND m.reversed_by IS NULL"
        " ORDER BY m.local_datetime DESC LIMIT 1",
        (request.terminal_id, named, original.stan, since),
    ).fetchone()
    if found is None:
        return Answer(APPROVED), None  # nothing was charged: nothing to give back
    sale_datetime, account_id, taken_minor = found
    kind = "refund_reversal" if is_refund(request) else "reversal"  # a reversal carries field 3
    if taken_minor > 0:  # a top-up or refund credited the card: taken off again, maybe a debt
        movement_id, balance = store.debit(
            account_id, kind, int(taken_minor), terminal_id=request.terminal_id, stan=request.stan
        )
    else:
        movement_id, balance = store._move(
            account_id, kind, -taken_minor, terminal_id=request.terminal_id, stan=request.stan
        )
    store.execute(
        "UPDATE messages SET reversed_by = ? WHERE terminal_id = ? AND class = ? "
        "AND stan = ? AND local_datetime = ?",
        (movement_id, request.terminal_id, named, original.stan, sale_datetime),
    )
    # A SUN tap's counter goes back while no later tap of the card was taken: the terminal that
    # timed out re-does the same tap offline, and its advice must not look like a replay.
    (counter,) = store.execute(
        "SELECT sun_counter FROM messages WHERE terminal_id = ? AND class = ? AND stan = ? "
        "AND local_datetime = ?",
        (request.terminal_id, named, original.stan, sale_datetime),
    ).fetchone()
    if counter is not None:
        store.execute(
            "UPDATE accounts SET sun_counter = ? WHERE id = ? AND sun_counter = ?",
            (int(counter) - 1, account_id, counter),
        )
    return Answer(APPROVED, balance_minor=balance), movement_id
