"""ISO 8583 (1987) messages of pitill, built and parsed with pyiso8583.

pyiso8583 only turns dicts into bytes and back; this module owns what goes into the dicts:
0800/0810 echo, 0200/0210 online sale, 0220/0221 advice of an offline sale (0230), 0420/0421
reversal (0430), 0500/0510 end-of-day reconciliation (fields 74-89, core/settlement.py).
Every field value is a string, as pyiso8583 wants it.

Dates: pitill stamps each transaction with a local YYMMDDhhmmss when it is first recorded. Field 13
is its MMDD, field 12 its hhmmss, and field 7 the same instant in UTC (MMDDhhmmss), so a repeat
(0221, 0421) carries exactly the same data as the first send. The host dedups on terminal id +
STAN + local MMDDhhmmss.

Field 90 (original data elements, 42 digits): original MTI (4), STAN (6), field 7 (10, UTC), then
the acquiring and forwarding institution ids (11 + 11), zeros here.

Every field, its format and when it is sent: upstream/fields.py (docs/iso8583.md).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import iso8583
from iso8583.decoder import DecodeError
from iso8583.encoder import EncodeError
from iso8583.specs import default_ascii

from pitill.card.model import Card, CardTier
from pitill.config import CURRENCIES, TerminalConfig
from pitill.core.responses import APPROVED as APPROVED_CODE
from pitill.core.responses import (
    OFFLINE_APPROVED,
    RECONCILE_ERROR,
    REVERSAL_REASON_CUSTOMER_CANCELLATION,
    AnswerKind,
    ResponseClass,
    classify,
    is_response_code,
)
from pitill.core.settlement import Reconciliation
from pitill.core.txn import Txn
from pitill.core.types import TxnKind, TxnMode
from pitill.errors import ProtocolError
from pitill.records import ForwardItem, ForwardKind, HotlistPage, JournalRow
from pitill.upstream.wireformat import DEFAULT_WIRE, WireFormat

Message = dict[str, str]
"""A decoded ISO 8583 message: "t" is the MTI, other keys are field numbers as strings."""

# The 1987 ASCII spec fits our fields; the copy keeps pyiso8583's module-level dict untouched.
SPEC = copy.deepcopy(default_ascii)
SPEC["90"]["desc"] = "Original Data Elements (MTI, STAN, UTC MMDDhhmmss, 22 zeros)"
# [upstream] bitmap = "binary": both bitmaps as 8 bytes, every field still ASCII (wireformat.py).
SPEC_BINARY_BITMAP = copy.deepcopy(SPEC)
for _bitmap in ("p", "1"):
    SPEC_BINARY_BITMAP[_bitmap].update(data_enc="b", max_len=8)
SPECS = {"ascii": SPEC, "binary": SPEC_BINARY_BITMAP}

# Message type indicators.
ECHO_REQUEST = "0800"
ECHO_RESPONSE = "0810"
SALE_REQUEST = "0200"
SALE_RESPONSE = "0210"
ADVICE = "0220"
ADVICE_REPEAT = "0221"
ADVICE_RESPONSE = "0230"
REVERSAL = "0420"
REVERSAL_REPEAT = "0421"
REVERSAL_RESPONSE = "0430"
RECONCILIATION = "0500"
RECONCILIATION_RESPONSE = "0510"

RESPONSE_MTI: dict[str, str] = {
    ECHO_REQUEST: ECHO_RESPONSE,
    SALE_REQUEST: SALE_RESPONSE,
    ADVICE: ADVICE_RESPONSE,
    ADVICE_REPEAT: ADVICE_RESPONSE,
    REVERSAL: REVERSAL_RESPONSE,
    REVERSAL_REPEAT: REVERSAL_RESPONSE,
    RECONCILIATION: RECONCILIATION_RESPONSE,
}

ECHO_TEST_CODE = "301"  # field 70: network management, echo test
# Field 70 of an 0800 asking for the hotlist's changes (field 48: the version the terminal has);
# a value ISO 8583:1987 does not assign, so a host that does not know it treats it as an echo.
HOTLIST_CODE = "890"
HOTLIST_PAGE_ENTRIES = 48  # 64 + 2 + 12 + 48 x 17 characters: within field 48's 999
# Field 3, processing code (transaction type 2 digits, from and to account types 2 + 2): the one
# home of the codes pitill sends, by the kind of the journal row a message is built from (its
# reversal carries the same).
PROCESSING_CODE_SALE = "000000"  # goods and services, default accounts
PROCESSING_CODE_REFUND = "200000"  # 20: returns (refund, FN 4): money back to the card
PROCESSING_CODE_TOPUP = "210000"  # 21: deposit (cash onto a closed-loop card, FN 7)
PROCESSING_CODE_BALANCE = "310000"  # 31: balance inquiry (FN 8), amount 0
PROCESSING_CODES: dict[TxnKind, str] = {
    TxnKind.CARD: PROCESSING_CODE_SALE,
    TxnKind.REFUND: PROCESSING_CODE_REFUND,
    TxnKind.TOPUP: PROCESSING_CODE_TOPUP,
    TxnKind.BALANCE: PROCESSING_CODE_BALANCE,
}
# Field 22: PAN entry mode (2 digits), then PIN entry capability (2: cannot accept PIN).
POS_ENTRY_MAGSTRIPE = "902"  # 90: full magnetic stripe read
POS_ENTRY_CONTACTLESS = "072"  # 07: contactless
REVERSAL_REASON_LATE = "68"  # field 39 of a reversal whose 0200 got no answer: response too late
TRACK_FIELDS = {2: "35", 1: "45"}  # track 2 data; track 1 data when only track 1 was read

# Fields 74-89 of an 0500/0510: counts (n10), fee amounts (n12), amounts (n16).
RECONCILIATION_FIELDS = {
    "74": "credits",
    "75": "credit_reversals",
    "76": "debits",
    "77": "debit_reversals",
    "80": "inquiries",
    "86": "credits_minor",
    "87": "credit_reversals_minor",
    "88": "debits_minor",
    "89": "debit_reversals_minor",
}
_ZERO_FIELDS = {"78": 10, "79": 10, "81": 10, "82": 12, "83": 12, "84": 12, "85": 12}
_WIDTHS = {"74": 10, "75": 10, "76": 10, "77": 10, "80": 10, "86": 16, "87": 16, "88": 16, "89": 16}
_NUMERIC_FIELDS = (
    *("t", "2", "3", "4", "7", "11", "12", "13", "14", "22", "49", "50", "70", "90"),
    *(str(f) for f in range(74, 90)),
)
_ORIGINAL_PAD = "0" * 22
UNKNOWN_TRANSMISSION = "0" * 10  # field 90's original date/time when only the STAN is known


# --- bytes <-> dict --------------------------------------------------------------------------


def encode(message: Message, wire: WireFormat = DEFAULT_WIRE) -> bytes:
    """Pack a message; a value that does not fit its field raises ProtocolError."""
    try:
        # encode() adds the bitmap to its argument: a copy
        raw, _ = iso8583.encode(dict(message), SPECS[wire.bitmap])
    except EncodeError as exc:
        raise ProtocolError(f"cannot pack ISO 8583 message {message.get('t')!r}: {exc}") from None
    return bytes(raw)


def decode(data: bytes, wire: WireFormat = DEFAULT_WIRE) -> Message:
    """Unpack a message; garbage raises ProtocolError naming what was wrong."""
    try:
        decoded, _ = iso8583.decode(data, SPECS[wire.bitmap])
    except DecodeError as exc:
        raise ProtocolError(f"cannot unpack ISO 8583 message ({len(data)} bytes): {exc}") from None
    message = {k: v for k, v in decoded.items() if k not in ("p", "1")}
    for key in _NUMERIC_FIELDS:
        value = message.get(key)
        if value is not None and not value.isdigit():
            raise ProtocolError(f"ISO 8583 field {key} must be digits, got {value!r}")
    return message


def response_mti(request_mti: str) -> str:
    try:
        return RESPONSE_MTI[request_mti]
    except KeyError:
        known = ", ".join(sorted(RESPONSE_MTI))
        raise ProtocolError(f"no response MTI for {request_mti!r}; requests: {known}") from None


# --- small field helpers ---------------------------------------------------------------------


def format_stan(stan: int) -> str:
    if not 1 <= stan <= 999_999:
        raise ProtocolError(f"STAN must be 1..999999, got {stan}")
    return f"{stan:06d}"


def format_amount(amount_minor: int) -> str:
    if not 0 <= amount_minor <= 999_999_999_999:
        raise ProtocolError(f"amount must be 0..999999999999 minor units, got {amount_minor}")
    return f"{amount_minor:012d}"


def currency_numeric(currency: str) -> str:
    try:
        return CURRENCIES[currency][0]
    except KeyError:
        raise ProtocolError(f"currency {currency!r} has no ISO 4217 numeric code here") from None


def mmddhhmmss(local_datetime: str) -> str:
    """MMDDhhmmss from the journal's YYMMDDhhmmss stamp."""
    if len(local_datetime) != 12 or not local_datetime.isdigit():
        raise ProtocolError(f"local date/time must be YYMMDDhhmmss, got {local_datetime!r}")
    return local_datetime[2:]


