"""The configuration: read once at start from TOML, validated strictly, frozen afterwards.

Every section is a frozen dataclass; the loader walks them, so adding a key is adding a field.
Every number's allowed range is in one table, BOUNDS, and every rule between two keys in one
table, ORDERS; a section's `validate(at)` checks both for its keys, then its own structure (pin
conflicts, keypad layout). An unknown key, a wrong type or a bad value fails at start with the
dotted key, the value and what is allowed, on one line.

This module is a leaf of the shell: it imports the core's types and nothing of drivers/ (the
drivers import their config sections from here), so reading a config loads no hardware library.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar

from pitill.core.state import OfflineLimits, PhaseTimeouts
from pitill.core.types import Key, OfflineMode
from pitill.errors import ConfigError
from pitill.textfile import path_text, read_text
from pitill.upstream.wireformat import BitmapEncoding, LengthPrefix, WireFormat
from pitill.web.bind import parse_bind

EXAMPLE_CONFIG = "hw/pitill.example.toml"
MAX_CONFIG_BYTES = 1 << 20  # a real config is a few kB

# ISO 4217 alpha -> (numeric code, minor-unit exponent), for the currencies a workshop may use.
CURRENCIES: dict[str, tuple[str, int]] = {
    "EUR": ("978", 2),
    "USD": ("840", 2),
    "GBP": ("826", 2),
    "CHF": ("756", 2),
    "SEK": ("752", 2),
    "NOK": ("578", 2),
    "DKK": ("208", 2),
    "ISK": ("352", 0),
    "JPY": ("392", 0),
    "CAD": ("124", 2),
    "AUD": ("036", 2),
    "PLN": ("985", 2),
    "CZK": ("203", 2),
}

# ISO 8583 fixed-length "ans" fields: field 41 (card acceptor terminal id) and 42 (merchant id).
ISO_ID_LENGTHS: dict[str, int] = {"terminal_id": 8, "merchant_id": 15}


# --- ranges and rules -----------------------------------------------------------------------


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shown(value: object) -> str:
    """A value for an error message: repr, on one line, not endless."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Bound:
    """The values one numeric key allows: low..high, plus a few special values with a meaning."""

    low: float
    high: float
    unit: str = ""  # "s" for seconds
    special: tuple[tuple[int, str], ...] = ()  # e.g. ((-1, "not fitted"),)
    what: str = ""  # what the number is, for the error message: "a BCM GPIO number"
    hex: bool = False  # written 0x03..0x77 (I2C addresses)

    def allows(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False  # NaN compares false with everything: say so, not rely on it
        return self.low <= value <= self.high or any(value == v for v, _ in self.special)

    def text(self) -> str:
        """How the example config and the error messages write this range."""
        low, high = (f"0x{int(v):02X}" if self.hex else _num(v) for v in (self.low, self.high))
        span = low if self.low == self.high else f"{low}..{high}"
        if self.unit:
            span += f" {self.unit}"
        return span + "".join(f" or {_num(v)} ({meaning})" for v, meaning in self.special)

    def problem(self, key: str, value: float) -> str | None:
        if self.allows(value):
            return None
        what = f"{self.what} " if self.what else ""
        return f"{key}: must be {what}{self.text()}, got {_shown(value)}"


@dataclass(frozen=True)
class Order:
    """`low_key` must be below `high_key` (or at most it, when not strict), because `why`."""

    low_key: str
    high_key: str
    strict: bool
    why: str

    def problem(self, low: float, high: float) -> str | None:
        if low < high or (low == high and not self.strict):
            return None
        relation = "less than" if self.strict else "at most"
        return (
            f"{self.low_key}: {_shown(low)} must be {relation} {self.high_key} ({_shown(high)}): "
            f"{self.why}; change one of them"
        )


SECONDS = "s"
COUNT = Bound(1, 1_000_000)  # probes or requests in a row; 1000000 is "never" (tests use it)
AMOUNT = Bound(0, 999_999_999_999)  # ISO 8583 field 4 holds 12 digits
# BCM GPIO0..27: the 40-pin header of every Pi model
PIN = Bound(0, 27, special=((-1, "not fitted"),), what="a BCM GPIO number")
PIN_FITTED = Bound(0, 27, what="a BCM GPIO number")


def _seconds(low: float, high: float, **kwargs: Any) -> Bound:
    return Bound(low, high, SECONDS, **kwargs)


# --- the parts' constants ---------------------------------------------------------------------

NO_PIN = -1
"""A pin setting of -1 means the part is not fitted."""

MAX_BCM_PIN = 27  # GPIO0..GPIO27 are on the 40-pin header of every Pi model

PinUse = tuple[str, int]
"""(dotted config key, BCM pin), e.g. ("keypad.row_pins[0]", 5)."""

# Pins the kernel owns when an interface is on; Config.validate adds them to the pin check when
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
PIN_FACTORY_NAMES: tuple[str, ...] = typing.get_args(PinFactoryName)
DisplayDriver = Literal["ssd1306", "sh1106", "ssd1309", "dummy"]
DisplayInterface = Literal["i2c", "spi"]
ReaderProtocol = Literal["framed", "lines"]
READER_PROTOCOLS: tuple[ReaderProtocol, ...] = typing.get_args(ReaderProtocol)
ReaderType = Literal["serial-stripe", "usb-stripe", "pn532"]
WedgeLayout = Literal["us", "de"]


def check_pin_conflicts(uses: Iterable[PinUse]) -> None:
    """Raise ConfigError naming both keys when two settings use the same GPIO pin."""
    seen: dict[int, str] = {}
    for key, pin in uses:
        if pin in seen:
            raise ConfigError(f"{key}: GPIO{pin} is already used by {seen[pin]}; pick a free pin")
        seen[pin] = key


def _check_key_name(key: str, name: str) -> None:
    try:
        Key.parse(name)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def _key(at: str, name: object) -> str:
    """A dotted key; a name that is not a plain word is quoted, so a message stays one line."""
    text = str(name)
    plain = text and all(c.isalnum() or c in "_-#*" for c in text) and text.isascii()
    part = text if plain else repr(text)
    return f"{at}.{part}" if at else part


# --- the sections -----------------------------------------------------------------------------


def _check_section(obj: object, at: str) -> None:
    """Raise the first range or rule problem of one section (its `validate` starts with this)."""
    problems = section_problems(obj, at)
    if problems:
        raise ConfigError(problems[0])


@dataclass(frozen=True)
class TerminalConfig:
    # ISO 8583 field 41, 8 characters, and field 42, 15: printable ASCII from the acquirer. A
    # shorter id is padded with spaces on the right to its length, as ISO 8583 pads a fixed
    # "ans" field, and is sent, logged and compared padded.
    terminal_id: str = "PITILL01"
    merchant_id: str = "PITILLSHOP00001"
    currency: str = "EUR"
    max_amount_minor: int = 999_999  # the largest sale the keypad accepts
    void_window_s: float = 600.0  # FN 3 voids the last sale this long after it (running time)

    def __post_init__(self) -> None:
        for name, length in ISO_ID_LENGTHS.items():
            value = getattr(self, name)
            if _id_ok(value, length):
                object.__setattr__(self, name, value.ljust(length))

    def validate(self, at: str) -> None:
        _check_section(self, at)
        for name, length in ISO_ID_LENGTHS.items():
            value = getattr(self, name)
            if not _id_ok(value, length):
                field_no = 41 if name == "terminal_id" else 42
                raise ConfigError(
                    f"{at}.{name}: must be 1..{length} printable ASCII characters, not starting "
                    f"with a space (ISO 8583 field {field_no}; a shorter id is padded with spaces "
                    f"on the right), got {_shown(value)}"
                )
        if self.currency not in CURRENCIES:
            known = ", ".join(sorted(CURRENCIES))
            raise ConfigError(
                f"{at}.currency: unknown currency {_shown(self.currency)}; known: {known}"
            )

    @property
    def currency_numeric(self) -> str:
        return CURRENCIES[self.currency][0]

    @property
    def currency_exponent(self) -> int:
        return CURRENCIES[self.currency][1]


def _id_ok(value: object, length: int) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= length
        and all(" " <= c <= "~" for c in value)
        and not value.startswith(" ")
    )


