"""Configuration of the GPIO input and indicator parts: keypad, buttons, USB keypad, LEDs, buzzer.

Each section is a frozen dataclass the config loader (pitill.config) fills from TOML and validates
with `validate(at)`. Pins are BCM GPIO numbers 0..27; -1 (NO_PIN) means "not fitted". A pin may be
used once across the whole hardware config: every section lists its pins with `pin_uses(at)` and
`check_pin_conflicts` compares them all (the lead's Config.validate calls it with every section).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Literal

from pitill.core.types import Key
from pitill.errors import ConfigError, HardwareError

if TYPE_CHECKING:
    from gpiozero.pins import Factory

NO_PIN = -1
"""A pin setting of -1 means the part is not fitted."""

MAX_BCM_PIN = 27  # GPIO0..GPIO27 are on the 40-pin header of every Pi model

PinUse = tuple[str, int]
"""(dotted config key, BCM pin), e.g. ("keypad.row_pins[0]", 5)."""

# Pins the kernel owns when an interface is on; the lead adds these to check_pin_conflicts when
# the display uses I2C bus 1 or the card reader uses the header UART.
I2C1_PINS: tuple[PinUse, ...] = (("display: I2C1 SDA", 2), ("display: I2C1 SCL", 3))
UART_PINS: tuple[PinUse, ...] = (("reader: UART TXD", 14), ("reader: UART RXD", 15))

# Layout character -> logical key for the common 4x4 membrane keypad. Digits on the layout always
# stand for themselves unless listed; B and C stay unmapped.
DEFAULT_MATRIX_KEYMAP: dict[str, str] = {"#": "OK", "*": "CLEAR", "D": "CANCEL", "A": "FN"}

# evdev key name -> logical key for a USB numeric keypad. Evdev reports KEY_KP* codes whatever the
# NumLock state, so the keypad works with NumLock on or off.
DEFAULT_USB_KEYMAP: dict[str, str] = {
    **{f"KEY_KP{d}": str(d) for d in range(10)},
    **{f"KEY_{d}": str(d) for d in range(10)},
    "KEY_KPENTER": "OK",
    "KEY_ENTER": "OK",
    "KEY_BACKSPACE": "CLEAR",
    "KEY_KPDOT": "CLEAR",
    "KEY_DELETE": "CLEAR",
    "KEY_ESC": "CANCEL",
    "KEY_KPMINUS": "CANCEL",
    "KEY_KPPLUS": "FN",
    "KEY_NUMLOCK": "FN",
}

PinFactoryName = Literal["", "lgpio", "rpigpio", "pigpio", "native", "mock"]
PIN_FACTORY_NAMES: tuple[str, ...] = ("", "lgpio", "rpigpio", "pigpio", "native", "mock")


def _check_pin(at: str, name: str, pin: int, *, optional: bool) -> None:
    if optional and pin == NO_PIN:
        return
    if not 0 <= pin <= MAX_BCM_PIN:
        absent = " or -1 for none" if optional else ""
        raise ConfigError(f"{at}.{name}: must be a BCM GPIO number 0..27{absent}, got {pin}")


def _check_key_name(key: str, name: str) -> None:
    try:
        Key.parse(name)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _check_positive(at: str, name: str, value: float, *, max_value: float) -> None:
    if not 0 < value <= max_value:
        raise ConfigError(f"{at}.{name}: must be > 0 and <= {max_value} seconds, got {value}")


def check_pin_conflicts(uses: Iterable[PinUse]) -> None:
    """Raise ConfigError naming both keys when two settings use the same GPIO pin."""
    seen: dict[int, str] = {}
    for key, pin in uses:
        if pin in seen:
            raise ConfigError(f"{key}: GPIO{pin} is already used by {seen[pin]}; pick a free pin")
        seen[pin] = key


@dataclass(frozen=True)
class KeypadConfig:
    """A membrane matrix keypad: rows are driven, columns are pulled-up inputs."""

    enabled: bool = True
    row_pins: tuple[int, ...] = (5, 6, 13, 19)
    col_pins: tuple[int, ...] = (12, 16, 20, 21)
    layout: tuple[str, ...] = ("123A", "456B", "789C", "*0#D")  # one string per row, top first
    # Layout character -> key name; replaces the default as a whole. Digits map to themselves.
    keymap: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MATRIX_KEYMAP))
    scan_interval_s: float = 0.01  # while a key is down or was lately
    idle_scan_interval_s: float = 0.05  # while nothing was pressed for a second: saves CPU
    stable_scans: int = 3  # identical scans before a press or release counts

    def validate(self, at: str) -> None:
        for name in ("row_pins", "col_pins"):
            pins: tuple[int, ...] = getattr(self, name)
            if not pins:
                raise ConfigError(f"{at}.{name}: must list at least one pin")
            for i, pin in enumerate(pins):
                _check_pin(at, f"{name}[{i}]", pin, optional=False)
        check_pin_conflicts(self.pin_uses(at, force=True))
        if len(self.layout) != len(self.row_pins):
            raise ConfigError(
                f"{at}.layout: has {len(self.layout)} rows but row_pins has "
                f"{len(self.row_pins)} pins; give one string per row"
            )
        for i, row in enumerate(self.layout):
            if len(row) != len(self.col_pins):
                raise ConfigError(
                    f"{at}.layout[{i}]: {row!r} has {len(row)} characters but col_pins has "
                    f"{len(self.col_pins)} pins; give one character per column"
                )
        chars = "".join(self.layout)
        if len(set(chars)) != len(chars) or any(c.isspace() for c in chars):
            raise ConfigError(
                f"{at}.layout: every key needs its own visible character, got {self.layout!r}"
            )
        for char, name in self.keymap.items():
            if char not in chars:
                raise ConfigError(
                    f"{at}.keymap.{char}: {char!r} is not a character of {at}.layout "
                    f"({' '.join(self.layout)}); list only keys on your keypad"
                )
            _check_key_name(f"{at}.keymap.{char}", name)
        _check_positive(at, "scan_interval_s", self.scan_interval_s, max_value=0.1)
        _check_positive(at, "idle_scan_interval_s", self.idle_scan_interval_s, max_value=0.2)
        if not 1 <= self.stable_scans <= 20:
            raise ConfigError(f"{at}.stable_scans: must be 1..20, got {self.stable_scans}")

    def pin_uses(self, at: str, *, force: bool = False) -> list[PinUse]:
        """The pins this section claims (none when disabled, unless `force`)."""
        if not (self.enabled or force):
            return []
        rows = [(f"{at}.row_pins[{i}]", p) for i, p in enumerate(self.row_pins)]
        return rows + [(f"{at}.col_pins[{i}]", p) for i, p in enumerate(self.col_pins)]


@dataclass(frozen=True)
class ButtonsConfig:
    """Big push buttons wired from a GPIO pin to GND (internal pull-ups); -1 = not fitted."""

    enabled: bool = False
    ok_pin: int = 26
    cancel_pin: int = 23
    fn_pin: int = 4
    debounce_s: float = 0.05  # a press needs this long of quiet on the pin before it

    def validate(self, at: str) -> None:
        for name, pin in self._pins():
            _check_pin(at, name, pin, optional=True)
        if self.enabled and not self.pin_uses(at):
            raise ConfigError(f"{at}: enabled but ok_pin, cancel_pin and fn_pin are all -1")
        check_pin_conflicts(self.pin_uses(at, force=True))
        _check_positive(at, "debounce_s", self.debounce_s, max_value=1.0)

    def _pins(self) -> list[tuple[str, int]]:
        return [("ok_pin", self.ok_pin), ("cancel_pin", self.cancel_pin), ("fn_pin", self.fn_pin)]

    def pin_uses(self, at: str, *, force: bool = False) -> list[PinUse]:
        if not (self.enabled or force):
            return []
        return [(f"{at}.{name}", pin) for name, pin in self._pins() if pin != NO_PIN]


@dataclass(frozen=True)
class UsbKeypadConfig:
    """A USB numeric keypad read through evdev (Linux input events)."""

    enabled: bool = False
    device: str = "/dev/input/by-id/*-event-kbd"  # a path or a glob; the first match is used
    grab: bool = True  # keep its keys away from the console and other programs
    # evdev key name -> key name, merged over DEFAULT_USB_KEYMAP; "" unmaps a key.
    keymap: dict[str, str] = field(default_factory=dict)
    reconnect_poll_s: float = 1.0  # how often to look for the keypad while it is unplugged

    def validate(self, at: str) -> None:
        if not self.device.startswith("/"):
            raise ConfigError(f"{at}.device: must be an absolute path or glob, got {self.device!r}")
        known = _evdev_key_names()
        for code_name, name in self.keymap.items():
            key = f"{at}.keymap.{code_name}"
            if not code_name.startswith("KEY_") or (known and code_name not in known):
                raise ConfigError(
                    f"{key}: not an evdev key name (like KEY_KP5); "
                    "run `python -m evdev.evtest` to see what your keypad sends"
                )
            if name:
                _check_key_name(key, name)
        _check_positive(at, "reconnect_poll_s", self.reconnect_poll_s, max_value=60.0)

    def merged_keymap(self) -> dict[str, str]:
        """DEFAULT_USB_KEYMAP with the overrides applied and unmapped ("") entries removed."""
        merged = {**DEFAULT_USB_KEYMAP, **self.keymap}
        return {code: name for code, name in merged.items() if name}


def _evdev_key_names() -> frozenset[str]:
    """Key names evdev knows, or empty when evdev is not installed (only the prefix is checked)."""
    try:
        from evdev import ecodes
    except ImportError:
        return frozenset()
    return frozenset(name for name in ecodes.ecodes if name.startswith("KEY_"))


@dataclass(frozen=True)
class IndicatorsConfig:
    """LEDs (through a resistor to GND), an active buzzer via a transistor, the drawer relay."""

    green_led_pin: int = 17
    red_led_pin: int = 27
    buzzer_pin: int = 18
    buzzer_enabled: bool = True  # false: silent, and the pin stays free
    drawer_pin: int = 22
    drawer_active_high: bool = True  # false for relay boards that switch on a low input
    drawer_pulse_s: float = 0.2  # long enough to release the latch, short enough not to cook it

    def validate(self, at: str) -> None:
        for name in ("green_led_pin", "red_led_pin", "buzzer_pin", "drawer_pin"):
            _check_pin(at, name, getattr(self, name), optional=True)
        check_pin_conflicts(self.pin_uses(at))
        _check_positive(at, "drawer_pulse_s", self.drawer_pulse_s, max_value=2.0)

    def pin_uses(self, at: str) -> list[PinUse]:
        names = ["green_led_pin", "red_led_pin", "drawer_pin"]
        if self.buzzer_enabled:
            names.append("buzzer_pin")
        return [(f"{at}.{n}", getattr(self, n)) for n in names if getattr(self, n) != NO_PIN]


@dataclass(frozen=True)
class GpioConfig:
    # "" lets gpiozero choose (GPIOZERO_PIN_FACTORY, else lgpio, rpigpio, pigpio, native);
    # a Pi 5 needs "lgpio"; "mock" runs without hardware.
    pin_factory: PinFactoryName = ""

    def validate(self, at: str) -> None:
        if self.pin_factory not in PIN_FACTORY_NAMES:
            raise ConfigError(
                f"{at}.pin_factory: must be one of {', '.join(map(repr, PIN_FACTORY_NAMES))}, "
                f"got {self.pin_factory!r}"
            )


PIN_FACTORY_FIX = (
    "on a Pi install lgpio (apt install python3-lgpio; a Pi 5 needs it) or set gpio.pin_factory "
    '/ GPIOZERO_PIN_FACTORY; off a Pi use gpio.pin_factory = "mock"'
)


def set_lgpio_workdir() -> str:
    """Give lgpio a private writable directory (LG_WD) unless one is set; returns it.

    lgpio makes its notification pipe (.lgd-nfy*, named per process, not per user) in LG_WD, by
    default the working directory, when it loads. That directory may be read-only for the user
    (`sudo -u pitill pitill doctor` from a home directory) or someone's checkout: the import then
    fails, or leaves the pipe behind. The unit sets LG_WD=/run/pitill; a run by hand gets a
    temporary directory, removed at exit. Call it before anything imports lgpio.
    """
    workdir = os.environ.get("LG_WD")
    if not workdir:
        workdir = tempfile.mkdtemp(prefix="pitill-lgpio-")
        atexit.register(shutil.rmtree, workdir, True)
        os.environ["LG_WD"] = workdir
    return workdir


def open_pin_factory(config: GpioConfig) -> Factory:
    """The gpiozero pin factory the config asks for; HardwareError says why one cannot load.

    The message is "<reason>; <PIN_FACTORY_FIX>".
    """
    set_lgpio_workdir()  # lgpio (also behind rpigpio's rpi-lgpio on a Pi 5) reads it on import
    from gpiozero import Device
    from gpiozero.exc import BadPinFactory, GPIOZeroError

    name = config.pin_factory
    if not name:
        with warnings.catch_warnings(record=True) as fallbacks:
            warnings.simplefilter("always")
            try:
                Device.ensure_pin_factory()
            except BadPinFactory:
                tried = "; ".join(
                    str(w.message).removeprefix("Falling back from ") for w in fallbacks
                )
                raise HardwareError(
                    "no GPIO pin factory could be loaded (not a Raspberry Pi?): "
                    f"{tried or 'none installed'}; {PIN_FACTORY_FIX}"
                ) from None
        factory: Factory = Device.pin_factory
        return factory
    entry = next((e for e in entry_points(group="gpiozero_pin_factories") if e.name == name), None)
    if entry is None:
        raise HardwareError(f"gpiozero has no pin factory named {name!r}; {PIN_FACTORY_FIX}")
    try:
        made: Factory = entry.load()()
    except (ImportError, OSError, RuntimeError, GPIOZeroError) as exc:
        raise HardwareError(
            f"pin factory {name!r} could not be loaded: {exc}; {PIN_FACTORY_FIX}"
        ) from None
    return made