def transmission_stamp(now: datetime) -> str:
    """Field 7 for a message not tied to a transaction (echo): MMDDhhmmss of `now` in UTC."""
    return now.astimezone(UTC).strftime("%m%d%H%M%S")


def transmission_of(local_datetime: str) -> str:
    """Field 7 of a transaction's messages: its local journal stamp as UTC MMDDhhmmss.

    Read in the terminal's time zone (a stamp in a repeated DST hour is read as the first), so
    every send of one transaction, and the field 90 of its reversal, carry the same field 7.
    """
    mmddhhmmss(local_datetime)  # checks the stamp
    local = datetime.strptime("20" + local_datetime, "%Y%m%d%H%M%S")
    return transmission_stamp(local)  # a naive datetime is local time to astimezone


def _dated(local_datetime: str) -> Message:
    stamp = mmddhhmmss(local_datetime)
    return {"7": transmission_of(local_datetime), "12": stamp[4:], "13": stamp[:4]}


def offline_approval_code(stan: int) -> str:
    """Field 38 of an advice: the approval code the terminal made offline (OF + the STAN's last
    four digits): six characters, the same in a repeat, and never a code a host would send."""
    return f"OF{stan % 10_000:04d}"


# Field 54 (additional amounts), one amount of 20 characters: account type 00, amount type 02
# (available balance), currency (n3), C or D, 12 digits. pitill host sends it, the terminal
# shows it.
BALANCE_AMOUNT_TYPE = "0002"


