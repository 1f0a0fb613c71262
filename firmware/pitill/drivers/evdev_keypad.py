"""A USB numeric keypad read through evdev, surviving unplug and replug without a restart.

The keypad is found by an explicit path or a glob (default /dev/input/by-id/*-event-kbd; the
first match in sorted order), grabbed (EVIOCGRAB) so its keys never reach the console, and read
on a thread that only posts logical keys. Key-down events (value 1) count; auto-repeats (value 2)
and releases (value 0) are ignored, so holding a key types it once.

Default map (hwconfig.DEFAULT_USB_KEYMAP, overridable per key in usb_keypad.keymap):
  KEY_KP0..KEY_KP9, KEY_0..KEY_9         digits
  KEY_KPENTER, KEY_ENTER                 OK
  KEY_BACKSPACE, KEY_KPDOT, KEY_DELETE   CLEAR
  KEY_ESC, KEY_KPMINUS                   CANCEL
  KEY_KPPLUS, KEY_NUMLOCK                FN
Evdev reports the KEY_KP* codes whatever the NumLock state.

Unplugged, the read fails with ENODEV (or, for a pipe in tests, reaches end of file): the driver
reports it through the optional `status` callback and the log, closes the device, and polls every
reconnect_poll_s until the path matches again, then opens and grabs it again.

evdev is imported lazily: it is an optional extra (it builds from source), and `find_device` and
the doctor must work without it.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import select
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from pitill.config import UsbKeypadConfig
from pitill.core.types import Key
from pitill.drivers.protocols import KeySink
from pitill.errors import ConfigError

log = logging.getLogger(__name__)

KEY_DOWN = 1  # evdev EV_KEY values: 0 up, 1 down, 2 auto-repeat

StatusSink = Callable[[bool, str], None]
"""Called with (connected, detail) when the keypad appears or goes away; thread-safe."""


class InputEventLike(Protocol):
    type: int
    code: int
    value: int


class EventDevice(Protocol):
    """What the driver needs of evdev.InputDevice (tests give it an EventIO over a pipe)."""

    fd: int

    def read(self) -> Iterable[InputEventLike]: ...

    def grab(self) -> None: ...

    def close(self) -> None: ...


def find_device(pattern: str) -> str | None:
    """The first path matching `pattern` (a path or a glob), or None when nothing matches."""
    if glob.has_magic(pattern):
        matches = sorted(glob.glob(pattern))
        return matches[0] if matches else None
    return pattern if os.path.exists(pattern) else None


def usb_keymap(config: UsbKeypadConfig) -> dict[int, Key]:
    """evdev key code -> logical key, from the default map and the config's overrides."""
    from evdev import ecodes

    keymap: dict[int, Key] = {}
    for name, key in config.merged_keymap().items():
        code = ecodes.ecodes.get(name)
        if code is None:
            raise ConfigError(f"usb_keypad.keymap.{name}: evdev knows no key by that name")
        keymap[code] = Key.parse(key)
    return keymap


def _open_input_device(path: str) -> EventDevice:
    from evdev import InputDevice

    return InputDevice(path)


class EvdevThread:
    """An evdev device read on a thread: found by path or glob, grabbed, reattached after unplug.

    Subclasses say what they are (`what`, for messages) and handle each event in `_on_event`;
    the thread only moves events, the handler only posts thread-safe results.
    """

    what = "input device"
    grab_key = "grab"

    def __init__(
        self,
        pattern: str,
        *,
        grab: bool,
        poll_s: float,
        open_device: Callable[[str], EventDevice],
        status: StatusSink | None,
    ) -> None:
        from evdev import ecodes

        self._ev_key: int = ecodes.EV_KEY
        self._pattern = pattern
        self._grab = grab
        self._poll_s = poll_s
        self._open = open_device
        self._status = status
        self._last_status: tuple[bool, str] | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()  # wakes the select() in the reader on close()
        self._thread: threading.Thread | None = None
        self.connected = False

    def _on_event(self, event: InputEventLike) -> None:
        raise NotImplementedError

    def _start_thread(self, name: str) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._wake_w < 0:
            return  # already closed
        self._stop.set()
        os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1

    def _report(self, connected: bool, detail: str) -> None:
        self.connected = connected
        if self._last_status == (connected, detail):
            return  # say it once per change, not on every poll
        self._last_status = (connected, detail)
        (log.info if connected else log.warning)("%s", detail)
        if self._status is not None:
            self._status(connected, detail)

    def _run(self) -> None:
        while True:
            attached = self._attach()
            if attached is None:
                return  # closing
            path, device = attached
            try:
                gone = self._pump(device)
            finally:
                with contextlib.suppress(OSError):  # already gone with the hardware
                    device.close()
            if not gone:
                return
            self._report(False, f"{self.what} {path} unplugged: {gone}; waiting for it")
            if self._stop.wait(self._poll_s):
                return

    def _attach(self) -> tuple[str, EventDevice] | None:
        """Poll until the device is found, opened and grabbed; None when closing."""
        while not self._stop.is_set():
            path = find_device(self._pattern)
            if path is None:
                problem = f"no {self.what} matches {self._pattern}: plug it in"
            else:
                try:
                    device = self._open(path)
                except OSError as exc:
                    problem = f"cannot open {self.what} {path}: {exc.strerror or exc}" + (
                        " (add the user to group input)" if exc.errno == 13 else ""
                    )
                else:
                    try:
                        if self._grab:
                            device.grab()
                    except OSError as exc:
                        device.close()
                        problem = (
                            f"cannot grab {self.what} {path}: {exc.strerror or exc}; another "
                            f"program holds it (stop it, or set {self.grab_key} = false)"
                        )
                    else:
                        self._report(True, f"{self.what} {path} attached")
                        return path, device
            self._report(False, problem)
            self._stop.wait(self._poll_s)
        return None

    def _pump(self, device: EventDevice) -> str:
        """Handle events until the device goes away (returns why) or close() ("" returned)."""
        while True:
            try:
                readable, _, _ = select.select([device.fd, self._wake_r], [], [])
            except (OSError, ValueError) as exc:
                return f"select failed: {exc}"
            if self._wake_r in readable:
                return ""
            try:
                events = list(device.read())
            except BlockingIOError:
                continue
            except OSError as exc:  # ENODEV: unplugged
                return exc.strerror or str(exc)
            if not events:
                return "end of file"
            for event in events:
                self._on_event(event)


class UsbKeypad(EvdevThread):
    """KeySource for a USB keypad; a thread attaches, reads, and reattaches after an unplug."""

    what = "USB keypad"
    grab_key = "usb_keypad.grab"

    def __init__(
        self,
        config: UsbKeypadConfig,
        *,
        open_device: Callable[[str], EventDevice] = _open_input_device,
        status: StatusSink | None = None,
    ) -> None:
        super().__init__(
            config.device,
            grab=config.grab,
            poll_s=config.reconnect_poll_s,
            open_device=open_device,
            status=status,
        )
        self._keymap = usb_keymap(config)
        self._post: KeySink | None = None

    def start(self, post: KeySink) -> None:
        self._post = post
        self._start_thread("pitill-usb-keypad")

    def _on_event(self, event: InputEventLike) -> None:
        if event.type == self._ev_key and event.value == KEY_DOWN:
            key = self._keymap.get(event.code)
            if key is not None and self._post is not None:
                self._post(key)
