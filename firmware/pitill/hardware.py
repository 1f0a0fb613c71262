"""The real parts of `pitill run`, built from the config in one place: the edge of the terminal.

`build_hardware(config)` opens the gpiozero pin factory (config.gpio, or one injected by a test),
the OLED (config.display), the serial card reader (config.reader), the matrix keypad, buttons and
USB keypad (each when its `enabled` flag says so) and the LEDs, buzzer and drawer relay, and
returns them as the app's Devices. A part that cannot be opened closes the parts opened before
it and raises one HardwareError whose one-line message names the part and what to check.

On gpiozero's MockFactory (gpio.pin_factory = "mock") the matrix keypad gets a MockKeypadWiring,
so the whole terminal runs, and can be driven from its pins, with no Pi at all.

The terminal gets the OLED through a DisplayKeeper: a panel error is logged, not raised into
the loop; the panel dims when idle and wakes on a key. All of it happens on the terminal's loop,
never on a driver thread (the panel's bus is the loop's): `DisplayKeeper.waking()` wraps each
key source so a key first schedules a wake on the loop, then goes on to the terminal;
`DisplayKeeper.run()` is the loop task that lets the display dim (`pitill run` starts it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from gpiozero.pins.mock import MockFactory
from PIL import Image

from pitill.app import Devices
from pitill.config import NO_PIN, Config
from pitill.core.screens import Screen
from pitill.core.types import Key
from pitill.drivers.buttons import PhysicalButtons
from pitill.drivers.evdev_keypad import UsbKeypad  # imports evdev only when one is built
from pitill.drivers.evdev_stripe import UsbStripeReader  # the same
from pitill.drivers.hwconfig import PIN_FACTORY_FIX, open_pin_factory
from pitill.drivers.indicators import GpioIndicators
from pitill.drivers.keypad_matrix import MatrixKeypad, MockKeypadWiring
from pitill.drivers.oled import OledDisplay
from pitill.drivers.pn532_reader import Pn532Reader, load_meta_key
from pitill.drivers.protocols import KeySink, KeySource
from pitill.drivers.render import render
from pitill.drivers.serial_reader import SerialCardReader
from pitill.errors import HardwareError
from pitill.logs import log_event

if TYPE_CHECKING:
    from gpiozero.pins import Factory

log = logging.getLogger(__name__)

T = TypeVar("T")

DISPLAY_TICK_S = 1.0  # how often the loop lets the display check its idle time
PINS_BUSY_FIX = (
    "check that no other program holds these pins (is pitill already running? "
    "sudo systemctl stop pitill) and that no dtoverlay in /boot/firmware/config.txt claims them"
)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line (a log line or an error for systemctl status)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _open_part(what: str, fix: str, make: Callable[[], T]) -> T:
    """Build one part; whatever the library raises becomes a HardwareError naming the part."""
    try:
        return make()
    except HardwareError as exc:  # the driver's own message already says what to check
        raise HardwareError(one_line(exc)) from exc
    except Exception as exc:  # gpiozero, lgpio, luma, evdev each raise their own types
        raise HardwareError(f"{what}: {one_line(exc)}; {fix}") from exc


def _pins(names: list[tuple[str, int]]) -> str:
    return ", ".join(f"{name} GPIO{pin}" for name, pin in names if pin != NO_PIN)


class DisplayKeeper:
    """The Display the terminal gets: the OLED, kept going. Used on the terminal's loop only.

    A panel error (an I2C glitch on a long cable) never reaches the terminal's loop, where it
    would cut a dispatch short: it is logged once per run of failures and the terminal keeps
    selling; the next changed screen is tried again. The panel dims after display.dim_after_s
    (`run` is the task that lets it) and every key wakes it (`waking` wraps the key sources).
    """

    def __init__(self, display: OledDisplay, tick_s: float = DISPLAY_TICK_S) -> None:
        self.display = display
        self.tick_s = tick_s
        self.failures = 0
        self._failing = False

    def show(self, screen: Screen) -> Image.Image:
        try:
            image = self.display.show(screen)
        except HardwareError as exc:
            self._failed("show", exc)
            return render(screen)  # what the panel should show, for listeners and the log
        self._failing = False
        return image

    def wake(self) -> None:
        self._guard("wake", self.display.wake)

    def tick(self) -> None:
        self._guard("dim", self.display.tick)

    def close(self) -> None:
        self.display.close()

    def waking(self, source: KeySource) -> KeySource:
        """`source`, with every key waking the display before the terminal hears it."""
        return _WakingKeySource(source, self.wake)

    async def run(self) -> None:
        """Let the display dim when idle, until cancelled (a task on the terminal's loop)."""
        while True:
            await asyncio.sleep(self.tick_s)
            self.tick()

    def _guard(self, action: str, call: Callable[[], None]) -> None:
        try:
            call()
        except HardwareError as exc:
            self._failed(action, exc)
        else:
            self._failing = False

    def _failed(self, action: str, exc: HardwareError) -> None:
        self.failures += 1
        if not self._failing:
            log_event(log, "display_failed", level=logging.WARNING, action=action, error=str(exc))
        self._failing = True


class _WakingKeySource:
    """A KeySource whose keys schedule a display wake on the terminal's loop before going on."""

    def __init__(self, source: KeySource, wake: Callable[[], None]) -> None:
        self.source = source
        self._wake = wake

    def start(self, post: KeySink) -> None:
        # The terminal starts its key sources from its loop: that loop owns the display.
        loop = asyncio.get_running_loop()

        def waking_post(key: Key) -> None:  # on the driver's thread
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._wake)  # FIFO: runs before the key's dispatch
            post(key)

        self.source.start(waking_post)

    def close(self) -> None:
        self.source.close()


