"""A USB keyboard-wedge stripe reader read through evdev: key events -> tracks -> cards.

The reader is a HID keyboard, found and grabbed like the USB keypad (drivers/evdev_keypad.py:
same reattach after an unplug), so its keystrokes never reach a console. Key events go through
pitill.card.wedge (layout, Shift, Enter ends a swipe) and the serial reader's track validation;
a swipe becomes `sink.card`, a bad one `sink.unreadable` with the reason. No log line carries a PAN.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pitill.card.wedge import WedgeDecoder, decode_line
from pitill.config import ReaderConfig
from pitill.drivers.evdev_keypad import (
    EvdevThread,
    EventDevice,
    InputEventLike,
    _open_input_device,
)
from pitill.drivers.protocols import CardSink
from pitill.errors import CardDataError

log = logging.getLogger(__name__)
RECONNECT_POLL_S = 1.0


class UsbStripeReader(EvdevThread):
    """CardReader for `[reader] type = "usb-stripe"`; `port` is the evdev path or glob."""

    what = "USB stripe reader"
    grab_key = "reader.grab"

    def __init__(
        self,
        config: ReaderConfig,
        *,
        open_device: Callable[[str], EventDevice] = _open_input_device,
        poll_s: float = RECONNECT_POLL_S,
    ) -> None:
        super().__init__(
            config.port,
            grab=config.grab,
            poll_s=poll_s,
            open_device=open_device,
            status=self._status_to_sink,
        )
        from evdev import ecodes

        self.config = config
        self._names: dict[int, str] = {
            code: name if isinstance(name, str) else name[0] for code, name in ecodes.KEY.items()
        }
        self._decoder = WedgeDecoder(config.layout)
        self._sink: CardSink | None = None
        self.cards = 0
        self.unreadable = 0

    def start(self, sink: CardSink) -> None:
        self._sink = sink
        self._start_thread("pitill-usb-stripe")

    def _status_to_sink(self, connected: bool, detail: str) -> None:
        if self._sink is not None:
            _notify(self._sink.reader_status, connected, detail)

    def _on_event(self, event: InputEventLike) -> None:
        if event.type != self._ev_key or self._sink is None:
            return
        name = self._names.get(event.code, "")
        for line in self._decoder.feed(name, event.value):
            try:
                card = decode_line(line, self._decoder.layout)
            except CardDataError as exc:
                self.unreadable += 1
                log.warning("unreadable swipe on the USB stripe reader: %s", exc)
                _notify(self._sink.unreadable, str(exc))
            else:
                self.cards += 1
                _notify(self._sink.card, card)


def _notify(method: Callable[..., object], *args: object) -> None:
    """Call a sink method; a failing sink is logged and must not kill the reader thread."""
    try:
        method(*args)
    except Exception:
        log.exception("card sink raised; the USB stripe reader keeps running")
