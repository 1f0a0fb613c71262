"""docs/iso8583.md: every message pitill builds follows its field table, and the page is current.

The table is read back from the page itself (its fixed column layout), so a message is checked
against what the page says, and the page against upstream/fields.py (regenerate it with
`.venv/bin/python -m pitill.upstream.fields > docs/iso8583.md`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from upstream_helpers import GOOD_PAN, TERMINAL, forward_item, sale

from pitill.card.model import Card
from pitill.card.track import build_track1, parse_track
from pitill.core.responses import APPROVED, OFFLINE_APPROVED
from pitill.core.settlement import Reconciliation
from pitill.core.txn import Txn
from pitill.records import ForwardKind
from pitill.upstream import fields
from pitill.upstream import messages as m

DOC = Path(__file__).parents[2] / "docs" / "iso8583.md"
STAMP = "251128101530"  # a journal stamp: 28 Nov 2025 10:15:30, the terminal's local time


def doc_table() -> list[fields.FieldRule]:
    """The field rows of docs/iso8583.md, column by column."""
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header[5 : 5 + len(fields.COLUMNS)] == list(fields.COLUMNS), header
    table = []
    for line in rows[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        field, name, fmt, length, max_len = cells[:5]
        marks = "".join(cells[5 : 5 + len(fields.COLUMNS)])
        source = "|".join(cells[5 + len(fields.COLUMNS) :])
        table.append(fields.FieldRule(field, name, fmt, length, int(max_len), marks, source))
    return table


@pytest.fixture
def pacific(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The terminal's clock in Los Angeles (UTC-8 in November)."""
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def nfc_sale(seq: int) -> Txn:
    return dataclasses.replace(sale(700, seq=seq), card=Card.from_uid("04A1B2C3D4E5F6"))


def track1_sale(seq: int) -> Txn:
    """A swipe where only track 1 could be read: the 0200 carries it in field 45."""
    card = parse_track(build_track1(GOOD_PAN, "3012", name="DOE/JANE"))
    return dataclasses.replace(sale(800, seq=seq), card=card)


def sent_messages() -> dict[str, m.Message]:
    """Every kind of message the terminal sends, made by the real builders."""
    void_row = dataclasses.replace(forward_item(ForwardKind.REVERSAL, seq=12).row, voided_by_seq=13)
    # The journal keeps no card for these two (DECISIONS.md): a void's, and one by STAN alone.
    void = dataclasses.replace(forward_item(ForwardKind.REVERSAL, seq=12), row=void_row, card=None)
    lost = forward_item(ForwardKind.REVERSAL, seq=14)
    lost = dataclasses.replace(lost, row=dataclasses.replace(lost.row, stan_only=True), card=None)
    nfc_reversal = dataclasses.replace(
        forward_item(ForwardKind.REVERSAL, seq=15), card=Card.from_uid("04A1B2C3D4E5F6")
    )
    return {
        "sale": m.build_sale_request(sale(1250, seq=42), STAMP, TERMINAL),
        "sale nfc": m.build_sale_request(nfc_sale(43), STAMP, TERMINAL),
        "sale track 1": m.build_sale_request(track1_sale(44), STAMP, TERMINAL),
        "reversal nfc": m.build_forward(nfc_reversal, TERMINAL),
        "advice": m.build_forward(forward_item(seq=7), TERMINAL),
        "advice repeat": m.build_forward(forward_item(seq=7, attempts=2), TERMINAL),
        "reversal": m.build_forward(forward_item(ForwardKind.REVERSAL, seq=9), TERMINAL),
        "reversal repeat": m.build_forward(
            forward_item(ForwardKind.REVERSAL, seq=9, attempts=1), TERMINAL
        ),
        "void reversal": m.build_forward(void, TERMINAL),
        "reversal by stan": m.build_forward(lost, TERMINAL),
        "echo": m.build_echo(5, m.transmission_stamp(datetime.now(UTC)), "PITILL01"),
        "echo no terminal": m.build_echo(6, "1128101530"),
        "end of day": m.build_reconciliation(
            m.Batch(3, 41, 57), DAY_TOTALS, "EUR", 58, "1128101530", TERMINAL
        ),
    }


