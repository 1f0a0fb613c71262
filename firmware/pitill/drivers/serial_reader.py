"""The serial magstripe reader over pyserial: one thread that reads bytes and hands cards to a sink.

The thread only moves bytes (pyserial's `threaded` model): it decodes them with pitill.card.framing
(framed or lines protocol), answers ACK/NAK in the framed protocol, parses the track with
pitill.card.track and calls the sink, whose methods are thread-safe. Garbage is dropped and counted
and never stops the reader. When the port vanishes (USB unplugged, SerialException or OSError) the
sink hears `reader_status(False, ...)` and the thread reopens the configured path with a bounded
backoff until it is back. No log line or status text carries a PAN.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import serial

from pitill.card.framing import (
    DecodedFrame,
    Decoder,
    FrameDecoder,
    FrameRejected,
    LineDecoder,
    RejectReason,
)
from pitill.card.track import parse_track
from pitill.config import ReaderConfig
from pitill.drivers.protocols import CardSink
from pitill.errors import CardDataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReaderStats:
    """Counters since start; a snapshot, safe to read from any thread."""

    cards: int = 0
    unreadable: int = 0
    frames_ok: int = 0
    frames_bad_lrc: int = 0
    frames_dropped: int = 0  # torn or too long
    bytes_dropped: int = 0
    disconnects: int = 0
    connects: int = 0


class SerialCardReader:
    """A CardReader over a serial port (pitill.drivers.protocols.CardReader)."""

    def __init__(
        self,
        config: ReaderConfig,
        *,
        read_timeout_s: float = 0.2,
        write_timeout_s: float = 1.0,
        reopen_initial_s: float = 0.25,
        reopen_max_s: float = 5.0,
        join_timeout_s: float = 2.0,
    ) -> None:
        config.validate("reader")
        self.config = config
        self._read_timeout_s = read_timeout_s
        self._write_timeout_s = write_timeout_s
        self._reopen_initial_s = reopen_initial_s
        self._reopen_max_s = reopen_max_s
        self._join_timeout_s = join_timeout_s
        self._decoder: Decoder = FrameDecoder() if config.protocol == "framed" else LineDecoder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port: serial.Serial | None = None
        self._port_lock = threading.Lock()  # guards _port between the thread and close()
        self._counts = dict.fromkeys(
            ("cards", "unreadable", "frames_ok", "frames_bad_lrc", "frames_dropped"), 0
        )
        self._disconnects = 0
        self._connects = 0

    @property
    def stats(self) -> ReaderStats:
        return ReaderStats(
            **self._counts,
            bytes_dropped=self._decoder.bytes_dropped,
            disconnects=self._disconnects,
            connects=self._connects,
        )

    @property
    def connected(self) -> bool:
        return self._port is not None

    def start(self, sink: CardSink) -> None:
        if self._thread is not None:
            raise RuntimeError("SerialCardReader.start() was already called")
        self._thread = threading.Thread(
            target=self._run, args=(sink,), name=f"card-reader {self.config.port}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (it wakes from a read at once) and close the port."""
        self._stop.set()
        with self._port_lock:
            if self._port is not None:
                with contextlib.suppress(OSError):  # a failing port: the thread leaves anyway
                    self._port.cancel_read()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self._join_timeout_s)
            if self._thread.is_alive():
                log.warning("card reader thread did not stop within %.1f s", self._join_timeout_s)

    def _run(self, sink: CardSink) -> None:
        backoff_s = self._reopen_initial_s
        reported_down = False
        while not self._stop.is_set():
            port = self._open(sink, reported_down)
            if port is None:
                reported_down = True
                self._stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, self._reopen_max_s)
                continue
            backoff_s = self._reopen_initial_s
            reported_down = self._serve(port, sink)
        self._close_port()

    def _open(self, sink: CardSink, reported_down: bool) -> serial.Serial | None:
        """Open the configured port; tell the sink once when it cannot be opened."""
        try:
            port = serial.Serial(
                self.config.port,
                self.config.baudrate,
                timeout=self._read_timeout_s,
                write_timeout=self._write_timeout_s,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            if not reported_down:
                _notify(
                    sink.reader_status,
                    False,
                    f"card reader not available at {self.config.port} ({exc}); check the"
                    " cable, reader.port and the dialout group; retrying",
                )
            return None
        with self._port_lock:
            self._port = port
        self._decoder.reset()  # a frame torn by the reconnect is not a frame
        self._connects += 1
        log.info("card reader connected on %s", self.config.port)
        _notify(sink.reader_status, True, f"card reader connected on {self.config.port}")
        return port

    def _serve(self, port: serial.Serial, sink: CardSink) -> bool:
        """Read until close() or the port fails; True when it failed (and the sink was told)."""
        try:
            while not self._stop.is_set():
                chunk = port.read(max(1, port.in_waiting))
                if chunk:
                    self._handle(port, sink, self._decoder.feed(chunk))
        except (serial.SerialException, OSError) as exc:
            if self._stop.is_set():
                return False
            self._disconnects += 1
            self._close_port()
            log.warning("card reader lost on %s: %s", self.config.port, exc)
            _notify(
                sink.reader_status,
                False,
                f"card reader lost on {self.config.port}; waiting for it to come back",
            )
            return True
        return False

    def _handle(
        self, port: serial.Serial, sink: CardSink, results: list[DecodedFrame | FrameRejected]
    ) -> None:
        for result in results:
            if result.reply:
                port.write(result.reply)
            if isinstance(result, DecodedFrame):
                self._counts["frames_ok"] += 1
                self._deliver(result.data, sink)
            elif result.reason is RejectReason.BAD_LRC:
                self._counts["frames_bad_lrc"] += 1
                log.warning("card reader frame with a bad LRC: NAK sent")
            else:
                self._counts["frames_dropped"] += 1
                log.warning("card reader frame dropped (%s, %d bytes)", result.reason, result.size)

    def _deliver(self, data: bytes, sink: CardSink) -> None:
        try:
            card = parse_track(data.decode("ascii"))
        except UnicodeDecodeError:
            reason = "track data is not ASCII; swipe again"
        except CardDataError as exc:
            reason = str(exc)
        else:
            self._counts["cards"] += 1
            _notify(sink.card, card)
            return
        self._counts["unreadable"] += 1
        log.warning("unreadable swipe: %s", reason)
        _notify(sink.unreadable, reason)

    def _close_port(self) -> None:
        with self._port_lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError) as exc:
                log.debug("closing %s: %s", self.config.port, exc)


def _notify(method: Callable[..., object], *args: object) -> None:
    """Call a sink method; a failing sink is logged and must not kill the reader thread."""
    try:
        method(*args)
    except Exception:
        log.exception("card sink raised; the reader keeps running")
