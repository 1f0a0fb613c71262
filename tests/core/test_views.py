"""Screen texts a cashier reads: the first screen, the link in header and body, paging, CLEAR."""

from __future__ import annotations

import pytest
from till import Till

from pitill.core.events import ReportReady
from pitill.core.screens import Screen
from pitill.core.state import Phase
from pitill.core.types import LinkStatus, OfflineMode
from pitill.core.views import screen_for

REPORT = ("Card 2 12.00", "Offline 1 5.00", "Cash 1 3.00", "Waiting 1 5.00", "Declined 0", "Rev 0")


def screen(till: Till) -> Screen:
    return screen_for(till.state)


def test_the_first_screen_says_the_link_is_being_checked() -> None:
    till = Till()  # booted, the monitor has not spoken yet
    header, *body = screen(till).text().split("\n")
    assert header == "CHECKING"
    assert "UNKNOWN" not in screen(till).text()
    assert "Checking host link..." in body
    till.link(LinkStatus.ONLINE)
    assert "Checking" not in screen(till).text()
    assert screen(till).text().split("\n")[0] == "ONLINE"


LINKS = [
    (LinkStatus.ONLINE, ""),
    (LinkStatus.DEGRADED, "DNS"),
    (LinkStatus.DEGRADED, "SLOW"),
    *((LinkStatus.OFFLINE, r) for r in ("DNS", "REFUSED", "TIMEOUT", "RETRY", "TLS", "PROTOCOL")),
]


@pytest.mark.parametrize("mode", list(OfflineMode))
@pytest.mark.parametrize(("link", "reason"), LINKS)
def test_header_and_body_agree_about_the_link(
    link: LinkStatus, reason: str, mode: OfflineMode
) -> None:
    till = Till()
    till.link(link, reason)
    till.state = till.state.but(mode=mode)
    header, _title, *body = screen(till).text().split("\n")
    says_unreachable = any("unreachable" in line for line in body)
    says_answering = any(w in " ".join(body) for w in ("failing", "not trusted", "garbage"))
    assert header.startswith(link.value)
    if link is LinkStatus.OFFLINE:
        # the body explains the header's reason, never contradicts it
        assert says_unreachable == (reason in ("DNS", "REFUSED", "TIMEOUT"))
        assert says_answering == (reason in ("RETRY", "TLS", "PROTOCOL"))
    else:
        assert not says_unreachable and not says_answering
        assert "Checking" not in screen(till).text()


def test_the_report_pages_say_there_is_more() -> None:
    till = Till()
    till.open_menu()
    till.keys("2")
    till.feed(ReportReady(0.0, REPORT))
    first = screen(till)
    assert first.title == "1/2 OK: next" and first.lines == REPORT[:3]
    till.keys("OK")
    second = screen(till)
    assert second.title == "2/2 OK: done" and second.lines == REPORT[3:]
    till.keys("OK")
    assert till.state.phase is Phase.IDLE


def test_a_short_report_is_one_page_without_paging() -> None:
    till = Till()
    till.open_menu()
    till.keys("2")
    till.feed(ReportReady(0.0, REPORT[:3]))
    assert screen(till).title == "REPORT"
    till.keys("OK")
    assert till.state.phase is Phase.IDLE


def test_a_second_report_starts_on_its_first_page() -> None:
    till = Till()
    till.open_menu()
    till.keys("2")
    till.feed(ReportReady(0.0, REPORT))
    till.keys("OK", "CANCEL")
    till.open_menu()
    till.keys("2")
    till.feed(ReportReady(0.0, REPORT))
    assert screen(till).title == "1/2 OK: next"


def test_clear_says_what_it_does_and_does_it() -> None:
    till = Till()
    till.keys("1", "2", "5")
    assert "CLEAR = back 1 digit" in screen(till).lines
    till.keys("CLEAR")
    assert till.state.amount_minor == 12 and screen(till).title == "EUR 0.12"
    till.keys("CLEAR", "CLEAR")
    assert till.state.phase is Phase.AMOUNT and till.state.amount_minor == 0


def test_clear_on_the_tender_screen_says_the_same() -> None:
    till = Till()
    till.link(LinkStatus.OFFLINE, "DNS")
    till.keys("4", "2", "1", "0", "OK", "OK", "5", "0")
    assert till.state.phase is Phase.TENDER
    assert "CLEAR = back 1 digit" in screen(till).lines
    till.keys("CLEAR")
    assert till.state.tendered_minor == 5
