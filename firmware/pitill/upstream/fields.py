"""The fields of every ISO 8583:1987 message pitill sends and receives: one table, three readers.

docs/iso8583.md is written from this table (tests/upstream/test_fields.py fails when they drift),
the tests check every message the builders make against it, and the sandbox acquirer answers 30
(format error) to a request that breaks it.

Formats are the 1987 ones: n (digits), an (letters and digits), ans (printable ASCII), z (track 2
characters); a length is fixed, LLVAR (2-digit length prefix) or LLLVAR (3-digit).
Presence per message: M mandatory, C conditional (the condition is in the source column),
O optional, - never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The message columns of the table; a repeat (0221, 0421) follows its first send's rules.
COLUMNS = (
    "0800",
    "0810",
    "0200",
    "0210",
    "0220/0221",
    "0230",
    "0420/0421",
    "0430",
    "0500",
    "0510",
)
_COLUMN_OF = {mti: col for col in COLUMNS for mti in col.split("/")}
REQUESTS = ("0800", "0200", "0220", "0221", "0420", "0421", "0500")


@dataclass(frozen=True)
class FieldRule:
    field: str
    name: str
    fmt: str  # n, an, ans, z
    length: str  # fixed, LLVAR, LLLVAR
    max_len: int
    presence: str  # one letter per COLUMNS entry: M, C, O or -
    source: str  # where pitill takes the value from (or what the host puts there)


FIELDS: tuple[FieldRule, ...] = (
    # field, name, format, length, max, presence (0800 0810 0200 0210 0220 0230 0420 0430 0500
    # 0510), source
    FieldRule(
        "2",
        "primary account number",
        "n",
        "LLVAR",
        19,
        "--C-C-C---",
        "the card's PAN (stripe card only; an NFC card sends field 48 instead); 0420: the "
        "sale's card, kept sealed until the 0430 (absent in a void's or a STAN-only reversal)",
    ),
    FieldRule(
        "3",
        "processing code",
        "n",
        "fixed",
        6,
        "--MMMMMM--",
        "000000: goods and services, default accounts; 200000: a refund (FN 4), money back to "
        "the card, in each message about it (0200, 0220/0221, 0420); 210000 deposit (a cash "
        "top-up of a closed-loop card, FN 7: its 0200 and the 0420 reversing it), 310000 balance "
        "inquiry (FN 8, 0200 only); the host echoes it",
    ),
    FieldRule(
        "4",
        "amount, transaction",
        "n",
        "fixed",
        12,
        "--MMMMMM--",
        "the sale's (or top-up's) amount in minor units of field 49, 0 for a balance inquiry; "
        "the host echoes it",
    ),
    FieldRule(
        "7",
        "transmission date and time",
        "n",
        "fixed",
        10,
        "MMMMMMMMMM",
        "MMDDhhmmss in UTC: the transaction's journal stamp converted to UTC (the same in a "
        "repeat); an echo's or an 0500's sending instant; the host echoes it",
    ),
    FieldRule(
        "11",
        "systems trace audit number",
        "n",
        "fixed",
        6,
        "MMMMMMMMMM",
        "the STAN, from the terminal's one counter of journal seqs: 0200, 0220 the "
        "transaction's own; 0221 its 0220's; 0420/0421 the STAN of the message it reverses "
        "(as in 90); 0800 (echo or hotlist) and 0500 a new one taken as it goes out, each send "
        "its own; an answer echoes its request's",
    ),
    FieldRule(
        "12",
        "time, local transaction",
        "n",
        "fixed",
        6,
        "--MMMMMM--",
        "hhmmss of the journal stamp, the terminal's local time",
    ),
    FieldRule(
        "13",
        "date, local transaction",
        "n",
        "fixed",
        4,
        "--MMMMMM--",
        "MMDD of the journal stamp, the terminal's local date",
    ),
    FieldRule(
        "14",
        "date, expiration",
        "n",
        "fixed",
        4,
        "--C-C-C---",
        "the card's expiry YYMM (stripe card only; with field 2)",
    ),
    FieldRule(
        "22",
        "point of service entry mode",
        "n",
        "fixed",
        3,
        "--M-M-C---",
        "902: full magnetic stripe read (90), cannot accept PIN (2); 072: contactless (07), "
        "cannot accept PIN (2); 0420: with the card (2 + 14, or 48)",
    ),
    FieldRule(
        "35",
        "track 2 data",
        "z",
        "LLVAR",
        37,
        "--C-------",
        "a swipe's track 2 as read, between its sentinels (PAN=YYMM...): sealed in memory, "
        "taken out once for the 0200, never journaled; absent when only track 1 was read "
        "(then 45) and for an NFC tap (no track: field 48)",
    ),
    FieldRule(
        "37",
        "retrieval reference number",
        "an",
        "fixed",
        12,
        "---O-O-O--",
        "set by the host; the terminal journals and prints it",
    ),
    FieldRule(
        "38",
        "authorization identification response",
        "an",
        "fixed",
        6,
        "---CMO----",
        "0210: the host's approval code (when approved); 0220: the offline approval code "
        "the terminal made (from the STAN)",
    ),
    FieldRule(
        "39",
        "response code",
        "an",
        "fixed",
        2,
        "-M-MMMMM-M",
        "answers: the host's code (docs/response-codes.md); 0220: Y3, the terminal's own "
        "offline approval; 0420: the reason, 17 when the supervisor voided the sale, 68 "
        "(response received too late) when the 0200's answer never came; 0510: 00 the host's "
        "totals agree, 95 (reconcile error) they do not",
    ),
    FieldRule(
        "41",
        "card acceptor terminal identification",
        "ans",
        "fixed",
        8,
        "OOMMMMMMMM",
        "[terminal] terminal_id; the host echoes it",
    ),
    FieldRule(
        "42",
        "card acceptor identification code",
        "ans",
        "fixed",
        15,
        "--MMMMMMMM",
        "[terminal] merchant_id; the host echoes it",
    ),
    FieldRule(
        "45",
        "track 1 data",
        "ans",
        "LLVAR",
        76,
        "--C-------",
        "a swipe's track 1 as read (B PAN^NAME^YYMM...), only when track 2 was not read; "
        "handled as field 35",
    ),
    FieldRule(
        "48",
        "additional data, private",
        "ans",
        "LLLVAR",
        999,
        "CCC-C-C-MM",
        "NFC card only: uid_only:UID, or sun:PICCDATA:SDMMAC for the host to verify; 0500: "
        "the day closed, day=N stan=FIRST-LAST (the STANs of all its seqs, 0800s' too, in "
        "which the host totals its ledger; echoed in the 0510); an 0800 with field 70 890: "
        "the hotlist version the terminal has (digits, 0 for none); its 0810: the program's "
        "hotlist key (64 hex), the new version, 1 if more changes wait else 0, then each "
        "change, +ENTRY listed or -ENTRY taken off (16 hex: card/hotlist.py), separated by "
        "spaces",
    ),
    FieldRule(
        "49",
        "currency code, transaction",
        "n",
        "fixed",
        3,
        "--MMMMMM--",
        "ISO 4217 numeric of [terminal] currency; the host echoes it",
    ),
    FieldRule(
        "50",
        "currency code, settlement",
        "n",
        "fixed",
        3,
        "--------MM",
        "ISO 4217 numeric of [terminal] currency, the currency of fields 86-89; echoed",
    ),
    FieldRule(
        "54",
        "additional amounts",
        "an",
        "LLLVAR",
        120,
        "---O-O-O--",
        "closed-loop host (pitill host): the card's balance after the message, one amount of 20: "
        "account type 00, amount type 02 (available balance), ISO 4217 numeric currency, C "
        "(credit) or D (debit: a debt), 12 digits in minor units; the terminal shows it and "
        "prints it on the receipt",
    ),
    FieldRule(
        "70",
        "network management information code",
        "n",
        "fixed",
        3,
        "MM--------",
        "301: echo test; 890 (not assigned by ISO 8583:1987): the hotlist's changes since the "
        "version in field 48; the host echoes it",
    ),
    FieldRule(
        "74",
        "credits, number",
        "n",
        "fixed",
        10,
        "--------MO",
        "refunds (processing code 20) and top-ups (21, a deposit) the host accepted; 0510: the "
        "host's own figure",
    ),
    FieldRule(
        "75",
        "credits, reversal number",
        "n",
        "fixed",
        10,
        "--------MO",
        "refunds voided from FN 3 and reversed (reason 17); 0510: the host's own figure",
    ),
    FieldRule(
        "76",
        "debits, number",
        "n",
        "fixed",
        10,
        "--------MO",
        "card sales the host approved: 0200 approved and 0220 accepted; a sale reversed "
        "because its answer never came (reason 68) counts on neither side; 0510: the host's "
        "own figure",
    ),
    FieldRule(
        "77",
        "debits, reversal number",
        "n",
        "fixed",
        10,
        "--------MO",
        "card sales voided from FN 3 and reversed (0420 reason 17); 0510: the host's own figure",
    ),
    FieldRule(
        "78",
        "transfer, number",
        "n",
        "fixed",
        10,
        "--------MO",
        "0: pitill makes no transfers; 0510: the host's own figure",
    ),
    FieldRule(
        "79",
        "transfer, reversal number",
        "n",
        "fixed",
        10,
        "--------MO",
        "0; 0510: the host's own figure",
    ),
    FieldRule(
        "80",
        "inquiries, number",
        "n",
        "fixed",
        10,
        "--------MO",
        "balance inquiries the host answered (FN 8, processing code 31); 0510: the host's own "
        "figure",
    ),
    FieldRule(
        "81",
        "authorizations, number",
        "n",
        "fixed",
        10,
        "--------MO",
        "0: pitill sends no 0100 authorizations; 0510: the host's own figure",
    ),
    FieldRule(
        "82",
        "credits, processing fee amount",
        "n",
        "fixed",
        12,
        "--------MO",
        "0: no fees; 0510: the host's own figure",
    ),
    FieldRule(
        "83",
        "credits, transaction fee amount",
        "n",
        "fixed",
        12,
        "--------MO",
        "0; 0510: the host's own figure",
    ),
    FieldRule(
        "84",
        "debits, processing fee amount",
        "n",
        "fixed",
        12,
        "--------MO",
        "0; 0510: the host's own figure",
    ),
    FieldRule(
        "85",
        "debits, transaction fee amount",
        "n",
        "fixed",
        12,
        "--------MO",
        "0; 0510: the host's own figure",
    ),
    FieldRule(
        "86",
        "credits, amount",
        "n",
        "fixed",
        16,
        "--------MO",
        "the amount of field 74, minor units of field 50; 0510: the host's own figure",
    ),
    FieldRule(
        "87",
        "credits, reversal amount",
        "n",
        "fixed",
        16,
        "--------MO",
        "the amount of field 75; 0510: the host's own figure",
    ),
    FieldRule(
        "88",
        "debits, amount",
        "n",
        "fixed",
        16,
        "--------MO",
        "the amount of field 76; 0510: the host's own figure",
    ),
    FieldRule(
        "89",
        "debits, reversal amount",
        "n",
        "fixed",
        16,
        "--------MO",
        "the amount of field 77; 0510: the host's own figure",
    ),
    FieldRule(
        "90",
        "original data elements",
        "n",
        "fixed",
        42,
        "------MM--",
        "the reversed 0200 (or, for a voided offline sale the host already took, its 0220) "
        "as sent: its MTI (4), STAN (6), field 7 (10, UTC; zeros when a "
        "power cut lost it: the host then goes by STAN), then the "
        "acquiring and forwarding institution ids, zero-filled (11 + 11)",
    ),
)
RULES = {rule.field: rule for rule in FIELDS}


def presence(rule: FieldRule, mti: str) -> str:
    """M, C, O or - for `rule`'s field in a message of type `mti`."""
    return rule.presence[COLUMNS.index(_COLUMN_OF[mti])]