def balance_amount(balance_minor: int, currency_numeric: str) -> str:
    """Field 54 carrying the card's available balance (D: negative, a debt)."""
    sign = "C" if balance_minor >= 0 else "D"
    return f"{BALANCE_AMOUNT_TYPE}{currency_numeric or '000'}{sign}{abs(balance_minor):012d}"


def parse_balance(value: str) -> int | None:
    """The available balance in a field 54 (None when it holds none pitill can read: a display
    field never fails the answer it came with)."""
    for start in range(0, len(value) - 19, 20):
        amount = value[start : start + 20]
        digits = amount[8:]
        if amount.startswith(BALANCE_AMOUNT_TYPE) and amount[7] in "CD" and digits.isdigit():
            return int(digits) * (-1 if amount[7] == "D" else 1)
    return None


def processing_code(kind: TxnKind) -> str:
    """Field 3 of every message about a transaction of this kind (its reversal too)."""
    try:
        return PROCESSING_CODES[kind]
    except KeyError:
        raise ProtocolError(f"a {kind.value} transaction is never sent upstream") from None


def is_refund(request: Request) -> bool:
    """The request gives money back (processing code 20): a host credits instead of charging."""
    return is_refund_code(request.processing_code)


def is_refund_code(processing_code: str) -> bool:
    """Field 3 says returns (20): money back to the card (a host keeps the code it was sent)."""
    return processing_code[:2] == PROCESSING_CODE_REFUND[:2]


