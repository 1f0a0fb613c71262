"""The one response-code table: its rules, and docs/response-codes.md written from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pitill.core import responses as r
from pitill.core.responses import AnswerKind, ResponseClass

DOC = Path(__file__).parents[2] / "docs" / "response-codes.md"


@pytest.mark.parametrize(
    ("code", "sale", "advice"),
    [
        ("00", ResponseClass.APPROVED, ResponseClass.APPROVED),
        # 08: the host charged the card, so a sale too is approved (was: declined online,
        # accepted on an advice).
        ("08", ResponseClass.APPROVED, ResponseClass.APPROVED),
        ("11", ResponseClass.APPROVED, ResponseClass.APPROVED),
        # 68: "not now" for the customer and for the monitor alike (was: final for the
        # customer, retry for the monitor).
        ("68", ResponseClass.RETRY, ResponseClass.RETRY),
        ("91", ResponseClass.RETRY, ResponseClass.RETRY),
        ("96", ResponseClass.RETRY, ResponseClass.RETRY),
        ("19", ResponseClass.RETRY, ResponseClass.RETRY),
        ("94", ResponseClass.FINAL, ResponseClass.APPROVED),
        ("05", ResponseClass.FINAL, ResponseClass.FINAL),
        ("51", ResponseClass.FINAL, ResponseClass.FINAL),
        ("Q7", ResponseClass.FINAL, ResponseClass.FINAL),  # not listed: a final decline
    ],
)
def test_classes(code: str, sale: ResponseClass, advice: ResponseClass) -> None:
    assert (r.sale_class(code), r.advice_class(code)) == (sale, advice)
    assert r.classify(code, AnswerKind.SALE) is sale
    assert r.classify(code, AnswerKind.ADVICE) is advice


@pytest.mark.parametrize("code", ["", "0", "000", "0 ", "??", "\x1b[", "é1"])
def test_malformed_code_is_refused(code: str) -> None:
    assert not r.is_response_code(code)
    with pytest.raises(ValueError, match="response code"):
        r.sale_class(code)
    assert r.screen_text(code) == "CODE ??"  # never echoes the garbage to the screen


def test_every_screen_text_fits_a_line() -> None:
    for entry in r.RESPONSE_CODES.values():
        assert len(entry.screen) <= r.SCREEN_CHARS, entry
        assert entry.screen.isascii() and entry.screen == entry.screen.upper(), entry
    assert r.screen_text("Q7") == "CODE Q7"


@pytest.mark.parametrize(
    ("code", "held"),
    [("30", True), ("03", True), ("12", True), ("58", True), ("92", True), ("Q7", True),
     ("05", False), ("14", False), ("51", False), ("54", False), ("63", False), ("00", False),
     ("94", False), ("91", False), ("96", False)],
)  # fmt: skip
def test_an_advice_the_host_did_not_process_is_held_an_issuer_decline_is_not(
    code: str, held: bool
) -> None:
    assert r.advice_held(code) is held


def test_retry_codes_are_retry_in_both_columns() -> None:
    assert {"19", "68", "90", "91", "96"} == r.RETRY_CODES


def render_doc() -> str:
    lines = [
        "# Response codes",
        "",
        "Generated from `firmware/pitill/core/responses.py`, the one table every module uses",
        "(a test fails when this page and the table disagree: regenerate it with",
        "`.venv/bin/python tests/core/test_responses.py`).",
        "",
        "- **sale**: the answer (0210) to an online sale (0200). *approved*: the card is charged;",
        '  *retry*: the host said "not now": the sale stands in offline (within the offline',
        "  limits, else cash) and the connectivity monitor counts a failing request; *final*: the",
        "  customer is told it is declined, with the screen text below.",
        "- **advice / reversal**: the answer (0230, 0430; and 0810 to an echo) to a forwarded",
        "  offline sale (0220/0221) or a reversal (0420/0421). *approved*: the host took it;",
        "  *retry*: the same message goes again later (as a repeat, with backoff); *final*: the",
        "  host refused it for good (an advice becomes DECLINED_AFTER: for an offline sale the",
        "  merchant's loss, for an offline refund a refund refused by host, the customer still",
        "  owed it, on its own line of the Z report and `pitill report`; a",
        "  reversal becomes REVERSAL_REFUSED, never REVERSED: the host did not take the charge",
        "  back, so it is not sent again and waits for a person, shown by `pitill report`, the",
        "  FN and Z reports and `pitill doctor`; DECISIONS.md). *final (held)*: to an advice,",
        "  the host did not process the message (format error, routing, this terminal's",
        "  set-up), so it never judged the card: the advice is ADVICE_REFUSED, its card kept",
        "  sealed, not sent again by itself and shown like a refused reversal until a person",
        "  re-queues it after a fix (`pitill journal requeue`) or records it declined",
        "  (`pitill journal decline`). An unknown code is held too. To a reversal it is final.",
        "- A code not listed is a final decline for both, shown as `CODE xx`. Y3 and Z3 are",
        "  written by the terminal itself for decisions taken without the host.",
        "",
        "A code is read only from the answer to the request in flight (`upstream/exchange.py`):",
        "frames received before the request is sent are discarded, and an answer counts only if",
        "its MTI answers the request's (0200->0210, 0220/0221->0230, 0420/0421->0430,",
        "0800->0810) and it echoes the request's STAN (11), terminal id (41), amount (4) and",
        "transmission date/time (7). Any other frame (an answer for a STAN not yet sent, another",
        "amount, another terminal) is dropped, counted by kind and logged once per kind (then at",
        "most once a minute, with a count); the request stays unanswered, so a sale times out,",
        "is reversed (0420) and decided offline. The auth code (38) and RRN (37) are cut to",
        "printable ASCII and their field length before they reach a screen, the journal or a log.",
        "",
        "| code | meaning | sale | advice / reversal | screen |",
        "|---|---|---|---|---|",
    ]
    for e in r.RESPONSE_CODES.values():
        advice = f"{e.advice} (held)" if r.advice_held(e.code) else str(e.advice)
        lines.append(f"| {e.code} | {e.meaning} | {e.sale} | {advice} | {e.screen} |")
    return "\n".join(lines) + "\n"


def write_doc() -> None:
    DOC.write_text(render_doc(), encoding="utf-8")


def test_doc_matches_the_table() -> None:
    assert DOC.read_text(encoding="utf-8") == render_doc(), "regenerate docs/response-codes.md"


if __name__ == "__main__":
    write_doc()
