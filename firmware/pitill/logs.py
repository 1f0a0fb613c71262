"""Logging for a terminal under systemd: one logfmt line per record on stdout, no PAN, no file.

    level=INFO event=sale_recorded seq=12 amount_minor=1250 pan=411111******1111 logger=pitill.app

journald stores each stdout line as one entry and reads a leading `<N>` as its syslog priority
(SyslogLevelPrefix=, on by default), so under journald every line starts with one and the
timestamp is left to the journal. `journalctl -u pitill -p warning` then filters by level and
`journalctl -u pitill -o cat | grep event=offline_approved` by event. Nothing is written to the SD
card by pitill itself unless `log_file` is configured: the journal (volatile or persistent, as
the OS is set up) is the log.

As a last line of defence every record is redacted as it is created (a record factory, so every
handler sees the redacted record, ours or not): any 13-19 digit number that passes the Luhn
check, in the message, in a field, in a traceback, is masked to first 6 and last 4. Our handlers
filter again and the formatter masks its finished line once more.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import os
import re
import sys
import threading
import types
from collections.abc import Mapping
from enum import Enum
from typing import Any, TextIO

from pitill.card.model import luhn_ok, mask_pan
from pitill.errors import ConfigError

FIELDS_ATTR = "pitill_fields"
EVENT_ATTR = "pitill_event"
RESERVED_KEYS = frozenset({"ts", "level", "event", "msg", "logger", "exc_type", "exc"})
LOG_FILE_MAX_BYTES = 1_000_000
LOG_FILE_BACKUPS = 3

# Python level -> syslog priority, as journald reads it from a `<N>` prefix.
_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}

# A full PAN written plainly (13-19 digits) or in print groups ("4111 1111 1111 1111",
# "3782-822463-10005"): the first group has 4 digits, the others 3-6, one separator kind.
_CANDIDATE = re.compile(
    r"(?<![0-9])(?:"
    r"(?P<grouped>[0-9]{4}(?P<sep>[ -])[0-9]{3,6}(?:(?P=sep)[0-9]{3,6}){1,3})"
    r"|(?P<plain>[0-9]{13,19})"
    r")(?![0-9])"
)
_BARE_VALUE = re.compile(r'[^\s"=\\]+')


def redact_pans(text: str) -> str:
    """`text` with every Luhn-valid 13-19 digit number masked to first 6 and last 4."""
    return _CANDIDATE.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    plain = match.group("plain")
    if plain is not None:
        return mask_pan(plain) if luhn_ok(plain) else plain
    groups = match.group("grouped").split(match.group("sep"))
    # The card number is the longest run of leading groups that passes; what follows it (a
    # CVV-sized group, an amount) stays as it was.
    for count in range(len(groups), 1, -1):
        digits = "".join(groups[:count])
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            rest = groups[count:]
            sep = match.group("sep")
            return mask_pan(digits) + "".join(sep + group for group in rest)
    return match.group(0)


def _redact_value(value: object) -> object:
    if isinstance(value, bool | float | Enum) or value is None:
        return value
    if isinstance(value, int):
        text = str(value)
        masked = redact_pans(text)
        return value if masked == text else masked
    return redact_pans(value if isinstance(value, str) else _render(value))


class RedactPans(logging.Filter):
    """Rewrites a record in place so no handler can print a full PAN from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: keep the evidence, minus any PAN
            message = f"{record.msg!s} args={record.args!r}"
        record.msg, record.args = redact_pans(message), None
        fields = getattr(record, FIELDS_ATTR, None)
        if fields:
            setattr(record, FIELDS_ATTR, {k: _redact_value(v) for k, v in fields.items()})
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_pans(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_pans(record.stack_info)
        return True


class LogfmtFormatter(logging.Formatter):
    """`key=value` pairs on one line; multi-line text (tracebacks) is quoted with escapes."""

    def __init__(self, *, syslog_prefix: bool = False, timestamps: bool = True) -> None:
        super().__init__()
        self.syslog_prefix = syslog_prefix
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        pairs: list[tuple[str, object]] = []
        if self.timestamps:
            moment = datetime.datetime.fromtimestamp(record.created).astimezone()
            pairs.append(("ts", moment.isoformat(timespec="milliseconds")))
        pairs.append(("level", record.levelname))
        event = getattr(record, EVENT_ATTR, None)
        if event is not None:
            pairs.append(("event", event))
        else:
            pairs.append(("msg", record.getMessage()))
        fields: Mapping[str, object] = getattr(record, FIELDS_ATTR, None) or {}
        pairs.extend(fields.items())
        pairs.append(("logger", record.name))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_info and record.exc_info[0] is not None:
            pairs.append(("exc_type", record.exc_info[0].__name__))
        if record.exc_text:
            pairs.append(("exc", record.exc_text))
        if record.stack_info:
            pairs.append(("stack", record.stack_info))
        line = redact_pans(" ".join(f"{key}={_quote(_render(value))}" for key, value in pairs))
        if self.syslog_prefix:
            return f"<{_priority(record.levelno)}>{line}"
        return line


def install_redacting_record_factory() -> None:
    """Redact every LogRecord as it is created, before any handler or filter sees it."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_pitill_redacts", False):
        return
    redact = RedactPans()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact.filter(record)
        return record

    factory._pitill_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def log_event(
    logger: logging.Logger,
    event: str,
    /,
    *,
    level: int = logging.INFO,
    exc_info: bool | BaseException = False,
    **fields: object,
) -> None:
    """Log `event` (a snake_case name) with `fields` as key=value pairs.

    log_event(log, "sale_recorded", seq=12, amount_minor=1250, pan=card.masked_pan)

    A field named like a built-in key (level, event, msg, ...) is written as `field_<name>`.
    """
    if not logger.isEnabledFor(level):
        return
    # Redacted here: `extra` lands on the record after the record factory has run.
    safe = {
        (f"field_{k}" if k in RESERVED_KEYS else k): _redact_value(v) for k, v in fields.items()
    }
    logger.log(
        level,
        event,
        exc_info=exc_info,
        extra={EVENT_ATTR: event, FIELDS_ATTR: safe},
        stacklevel=2,
    )


def configure_logging(
    level: str | int = "INFO",
    log_file: str = "",
    *,
    stream: TextIO | None = None,
    journald: bool | None = None,
    catch_uncaught: bool = True,
) -> None:
    """Route all logging to `stream` (stdout by default) as redacted logfmt lines.

    `journald=None` detects it: systemd sets JOURNAL_STREAM to the device and inode of the
    stdout it connected to the journal. `log_file` adds a size-capped rotating file (only when
    asked for: the SD card wears, and the journal already keeps the log). Calling it again
    replaces the handlers it installed before. `catch_uncaught` logs uncaught exceptions in
    the main thread and in other threads as one redacted CRITICAL record instead of a raw
    traceback on stderr.
    """
    numeric_level = _level(level)
    out = sys.stdout if stream is None else stream
    under_journald = _is_journal_stream(out) if journald is None else journald
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_pitill", False)]:
        root.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(out)
    console.setFormatter(
        LogfmtFormatter(syslog_prefix=under_journald, timestamps=not under_journald)
    )
    handlers: list[logging.Handler] = [console]
    if log_file:
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file,
                maxBytes=LOG_FILE_MAX_BYTES,
                backupCount=LOG_FILE_BACKUPS,
                encoding="utf-8",
            )
        )
        handlers[-1].setFormatter(LogfmtFormatter())
    for handler in handlers:
        handler.addFilter(RedactPans())
        handler._pitill = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(numeric_level)
    install_redacting_record_factory()
    logging.captureWarnings(True)
    if catch_uncaught:
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(
    exc_type: type[BaseException],
    exc: BaseException,
    tb: types.TracebackType | None,
) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log_event(
        logging.getLogger("pitill"),
        "uncaught_exception",
        level=logging.CRITICAL,
        exc_info=exc.with_traceback(tb),
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None:
        return
    log_event(
        logging.getLogger("pitill"),
        "uncaught_exception",
        level=logging.CRITICAL,
        exc_info=args.exc_value.with_traceback(args.exc_traceback),
        thread=args.thread.name if args.thread else "",
    )


def _is_journal_stream(stream: TextIO) -> bool:
    expected = os.environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # a StringIO, a closed stream
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ConfigError(
            f"log level {level!r} is unknown; use one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    return numeric


def _priority(levelno: int) -> int:
    for threshold in sorted(_PRIORITY, reverse=True):
        if levelno >= threshold:
            return _PRIORITY[threshold]
    return 7


def _render(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bytes | bytearray):
        return repr(bytes(value))
    return str(value)


def _quote(text: str) -> str:
    if text and _BARE_VALUE.fullmatch(text) and text.isprintable():
        return text
    return json.dumps(text, ensure_ascii=False)