DAY_TOTALS = Reconciliation(debits=12, debits_minor=45_600, debit_reversals=1, credits=2)


def host_answer(request: m.Message) -> m.Message:
    """As a host answers: an approval code for a sale, a reference for a financial message,
    its own totals (here: the same) for an end of day."""
    if request["t"] == m.RECONCILIATION:
        return m.build_reconciliation_response(request, True, m.reconciliation_of(request))
    auth = "A1B2C3" if request["t"] == "0200" else ""
    rrn = "" if request["t"] == "0800" else "000000000001"
    return m.build_response(request, APPROVED, auth_code=auth, rrn=rrn)


def test_doc_is_generated_from_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == fields.render_doc(), "regenerate docs/iso8583.md"
    assert doc_table() == list(fields.FIELDS)


@pytest.mark.parametrize("kind", sorted(sent_messages()))
def test_every_sent_message_follows_the_doc(kind: str) -> None:
    message = sent_messages()[kind]
    assert fields.problems(message, doc_table()) == []
    # and it survives the wire unchanged
    assert m.decode(m.encode(message)) == message


@pytest.mark.parametrize("kind", sorted(sent_messages()))
def test_every_answer_follows_the_doc(kind: str) -> None:
    answer = host_answer(sent_messages()[kind])
    assert fields.problems(answer, doc_table()) == []


def test_each_rule_of_the_table_is_enforced() -> None:
    good = sent_messages()["advice"]
    assert fields.problems({**good, "7": "112810153"}) == ["0220: field 7 is 9 long, must be 10"]
    assert fields.problems({**good, "4": "00000000012A"}) == [
        "0220: field 4 '00000000012A' is not n"
    ]
    assert fields.problems({k: v for k, v in good.items() if k != "38"}) == [
        "0220: mandatory field 38 (authorization identification response) is missing"
    ]
    assert fields.problems({**good, "90": "0" * 42}) == [
        "0220: field 90 (original data elements) must not be sent"
    ]
    assert fields.problems({**good, "35": "4111111111111111=3012"}) == [
        "0220: field 35 (track 2 data) must not be sent"  # track data only ever in the 0200
    ]
    assert fields.problems({**good, "36": "1"}) == ["0220: field 36 is not in docs/iso8583.md"]
    assert fields.problems({**good, "2": "4" * 20}) == [
        "0220: field 2 is 20 long, must be at most 19"
    ]


def test_a_swipe_sends_its_track_as_read_once_and_a_tap_none() -> None:
    txn = sale(1250, seq=42)
    assert txn.card is not None and txn.card.track is not None and txn.card.track.held
    message = m.build_sale_request(txn, STAMP, TERMINAL)
    assert message["35"] == f"{GOOD_PAN}=30121011234567" and "45" not in message
    assert not txn.card.track.held  # taken for this 0200: nothing of it is kept
    assert "35" not in m.build_sale_request(txn, STAMP, TERMINAL)
    assert GOOD_PAN not in repr(txn) and "3012101" not in repr(txn.card.track)
    messages = sent_messages()
    assert messages["sale track 1"]["45"].startswith(f"B{GOOD_PAN}^DOE/JANE^3012")
    assert "35" not in messages["sale track 1"]
    assert not {"35", "45"} & set(messages["sale nfc"])
    for kind in ("advice", "reversal", "reversal repeat"):  # never outside the 0200
        assert not {"35", "45"} & set(messages[kind])


def test_a_reversal_carries_the_card_of_its_sale() -> None:
    messages = sent_messages()
    reversal = messages["reversal"]
    assert (reversal["2"], reversal["14"], reversal["22"]) == (GOOD_PAN, "3012", "902")
    assert (messages["reversal nfc"]["22"], messages["reversal nfc"]["48"]) == (
        "072",
        "uid_only:04A1B2C3D4E5F6",
    )
    for kind in ("void reversal", "reversal by stan"):  # the journal kept no card for these
        assert not {"2", "14", "22", "48"} & set(messages[kind])


