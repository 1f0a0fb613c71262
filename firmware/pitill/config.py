"""The configuration: read once at start from TOML, validated strictly, frozen afterwards.

Every section is a frozen dataclass; the loader walks them, so adding a key is adding a field.
An unknown key, a wrong type or a bad value fails at start with the dotted key and the reason.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal, TypeVar

from pitill.core.state import OfflineLimits, PhaseTimeouts
from pitill.core.types import OfflineMode
from pitill.drivers.hwconfig import (
    I2C1_PINS,
    UART_PINS,
    ButtonsConfig,
    GpioConfig,
    IndicatorsConfig,
    KeypadConfig,
    UsbKeypadConfig,
    check_pin_conflicts,
)
from pitill.drivers.oled import DisplayConfig
from pitill.drivers.serial_reader import ReaderConfig
from pitill.errors import ConfigError

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


@dataclass(frozen=True)
class TerminalConfig:
    terminal_id: str = "PITILL01"  # ISO 8583 field 41: 8 characters
    merchant_id: str = "PITILLSHOP00001"  # field 42: 15 characters
    currency: str = "EUR"
    max_amount_minor: int = 999_999  # the largest sale the keypad accepts

    def validate(self, at: str) -> None:
        if len(self.terminal_id) != 8 or not self.terminal_id.isalnum():
            raise ConfigError(
                f"{at}.terminal_id: must be 8 letters or digits, got {self.terminal_id!r}"
            )
        if len(self.merchant_id) != 15 or not self.merchant_id.isalnum():
            raise ConfigError(
                f"{at}.merchant_id: must be 15 letters or digits, got {self.merchant_id!r}"
            )
        if self.currency not in CURRENCIES:
            known = ", ".join(sorted(CURRENCIES))
            raise ConfigError(f"{at}.currency: unknown currency {self.currency!r}; known: {known}")
        if not 1 <= self.max_amount_minor <= 999_999_999_999:
            raise ConfigError(f"{at}.max_amount_minor: must be 1..999999999999")

    @property
    def currency_numeric(self) -> str:
        return CURRENCIES[self.currency][0]

    @property
    def currency_exponent(self) -> int:
        return CURRENCIES[self.currency][1]


@dataclass(frozen=True)
class OfflineConfig:
    """What the terminal may do with cards while it cannot reach the host."""

    mode: OfflineMode = OfflineMode.PREFER_ONLINE
    floor_limit_minor: int = 2500  # a card sale at or under this may be approved offline
    max_total_minor: int = 50_000  # all offline approvals not yet acknowledged, together
    max_count: int = 20  # how many of them
    max_age_s: float = 24 * 3600.0  # the oldest must reach the host within this
    age_alarm_s: float = 20 * 3600.0  # screen and buzzer warn from this age on
    max_per_card: int = 3  # offline sales of one card within one outage

    def limits(self) -> OfflineLimits:
        """The core's view: every field but the mode."""
        fields = dataclasses.asdict(self)
        del fields["mode"]
        return OfflineLimits(**fields)

    def validate(self, at: str) -> None:
        for name in ("floor_limit_minor", "max_total_minor", "max_count", "max_per_card"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{at}.{name}: must be >= 0, got {getattr(self, name)}")
        if self.max_age_s <= 0:
            raise ConfigError(f"{at}.max_age_s: must be > 0 seconds")
        if not 0 < self.age_alarm_s <= self.max_age_s:
            raise ConfigError(f"{at}.age_alarm_s: must be > 0 and at most max_age_s")


@dataclass(frozen=True)
class UpstreamConfig:
    host: str = "acquirer.pitill.test"
    port: int = 8583
    request_timeout_s: float = 3.0  # a 0200 with no answer by then has an unknown outcome
    probe_interval_s: float = 0.5
    probe_timeout_s: float = 1.0
    fail_threshold: int = 2  # consecutive failed probes before OFFLINE
    recover_threshold: int = 2  # consecutive good probes before ONLINE again
    slow_threshold_s: float = 0.5  # an echo slower than this makes the link DEGRADED
    forward_retry_s: float = (
        1.0  # first backoff of the forwarder, doubled up to forward_retry_max_s
    )
    forward_retry_max_s: float = 30.0
    # Several hosts, primary first, each "name:port", "name" (with `port`) or "[v6addr]:port";
    # tried in order before the terminal is offline. Empty: the one host `host`:`port`.
    hosts: tuple[str, ...] = ()
    tls: bool = False  # TLS on the upstream connection; the certificate must match the name
    tls_ca_file: str = ""  # PEM CA certificates to trust; "" = the system's CAs
    cache_resolved: bool = True  # remember resolved addresses (DATA_DIR/resolved-hosts.json)
    request_fail_threshold: int = 3  # real requests failing or answered 91/96 in a row: OFFLINE
    failing_hold_s: float = 10.0  # ...for this long, though echoes answer; then one tries again

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
        if not entry or any(c.isspace() for c in entry):
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
        if not self.host:
            raise ConfigError(f"{at}.host: must not be empty")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"{at}.port: must be 1..65535, got {self.port}")
        for name in (
            "request_timeout_s",
            "probe_interval_s",
            "probe_timeout_s",
            "slow_threshold_s",
            "forward_retry_s",
            "failing_hold_s",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{at}.{name}: must be > 0 seconds")
        if self.forward_retry_max_s < self.forward_retry_s:
            raise ConfigError(f"{at}.forward_retry_max_s: must be >= forward_retry_s")
        for name in ("fail_threshold", "recover_threshold", "request_fail_threshold"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{at}.{name}: must be >= 1")
        self._validate_hosts(at)
        if self.tls_ca_file and not self.tls:
            raise ConfigError(
                f"{at}.tls_ca_file: set to {self.tls_ca_file!r} while {at}.tls is false; "
                "set tls = true (or remove tls_ca_file)"
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
                    f"{at}.hosts[{index}]: {entry!r} is not a host ({exc}); write "
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

    def validate(self, at: str) -> None:
        """Every timeout is positive; no GPIO pin serves two parts (I2C and UART pins included)."""
        for timeout in dataclasses.fields(self.timeouts):
            if getattr(self.timeouts, timeout.name) <= 0:
                raise ConfigError(f"timeouts.{timeout.name}: must be > 0 seconds")
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


T = TypeVar("T")


def load_config(path: Path | None) -> Config:
    """The defaults, overlaid with the TOML file at `path` when one is given."""
    if path is None:
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return config_from_dict(raw)


def config_from_dict(raw: dict[str, Any]) -> Config:
    return _build(Config, raw, "")


def _build(cls: type[T], raw: Any, at: str) -> T:
    if not isinstance(raw, dict):
        raise ConfigError(f"{at or 'config'}: must be a table, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{at}.{unknown[0]}" if at else unknown[0]
        raise ConfigError(f"{where}: unknown key; known keys here: {', '.join(sorted(fields))}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{at}.{name}" if at else name
        values[name] = _coerce(hints[name], value, key)
    obj = cls(**values)
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate(at)
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
        raise ConfigError(f"{key}: {value!r} is not a valid value")
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: must be a list, got {value!r}")
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a table, got {value!r}")
        _, vtype = typing.get_args(hint)
        return {str(k): _coerce(vtype, v, f"{key}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(
                f"{key}: must be one of {', '.join(map(repr, allowed))}, got {value!r}"
            )
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: must be a string, got {value!r}")
        return value
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            names = ", ".join(repr(m.value) for m in hint)
            raise ConfigError(f"{key}: must be one of {names}, got {value!r}") from None
    raise ConfigError(f"{key}: unsupported setting type {hint!r}")
