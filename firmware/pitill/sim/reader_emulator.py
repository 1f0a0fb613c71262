"""A card reader emulator: swipes test cards into a terminal over a serial line, faults on demand.

It plays the reader's side of pitill.card.framing: it sends a frame, waits for the terminal's ACK
or NAK, and sends the frame again after a NAK (at most `max_retries` times). In the lines protocol
it sends the track and a CR LF and expects no answer. Faults, applied to the first transmission only
(the retransmissions are clean, as a real reader's would be):

- bad-lrc: a wrong frame LRC (framed: the terminal must NAK, then accept the retransmission), or a
  wrong track LRC character (lines: the terminal must report the swipe unreadable);
- split: the bytes go out a few at a time with short pauses;
- noise: line noise before and after the swipe (no STX, ETX, CR or LF in it, so it cannot be taken
  for a frame; the decoder drops and counts it);
- concat: the swipe is sent twice back to back in one write (the terminal sees two swipes).

It imports only pyserial, the standard library and pitill.card, so tools/card-reader-emulator runs
with nothing else installed. `open_pty_pair()` makes a pty for the simulator and the tests: the
emulator keeps the master, the terminal opens the slave path like any serial device.
"""

from __future__ import annotations

import errno
import os
import select
import time
import tty
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol

import serial

from pitill.card.framing import ACK, NAK, STX, encode_frame
from pitill.card.model import mask_pan
from pitill.card.track import build_track1, build_track2, track_lrc

Format = Literal["framed", "lines"]
Fault = Literal["bad-lrc", "split", "noise", "concat"]
FORMATS: tuple[Format, ...] = ("framed", "lines")
FAULTS: tuple[Fault, ...] = ("bad-lrc", "split", "noise", "concat")
LINE_END = b"\r\n"
NOISE = b"\x00\xff\x7f\x80UU\xaa~#\x1b"  # no STX, ETX, CR, LF or start sentinel
_POLL_S = 0.01  # how often to look again while the pty has no terminal on its other end
_WRITE_TIMEOUT_S = 2.0  # a swipe is a few dozen bytes: a line that takes none is stuck


@dataclass(frozen=True)
class SampleCard:
    """A built-in test card and what the simulator's host and core do with it.

    (Not "TestCard": pytest would try to collect it from every test module that imports it.)
    """

    name: str
    pan: str
    expiry_yymm: str
    outcome: str


TEST_CARDS: dict[str, SampleCard] = {
    card.name: card
    for card in (
        SampleCard("approved", "4111111111111111", "3012", "approved online"),
        SampleCard("declined", "4000000000000002", "3012", "declined by the host (05)"),
        SampleCard("expired", "5555555555554444", "2001", "EXPIRED CARD on the terminal"),
        SampleCard("bad-luhn", "4111111111111112", "3012", "INVALID CARD on the terminal"),
    )
}
"""The simulator's cards by name; the names are the ones sim scripts and the CLI accept."""


def find_test_card(name: str) -> SampleCard | None:
    """The test card called `name` in any case ('BAD_LUHN' and 'bad-luhn' are the same)."""
    return TEST_CARDS.get(name.strip().lower().replace("_", "-"))


class Reply(StrEnum):
    ACK = "ACK"
    NAK = "NAK"
    TIMEOUT = "TIMEOUT"  # no ACK or NAK within reply_timeout_s


@dataclass(frozen=True)
class SwipeResult:
    """What the terminal answered to one swipe: one reply per transmission, in order."""

    fmt: Format
    replies: tuple[Reply, ...]

    @property
    def accepted(self) -> bool | None:
        """True after an ACK, False after a final NAK or timeout; None in the lines protocol."""
        if self.fmt == "lines":
            return None
        return bool(self.replies) and self.replies[-1] is Reply.ACK

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        if self.fmt == "lines":
            return "sent (lines protocol: the terminal does not answer)"
        text = ", ".join(self.replies)
        if self.accepted and len(self.replies) > 1:
            text += f" (accepted on attempt {len(self.replies)})"
        return text