@pytest.mark.parametrize(
    ("kind", "change", "problem"),
    [
        ("sale", {"35": None}, "0200: a swipe sends its track as read"),
        ("sale", {"45": "B4111111111111111^A B^3012101"}, "got 2 of them"),
        ("sale", {"35": "4111111111111112=3012101"}, "are not fields 2 and 14"),
        ("sale", {"14": None}, "fields 2 and 14 go together"),
        ("sale", {"22": "072"}, "with a stripe card must be 90x"),
        ("sale nfc", {"22": "902"}, "with an NFC card must be 07x"),
        ("sale nfc", {"35": "4111111111111111=3012101"}, "(track data) with no stripe card"),
        ("sale", {"48": "uid_only:04A1B2C3D4E5F6"}, "not both"),
        ("advice", {"2": None, "14": None}, "0220: no card"),
        ("reversal", {"2": None, "14": None, "22": None}, "carries the sale's card"),
        ("reversal", {"22": None}, "field 22 must say how the card was read"),
    ],
)
def test_the_card_conditions_are_enforced(
    kind: str, change: dict[str, str | None], problem: str
) -> None:
    message = {**sent_messages()[kind], **change}
    broken = {key: value for key, value in message.items() if value is not None}
    assert [p for p in fields.problems(broken) if problem in p], fields.problems(broken)


def test_field_22_full_stripe_and_no_pin() -> None:
    messages = sent_messages()
    assert messages["sale"]["22"] == "902"  # 90: full magnetic stripe read; 2: cannot accept PIN
    assert messages["advice"]["22"] == "902"
    assert messages["sale nfc"]["22"] == "072"  # 07: contactless; 2: cannot accept PIN


@pytest.mark.usefixtures("pacific")
def test_field_7_is_utc_and_12_13_local() -> None:
    messages = sent_messages()
    for kind in ("sale", "advice", "reversal"):
        message = messages[kind]
        local = message["13"] + message["12"]
        assert local == (STAMP if kind == "sale" else forward_item().row.local_datetime)[2:]
        wall = datetime.strptime("20" + "25" + local, "%Y%m%d%H%M%S")
        utc = wall.replace(tzinfo=ZoneInfo("America/Los_Angeles")).astimezone(UTC)
        assert message["7"] == utc.strftime("%m%d%H%M%S"), kind
    assert messages["sale"]["7"] == "1128181530"  # 10:15:30 PST is 18:15:30 UTC
    berlin = datetime(2025, 11, 28, 23, 30, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert m.build_echo(1, m.transmission_stamp(berlin))["7"] == "1128223000"


@pytest.mark.usefixtures("pacific")
def test_reversal_names_the_0200_as_sent() -> None:
    item = forward_item(ForwardKind.REVERSAL, seq=321)
    sent = m.build_sale_request(sale(900, seq=321), item.row.local_datetime, TERMINAL)
    reversal = m.build_reversal(item, TERMINAL)
    assert reversal["90"] == "0200" + sent["11"] + sent["7"] + "0" * 22
    assert reversal["39"] == "68"  # the 0200's answer never came: response received too late
    assert sent_messages()["void reversal"]["39"] == "17"  # customer cancellation
    assert m.parse_request(m.decode(m.encode(reversal))).original == m.OriginalData(
        "0200", 321, sent["7"]
    )


def test_advice_carries_the_offline_decision() -> None:
    first = sent_messages()["advice"]
    assert (first["38"], first["39"]) == ("OF0007", OFFLINE_APPROVED)
    for key in ("2", "14", "4", "7", "11", "12", "13", "22", "41", "42", "49"):
        assert key in first, key
    assert {**sent_messages()["advice repeat"], "t": "0220"} == first