def _format_ok(fmt: str, value: str) -> bool:
    if fmt == "n":
        return value.isdigit()
    if fmt == "an":
        return value.isascii() and all(c.isalnum() or c == " " for c in value)
    return all(" " <= c <= "~" for c in value)  # ans, z: printable ASCII


def problems(message: dict[str, str], table: Sequence[FieldRule] = FIELDS) -> list[str]:
    """Every way `message` breaks the table (empty when it follows it)."""
    rules = {rule.field: rule for rule in table}
    mti = message.get("t", "")
    if mti not in _COLUMN_OF:
        return [f"MTI {mti!r} is not one pitill speaks ({', '.join(COLUMNS)})"]
    found: list[str] = []
    for key in sorted(set(message) - {"t", "p", "1"} - set(rules), key=int):
        found.append(f"{mti}: field {key} is not in docs/iso8583.md")
    for rule in table:
        need = presence(rule, mti)
        value = message.get(rule.field)
        if value is None:
            if need == "M":
                found.append(f"{mti}: mandatory field {rule.field} ({rule.name}) is missing")
            continue
        if need == "-":
            found.append(f"{mti}: field {rule.field} ({rule.name}) must not be sent")
        fixed = rule.length == "fixed"
        if (fixed and len(value) != rule.max_len) or len(value) > rule.max_len:
            size = f"{rule.max_len}" if fixed else f"at most {rule.max_len}"
            found.append(f"{mti}: field {rule.field} is {len(value)} long, must be {size}")
        if not _format_ok(rule.fmt, value):
            found.append(f"{mti}: field {rule.field} {value!r} is not {rule.fmt}")
    return found + card_problems(message)