@dataclass
class Hardware:
    """The opened parts: `devices` for the terminal, the drivers themselves for tests and tools."""

    devices: Devices
    pin_factory: Factory
    display: OledDisplay
    keeper: DisplayKeeper  # the display as the terminal sees it
    reader: SerialCardReader | UsbStripeReader | Pn532Reader
    indicators: GpioIndicators
    keypad: MatrixKeypad | None = None
    buttons: PhysicalButtons | None = None
    usb_keypad: UsbKeypad | None = None
    mock_keypad: MockKeypadWiring | None = None  # on MockFactory: press keys on the pins
    owns_factory: bool = True  # False when the factory was injected: its owner closes it

    def describe(self) -> str:
        """What is in use, for the log: the factory, the board, and which parts are on."""
        try:
            board = f"Raspberry Pi {self.pin_factory.board_info.model}"
        except Exception:  # a factory that cannot tell its board
            board = "an unknown board"
        parts = [
            f"display {self.display.device.__class__.__name__}",
            f"reader {self.reader.config.port}",
            *(["keypad"] if self.keypad else []),
            *(["buttons"] if self.buttons else []),
            *(["usb keypad"] if self.usb_keypad else []),
        ]
        return f"{type(self.pin_factory).__name__} on {board}: {', '.join(parts)}"

    def close(self) -> None:
        """Close every part, then the pin factory we opened. Idempotent."""
        self.devices.close()
        if self.owns_factory:
            self.pin_factory.close()


def open_factory(config: Config) -> Factory:
    """The configured pin factory; every failure is a HardwareError with the fix."""
    try:
        return open_pin_factory(config.gpio)
    except HardwareError:
        raise
    except Exception as exc:  # lgpio.error when /dev/gpiochip* cannot be opened, and the like
        raise HardwareError(
            f"pin factory {config.gpio.pin_factory or '(gpiozero default)'} could not open the "
            f"GPIO chip: {one_line(exc)}; add the user to group gpio, or {PIN_FACTORY_FIX}"
        ) from exc


def build_hardware(
    config: Config,
    *,
    pin_factory: Factory | None = None,
    display_serial: Any = None,
) -> Hardware:
    """Open every configured part. `pin_factory` and `display_serial` replace the real GPIO
    and display bus (tests, benches); an injected factory is left open by Hardware.close()."""
    factory = pin_factory if pin_factory is not None else open_factory(config)
    opened: list[Callable[[], None]] = []  # closers of the parts opened so far, for a failure
    try:
        return _build(config, factory, pin_factory is None, display_serial, opened)
    except BaseException:
        for close in reversed(opened):
            try:
                close()
            except Exception as exc:  # already failing: report the first error, log this one
                log.warning("closing a part after a failed start: %s", exc)
        if pin_factory is None:
            factory.close()
        raise