def _card_fields(card: Card) -> Message:
    if card.is_nfc:
        return {"22": POS_ENTRY_CONTACTLESS, "48": nfc_card_data(card)}
    return {"2": card.pan, "14": card.expiry_yymm, "22": POS_ENTRY_MAGSTRIPE}


def nfc_card_data(card: Card) -> str:
    """Field 48 of an NFC card: 'uid_only:UID', or 'sun:PICCDATA:SDMMAC' for the host to verify.

    A SUN card's UID and counter are not sent: the host decrypts them itself and trusts nothing
    the terminal says about them.
    """
    if card.tier is CardTier.SUN and card.sun is not None:
        return f"{CardTier.SUN.value}:{card.sun.hex()}"
    return f"{CardTier.UID_ONLY.value}:{card.uid}"


def _acceptor(terminal: TerminalConfig) -> Message:
    return {"41": terminal.terminal_id, "42": terminal.merchant_id}


# --- requests the terminal sends -------------------------------------------------------------


def build_echo(stan: int, transmission: str, terminal_id: str = "") -> Message:
    """0800 echo test; `transmission` is MMDDhhmmss (see transmission_stamp)."""
    message = {"t": ECHO_REQUEST, "7": transmission, "11": format_stan(stan)}
    if terminal_id:
        message["41"] = terminal_id
    message["70"] = ECHO_TEST_CODE
    return message


def build_hotlist_request(stan: int, transmission: str, terminal_id: str, version: int) -> Message:
    """0800 asking for the hotlist's changes after `version` (0: the whole list)."""
    message = build_echo(stan, transmission, terminal_id)
    message["48"] = str(version)
    message["70"] = HOTLIST_CODE
    return message


def hotlist_data(page: HotlistPage) -> str:
    """Field 48 of the 0810 answering a hotlist request: key, version, more (1/0), then each
    change as +ENTRY (listed) or -ENTRY (taken off), separated by spaces."""
    changes = " ".join(("+" if listed else "-") + entry for entry, listed in page.changes)
    head = f"{page.key_hex} {page.version} {int(page.more)}"
    return f"{head} {changes}" if changes else head


def parse_hotlist(message: Message) -> HotlistPage | None:
    """The hotlist page in an 0810, or None when it holds none (a host without a hotlist, such
    as the sandbox acquirer, answers the 0800 like an echo). A page that breaks the format
    raises ProtocolError: applying half of it could leave a blocked card off the list."""
    raw = message.get("48")
    if message.get("70") != HOTLIST_CODE or raw is None:
        return None
    key_hex, version, more, *entries = raw.split(" ")
    changes = tuple((entry[1:], entry[0] == "+") for entry in entries)
    if (
        len(key_hex) != 64
        or not _hex(key_hex)
        or not version.isdigit()
        or more not in ("0", "1")
        or any(len(entry) != 17 or entry[0] not in "+-" or not _hex(entry[1:]) for entry in entries)
    ):
        raise ProtocolError(
            f"hotlist answer field 48 is not 'KEY VERSION MORE [+-]ENTRY...': {raw[:80]!r}"
        )
    return HotlistPage(key_hex, int(version), more == "1", changes)


def _hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def swipe_fields(card: Card) -> Message:
    """Field 35 (track 2 data) or 45 (track 1, when only it was read) of a swipe, as read; taken
    out of its in-memory seal here, once: the journal never holds it (PCI DSS 3.3.1)."""
    track = card.track
    data = track.take() if track is not None else None
    return {} if track is None or data is None else {TRACK_FIELDS[track.track]: data}