@dataclass(frozen=True)
class OfflineConfig:
    """What the terminal may do with cards while it cannot reach the host."""

    mode: OfflineMode = OfflineMode.PREFER_ONLINE
    floor_limit_minor: int = 2500  # a card sale at or under this may be approved offline
    max_total_minor: int = 50_000  # all offline approvals not yet acknowledged, together
    max_count: int = 20  # how many of them
    max_age_s: float = 24 * 3600.0  # the oldest must reach the host within this
    age_alarm_s: float = 20 * 3600.0  # screen and buzzer warn from this age on
    max_per_card: int = 3  # offline sales of one card until the host approves it online
    uid_only_floor_limit_minor: int = 0  # UID-only NFC cards are clonable: online only by default
    refund_floor_limit_minor: int = 1000  # the largest card refund given offline (FN 4)
    refund_max_total_minor: int = 2000  # all offline refunds not yet acknowledged, together

    def limits(self) -> OfflineLimits:
        """The core's view: every field but the mode."""
        fields = dataclasses.asdict(self)
        del fields["mode"]
        return OfflineLimits(**fields)

    def validate(self, at: str) -> None:
        _check_section(self, at)


@dataclass(frozen=True)
class UpstreamConfig:
    host: str = "acquirer.pitill.test"
    port: int = 8583
    request_timeout_s: float = 3.0  # a 0200 with no answer by then has an unknown outcome
    # The link monitor (upstream/monitor.py) watches one persistent connection: TCP keepalive
    # (the host's kernel answers, its application never sees it), the name re-resolved, and an
    # 0800 echo only after echo_interval_s without any answer; echoes every probe_interval_s
    # only while a fault is suspected or the link is down.
    echo_interval_s: float = 60.0  # an idle link: one echo a minute at most
    probe_interval_s: float = 0.5  # echo probes while suspected or down, start to start
    probe_timeout_s: float = 1.0
    resolve_interval_s: float = 0.5  # the host's name re-resolved (DNS faults in <= 1 s)
    # A lookup of the name with no answer this long (asked again within it) is a dead DNS
    # server (upstream/resolver.py); raise it where the DNS server is slow (a satellite link).
    lookup_timeout_s: float = 0.4
    keepalive_idle_s: int = 1  # kernel keepalive probe after this much silence (whole seconds)
    keepalive_grace_s: float = 0.15  # a probe unanswered this long (or 3 RTTs): one failure
    tcp_user_timeout_s: float = 2.0  # unacknowledged data this long: the kernel drops it
    fail_threshold: int = 2  # consecutive failed probes before OFFLINE
    recover_threshold: int = 2  # consecutive good probes before ONLINE again
    slow_threshold_s: float = 0.5  # an echo slower than this makes the link DEGRADED
    forward_retry_s: float = (
        1.0  # first backoff of the forwarder, doubled up to forward_retry_max_s
    )
    forward_retry_max_s: float = 30.0
    # Advices (and reversals) in flight at most while the backlog drains: over a 30 ms round trip
    # one at a time is ~33 a second, 32 up to ~1000 (journal/forwarder.py, upstream/window.py);
    # the window opens up to this while answers come within slow_threshold_s.
    forward_window: int = 32
    # After a heal, wait a random time in [0, this] before draining the backlog, so a fleet
    # healing at once does not hit the host all in the same second; 0: drain at once.
    forward_jitter_s: float = 3.0
    # Several hosts, primary first, each "name:port", "name" (with `port`) or "[v6addr]:port";
    # tried in order before the terminal is offline. Empty: the one host `host`:`port`.
    hosts: tuple[str, ...] = ()
    tls: bool = False  # TLS on the upstream connection; the certificate must match the name
    tls_ca_file: str = ""  # PEM CA certificates to trust; "" = the system's CAs
    # Mutual TLS: this terminal's certificate and key (PEM), as `pitill host terminal add` issues
    # them; both or neither.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    cache_resolved: bool = True  # remember resolved addresses (DATA_DIR/resolved-hosts.json)
    request_fail_threshold: int = 3  # real requests failing or answered 91/96 in a row: OFFLINE
    failing_hold_s: float = 10.0  # ...for this long, though echoes answer; then one tries again
    # How messages look on the wire, as the host wants them (upstream/wireformat.py)
    bitmap: BitmapEncoding = "ascii"  # "ascii": 16 hex characters; "binary": 8 bytes
    length_prefix: LengthPrefix = "2-byte-binary"  # or "4-digit-ascii", "4-byte-binary"

    @property
    def wire(self) -> WireFormat:
        return WireFormat(self.bitmap, self.length_prefix)

    def endpoints(self) -> tuple[tuple[str, int], ...]:
        """(host, port) of each upstream host, primary first."""
        if not self.hosts:
            return ((self.host, self.port),)
        return tuple(self.parse_host_entry(entry, self.port) for entry in self.hosts)

    @staticmethod
    def parse_host_entry(entry: str, default_port: int) -> tuple[str, int]:
        """(host, port) of one hosts entry: name:port, name, [v6addr]:port or a bare v6 address.

        Raises ValueError saying what is wrong with it.
        """
        if not entry or any(c.isspace() or not c.isprintable() for c in entry):
            raise ValueError("empty, or has spaces")
        port_text: str | None = None
        if entry.startswith("["):
            host, bracket, rest = entry[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError("a bracketed address must be [address] or [address]:port")
            port_text = rest[1:] if rest else None
        elif entry.count(":") == 1:
            host, port_text = entry.split(":")
        else:
            host = entry  # a name, or an IPv6 address without a port
        if not host:
            raise ValueError("no host name")
        if port_text is None:
            return host, default_port
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise ValueError(f"port {port_text!r} is not 1..65535")
        return host, int(port_text)

    def validate(self, at: str) -> None:
        _check_section(self, at)
        if not self.host or any(c.isspace() or not c.isprintable() for c in self.host):
            raise ConfigError(
                f"{at}.host: must be a host name or address without spaces, got {_shown(self.host)}"
            )
        self._validate_hosts(at)
        for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            if getattr(self, key) and not self.tls:
                raise ConfigError(
                    f"{at}.{key}: set to {getattr(self, key)!r} while {at}.tls is false; "
                    f"set tls = true (or remove {key})"
                )
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError(
                f"{at}.tls_cert_file and {at}.tls_key_file: give both (the terminal's "
                "certificate and its key) or neither"
            )

    def _validate_hosts(self, at: str) -> None:
        if self.hosts and self.host != UpstreamConfig.host:
            raise ConfigError(
                f"{at}.host: {self.host!r} is set together with {at}.hosts; list every host "
                "in hosts, primary first, and remove host"
            )
        seen: set[tuple[str, int]] = set()
        for index, entry in enumerate(self.hosts):
            try:
                endpoint = self.parse_host_entry(entry, self.port)
            except ValueError as exc:
                raise ConfigError(
                    f"{at}.hosts[{index}]: {_shown(entry)} is not a host ({exc}); write "
                    '"name:port", "name" (port from upstream.port) or "[v6addr]:port"'
                ) from None
            if endpoint in seen:
                raise ConfigError(f"{at}.hosts[{index}]: {entry!r} is listed twice")
            seen.add(endpoint)


@dataclass(frozen=True)
class LogConfig:
    """Logs go to stdout (journald keeps them); a file only when asked for: SD cards wear."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    file: str = ""


@dataclass(frozen=True)
class WebConfig:
    """The live web mirror of `pitill run` (needs the `web` extra); `--web ADDR` overrides."""

    listen: str = ""  # e.g. "127.0.0.1:8580"; "" = no page. Not loopback: a token is printed
    control: bool = False  # the page may press the terminal's keys; off: it only watches

    def validate(self, at: str) -> None:
        if self.listen:
            parse_bind(self.listen, what=f"{at}.listen")


@dataclass(frozen=True)
class ReceiptConfig:
    """A thermal receipt printer: ESC/POS on a serial port or USB (python-escpos, the `receipt`
    extra)."""

    kind: Literal["serial", "usb"] = "serial"
    port: str = ""  # serial: e.g. "/dev/ttyUSB1"; "" = no printer fitted: no receipts are printed
    vendor_id: int = 0  # usb: the printer's ids as `lsusb` shows them, e.g. 0x04b8 and 0x0202
    product_id: int = 0
    baudrate: int = 9600
    width: int = 32  # characters per line: 32 (58 mm paper), 42 or 48 (80 mm)
    shop: str = "pitill"  # the receipt's first line
    address: tuple[str, ...] = ()  # the lines under it

    def validate(self, at: str) -> None:
        if self.kind == "usb" and not (self.vendor_id and self.product_id):
            raise ConfigError(
                f"{at}: kind = 'usb' needs vendor_id and product_id (as `lsusb` shows them, "
                "e.g. vendor_id = 0x04b8, product_id = 0x0202)"
            )


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


@dataclass(frozen=True)
class DisplayConfig:
    """The [display] section: which panel, how it is wired, and when it dims (drivers/oled.py)."""

    driver: DisplayDriver = "ssd1306"
    interface: DisplayInterface = "i2c"
    i2c_port: int = 1  # /dev/i2c-1 on a Pi
    i2c_address: int = 0x3C  # 0x3D when the module's address jumper is moved
    spi_port: int = 0
    spi_device: int = 0
    spi_gpio_dc: int = 24  # BCM numbers
    spi_gpio_rst: int = 25
    rotate: int = 0  # 0 or 2 (mounted upside down); the layout is landscape only
    contrast: int = 255
    dim_after_s: float = 60.0  # 0 = never dim
    dim_contrast: int = 16

    def validate(self, at: str) -> None:
        for name, allowed in (
            ("driver", typing.get_args(DisplayDriver)),
            ("interface", typing.get_args(DisplayInterface)),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"{at}.{name}: must be one of {', '.join(map(repr, allowed))}, "
                    f"got {_shown(value)}"
                )
        _check_section(self, at)
        if self.spi_gpio_dc == self.spi_gpio_rst:
            raise ConfigError(
                f"{at}.spi_gpio_rst: must differ from spi_gpio_dc, both are {self.spi_gpio_dc}"
            )


@dataclass(frozen=True)
class ReaderConfig:
    """The `[reader]` section: where the reader is and how it talks (drivers/serial_reader.py)."""

    port: str = "/dev/serial0"
    baudrate: int = 9600
    protocol: ReaderProtocol = "framed"
    # Which reader: a serial stripe reader on `port`; a USB keyboard-wedge stripe reader, `port`
    # then being its evdev path or glob (/dev/input/by-id/...-event-kbd); or a PN532 NFC reader in
    # HSU mode on the UART `port`.
    type: ReaderType = "serial-stripe"
    layout: WedgeLayout = "us"  # usb-stripe: the keyboard layout the reader types for
    grab: bool = True  # usb-stripe: keep its keystrokes from the console (EVIOCGRAB)
    nfc_poll_s: float = 0.1  # pn532: time between two polls for a tag
    # pn532: file with the program's SDM meta read key (32 hex digits) to read NTAG 424 DNA SUN
    # messages; "" reads every tag by its UID only.
    sun_meta_key_file: str = ""

    def validate(self, at: str) -> None:
        if not self.port:
            raise ConfigError(f"{at}.port: must name the reader's device, e.g. /dev/ttyUSB0")
        _check_section(self, at)
        if self.protocol not in READER_PROTOCOLS:
            raise ConfigError(
                f"{at}.protocol: must be 'framed' (STX/ETX/LRC with ACK) or 'lines'"
                f" (CR/LF terminated), got {_shown(self.protocol)}"
            )


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
            if not getattr(self, name):
                raise ConfigError(f"{at}.{name}: must list at least one pin")
        _check_section(self, at)
        check_pin_conflicts(self.pin_uses(at, force=True))
        if len(self.layout) != len(self.row_pins):
            raise ConfigError(
                f"{at}.layout: has {len(self.layout)} rows but row_pins has "
                f"{len(self.row_pins)} pins; give one string per row"
            )
        for i, row in enumerate(self.layout):
            if len(row) != len(self.col_pins):
                raise ConfigError(
                    f"{at}.layout[{i}]: {_shown(row)} has {len(row)} characters but col_pins "
                    f"has {len(self.col_pins)} pins; give one character per column"
                )
        chars = "".join(self.layout)
        if len(set(chars)) != len(chars) or not all(
            c.isprintable() and not c.isspace() for c in chars
        ):
            raise ConfigError(
                f"{at}.layout: every key needs its own visible character, got {self.layout!r}"
            )
        for char, name in self.keymap.items():
            key = _key(f"{at}.keymap", char)
            if char not in chars:
                raise ConfigError(
                    f"{key}: {_shown(char)} is not a character of {at}.layout "
                    f"({' '.join(self.layout)}); list only keys on your keypad"
                )
            _check_key_name(key, name)

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
        _check_section(self, at)
        if self.enabled and not self.pin_uses(at):
            raise ConfigError(f"{at}: enabled but ok_pin, cancel_pin and fn_pin are all -1")
        check_pin_conflicts(self.pin_uses(at, force=True))

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
            raise ConfigError(
                f"{at}.device: must be an absolute path or glob, got {_shown(self.device)}"
            )
        _check_section(self, at)
        known = _evdev_key_names() if self.keymap else frozenset()
        for code_name, name in self.keymap.items():
            key = _key(f"{at}.keymap", code_name)
            if not code_name.startswith("KEY_") or (known and code_name not in known):
                raise ConfigError(
                    f"{key}: not an evdev key name (like KEY_KP5); "
                    "run `python -m evdev.evtest` to see what your keypad sends"
                )
            if name:
                _check_key_name(key, name)

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
        _check_section(self, at)
        check_pin_conflicts(self.pin_uses(at))

    def pin_uses(self, at: str) -> list[PinUse]:
        names = ["green_led_pin", "red_led_pin", "drawer_pin"]
        if self.buzzer_enabled:
            names.append("buzzer_pin")
        return [(f"{at}.{n}", getattr(self, n)) for n in names if getattr(self, n) != NO_PIN]


@dataclass(frozen=True)
class Config:
    terminal: TerminalConfig = field(default_factory=TerminalConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    timeouts: PhaseTimeouts = field(default_factory=PhaseTimeouts)  # the core's own type
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    # The hardware of `pitill run`; the simulator replaces these parts with its own.
    gpio: GpioConfig = field(default_factory=GpioConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    keypad: KeypadConfig = field(default_factory=KeypadConfig)
    buttons: ButtonsConfig = field(default_factory=ButtonsConfig)
    usb_keypad: UsbKeypadConfig = field(default_factory=UsbKeypadConfig)
    indicators: IndicatorsConfig = field(default_factory=IndicatorsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    web: WebConfig = field(default_factory=WebConfig)
    receipt: ReceiptConfig = field(default_factory=ReceiptConfig)

    def validate(self, at: str) -> None:
        """The rules between sections; no GPIO pin serves two parts (I2C and UART pins too)."""
        for order in ORDERS:
            if order.low_key.split(".")[0] != order.high_key.split(".")[0]:
                low, high = _lookup(self, order.low_key), _lookup(self, order.high_key)
                problem = order.problem(low, high)
                if problem is not None:
                    raise ConfigError(problem)
        uses = [
            *self.keypad.pin_uses("keypad"),
            *self.buttons.pin_uses("buttons"),
            *self.indicators.pin_uses("indicators"),
        ]
        if self.display.driver != "dummy" and self.display.interface == "i2c":
            if self.display.i2c_port == 1:
                uses.extend(I2C1_PINS)
        elif self.display.driver != "dummy":
            uses.append(("display.spi_gpio_dc", self.display.spi_gpio_dc))
            uses.append(("display.spi_gpio_rst", self.display.spi_gpio_rst))
        if self.reader.port in ("/dev/serial0", "/dev/ttyAMA0", "/dev/ttyS0", "/dev/pitill-reader"):
            uses.extend(UART_PINS)
        check_pin_conflicts(uses)


# --- the tables -------------------------------------------------------------------------------

# Every number of every section, by section and key; a list of numbers (pins) by its items. A test
# checks that every int and float field has its bound here, and that hw/pitill.example.toml
# writes each bound's text on the key's line.
BOUNDS: dict[type, dict[str, Bound]] = {
    TerminalConfig: {
        "max_amount_minor": Bound(1, 999_999_999_999),
        "void_window_s": _seconds(0, 86_400),
    },
    OfflineConfig: {
        "floor_limit_minor": AMOUNT,
        "max_total_minor": AMOUNT,
        "max_count": Bound(0, 100_000),
        "max_age_s": _seconds(1, 30 * 86_400),
        "age_alarm_s": _seconds(1, 30 * 86_400),
        "max_per_card": Bound(0, 1000),
        "uid_only_floor_limit_minor": AMOUNT,
        "refund_floor_limit_minor": AMOUNT,
        "refund_max_total_minor": AMOUNT,
    },
    PhaseTimeouts: {f.name: _seconds(0.1, 3600) for f in dataclasses.fields(PhaseTimeouts)},
    UpstreamConfig: {
        "port": Bound(1, 65535),
        "request_timeout_s": _seconds(0.05, 120),
        "echo_interval_s": _seconds(0.01, 3600),
        "probe_interval_s": _seconds(0.01, 600),
        "probe_timeout_s": _seconds(0.01, 120),
        "resolve_interval_s": _seconds(0.05, 600),
        "lookup_timeout_s": _seconds(0.05, 30),
        "keepalive_idle_s": _seconds(1, 3600),
        "keepalive_grace_s": _seconds(0.01, 10),
        "tcp_user_timeout_s": _seconds(0.1, 600),
        "fail_threshold": COUNT,
        "recover_threshold": COUNT,
        "slow_threshold_s": _seconds(0.001, 120),
        "forward_retry_s": _seconds(0.01, 3600),
        "forward_retry_max_s": _seconds(0.01, 86_400),
        "forward_window": Bound(1, 256),
        "forward_jitter_s": _seconds(0, 600),
        "request_fail_threshold": COUNT,
        "failing_hold_s": _seconds(0.01, 3600),
    },
    DisplayConfig: {
        "i2c_port": Bound(0, 255),
        "i2c_address": Bound(
            0x03, 0x77, hex=True
        ),  # 7-bit addresses outside it are reserved by I2C
        "spi_port": Bound(0, 6),
        "spi_device": Bound(0, 3),
        "spi_gpio_dc": PIN_FITTED,
        "spi_gpio_rst": PIN_FITTED,
        "rotate": Bound(0, 0, special=((2, "upside down"),)),  # 1 and 3 would be portrait
        "contrast": Bound(0, 255),
        "dim_after_s": _seconds(0.001, 86_400, special=((0, "never"),)),
        "dim_contrast": Bound(0, 255),
    },
    ReaderConfig: {"baudrate": Bound(50, 4_000_000), "nfc_poll_s": _seconds(0.02, 2)},
    ReceiptConfig: {
        "baudrate": Bound(1200, 115_200),
        "width": Bound(32, 48),
        "vendor_id": Bound(0, 0xFFFF),
        "product_id": Bound(0, 0xFFFF),
    },
    KeypadConfig: {
        "row_pins": PIN_FITTED,
        "col_pins": PIN_FITTED,
        "scan_interval_s": _seconds(0.001, 0.1),
        "idle_scan_interval_s": _seconds(0.001, 0.2),
        "stable_scans": Bound(1, 20),
    },
    ButtonsConfig: {
        "ok_pin": PIN,
        "cancel_pin": PIN,
        "fn_pin": PIN,
        "debounce_s": _seconds(0.001, 1),
    },
    UsbKeypadConfig: {"reconnect_poll_s": _seconds(0.01, 60)},
    IndicatorsConfig: {
        "green_led_pin": PIN,
        "red_led_pin": PIN,
        "buzzer_pin": PIN,
        "drawer_pin": PIN,
        "drawer_pulse_s": _seconds(0.01, 2),
    },
}

# Pairs of keys whose values only make sense in one order. A pair within one section is checked
# by that section's validate, a pair across sections by Config.validate.
ORDERS: tuple[Order, ...] = (
    Order(
        "offline.uid_only_floor_limit_minor",
        "offline.floor_limit_minor",
        strict=False,
        why="a clonable UID-only card never gets more offline credit than any other card",
    ),
    Order(
        "offline.refund_floor_limit_minor",
        "offline.floor_limit_minor",
        strict=False,
        why="money given back without the host is never more than a sale approved without it",
    ),
    Order(
        "offline.refund_floor_limit_minor",
        "offline.refund_max_total_minor",
        strict=False,
        why="one offline refund must fit in the total of offline refunds",
    ),
    Order(
        "upstream.request_timeout_s",
        "timeouts.authorizing_s",
        strict=True,
        why="the AUTHORIZING screen must outlast the request, or it gives up before the "
        "answer (or the reversal) is known",
    ),
    Order(
        "upstream.probe_interval_s",
        "upstream.echo_interval_s",
        strict=False,
        why="echoes come quicker only while a fault is suspected or the link is down",
    ),
    Order(
        "upstream.forward_retry_s",
        "upstream.forward_retry_max_s",
        strict=False,
        why="the forwarder's wait doubles from the first up to the largest",
    ),
    Order(
        "upstream.forward_retry_max_s",
        "offline.age_alarm_s",
        strict=True,
        why="the backlog must be retried before an offline sale is old enough to raise the alarm",
    ),
    Order(
        "offline.age_alarm_s",
        "offline.max_age_s",
        strict=False,
        why="the alarm warns before the age limit is reached",
    ),
    Order(
        "display.dim_contrast",
        "display.contrast",
        strict=False,
        why="dimming lowers the contrast",
    ),
    Order(
        "keypad.scan_interval_s",
        "keypad.idle_scan_interval_s",
        strict=False,
        why="the idle scan is the slower one that saves CPU",
    ),
)


def _lookup(config: object, dotted: str) -> Any:
    for part in dotted.split("."):
        config = getattr(config, part)
    return config


def section_problems(obj: object, at: str) -> list[str]:
    """Every value of one section outside its bound; then, if none, its broken ORDERS pairs."""
    problems: list[str] = []
    for name, bound in BOUNDS.get(type(obj), {}).items():
        value = getattr(obj, name)
        if isinstance(value, tuple):
            items = [(f"{at}.{name}[{i}]", v) for i, v in enumerate(value)]
        else:
            items = [(f"{at}.{name}", value)]
        problems.extend(p for key, v in items if (p := bound.problem(key, v)) is not None)
    if problems:
        return problems
    for order in ORDERS:
        low_at, _, low_name = order.low_key.partition(".")
        high_at, _, high_name = order.high_key.partition(".")
        if low_at == high_at == at:
            problem = order.problem(getattr(obj, low_name), getattr(obj, high_name))
            if problem is not None:
                problems.append(problem)
    return problems


# --- loading ----------------------------------------------------------------------------------

T = TypeVar("T")


def load_config(path: Path | None) -> Config:
    """The defaults, overlaid with the TOML file at `path` when one is given."""
    if path is None:
        return Config()
    text = read_config_text(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path_text(path)} is not valid TOML: {exc}; fix that line "
            f"({EXAMPLE_CONFIG} shows the syntax)"
        ) from None
    return config_from_dict(raw)


def read_config_text(path: Path) -> str:
    """The text of a config file, or a one-line ConfigError naming the file and what to do."""
    text = read_text(
        path,
        "config file",
        ConfigError,
        missing_hint=f"copy {EXAMPLE_CONFIG} there (it lists every key) or pass the right --config",
        max_bytes=MAX_CONFIG_BYTES,
    )
    return text


def config_from_dict(raw: dict[str, Any]) -> Config:
    return _build(Config, raw, "")


def _build(cls: type[T], raw: Any, at: str) -> T:
    """Build `cls` from `raw`; a ConfigError names the first problem and carries them all."""
    problems: list[str] = []
    obj = _collect(cls, raw, at, problems)
    if problems or obj is None:
        raise ConfigError.of(problems)
    return obj


def _collect(cls: type[T], raw: Any, at: str, problems: list[str]) -> T | None:
    """`cls` from `raw`, or None after adding each problem found to `problems`."""
    if not isinstance(raw, dict):
        problems.append(f"{at or 'config'}: must be a table, got {type(raw).__name__}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    known = ", ".join(sorted(fields))
    for name in sorted(set(raw) - set(fields), key=str):
        problems.append(f"{_key(at, name)}: unknown key; known keys here: {known}")
    values: dict[str, Any] = {}
    before = len(problems)
    for name, value in raw.items():
        if name not in fields:
            continue
        key = _key(at, name)
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _collect(hint, value, key, problems)  # type: ignore[arg-type]
            continue
        try:
            values[name] = _coerce(hint, value, key)
        except ConfigError as exc:
            problems.append(str(exc))
    if len(problems) > before or set(raw) - set(fields):
        return None
    obj = cls(**values)
    found = section_problems(obj, at)
    if found:
        problems.extend(found)
        return None
    validate = getattr(obj, "validate", None)
    if validate is not None:
        try:
            validate(at)
        except ConfigError as exc:
            problems.append(str(exc))
            return None
    return obj


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)  # type: ignore[arg-type]
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {_shown(value)} is not a valid value")
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list, got {_shown(value)}")
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a table, got {_shown(value)}")
        _, vtype = typing.get_args(hint)
        return {str(k): _coerce(vtype, v, _key(key, k)) for k, v in value.items()}
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(
                f"{key}: must be one of {', '.join(map(repr, allowed))}, got {_shown(value)}"
            )
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {_shown(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be an integer, got {_shown(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: must be a number, got {_shown(value)}")
        try:
            return float(value)
        except OverflowError:  # an integer of 400 digits
            raise ConfigError(f"{key}: {_shown(value)} is too large for a number") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {_shown(value)}")
        return value
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            names = ", ".join(repr(m.value) for m in hint)
            raise ConfigError(f"{key}: must be one of {names}, got {_shown(value)}") from None
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")