_CARD_MESSAGES = ("0200", "0220", "0221", "0420", "0421")
_REVERSAL_REASON_LATE = "68"  # messages.REVERSAL_REASON_LATE: the 0200's answer never came


def card_problems(message: dict[str, str]) -> list[str]:
    """How `message` breaks the conditions of the fields that carry the card (2, 14, 22, 35, 45,
    48: their source column): one card, whole, read as field 22 says, with its track in a 0200."""
    mti = message.get("t", "")
    if mti not in _CARD_MESSAGES:
        return []
    found = []
    pan, expiry, nfc, entry = (message.get(key) for key in ("2", "14", "48", "22"))
    stripe = pan is not None or expiry is not None
    if stripe and (pan is None or expiry is None):
        found.append(f"{mti}: fields 2 and 14 go together (a stripe card's PAN and expiry)")
    if stripe and nfc is not None:
        found.append(f"{mti}: a card is a stripe card (2, 14) or an NFC card (48), not both")
    if not stripe and nfc is None and mti in ("0200", "0220", "0221"):
        found.append(f"{mti}: no card: a stripe card sends fields 2 and 14, an NFC card 48")
    if (stripe or nfc is not None) and entry is None:
        found.append(f"{mti}: field 22 must say how the card was read")
    elif entry is not None and stripe and not entry.startswith("90"):
        found.append(f"{mti}: field 22 {entry!r} with a stripe card must be 90x (full stripe)")
    elif entry is not None and nfc is not None and not entry.startswith("07"):
        found.append(f"{mti}: field 22 {entry!r} with an NFC card must be 07x (contactless)")
    if mti == "0200":
        tracks = [key for key in ("35", "45") if key in message]
        if stripe and len(tracks) != 1:
            found.append(
                "0200: a swipe sends its track as read: field 35 (track 2), or 45 when only "
                f"track 1 was read; got {len(tracks)} of them"
            )
        if not stripe and tracks:
            found.append(f"0200: field {tracks[0]} (track data) with no stripe card (2, 14)")
        if stripe and len(tracks) == 1 and _track_card(tracks[0], message) != (pan, expiry):
            found.append(f"0200: the PAN and expiry in field {tracks[0]} are not fields 2 and 14")
    original_time = message.get("90", "")[10:20]
    late = message.get("39") == _REVERSAL_REASON_LATE and original_time.strip("0") != ""
    if mti in ("0420", "0421") and late and not (stripe or nfc is not None):
        found.append(
            f"{mti}: a reversal of an unanswered 0200 (39 = 68) carries the sale's card: "
            "fields 2, 14 and 22 (an NFC card: 22 and 48)"
        )
    return found