def build_sale_request(txn: Txn, local_datetime: str, terminal: TerminalConfig) -> Message:
    """0200 for an online card sale, refund (code 20), top-up (code 21) or balance inquiry
    (code 31); a swipe's track data goes in it, and nowhere else."""
    if txn.card is None:
        raise ProtocolError(f"sale seq {txn.seq} has no card: only card sales go online")
    return {
        "t": SALE_REQUEST,
        **_card_fields(txn.card),
        **swipe_fields(txn.card),
        "3": processing_code(txn.kind),
        "4": format_amount(txn.amount_minor),
        **_dated(local_datetime),
        "11": format_stan(txn.stan),
        **_acceptor(terminal),
        "49": currency_numeric(txn.currency),
    }


def _row_fields(row: JournalRow, terminal: TerminalConfig) -> Message:
    return {
        "3": PROCESSING_CODES.get(row.kind, PROCESSING_CODE_SALE),  # a reversal: its 0200's
        "4": format_amount(row.amount_minor),
        **_dated(row.local_datetime),
        "11": format_stan(row.stan),
        **_acceptor(terminal),
        "49": currency_numeric(row.currency or terminal.currency),  # "": a lost row's reversal
    }


def build_advice(item: ForwardItem, terminal: TerminalConfig) -> Message:
    """0220 (0221 when the item was sent before) for a sale approved offline."""
    if item.kind is not ForwardKind.ADVICE:
        raise ProtocolError(f"seq {item.row.seq}: a {item.kind} item is not an advice")
    if item.card is None:
        raise ProtocolError(f"advice for seq {item.row.seq} has no card data to send")
    return {
        "t": ADVICE_REPEAT if item.repeat else ADVICE,
        **_card_fields(item.card),
        **_row_fields(item.row, terminal),
        "38": offline_approval_code(item.row.stan),
        "39": OFFLINE_APPROVED,  # only a sale approved offline is advised
    }


def build_reversal(item: ForwardItem, terminal: TerminalConfig) -> Message:
    """0420 (0421 when sent before) reversing item.row: an 0200 whose outcome was unknown or that
    the supervisor voided, or the 0220 of an offline sale voided after the host took it."""
    if item.kind is not ForwardKind.REVERSAL:
        raise ProtocolError(f"seq {item.row.seq}: a {item.kind} item is not a reversal")
    # A reserved STAN whose row a power loss took: its time is unknown, the host goes by STAN
    # alone (from the lower bound in fields 12/13, see journal/store.py recover_at_boot).
    when = UNKNOWN_TRANSMISSION if item.row.stan_only else transmission_of(item.row.local_datetime)
    # What it reverses: an 0200 (online sale or refund), or the advice of an offline one the host
    # already took (voided since): the 0220, same STAN and field 7 as every send of it.
    first = ADVICE if item.row.mode is TxnMode.OFFLINE else SALE_REQUEST
    original = first + format_stan(item.row.stan) + when
    # Field 39 says why: the supervisor voided it (FN 3), or the 0200's answer never came.
    reason = (
        REVERSAL_REASON_CUSTOMER_CANCELLATION if item.row.voided_by_seq else REVERSAL_REASON_LATE
    )
    card = _card_fields(item.card) if item.card is not None else {}
    return {
        "t": REVERSAL_REPEAT if item.repeat else REVERSAL,
        **card,
        **_row_fields(item.row, terminal),
        "39": reason,
        "90": original + _ORIGINAL_PAD,
    }


def build_forward(item: ForwardItem, terminal: TerminalConfig) -> Message:
    """The advice or reversal for a forwarder work item."""
    if item.kind is ForwardKind.REVERSAL:
        return build_reversal(item, terminal)
    return build_advice(item, terminal)


# --- end of day: 0500 / 0510 ----------------------------------------------------------------

_BATCH = re.compile(r"day=(\d{1,9}) stan=(\d{6})-(\d{6})")


