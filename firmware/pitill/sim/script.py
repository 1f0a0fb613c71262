"""The simulator's script language: parsing only. sim/script_runner.py carries the steps out.

One command per line, `#` starts a comment:

    press 1 2 5 0 OK              keys: 0-9, OK, CLEAR, CANCEL, FN
    swipe 4111111111111111 3012   PAN and YYMM expiry (or a test card name: approved, declined,
                                  expired, bad-luhn); add `track1` or `lines` for other formats
    type-stripe 4111111111111111 3012   the same card typed by a USB keyboard-wedge stripe reader
    tap uid 04A1B2C3D4E5F6        an NFC tag on the PN532: a UID-only tag (4, 7 or 10 bytes),
    tap ntag424 alice             the sandbox program's NTAG 424 DNA called alice (made on first
    tap clone alice               use), or a copy of alice replaying her last SUN message
    upstream down                 also: up, blackhole, dns-fail, slow, failing
    wait 2.5                      seconds
    expect screen "APPROVED"      case-insensitive substring of the text on the current screen;
    expect screen "#{2} 12.00"    #{N} is the number (seq) of the journal's Nth transaction: 0800s
                                  and 0500s take numbers too, so a sale's is not known ahead
    expect link offline           online | offline | degraded
    expect state IDLE             a phase name
    expect pending 2              card transactions waiting to go to the host (owed reversals too)
    expect days_owed 0            closed days whose host check (end of day, 0500) is owed
    expect forwarded 3            offline sales the host has acknowledged
    expect drawer 1               times the cash drawer was opened
    expect hotlisted 1            cards on the program's hotlist the terminal holds
    expect clock wrong            right | wrong: whether the terminal flags its wall clock

An `expect` waits (up to the runner's expect timeout) for its condition to hold, so a script
does not need exact sleeps between an action and its visible result.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pitill.core.state import Phase
from pitill.core.types import Key
from pitill.errors import ScriptError
from pitill.logs import redact_pans

UPSTREAM_MODES = ("up", "down", "blackhole", "dns-fail", "slow", "failing")
# What "slow" means everywhere (the sim's mode, the drill's slow share, the benchmarks): every
# answer the host sends, echoes included, comes this late. Over the default slow threshold
# (0.5 s: DEGRADED SLOW) and under the probe timeout (1 s: not a failure).
SLOW_ANSWER_S = 0.65
LINK_WORDS = ("online", "offline", "degraded")
CLOCK_WORDS = ("right", "wrong")
COUNT_SUBJECTS = ("pending", "forwarded", "drawer", "days_owed", "hotlisted")
SWIPE_FORMATS = ("track2", "track1", "lines")
TAP_KINDS = ("uid", "ntag424", "clone")


@dataclass(frozen=True)
class Press:
    keys: tuple[Key, ...]


@dataclass(frozen=True)
class Swipe:
    pan: str
    expiry_yymm: str
    fmt: str = "track2"


@dataclass(frozen=True)
class SwipeNamed:
    name: str
    fmt: str = "track2"


@dataclass(frozen=True)
class TypeStripe:
    pan: str
    expiry_yymm: str


@dataclass(frozen=True)
class Tap:
    kind: str  # uid | ntag424 | clone
    arg: str  # the UID in hex, or the virtual card's name


@dataclass(frozen=True)
class Upstream:
    mode: str


@dataclass(frozen=True)
class Wait:
    seconds: float


@dataclass(frozen=True)
class Expect:
    subject: str  # screen | link | state | pending | forwarded | drawer | days_owed | hotlisted
    value: str


Command = Press | Swipe | SwipeNamed | TypeStripe | Tap | Upstream | Wait | Expect


@dataclass(frozen=True)
class Step:
    line_no: int
    text: str
    command: Command


def parse_script(text: str, card_names: tuple[str, ...] = ()) -> list[Step]:
    """Every step of a script; the first bad line raises ScriptError naming its number."""
    steps = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        try:
            words = shlex.split(raw, comments=True)
        except ValueError as exc:
            raise ScriptError(f"line {line_no}: {exc}: {redact_pans(raw.strip())!r}") from None
        if not words:
            continue
        try:
            command = _parse_words(words, card_names)
        except ValueError as exc:
            raise ScriptError(f"line {line_no}: {exc}: {redact_pans(raw.strip())!r}") from None
        # The text is what reports and the events file quote: never a full card number.
        steps.append(Step(line_no, redact_pans(raw.strip()), command))
    return steps


def _parse_words(words: list[str], card_names: tuple[str, ...]) -> Command:
    verb, args = words[0].lower(), words[1:]
    if verb == "press":
        if not args:
            raise ValueError("press needs at least one key")
        return Press(tuple(Key.parse(arg) for arg in args))
    if verb == "swipe":
        return _parse_swipe(args, card_names)
    if verb == "type-stripe":
        card = _parse_swipe(args, ())
        assert isinstance(card, Swipe)
        return TypeStripe(card.pan, card.expiry_yymm)
    if verb == "tap":
        if len(args) != 2 or args[0].lower() not in TAP_KINDS:
            raise ValueError("tap takes uid HEX, ntag424 NAME or clone NAME")
        kind, arg = args[0].lower(), args[1]
        if kind == "uid" and not (len(arg) in (8, 14, 20) and _is_hex(arg)):
            raise ValueError("tap uid takes a UID of 4, 7 or 10 bytes in hex")
        return Tap(kind, arg.upper() if kind == "uid" else arg)
    if verb == "upstream":
        if len(args) != 1 or args[0].lower() not in UPSTREAM_MODES:
            raise ValueError(f"upstream takes one of {', '.join(UPSTREAM_MODES)}")
        return Upstream(args[0].lower())
    if verb == "wait":
        if len(args) != 1:
            raise ValueError("wait takes a number of seconds")
        seconds = float(args[0])
        if not 0 <= seconds <= 3600:
            raise ValueError("wait must be between 0 and 3600 seconds")
        return Wait(seconds)
    if verb == "expect":
        return _parse_expect(args)
    raise ValueError(
        f"unknown command {verb!r}; known: press, swipe, tap, type-stripe, upstream, wait, expect"
    )


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _parse_swipe(args: list[str], card_names: tuple[str, ...]) -> Command:
    fmt = "track2"
    if args and args[-1].lower() in SWIPE_FORMATS:
        fmt = args.pop().lower()
    if len(args) == 1 and args[0].lower() in card_names:
        return SwipeNamed(args[0].lower(), fmt)
    if len(args) != 2:
        names = ", ".join(card_names) or "none"
        raise ValueError(f"swipe takes PAN and YYMM, or a test card name ({names})")
    pan, expiry = args
    if not _digits(pan) or not 12 <= len(pan) <= 19:
        raise ValueError("the PAN must be 12 to 19 digits 0-9")
    if not (len(expiry) == 4 and _digits(expiry)):
        raise ValueError("the expiry must be YYMM, four digits 0-9")
    return Swipe(pan, expiry, fmt)


def _parse_expect(args: list[str]) -> Expect:
    if len(args) != 2:
        raise ValueError("expect takes a subject and a value")
    subject, value = args[0].lower(), args[1]
    if subject == "screen":
        return Expect(subject, value)
    if subject == "link":
        if value.lower() not in LINK_WORDS:
            raise ValueError(f"expect link takes {', '.join(LINK_WORDS)}")
        return Expect(subject, value.lower())
    if subject == "state":
        try:
            return Expect(subject, Phase(value.upper()).value)
        except ValueError:
            known = ", ".join(p.value for p in Phase)
            raise ValueError(f"unknown state {value!r}; known: {known}") from None
    if subject == "clock":
        if value.lower() not in CLOCK_WORDS:
            raise ValueError(f"expect clock takes {', '.join(CLOCK_WORDS)}")
        return Expect(subject, value.lower())
    if subject in COUNT_SUBJECTS:
        if not _digits(value):
            raise ValueError(f"expect {subject} takes a whole number")
        return Expect(subject, value)
    known = ", ".join(("screen", "link", "state", "clock", *COUNT_SUBJECTS))
    raise ValueError(f"unknown expectation {subject!r}; known: {known}")


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes other scripts' digits (and superscripts)."""
    return text.isascii() and text.isdigit()