def _build(
    config: Config,
    factory: Factory,
    owns_factory: bool,
    display_serial: Any,
    opened: list[Callable[[], None]],
) -> Hardware:
    display = _open_part(
        "display",
        'check the [display] section, or set display.driver = "dummy" to run without one',
        lambda: OledDisplay(config.display, serial_interface=display_serial),
    )
    opened.append(display.close)
    keeper = DisplayKeeper(display)

    ind = config.indicators
    indicators = _open_part(
        "indicators ("
        + _pins(
            [
                ("green LED", ind.green_led_pin),
                ("red LED", ind.red_led_pin),
                ("buzzer", ind.buzzer_pin if ind.buzzer_enabled else NO_PIN),
                ("drawer", ind.drawer_pin),
            ]
        )
        + ")",
        f"{PINS_BUSY_FIX}, or change the pins in [indicators]",
        lambda: GpioIndicators(ind, pin_factory=factory),
    )
    opened.append(indicators.close)

    key_sources: list[KeySource] = []
    keypad: MatrixKeypad | None = None
    mock_keypad: MockKeypadWiring | None = None
    if config.keypad.enabled:
        if isinstance(factory, MockFactory):
            mock_keypad = _mock_membrane(factory, config)
        rows = ", ".join(f"GPIO{p}" for p in config.keypad.row_pins)
        cols = ", ".join(f"GPIO{p}" for p in config.keypad.col_pins)
        keypad = _open_part(
            f"keypad (rows {rows}; columns {cols})",
            f"{PINS_BUSY_FIX}, or change keypad.row_pins / keypad.col_pins",
            lambda: MatrixKeypad(config.keypad, pin_factory=factory),
        )
        opened.append(keypad.close)
        key_sources.append(keeper.waking(keypad))

    buttons: PhysicalButtons | None = None
    if config.buttons.enabled:
        b = config.buttons
        buttons = _open_part(
            "buttons ("
            + _pins([("OK", b.ok_pin), ("CANCEL", b.cancel_pin), ("FN", b.fn_pin)])
            + ")",
            f"{PINS_BUSY_FIX}, or change the pins in [buttons]",
            lambda: PhysicalButtons(b, pin_factory=factory),
        )
        opened.append(buttons.close)
        key_sources.append(keeper.waking(buttons))

    usb_keypad: UsbKeypad | None = None
    if config.usb_keypad.enabled:
        usb_keypad = _open_part(
            f"USB keypad ({config.usb_keypad.device})",
            "usb_keypad needs the evdev package (pip install 'pitill[usb]', or python3-evdev "
            "in a venv made with --system-site-packages); or set usb_keypad.enabled = false",
            lambda: UsbKeypad(config.usb_keypad),
        )
        opened.append(usb_keypad.close)
        key_sources.append(keeper.waking(usb_keypad))

    # The reader opens its port on its own thread, and reopens it after an unplug: a missing
    # port at start is shown on screen and retried, not fatal.
    reader: SerialCardReader | UsbStripeReader | Pn532Reader
    if config.reader.type == "pn532":
        meta_key = load_meta_key(config.reader.sun_meta_key_file)  # HardwareError names the file
        reader = Pn532Reader(config.reader, meta_key=meta_key)  # nfcpy is imported when it opens
    elif config.reader.type == "usb-stripe":
        reader = _open_part(
            f"USB stripe reader ({config.reader.port})",
            "a USB stripe reader needs the evdev package (pip install 'pitill[usb]', or "
            "python3-evdev in a venv made with --system-site-packages)",
            lambda: UsbStripeReader(config.reader),
        )
    else:
        reader = _open_part(
            f"card reader ({config.reader.port})",
            "check the [reader] section",
            lambda: SerialCardReader(config.reader),
        )
    opened.append(reader.close)

    devices = Devices(display=keeper, indicators=indicators, key_sources=key_sources, reader=reader)
    return Hardware(
        devices=devices,
        pin_factory=factory,
        display=display,
        keeper=keeper,
        reader=reader,
        indicators=indicators,
        keypad=keypad,
        buttons=buttons,
        usb_keypad=usb_keypad,
        mock_keypad=mock_keypad,
        owns_factory=owns_factory,
    )


def _mock_membrane(factory: MockFactory, config: Config) -> MockKeypadWiring | None:
    """The fake keypad on the mock pins; it installs its own row pins, so it comes first."""
    try:
        return MockKeypadWiring(factory, config.keypad)
    except ValueError as exc:  # a test made those pins already: the keypad still scans them
        log.warning("no fake keypad on this MockFactory: %s", exc)
        return None
