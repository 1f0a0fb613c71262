"""Log lines journald keeps well, and no full PAN in any of them, wherever it hides."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pitill.card.model import luhn_ok, mask_pan
from pitill.errors import ConfigError
from pitill.logs import (
    LogfmtFormatter,
    RedactPans,
    configure_logging,
    log_event,
    redact_pans,
)

PAN = "4111111111111111"
MASKED = "411111******1111"
AMEX = "378282246310005"


def luhn_complete(body: str) -> str:
    """`body` plus the check digit that makes it pass Luhn."""
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


@pytest.fixture
def root_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The root logger, put back as it was (handlers, level, excepthooks) afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    saved_factory = logging.getLogRecordFactory()
    yield root
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved_level)
    logging.setLogRecordFactory(saved_factory)
    logging.captureWarnings(False)


def capture(root_logger: logging.Logger, **options: object) -> io.StringIO:
    out = io.StringIO()
    configure_logging(stream=out, journald=False, **options)  # type: ignore[arg-type]
    for handler in root_logger.handlers:
        if getattr(handler, "_pitill", False) and isinstance(handler.formatter, LogfmtFormatter):
            handler.formatter.timestamps = False  # exact lines below
    return out


# --- redact_pans ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"card {PAN} swiped", f"card {MASKED} swiped"),
        (f"track2=;{PAN}=25121010000000000000?", f"track2=;{MASKED}=25121010000000000000?"),
        (f"%B{PAN}^DOE/JOHN^2512101?", f"%B{MASKED}^DOE/JOHN^2512101?"),
        ("4111 1111 1111 1111", MASKED),
        ("4111-1111-1111-1111 cvv 123", f"{MASKED} cvv 123"),
        ("4111 1111 1111 1111 123", f"{MASKED} 123"),  # the trailing group is not the PAN
        ("3782-822463-10005", "378282*****0005"),
        ("4111111111111112", "4111111111111112"),  # fails Luhn: not a PAN
        ("411111111111", "411111111111"),  # 12 digits: too short for a PAN
        ("41111111111111111111", "41111111111111111111"),  # 20 digits: not a PAN
        (MASKED, MASKED),
        ("seq=12 amount_minor=1250 stan=000123", "seq=12 amount_minor=1250 stan=000123"),
    ],
)
def test_redact_pans(text: str, expected: str) -> None:
    assert redact_pans(text) == expected
    assert redact_pans(expected) == expected  # idempotent


@given(
    body=st.text(alphabet="0123456789", min_size=12, max_size=18),
    before=st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
    after=st.text(alphabet=st.characters(blacklist_categories=["Nd"]), max_size=20),
)
def test_any_luhn_valid_pan_in_text_is_masked(body: str, before: str, after: str) -> None:
    pan = luhn_complete(body)
    redacted = redact_pans(before + pan + after)
    assert pan not in redacted
    assert mask_pan(pan) in redacted


# --- the line format --------------------------------------------------------------------------


class Link(StrEnum):
    OFFLINE = "offline"


def test_an_event_is_one_logfmt_line(root_logger: logging.Logger) -> None:
    out = capture(root_logger)
    log = logging.getLogger("pitill.test")
    log_event(log, "sale_recorded", seq=12, amount_minor=1250, pan=MASKED)
    log_event(
        log,
        "link_changed",
        level=logging.WARNING,
        status=Link.OFFLINE,
        reason='no route "to" host\nretrying',
        forwarded=False,
        host=None,
        level_hint="x",
    )
    log_event(log, "odd_names", level=logging.DEBUG, event="dropped: below INFO")
    log_event(log, "reserved", msg="kept", event="also kept")
    assert out.getvalue().splitlines() == [
        f"level=INFO event=sale_recorded seq=12 amount_minor=1250 pan={MASKED} logger=pitill.test",
        'level=WARNING event=link_changed status=offline reason="no route \\"to\\" host\\nretrying"'
        " forwarded=false host=null level_hint=x logger=pitill.test",
        'level=INFO event=reserved field_msg=kept field_event="also kept" logger=pitill.test',
    ]


def test_plain_log_calls_become_msg(root_logger: logging.Logger) -> None:
    out = capture(root_logger)
    logging.getLogger("pitill.x").warning("reader %s: %d bytes dropped", "/dev/serial0", 3)
    assert out.getvalue() == (
        'level=WARNING msg="reader /dev/serial0: 3 bytes dropped" logger=pitill.x\n'
    )


def test_timestamps_outside_journald(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging(stream=out, journald=False)
    logging.getLogger("pitill").info("hello")
    assert out.getvalue().startswith("ts=")
    assert " level=INFO msg=hello " in out.getvalue()


def test_under_journald_lines_carry_syslog_priorities(
    root_logger: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "stdout").open("w+") as stdout:
        info = os.fstat(stdout.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        configure_logging(stream=stdout)  # detects the journal from JOURNAL_STREAM
        log = logging.getLogger("pitill.j")
        log.debug("hidden")
        log.info("i")
        log.warning("w")
        log.error("e")
        log.critical("c")
        stdout.seek(0)
        lines = stdout.read().splitlines()
    assert [line.split(" ")[0] for line in lines] == [
        "<6>level=INFO",
        "<4>level=WARNING",
        "<3>level=ERROR",
        "<2>level=CRITICAL",
    ]
    assert not any("ts=" in line for line in lines)  # journald stamps entries itself


def test_a_stream_that_is_not_the_journal_gets_no_prefix(
    root_logger: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    with (tmp_path / "stdout").open("w+") as stdout:
        configure_logging(stream=stdout)
        logging.getLogger("pitill").info("i")
        stdout.seek(0)
        assert stdout.read().startswith("ts=")


# --- redaction through the whole pipeline -----------------------------------------------------


def test_pan_in_message_args_fields_and_exceptions_is_masked(
    root_logger: logging.Logger,
) -> None:
    out = capture(root_logger)
    log = logging.getLogger("pitill.card")
    log.info("card %s swiped", PAN)
    log.info(f"raw track ;{PAN}=2512101?")
    log_event(log, "card_read", pan=PAN, pan_as_int=int(PAN), nested={"pan": AMEX})
    try:
        raise ValueError(f"bad expiry on card {PAN}")
    except ValueError:
        log.exception("swipe failed for %s", PAN)
    text = out.getvalue()
    assert PAN not in text
    assert AMEX not in text
    assert text.count(MASKED) == 6  # args, text, field, int field, message, exception
    assert "378282*****0005" in text
    lines = text.splitlines()
    assert len(lines) == 4  # the traceback stays inside its record's line
    assert "exc_type=ValueError" in lines[3]
    assert "Traceback (most recent call last):" in lines[3]


def test_the_filter_protects_other_handlers_too(root_logger: logging.Logger) -> None:
    """A handler that is not ours (pytest's, a syslog one) still gets redacted records."""
    out = io.StringIO()
    foreign = logging.StreamHandler(out)
    foreign.setFormatter(logging.Formatter("%(message)s|%(pitill_fields)s"))
    foreign.addFilter(RedactPans())
    log = logging.getLogger("pitill.foreign")
    log.addHandler(foreign)
    try:
        log_event(log, "card_read", pan=PAN)
        try:
            raise RuntimeError(PAN)
        except RuntimeError:
            log.error("boom %s", PAN, exc_info=True, extra={"pitill_fields": {}})
    finally:
        log.removeHandler(foreign)
    assert PAN not in out.getvalue()
    assert MASKED in out.getvalue()


def test_bad_format_args_neither_raise_nor_leak(root_logger: logging.Logger) -> None:
    out = capture(root_logger)
    logging.getLogger("pitill").info("two %s %s", PAN)  # one argument short
    assert PAN not in out.getvalue()
    assert MASKED in out.getvalue()


def test_uncaught_exceptions_are_logged_redacted(root_logger: logging.Logger) -> None:
    out = capture(root_logger)
    try:
        raise KeyError(PAN)
    except KeyError as exc:
        sys.excepthook(type(exc), exc, exc.__traceback__)

    def worker() -> None:
        raise OSError(f"reader thread died on {PAN}")

    thread = threading.Thread(target=worker, name="reader")
    thread.start()
    thread.join()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert all("event=uncaught_exception" in line for line in lines)
    assert "thread=reader" in lines[1]
    assert PAN not in out.getvalue()


# --- where logs go ----------------------------------------------------------------------------


def test_no_log_file_unless_configured(
    root_logger: logging.Logger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    configure_logging(stream=out)
    configure_logging(stream=out)  # again: replaces its handlers, does not add more
    logging.getLogger("pitill").warning("only once")
    assert out.getvalue().count("only once") == 1
    ours = [h for h in root_logger.handlers if getattr(h, "_pitill", False)]
    assert [type(h) for h in ours] == [logging.StreamHandler]
    assert list(tmp_path.iterdir()) == []


def test_a_configured_log_file_gets_redacted_lines(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    log_file = tmp_path / "pitill.log"
    configure_logging(stream=io.StringIO(), log_file=str(log_file))
    log_event(logging.getLogger("pitill"), "card_read", pan=PAN)
    for handler in root_logger.handlers:
        handler.flush()
    written = log_file.read_text(encoding="utf-8")
    assert f"event=card_read pan={MASKED}" in written
    assert PAN not in written


def test_an_unknown_level_is_a_config_error(root_logger: logging.Logger) -> None:
    with pytest.raises(ConfigError, match="'LOUD'"):
        configure_logging("LOUD", stream=io.StringIO())


def test_level_filters_records(root_logger: logging.Logger) -> None:
    out = io.StringIO()
    configure_logging("warning", stream=out, journald=False)
    log_event(logging.getLogger("pitill"), "chatty")
    log_event(logging.getLogger("pitill"), "worrying", level=logging.WARNING)
    assert "chatty" not in out.getvalue()
    assert "event=worrying" in out.getvalue()


def test_records_are_redacted_for_every_handler(
    root_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """pytest's own capture handler has no filter of ours, yet sees only masked PANs."""
    configure_logging(stream=io.StringIO(), journald=False)
    with caplog.at_level(logging.INFO):
        logging.getLogger("pitill.any").info("card %s", PAN)
        log_event(logging.getLogger("pitill.any"), "card_read", pan=PAN)
    assert [r.getMessage() for r in caplog.records] == [f"card {MASKED}", "card_read"]
    assert caplog.records[1].pitill_fields == {"pan": MASKED}
    assert PAN not in caplog.text