@dataclass(frozen=True)
class Batch:
    """Which day an 0500 reconciles (field 48): its number and the STANs of its seqs."""

    day: int
    first_stan: int
    last_stan: int

    def text(self) -> str:
        return f"day={self.day} stan={self.first_stan:06d}-{self.last_stan:06d}"

    def holds(self, stan: int) -> bool:
        """STANs cycle at 999999: a range may wrap."""
        if self.first_stan <= self.last_stan:
            return self.first_stan <= stan <= self.last_stan
        return stan >= self.first_stan or stan <= self.last_stan


def _totals_fields(totals: Reconciliation) -> Message:
    message = {
        key: f"{getattr(totals, name):0{_WIDTHS[key]}d}"
        for key, name in RECONCILIATION_FIELDS.items()
    }
    message.update({key: "0" * width for key, width in _ZERO_FIELDS.items()})
    for key, value in message.items():
        if len(value) > (_WIDTHS.get(key) or _ZERO_FIELDS[key]):
            raise ProtocolError(f"field {key} total {value} does not fit its digits")
    return message


def build_reconciliation(
    batch: Batch,
    totals: Reconciliation,
    currency: str,
    stan: int,
    transmission: str,
    terminal: TerminalConfig,
) -> Message:
    """0500 for a closed day: what the terminal says the host holds (fields 74-89). Its STAN
    is a fresh one of the terminal's counter (each send of it), not one of the day's."""
    return {
        "t": RECONCILIATION,
        "7": transmission,
        "11": format_stan(stan),
        **_acceptor(terminal),
        "48": batch.text(),
        "50": currency_numeric(currency),
        **_totals_fields(totals),
    }


def parse_batch(message: Message) -> Batch:
    found = _BATCH.fullmatch(_required(message, "48"))
    if found is None:
        raise ProtocolError(f"0500 field 48 {host_text(message, '48')!r} is not day=N stan=A-B")
    return Batch(int(found[1]), int(found[2]), int(found[3]))


def reconciliation_of(message: Message) -> Reconciliation:
    """Fields 74-89 of an 0500 (or an 0510 that carries the host's figures)."""
    values = {}
    for key, name in RECONCILIATION_FIELDS.items():
        value = _required(message, key)
        if not value.isdigit():
            raise ProtocolError(f"ISO 8583 field {key} must be digits, got {value!r}")
        values[name] = int(value)
    assert set(values) == {f.name for f in fields(Reconciliation)}
    return Reconciliation(**values)


def build_reconciliation_response(
    request: Message, agrees: bool, host_totals: Reconciliation
) -> Message:
    """0510: field 39 says whether the host's own totals agree; 74-89 carry them either way."""
    response: Message = {"t": RECONCILIATION_RESPONSE}
    response.update({k: request[k] for k in ("7", "11", "41", "42", "48", "50") if k in request})
    response["39"] = APPROVED_CODE if agrees else RECONCILE_ERROR
    response.update(_totals_fields(host_totals))
    return response


# --- what the host sees and answers ----------------------------------------------------------


@dataclass(frozen=True)
class OriginalData:
    """Field 90 of a reversal: which message it reverses."""

    mti: str
    stan: int
    transmission: str  # MMDDhhmmss


@dataclass(frozen=True)
class Request:
    """A request as a host reads it (fields absent from the message are empty / None)."""

    mti: str
    stan: int
    transmission: str  # field 7, MMDDhhmmss
    local_datetime: str  # fields 13 + 12, MMDDhhmmss; with terminal id and STAN, the dedup key
    terminal_id: str
    merchant_id: str
    amount_minor: int | None
    currency_numeric: str
    pan: str = ""
    expiry_yymm: str = ""
    original: OriginalData | None = None
    card_data: str = ""  # field 48 of an NFC card (nfc_card_data); "" for a stripe card
    processing_code: str = ""  # field 3 (PROCESSING_CODES); "" in an echo
    reason: str = ""  # field 39 of a reversal: 17 voided by the supervisor, 68 answer lost
    network_code: str = ""  # field 70 of an 0800: echo (301) or the hotlist (890)


