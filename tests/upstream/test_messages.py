"""ISO 8583 messages: round trips through pyiso8583, what each field holds, garbage refused."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from upstream_helpers import GOOD_PAN, LOCAL_DATETIME, TERMINAL, forward_item, sale

from pitill.core.responses import APPROVED, AnswerKind, ResponseClass
from pitill.core.types import TxnKind, TxnStatus
from pitill.errors import ProtocolError
from pitill.records import ForwardItem, ForwardKind
from pitill.upstream import messages as m

stans = st.integers(min_value=1, max_value=999_999)
amounts = st.integers(min_value=0, max_value=999_999_999_999)
datetimes = st.builds(
    lambda yy, mo, dd, hh, mi, ss: f"{yy:02d}{mo:02d}{dd:02d}{hh:02d}{mi:02d}{ss:02d}",
    st.integers(0, 99),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
)


@given(amount=amounts, seq=stans, local_datetime=datetimes)
def test_sale_request_round_trips(amount: int, seq: int, local_datetime: str) -> None:
    request = m.build_sale_request(sale(amount, seq=seq), local_datetime, TERMINAL)
    decoded = m.decode(m.encode(request))
    assert decoded == request
    parsed = m.parse_request(decoded)
    assert (parsed.mti, parsed.stan, parsed.amount_minor) == ("0200", seq, amount)
    assert parsed.local_datetime == local_datetime[2:]
    assert parsed.pan == "4111111111111111" and parsed.expiry_yymm == "3012"
    assert (parsed.terminal_id, parsed.merchant_id) == ("PITILL01", "PITILLSHOP00001")
    assert parsed.currency_numeric == "978"


def test_sale_request_fields() -> None:
    request = m.build_sale_request(sale(1250, seq=42), "251128101530", TERMINAL)
    assert request["3"] == "000000"
    assert request["4"] == "000000001250"
    assert request["7"] == "1128101530"
    assert (request["11"], request["12"], request["13"]) == ("000042", "101530", "1128")
    assert (request["14"], request["22"], request["49"]) == ("3012", "902", "978")


@given(seq=stans, amount=amounts)
def test_advice_repeat_differs_only_in_mti(seq: int, amount: int) -> None:
    first = m.build_advice(forward_item(seq=seq, amount_minor=amount), TERMINAL)
    repeat = m.build_advice(forward_item(seq=seq, amount_minor=amount, attempts=3), TERMINAL)
    assert (first["t"], repeat["t"]) == ("0220", "0221")
    assert {**repeat, "t": "0220"} == first
    assert m.decode(m.encode(repeat)) == repeat


def test_reversal_carries_original_data() -> None:
    item = forward_item(ForwardKind.REVERSAL, seq=321, amount_minor=4000)
    reversal = m.build_reversal(item, TERMINAL)
    assert reversal["t"] == "0420"
    assert (reversal["2"], reversal["14"], reversal["22"]) == (GOOD_PAN, "3012", "902")
    sent_7 = m.transmission_of(LOCAL_DATETIME)  # the 0200's field 7, UTC
    assert reversal["90"] == "0200" + "000321" + sent_7 + "0" * 22
    original = m.parse_request(m.decode(m.encode(reversal))).original
    assert original == m.OriginalData("0200", 321, sent_7)
    repeat = m.build_forward(forward_item(ForwardKind.REVERSAL, seq=321, attempts=1), TERMINAL)
    assert repeat["t"] == "0421"


def test_echo_round_trip() -> None:
    echo = m.build_echo(5, "1128101530", "PITILL01")
    assert m.decode(m.encode(echo)) == echo
    assert echo["70"] == "301"
    answer = m.build_response(echo, APPROVED)
    assert (answer["t"], answer["11"], answer["39"], answer["70"]) == (
        "0810",
        "000005",
        "00",
        "301",
    )


@pytest.mark.parametrize(
    ("request_mti", "response_mti"),
    [("0800", "0810"), ("0200", "0210"), ("0220", "0230"), ("0221", "0230"), ("0421", "0430")],
)
def test_response_mti(request_mti: str, response_mti: str) -> None:
    assert m.response_mti(request_mti) == response_mti


def test_response_echoes_data_but_never_the_pan() -> None:
    request = m.build_sale_request(sale(1250, seq=9), LOCAL_DATETIME, TERMINAL)
    response = m.build_response(request, APPROVED, auth_code="123456", rrn="000000000001")
    assert "2" not in response and "14" not in response
    assert response["4"] == request["4"] and response["11"] == request["11"]
    answer = m.parse_answer(m.decode(m.encode(response)))
    assert answer == m.AuthAnswer("00", "123456", "000000000001")
    assert answer.approved


@pytest.mark.parametrize(
    ("mti", "code", "kind", "klass"),
    [
        ("0200", "00", AnswerKind.SALE, ResponseClass.APPROVED),
        ("0200", "68", AnswerKind.SALE, ResponseClass.RETRY),
        ("0200", "08", AnswerKind.SALE, ResponseClass.APPROVED),
        ("0200", "94", AnswerKind.SALE, ResponseClass.FINAL),
        ("0220", "94", AnswerKind.ADVICE, ResponseClass.APPROVED),
        ("0420", "96", AnswerKind.ADVICE, ResponseClass.RETRY),
        ("0800", "00", AnswerKind.ADVICE, ResponseClass.APPROVED),
    ],
)
def test_answer_is_classified_by_the_table_column_of_its_mti(
    mti: str, code: str, kind: AnswerKind, klass: ResponseClass
) -> None:
    request = m.build_echo(5, "1128101530", "PITILL01") | {"t": mti}
    answer = m.parse_answer(m.build_response(request, code))
    assert (answer.kind, answer.response_class) == (kind, klass)
    assert answer.approved is (klass is ResponseClass.APPROVED)


@pytest.mark.parametrize("code", ["", "0", "000", "0 ", "??", "\x1b["])
def test_answer_with_a_garbage_code_is_refused(code: str) -> None:
    with pytest.raises(ProtocolError, match="response code"):
        m.parse_answer({"t": "0210", "11": "000001", "39": code})


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("A1B2C3", "A1B2C3"),
        ("\x1b[2J12", "[2J12"),  # a terminal escape: the ESC goes
        ("12\n\r34", "1234"),
        ("AB\x7fCD\x00", "ABCD"),
        ("  42  ", "42"),
    ],
)
def test_auth_code_from_the_host_is_printable_ascii(raw: str, shown: str) -> None:
    answer = m.parse_answer({"t": "0210", "11": "000001", "38": raw, "39": "00"})
    assert answer.auth_code == shown


def test_host_text_is_cut_to_its_field_length() -> None:
    answer = m.parse_answer({"t": "0210", "39": "00", "38": "1234567890", "37": "R" * 40})
    assert (answer.auth_code, answer.rrn) == ("123456", "R" * 12)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage!", b"0800", b"0800" + b"Z" * 16, b"0800822000000000000004000000000000001128"],
)
def test_decode_refuses_garbage(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        m.decode(data)


def test_decode_refuses_letters_in_a_numeric_field() -> None:
    raw = m.encode({"t": "0800", "7": "1128101530", "11": "00000A", "70": "301"})
    with pytest.raises(ProtocolError, match="field 11"):
        m.decode(raw)


def test_builders_refuse_bad_values() -> None:
    with pytest.raises(ProtocolError, match="YYMMDDhhmmss"):
        m.build_sale_request(sale(), "2511281015", TERMINAL)
    with pytest.raises(ProtocolError, match="amount"):
        m.build_sale_request(sale(10**12), LOCAL_DATETIME, TERMINAL)
    with pytest.raises(ProtocolError, match="STAN"):
        m.build_echo(0, "1128101530")
    with pytest.raises(ProtocolError, match="no card"):
        m.build_sale_request(sale().with_status(sale().status, card=None), "", TERMINAL)
    with pytest.raises(ProtocolError, match="not an advice"):
        m.build_advice(forward_item(ForwardKind.REVERSAL), TERMINAL)
    with pytest.raises(ProtocolError, match="cannot pack"):
        m.encode({"t": "0800", "11": "1"})


def test_parse_answer_needs_field_39() -> None:
    with pytest.raises(ProtocolError, match="field 39"):
        m.parse_answer({"t": "0210", "11": "000001"})


def test_parse_request_needs_the_dedup_fields() -> None:
    with pytest.raises(ProtocolError, match="field 41"):
        m.parse_request({"t": "0220", "7": "1128101530", "11": "000001", "12": "1", "13": "1"})
    with pytest.raises(ProtocolError, match="no response MTI"):
        m.parse_request({"t": "0100", "11": "000001"})


def test_a_void_says_customer_cancellation_in_field_39_a_timeout_reversal_too_late() -> None:
    plain = forward_item(ForwardKind.REVERSAL, seq=321)
    assert m.build_reversal(plain, TERMINAL)["39"] == "68"  # response received too late
    voided = dataclasses.replace(plain, row=dataclasses.replace(plain.row, voided_by_seq=322))
    reversal = m.build_reversal(voided, TERMINAL)
    assert reversal["39"] == "17"
    assert m.decode(m.encode(reversal))["39"] == "17"  # it survives the wire


def test_a_refund_goes_with_processing_code_20_in_every_message_about_it() -> None:
    """0200, 0220/0221 and the 0420 of a refund all say 200000; a sale says 000000."""
    refund = dataclasses.replace(sale(500, seq=9), kind=TxnKind.REFUND, refunds_seq=3)
    request = m.build_sale_request(refund, LOCAL_DATETIME, TERMINAL)
    assert request["3"] == m.PROCESSING_CODE_REFUND == "200000"
    assert m.parse_request(m.decode(m.encode(request))).processing_code == "200000"
    assert m.is_refund(m.parse_request(request))
    assert m.build_sale_request(sale(), LOCAL_DATETIME, TERMINAL)["3"] == "000000"
    for kind in (ForwardKind.ADVICE, ForwardKind.REVERSAL):
        item = forward_item(kind)
        item = dataclasses.replace(item, row=dataclasses.replace(item.row, kind=TxnKind.REFUND))
        assert m.build_forward(item, TERMINAL)["3"] == "200000"
    cash = dataclasses.replace(sale(), kind=TxnKind.CASH)
    with pytest.raises(ProtocolError, match="never sent upstream"):
        m.build_sale_request(cash, LOCAL_DATETIME, TERMINAL)


def test_the_reversal_of_an_advised_offline_sale_names_its_0220() -> None:
    """Field 90: the 0220 as sent, the same STAN and field 7 as every send of the advice."""
    advice = forward_item(ForwardKind.ADVICE, seq=44)
    sent = m.build_advice(advice, TERMINAL)
    row = dataclasses.replace(
        advice.row, status=TxnStatus.REVERSAL_PENDING, voided_by_seq=45, attempts=0
    )
    reversal = m.build_reversal(ForwardItem(ForwardKind.REVERSAL, row, None), TERMINAL)
    assert reversal["90"][:20] == "0220" + sent["11"] + sent["7"]
    assert reversal["39"] == "17" and reversal["t"] == "0420"
    online = m.build_reversal(forward_item(ForwardKind.REVERSAL, seq=44), TERMINAL)
    assert online["90"][:4] == "0200"
