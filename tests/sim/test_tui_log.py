"""The simulator's log: one readable line per thing that happened, one per forwarded batch."""

from __future__ import annotations

from pitill.sim.tui import describe_event


def test_a_batch_is_one_line_when_sent_and_one_when_answered() -> None:
    sending = {
        "seqs": [3, 4, 5, 9],
        "kinds": ["reversal", "advice", "advice", "advice"],
        "repeats": 1,
        "codes": [],
        "left": 0,
    }
    assert describe_event("forwarding", sending) == (
        "forwarding: sending 3 advices + 1 reversal #3-#5,#9 (1 repeated)"
    )
    answered = {**sending, "repeats": 0, "codes": ["00", "00", "05", "00"], "left": 2}
    assert describe_event("forwarded", answered) == (
        "forwarded: host answered 3 advices + 1 reversal #3-#5,#9: 00 x3, 05 x1; 2 not sent"
    )


def test_a_paused_forward_says_why_and_when_it_tries_again() -> None:
    line = describe_event(
        "forward_retry", {"seq": 7, "reason": "host answered 91", "retry_in_s": 2.5}
    )
    assert line == "forwarding paused at #7: host answered 91; retry in 2.5 s"


def test_the_wait_after_a_heal_says_why_nothing_is_sent_yet() -> None:
    line = describe_event("forward_wait", {"wait_s": 1.25})
    assert line == "link back: forwarding starts in 1.25 s (spread, forward_jitter_s)"


def test_the_panel_shows_screens_and_phases_itself() -> None:
    assert describe_event("screen", {"text": "READY"}) is None
    assert describe_event("state", {"phase": "IDLE", "was": "AMOUNT"}) is None
    assert describe_event("beep", {"pattern": "click"}) is None  # not one line per key
    assert describe_event("beep", {"pattern": "alert"}) == "buzzer: alert"
    assert describe_event("link", {"status": "OFFLINE", "reason": "DNS"}) == (
        "link: terminal sees OFFLINE DNS"
    )
