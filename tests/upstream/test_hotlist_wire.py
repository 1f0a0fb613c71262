"""The hotlist on the wire: an 0800 with field 70 890 asks for the changes after a version, its
0810 carries them in field 48; both follow docs/iso8583.md."""

from __future__ import annotations

import pytest

from pitill.errors import ProtocolError
from pitill.records import HotlistPage
from pitill.upstream import messages as m
from pitill.upstream.fields import problems

KEY = "ab" * 32


def test_a_page_round_trips_through_the_wire_and_the_table() -> None:
    ask = m.build_hotlist_request(7, "1130120000", "TERM0001", 42)
    assert not problems(ask) and m.parse_request(m.decode(m.encode(ask))).card_data == "42"
    page = HotlistPage(KEY, 44, True, (("0123456789abcdef", True), ("fedcba9876543210", False)))
    answer = m.build_response(ask, "00")
    answer["48"] = m.hotlist_data(page)
    assert not problems(answer)
    assert m.parse_hotlist(m.decode(m.encode(answer))) == page


def test_a_full_page_fits_field_48() -> None:
    changes = tuple((f"{i:016x}", True) for i in range(m.HOTLIST_PAGE_ENTRIES))
    data = m.hotlist_data(HotlistPage(KEY, 999_999_999_999, True, changes))
    assert len(data) <= 999


def test_a_host_without_a_hotlist_answers_like_an_echo() -> None:
    ask = m.build_hotlist_request(7, "1130120000", "TERM0001", 0)
    assert m.parse_hotlist(m.build_response(ask, "00")) is None  # the sandbox acquirer
    assert m.parse_hotlist({"t": "0810", "48": f"{KEY} 1 0", "70": "301"}) is None


@pytest.mark.parametrize(
    "data",
    [f"{KEY} x 0", f"{KEY} 1 2", f"{KEY} 1 0 *0123456789abcdef", f"{KEY} 1 0 +0123", "ab 1 0"],
)
def test_a_page_that_breaks_the_format_is_refused_whole(data: str) -> None:
    with pytest.raises(ProtocolError, match="hotlist answer"):
        m.parse_hotlist({"t": "0810", "48": data, "70": m.HOTLIST_CODE})