class Link(Protocol):
    """The emulator's end of the serial line."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout_s: float) -> bytes:
        """Whatever arrives within timeout_s (possibly nothing)."""
        ...

    def close(self) -> None: ...


class SerialLink:
    """A serial port opened by path with pyserial (a USB adapter wired to the terminal's UART)."""

    def __init__(self, port: serial.Serial) -> None:
        self.port = port

    def write(self, data: bytes) -> None:
        self.port.write(data)
        self.port.flush()

    def read(self, timeout_s: float) -> bytes:
        # The port is non-blocking (timeout=0): wait here instead of changing its timeout, which
        # would reconfigure the port on every call.
        ready, _, _ = select.select([self.port.fileno()], [], [], max(0.0, timeout_s))
        if not ready:
            return b""
        return bytes(self.port.read(max(1, self.port.in_waiting)))

    def close(self) -> None:
        self.port.close()


class FdLink:
    """A file descriptor, usually a pty master: reads time out with select().

    Reading a pty master while no one has the slave open fails with EIO; that is "nothing yet",
    not an error, since the terminal may (re)open the slave at any moment.
    """

    def __init__(
        self, fd: int, close_fd: bool = True, write_timeout_s: float = _WRITE_TIMEOUT_S
    ) -> None:
        self.fd = fd
        self._close_fd = close_fd
        self._write_timeout_s = write_timeout_s
        os.set_blocking(fd, False)  # writes wait in select(), with a deadline

    def write(self, data: bytes) -> None:
        """Write everything, or raise TimeoutError when the terminal stops taking bytes."""
        view = memoryview(data)
        deadline = time.monotonic() + self._write_timeout_s
        while view:
            try:
                view = view[os.write(self.fd, view) :]
                continue
            except BlockingIOError:
                pass
            left_s = deadline - time.monotonic()
            if left_s <= 0 or not select.select([], [self.fd], [], left_s)[1]:
                raise TimeoutError(
                    f"the terminal has not read the line for {self._write_timeout_s} s"
                )

    def read(self, timeout_s: float) -> bytes:
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                try:
                    return os.read(self.fd, 4096)
                except OSError as exc:
                    if exc.errno != errno.EIO:
                        raise
            if time.monotonic() >= deadline:
                return b""
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))

    def close(self) -> None:
        """Close the fd if this link owns it; closing twice does nothing (fds get reused)."""
        if self._close_fd and self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


def open_pty_pair() -> tuple[int, str]:
    """A new pty in raw mode: (master fd for the emulator, slave path for the terminal)."""
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(master_fd)  # no echo, no line editing: the line carries bytes as they are
        slave_path = os.ttyname(slave_fd)
    except BaseException:
        os.close(master_fd)
        raise
    finally:
        os.close(slave_fd)
    return master_fd, slave_path