def _track_card(key: str, message: dict[str, str]) -> tuple[str, str]:
    """(PAN, YYMM) in field 35 (PAN=YYMM...) or 45 (B PAN^NAME^YYMM...)."""
    value = message[key]
    if key == "35":
        pan, _, rest = value.partition("=")
        return pan, rest[:4]
    parts = value[1:].split("^", 2)
    return parts[0], parts[2][:4] if len(parts) == 3 else ""


def render_doc() -> str:
    """docs/iso8583.md."""
    head = " | ".join(COLUMNS)
    lines = [
        "# ISO 8583 fields",
        "",
        "Generated from `firmware/pitill/upstream/fields.py`, the table the tests check every",
        "message pitill builds against and the sandbox acquirer checks every request against",
        "(it answers 30, format error, to a request that breaks it). Regenerate this page with",
        "`.venv/bin/python -m pitill.upstream.fields > docs/iso8583.md`.",
        "",
        "- Version: ISO 8583:1987, ASCII: MTI 4 characters, numeric fields and variable-length",
        "  prefixes as ASCII digits, a secondary bitmap when a field above 64 is present (70, 90).",
        "- Wire format, set in [upstream] as the host wants it (`upstream/wireformat.py`;",
        "  `pitill acquirer` and `pitill host serve` take `--bitmap` and `--length-prefix`;",
        "  `pitill doctor` lists them). `bitmap`: `ascii` (default: each bitmap as 16 hex",
        "  characters) or `binary` (8 bytes). `length_prefix`, before each message over TCP, not",
        "  counting itself: `2-byte-binary` (default: unsigned big-endian; jPOS NACChannel,",
        "  PostChannel), `4-digit-ascii` (zero-filled decimal; jPOS ASCIIChannel) or",
        "  `4-byte-binary` (big-endian; jPOS RawChannel). Not offered: no prefix at all (the",
        "  end of a message would have to be found by parsing a stream that may stop inside it),",
        "  BCD numeric fields, TPDU headers. A host set otherwise answers nothing readable: the",
        "  terminal sees no answer (tests/upstream/test_wire_format.py).",
        "- Formats: n digits, an letters and digits, ans printable ASCII. fixed: exactly",
        "  `len` characters; LLVAR / LLLVAR: a 2 / 3 digit length, then at most `len`.",
        "- Presence: M mandatory, C conditional (when: see source), O optional, - never sent.",
        "  A repeat (0221, 0421) carries exactly the data of its first send.",
        "- Field 7 is UTC whatever the terminal's time zone; fields 12/13 are its local time.",
        "  The host dedups on terminal id (41) + STAN (11) + local date and time (13 + 12) and",
        "  matches a reversal's field 90 to its sale by terminal id + STAN + field 7.",
        "- Field 22 (n3): positions 1-2 the PAN entry mode, 90 = full magnetic stripe read",
        "  (the track read as is, the value card networks use for an unaltered track), 07 =",
        "  contactless; position 3 the PIN entry capability, 2 = cannot accept PIN (pitill has",
        "  no PIN pad; 1 would claim one, 0 would say unknown).",
        "",
        "- Checked twice: against this table (tests/upstream/test_fields.py) and by py8583, an",
        "  ISO 8583 implementation pitill did not write, with its own 1987 definitions",
        "  (tests/upstream/test_independent_parser.py).",
        "- Card data (PCI DSS 4.0.1, DECISIONS.md): a swipe's track (35, or 45 when only track 1",
        "  was read) is sealed in memory with a key that is never written and taken out once, for",
        "  the 0200; it is never journaled nor kept after that message. An NFC tap has no track:",
        "  pitill's NFC tiers are closed-loop tags (a UID, an NTAG 424 SUN message in 48), not",
        "  EMV cards with track 2 equivalent data. PAN and expiry are journaled sealed only while",
        "  a message still needs them: an offline sale's until its 0230, an online sale's from",
        "  before its 0200 until its 0210, or, when that never came, until the 0430 of its",
        "  reversal (so a 0420 sent after a restart still carries 2, 14, 22).",
        "- Checked conditions besides the table (`card_problems`): 2 and 14 together; a stripe",
        "  card (2, 14, 22 = 90x) or an NFC card (48, 22 = 07x), never both; a swiped 0200 carries",
        "  exactly one of 35 / 45, with the PAN and expiry of 2 and 14; a 0420 / 0421 with 39 = 68",
        "  and a known field 7 in 90 carries the card. A void's reversal (39 = 17) and one by STAN",
        "  alone carry none: the journal wipes the card at the 0210. A reversal journaled by a",
        "  pitill from before the card was kept (schema 10) has none either: it goes as it is, by",
        "  field 90, and a host that follows this table answers 30.",
        "- A 0430 that does not take the reversal (a final code other than 00 or 94 duplicate:",
        "  30, 25, ...) leaves the sale NOT reversed: the row becomes REVERSAL_REFUSED, is not",
        "  sent again, and `pitill report`, the Z report and `pitill doctor` show it until a",
        "  person settles it with the acquirer (DECISIONS.md, docs/response-codes.md).",
        "- A 0230 that says the host did not process the advice (30 format error, 58, 92, an",
        "  unknown code: `advice_held`) leaves it ADVICE_REFUSED, its card kept sealed, not",
        "  sent again by itself and shown the same way until a person re-queues it (an 0221",
        "  then) or records it declined; an issuer's decline (51, 05...) is DECLINED_AFTER.",
        "- STANs (field 11) are one counter with the journal's seqs (`stan_for`: 1..999999, then",
        "  1 again), so no two messages of a terminal share one unless one repeats or reverses",
        "  the other: each 0200, 0220, 0800 (echo 301, hotlist 890) and 0500 takes a new one; an",
        "  0221 keeps its 0220's, an 0421 its 0420's, and an 0420 carries the STAN of the 0200",
        "  (or voided sale's 0220) it reverses, also named in 90. A seq an 0800 or an 0500 took",
        "  is journaled and never goes to a sale, also after a restart (sale numbers have gaps).",
        "  After a power loss the seqs reserved ahead are skipped, each reversed by STAN alone in",
        "  case its 0200 went out, and numbering goes on after them: nothing is reused",
        "  (tests/integration/test_stan_once.py checks a shop day captured on the wire;",
        "  tests/journal/test_one_wait.py a crash and a power loss after each step of a run).",
        "- End of day (0500/0510, `core/settlement.py`): the day is named in field 48 by its",
        "  STAN range (1987 has no batch number field): every seq after the day before's last up",
        "  to the day's last transaction, so also STANs 0800s took, which the host's ledger of",
        "  financial messages does not hold (they count for nothing); the 0500's own STAN is a",
        "  new one, after the range. 74-77, 80 and 86-89 are counted, 78-79",
        "  and 81-85 (transfers, 0100 authorizations, fees) are always zeros; the 0510's 39 is",
        "  00 (the host's totals agree) or 95 (reconcile error), and it carries the host's own",
        "  74-89. No field 15 (settlement date) and no 0501/0520 repeats: an unanswered 0500",
        "  leaves the day's check owed and it is sent again later (a new 0500, a new STAN). A",
        "  refused reversal counts as the reversal asked for, so a host that kept the charge",
        "  answers 95 and names it. An advice the host refused (DECLINED_AFTER: an offline sale,",
        "  or an offline refund, processing code 20) counts nowhere in 74-89, on the terminal as",
        "  at both hosts (the closed-loop host's refused refund is not in its 0510 either).",
        "",
        f"| field | name | format | length | len | {head} | source |",
        "|" + "---|" * (6 + len(COLUMNS)),
    ]
    for rule in FIELDS:
        marks = " | ".join(rule.presence)
        lines.append(
            f"| {rule.field} | {rule.name} | {rule.fmt} | {rule.length} | {rule.max_len} | "
            f"{marks} | {rule.source} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_doc(), end="")