def _required(message: Message, key: str) -> str:
    value = message.get(key)
    if value is None:
        raise ProtocolError(f"ISO 8583 {message.get('t')} lacks field {key}")
    return value


def parse_request(message: Message) -> Request:
    """Read a request the host received; a missing field its MTI needs raises ProtocolError."""
    mti = _required(message, "t")
    response_mti(mti)  # only requests we know how to answer
    financial = mti != ECHO_REQUEST
    original = None
    if mti in (REVERSAL, REVERSAL_REPEAT):
        raw = _required(message, "90")
        original = OriginalData(mti=raw[:4], stan=int(raw[4:10]), transmission=raw[10:20])
    amount = message.get("4")
    return Request(
        mti=mti,
        stan=int(_required(message, "11")),
        transmission=_required(message, "7"),
        local_datetime=(_required(message, "13") + _required(message, "12") if financial else ""),
        terminal_id=_required(message, "41") if financial else message.get("41", ""),
        merchant_id=message.get("42", ""),
        amount_minor=int(amount) if amount is not None else None,
        currency_numeric=message.get("49", ""),
        pan=message.get("2", ""),
        expiry_yymm=message.get("14", ""),
        original=original,
        card_data=message.get("48", ""),
        processing_code=message.get("3", ""),
        reason=message.get("39", "") if mti in (REVERSAL, REVERSAL_REPEAT) else "",
        network_code=message.get("70", ""),
    )


# Fields a response repeats from its request (never the PAN).
_ECHOED_FIELDS = ("3", "4", "7", "11", "12", "13", "41", "42", "49", "70", "90")


def build_response(
    request: Message, response_code: str, auth_code: str = "", rrn: str = ""
) -> Message:
    """The host's answer to `request`: its MTI's response, echoing the request's data fields."""
    if not is_response_code(response_code):
        raise ProtocolError(f"response code {response_code!r} is not two letters or digits")
    response: Message = {"t": response_mti(_required(request, "t"))}
    response.update({k: request[k] for k in _ECHOED_FIELDS if k in request})
    if rrn:
        response["37"] = rrn
    if auth_code:
        response["38"] = auth_code
    response["39"] = response_code
    return response


# --- what the terminal reads back ------------------------------------------------------------


def host_text(message: Message, key: str) -> str:
    """A text field from the host made safe for a screen, the journal or a log: printable ASCII
    only (control characters, escapes and anything else dropped), at most its field's length."""
    raw = message.get(key, "")
    printable = "".join(char for char in raw if " " <= char <= "~")
    max_len = SPEC[key]["max_len"]
    assert isinstance(max_len, int)
    return printable[:max_len].strip()


@dataclass(frozen=True)
class AuthAnswer:
    """The host's answer to a request: its field 39, and 38/37 when present (printable only)."""

    response_code: str
    auth_code: str = ""
    rrn: str = ""
    kind: AnswerKind = AnswerKind.SALE  # which column of the response-code table applies
    balance_minor: int | None = None  # field 54: the card's balance after it (pitill host)

    @property
    def response_class(self) -> ResponseClass:
        return classify(self.response_code, self.kind)

    @property
    def approved(self) -> bool:
        return self.response_class is ResponseClass.APPROVED


def parse_answer(message: Message) -> AuthAnswer:
    """Field 39 (required, two characters) with the auth code and RRN of a response."""
    code = _required(message, "39")
    if not is_response_code(code):
        raise ProtocolError(
            f"response code {host_text(message, '39')!r} is not two letters or digits"
        )
    kind = AnswerKind.SALE if message.get("t") == SALE_RESPONSE else AnswerKind.ADVICE
    return AuthAnswer(
        response_code=code,
        auth_code=host_text(message, "38"),
        rrn=host_text(message, "37"),
        kind=kind,
        balance_minor=parse_balance(message.get("54", "")),
    )