class ReaderEmulator:
    """Swipes cards into a terminal over a Link; see the module docstring for the faults."""

    def __init__(
        self,
        link: Link,
        *,
        reply_timeout_s: float = 1.0,
        max_retries: int = 3,
        split_chunk_bytes: int = 3,
        split_delay_s: float = 0.005,
    ) -> None:
        self.link = link
        self.reply_timeout_s = reply_timeout_s
        self.max_retries = max_retries
        self.split_chunk_bytes = split_chunk_bytes
        self.split_delay_s = split_delay_s
        self._inbox = bytearray()  # bytes read from the terminal and not yet looked at

    @classmethod
    def open_port(cls, path: str, baudrate: int = 9600, **options: Any) -> ReaderEmulator:
        """Open the serial device at `path` (raises serial.SerialException if it cannot)."""
        port = serial.Serial(path, baudrate, timeout=0, write_timeout=_WRITE_TIMEOUT_S)
        return cls(SerialLink(port), **options)

    @classmethod
    def from_fd(cls, fd: int, *, close_fd: bool = True, **options: Any) -> ReaderEmulator:
        """Use an open file descriptor, e.g. the master from open_pty_pair()."""
        return cls(FdLink(fd, close_fd), **options)

    def __enter__(self) -> ReaderEmulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.link.close()

    def swipe(
        self,
        pan: str,
        expiry_yymm: str,
        fmt: Format = "framed",
        track: Literal[1, 2] = 2,
        fault: Fault | None = None,
        with_track_lrc: bool = False,
    ) -> SwipeResult:
        """Send one swipe and return the terminal's answer.

        With fault='concat' the swipe goes twice in one write and this is the answer to the first
        copy; swipe_all() returns one answer per copy.
        """
        return self.swipe_all(pan, expiry_yymm, fmt, track, fault, with_track_lrc)[0]

    def swipe_all(
        self,
        pan: str,
        expiry_yymm: str,
        fmt: Format = "framed",
        track: Literal[1, 2] = 2,
        fault: Fault | None = None,
        with_track_lrc: bool = False,
    ) -> list[SwipeResult]:
        """Like swipe(), with the answer to every copy sent (two with fault='concat')."""
        text = make_track(pan, expiry_yymm, track, with_track_lrc)
        return self.send_tracks([text, text] if fault == "concat" else [text], fmt, fault)

    def send_tracks(
        self, texts: Sequence[str], fmt: Format = "framed", fault: Fault | None = None
    ) -> list[SwipeResult]:
        """Send tracks, one swipe each; with fault='concat' all of them go in one write."""
        self._drain()
        if fault == "concat":
            return self._send_burst(texts, fmt, fault)
        results: list[SwipeResult] = []
        for text in texts:
            results.extend(self._send_burst([text], fmt, fault))
        return results

    def send_raw(self, data: bytes) -> None:
        """Put bytes on the line as they are (for tests of what the terminal does with garbage)."""
        self.link.write(data)

    def _send_burst(
        self, texts: Sequence[str], fmt: Format, fault: Fault | None
    ) -> list[SwipeResult]:
        if fmt == "lines":
            payloads = [_line_payload(text, fault == "bad-lrc") for text in texts]
            self._write(b"".join(payloads), fault)
            return [SwipeResult("lines", ()) for _ in texts]
        frames = [encode_frame(text.encode("ascii")) for text in texts]
        first = [_with_bad_lrc(frame) if fault == "bad-lrc" else frame for frame in frames]
        self._write(b"".join(first), fault)
        replies = [[self._await_reply()] for _ in frames]
        for frame, history in zip(frames, replies, strict=True):
            while history[-1] is Reply.NAK and len(history) <= self.max_retries:
                self.link.write(frame)
                history.append(self._await_reply())
        return [SwipeResult("framed", tuple(history)) for history in replies]

    def _write(self, data: bytes, fault: Fault | None) -> None:
        if fault == "noise":
            data = NOISE + data + NOISE
        if fault != "split":
            self.link.write(data)
            return
        for start in range(0, len(data), self.split_chunk_bytes):
            if start:
                time.sleep(self.split_delay_s)
            self.link.write(data[start : start + self.split_chunk_bytes])

    def _await_reply(self) -> Reply:
        """The next ACK or NAK from the terminal; other bytes are ignored."""
        deadline = time.monotonic() + self.reply_timeout_s
        while True:
            while self._inbox:  # a read may bring the replies to several frames at once
                byte = self._inbox.pop(0)
                if byte == ACK:
                    return Reply.ACK
                if byte == NAK:
                    return Reply.NAK
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return Reply.TIMEOUT
            self._inbox += self.link.read(left_s)

    def _drain(self) -> None:
        """Drop stale replies (to a swipe that timed out) so they are not taken for new ones."""
        self._inbox.clear()
        while self.link.read(0.0):
            pass


def make_track(pan: str, expiry_yymm: str, track: Literal[1, 2], with_lrc: bool = False) -> str:
    """The track text the emulator sends for a card."""
    if track == 1:
        return build_track1(pan, expiry_yymm, with_lrc=with_lrc)
    return build_track2(pan, expiry_yymm, with_lrc=with_lrc)


def describe_card(pan: str, expiry_yymm: str) -> str:
    """A printable name for a swiped card: the masked PAN, never the full one."""
    return f"{mask_pan(pan)} exp {expiry_yymm}"


def _line_payload(text: str, bad_lrc: bool) -> bytes:
    if bad_lrc:
        end = text.index("?") + 1
        good = track_lrc(text[:end])
        text = text[:end] + chr(ord(good) ^ 0x01)  # flips a data bit: same character set
    return text.encode("ascii") + LINE_END


def _with_bad_lrc(frame: bytes) -> bytes:
    lrc = frame[-1]
    bad = lrc ^ 0x01 if lrc ^ 0x01 != STX else lrc ^ 0x04  # an STX there would start a frame
    return frame[:-1] + bytes([bad])
