"""`pitill doctor`: check each configured part of a Pi terminal and say what to fix.

Every check is a small function taking plain parameters (paths, pin numbers, a pin factory) and
returning a Check, so tests point them at fakes in tmp_path. `run_doctor` runs the lot for a
configuration; `format_report` prints them; `exit_code` is non-zero when something is wrong. A
check that crashes becomes a failed Check naming the error: the doctor never shows a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pitill import BUILD_DATE
from pitill.config import (
    ButtonsConfig,
    GpioConfig,
    IndicatorsConfig,
    KeypadConfig,
    PinUse,
    ReaderConfig,
    UpstreamConfig,
    UsbKeypadConfig,
    check_pin_conflicts,
)
from pitill.core.types import OfflineMode
from pitill.drivers.evdev_keypad import find_device
from pitill.drivers.hwconfig import PIN_FACTORY_FIX, open_pin_factory
from pitill.drivers.pn532_reader import Pn532Reader, load_meta_key, open_nfcpy
from pitill.errors import ConfigError, HardwareError
from pitill.receipt import StatusSink, check_printer
from pitill.upstream.keepalive import KeepAlive, ack_age_s, tune
from pitill.wallclock import FIX as CLOCK_FIX
from pitill.wallclock import clock_problem, to_utc

if TYPE_CHECKING:
    from gpiozero.pins import Factory


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False  # could not run because an earlier check failed; not a failure itself

    @property
    def failed(self) -> bool:
        return not (self.ok or self.skipped)


@dataclass(frozen=True)
class SystemPaths:
    """Where the doctor looks; tests point these at a fake tree."""

    dev_dir: Path = Path("/dev")
    proc_cmdline: Path = Path("/proc/cmdline")
    getty_dirs: tuple[Path, ...] = (
        Path("/etc/systemd/system/getty.target.wants"),
        Path("/run/systemd/generator/getty.target.wants"),  # made from console= at boot
    )


class I2cBus(Protocol):
    """The part of smbus2.SMBus the display check uses."""

    def read_byte(self, i2c_addr: int) -> int: ...

    def close(self) -> None: ...


def _open_smbus(path: str) -> I2cBus:
    from smbus2 import SMBus  # installed with luma.core

    return SMBus(path)


# --- GPIO -------------------------------------------------------------------------------------


def describe_factory(factory: Factory) -> Check:
    """Which pin factory and which Pi; a Pi 5 with a factory other than lgpio is a failure."""
    name = type(factory).__name__
    try:
        board = factory.board_info
        model = f"Raspberry Pi {board.model} (revision {board.revision})"
        is_pi5 = str(board.model).startswith("5")
    except Exception as exc:  # a factory that cannot tell the board
        return Check("pin factory", True, f"{name}; board unknown ({exc})")
    if is_pi5 and name not in ("LGPIOFactory", "MockFactory"):
        return Check(
            "pin factory",
            False,
            f"{name} on a {model}: only lgpio drives a Pi 5's GPIO",
            'apt install python3-lgpio and set gpio.pin_factory = "lgpio" '
            "(or GPIOZERO_PIN_FACTORY=lgpio in the unit)",
        )
    return Check("pin factory", True, f"{name} on a {model}")


def check_pin_factory(pin_factory: str) -> tuple[Check, Factory | None]:
    """Load the configured factory ("" = gpiozero's choice); the factory is None on failure."""
    try:
        factory = open_pin_factory(GpioConfig(pin_factory))  # type: ignore[arg-type]
    except HardwareError as exc:
        reason = str(exc).removesuffix(f"; {PIN_FACTORY_FIX}")
        return Check("pin factory", False, reason, PIN_FACTORY_FIX), None
    return describe_factory(factory), factory


def check_gpio_pins(factory: Factory | None, uses: Sequence[PinUse]) -> Check:
    """Claim each configured pin with the factory and give it back: busy pins are named."""
    name = "GPIO pins"
    if factory is None:
        return Check(name, False, "not checked: no pin factory (see above)", skipped=True)
    try:
        check_pin_conflicts(uses)
    except ConfigError as exc:
        return Check(name, False, str(exc), "give every part its own pin in the config")
    from gpiozero import GPIODevice

    busy: list[str] = []
    for key, pin in uses:
        try:
            GPIODevice(pin, pin_factory=factory).close()
        except Exception as exc:  # backends raise their own types (lgpio.error, GPIOPinInUse...)
            busy.append(f"GPIO{pin} ({key}): {exc}")
    if busy:
        return Check(
            name,
            False,
            "; ".join(busy),
            "stop the program holding them (is pitill already running? "
            "sudo systemctl stop pitill), remove a dtoverlay that claims them, or pick other pins",
        )
    pins = ", ".join(str(pin) for _, pin in uses) or "none configured"
    return Check(name, True, f"free: {pins}")


# --- I2C display ------------------------------------------------------------------------------


def check_i2c_display(
    port: int,
    address: int,
    *,
    dev_dir: Path = Path("/dev"),
    open_bus: Callable[[str], I2cBus] = _open_smbus,
) -> Check:
    name = "I2C display"
    bus_path = dev_dir / f"i2c-{port}"
    if not bus_path.exists():
        return Check(
            name,
            False,
            f"{bus_path} does not exist: the I2C bus is off",
            "enable I2C: sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on in "
            "/boot/firmware/config.txt), then reboot",
        )
    try:
        bus = open_bus(str(bus_path))
    except PermissionError:
        return Check(name, False, f"no permission to open {bus_path}", "add the user to group i2c")
    except OSError as exc:
        return Check(
            name,
            False,
            f"{bus_path} does not work as an I2C adapter ({exc.strerror or exc})",
            f"check dtparam=i2c_arm=on in /boot/firmware/config.txt and the bus number ({port})",
        )
    try:
        bus.read_byte(address)
    except OSError as exc:
        return Check(
            name,
            False,
            f"no device answers at 0x{address:02X} on {bus_path} ({exc.strerror or exc})",
            "check the wiring (VCC to 3.3 V, GND, SDA to GPIO2, SCL to GPIO3) and the address: "
            f"i2cdetect -y {port} lists what answers (an SSD1306/SH1106 is 0x3C or 0x3D)",
        )
    finally:
        bus.close()
    return Check(name, True, f"a device answers at 0x{address:02X} on {bus_path}")


# --- serial card reader -----------------------------------------------------------------------


def check_serial_port(port: str) -> Check:
    """The port opens (exclusively: a second program on the line garbles frames)."""
    import serial

    name = "serial port"
    if not os.path.exists(port):
        fix = (
            "Pi UART: sudo raspi-config nonint do_serial_hw 0, then reboot (Pi 3/4/Zero W: "
            "dtoverlay=disable-bt puts the PL011 on serial0; Pi 5: dtparam=uart0=on gives "
            "/dev/ttyAMA0); a USB reader: set the reader port to its /dev/serial/by-id/ path"
        )
        if port == "/dev/pitill-reader":
            fix = (
                "this name comes from the udev rule: sudo cp systemd/99-pitill.rules "
                "/etc/udev/rules.d/ && sudo udevadm trigger (tools/install-pi does it); " + fix
            )
        return Check(name, False, f"{port} does not exist", fix)
    try:
        serial.Serial(port, timeout=0, exclusive=True).close()
    except serial.SerialException as exc:
        if exc.errno == errno.EACCES:
            return Check(
                name, False, f"no permission to open {port}", "add the user to group dialout"
            )
        return Check(
            name,
            False,
            f"{port} does not open: {exc}",
            "another program may hold it (is pitill already running? a serial login shell?)",
        )
    return Check(name, True, f"{port} opens")


def _tty_names(name: str, dev_dir: Path) -> set[str]:
    """A tty name and what it resolves to (serial0 -> ttyS0 / ttyAMA0)."""
    path = dev_dir / name
    return {name, Path(os.path.realpath(path)).name}


def check_serial_console(
    port: str,
    *,
    cmdline_path: Path = Path("/proc/cmdline"),
    getty_dirs: Sequence[Path] = SystemPaths().getty_dirs,
    dev_dir: Path = Path("/dev"),
) -> Check:
    """The reader's port is neither the kernel console nor running a login shell."""
    name = "serial console"
    if not (os.path.exists(port) or (dev_dir / Path(port).name).exists()):
        return Check(name, True, f"not checked: {port} does not exist", skipped=True)
    ours = _tty_names(Path(port).name, dev_dir) | {Path(os.path.realpath(port)).name}
    fix = (
        "sudo raspi-config nonint do_serial_cons 1 (removes console=serial0,115200 from "
        "/boot/firmware/cmdline.txt and the login shell on it), then reboot"
    )
    try:
        cmdline = cmdline_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return Check(name, False, f"cannot read {cmdline_path}: {exc}", "run the doctor on the Pi")
    for token in cmdline.split():
        if token.startswith("console="):
            console = token.removeprefix("console=").split(",")[0]
            if _tty_names(console, dev_dir) & ours:
                return Check(
                    name, False, f"the kernel console is on {port} ({token} in {cmdline_path})", fix
                )
    for directory in getty_dirs:
        for tty in sorted(ours):
            unit = directory / f"serial-getty@{tty}.service"
            if unit.exists() or unit.is_symlink():
                return Check(name, False, f"a login shell runs on {port} ({unit})", fix)
    return Check(name, True, f"{port} is not the console and runs no login shell")


# --- USB keypad -------------------------------------------------------------------------------


def check_usb_keypad(pattern: str) -> Check:
    name = "USB keypad"
    path = find_device(pattern)
    if path is None:
        return Check(
            name,
            False,
            f"no input device matches {pattern}",
            "plug the keypad in; ls -l /dev/input/by-id/ shows its name; set usb_keypad.device",
        )
    if not os.access(path, os.R_OK):
        return Check(
            name,
            False,
            f"no permission to read {path}",
            "add the user to group input (the systemd unit has SupplementaryGroups=input)",
        )
    return Check(name, True, f"found {path}")


# --- NFC and USB stripe readers ---------------------------------------------------------------


def check_pn532(port: str, meta_key_file: str = "") -> Check:
    """A PN532 answers on `port` (its firmware version) and what is on it now (a test tap)."""
    name = "PN532"
    try:
        meta_key = load_meta_key(meta_key_file)
    except HardwareError as exc:
        return Check(name, False, str(exc), 'write the key as 32 hex digits, or set it to ""')
    try:
        frontend = open_nfcpy(port)
    except ImportError:
        return Check(name, False, "nfcpy is not installed", "pip install 'pitill[nfc]'")
    except Exception as exc:  # nfcpy raises IOError/OSError when nothing answers
        return Check(
            name,
            False,
            f"no PN532 answers on {port}: {exc}",
            "set the board's switches or jumpers to HSU (UART), power it from 3.3 V, cross TX "
            "and RX; I2C and SPI wiring is not supported (docs/cards.md)",
        )
    try:
        firmware = str(frontend.device).split(" at ")[0]
        reader = Pn532Reader(ReaderConfig(port=port, type="pn532"), meta_key=meta_key)
        seen = reader.read_once(frontend)
    finally:
        with contextlib.suppress(Exception):
            frontend.close()
    sun = "SUN cards readable" if meta_key is not None else "no sun_meta_key_file: UID only"
    return Check(name, True, f"{firmware} on {port} ({sun}); on the reader: {seen}")


def check_usb_stripe_reader(pattern: str) -> Check:
    check = check_usb_keypad(pattern)
    fix = check.fix.replace("set usb_keypad.device", "set reader.port").replace(
        "keypad", "stripe reader"
    )
    return Check("USB stripe reader", check.ok, check.detail, fix)


# --- the clock and what the journal keeps --------------------------------------------------------


def describe_upstream(upstream: UpstreamConfig) -> Check:
    """What the terminal will dial and how it frames messages: nothing to test without the host,
    but a host set to another bitmap or length prefix answers nothing, so it is listed."""
    hosts = ", ".join(f"{host}:{port}" for host, port in upstream.endpoints())
    tls = "TLS" if upstream.tls else "plain TCP"
    return Check(
        "upstream",
        True,
        f"{hosts} over {tls}; {upstream.wire.describe()} (the host must use the same: "
        "[upstream] bitmap, length_prefix)",
    )


def check_clock(data_dir: Path, wall: datetime | None = None) -> Check:
    """The wall clock is not before the build date nor behind the journal's newest date."""
    from pitill.journal.listing import read_newest_wall
    from pitill.journal.store import JOURNAL_FILE_NAME

    newest = read_newest_wall(data_dir) if (data_dir / JOURNAL_FILE_NAME).exists() else None
    now = to_utc(wall if wall is not None else datetime.now())
    problem = clock_problem(now, newest)
    if problem is not None:
        return Check("clock", False, problem, CLOCK_FIX)
    seen = f", the journal's newest {newest.astimezone():%Y-%m-%d %H:%M}" if newest else ""
    detail = f"{now.astimezone():%Y-%m-%d %H:%M} (built {BUILD_DATE}{seen})"
    return Check("clock", True, detail)


def check_offline_mode(data_dir: Path, config_mode: OfflineMode | None) -> Check:
    """Which offline mode the terminal starts in: the one chosen from the FN menu wins."""
    from pitill.journal.listing import read_settings
    from pitill.journal.store import JOURNAL_FILE_NAME, MODE_SETTING

    saved = None
    if (data_dir / JOURNAL_FILE_NAME).exists():
        saved = read_settings(data_dir).get(MODE_SETTING)
    configured = f"the config says {config_mode.label}" if config_mode else "no valid config"
    if saved is None:
        return Check("offline mode", True, f"{configured}; none chosen from the FN menu")
    label = saved.replace("_", " ")
    return Check("offline mode", True, f"{label}, chosen from the FN menu ({configured})")


def check_supervisor_pin(data_dir: Path) -> Check:
    """The FN menu is guarded only once a PIN is set, and only if it is not one anyone tries."""
    from pitill.journal.listing import read_settings
    from pitill.journal.store import JOURNAL_FILE_NAME
    from pitill.supervisor import pin_state

    fix = f"pitill pin set --data-dir {data_dir} (with the terminal stopped)"
    settings = read_settings(data_dir) if (data_dir / JOURNAL_FILE_NAME).exists() else {}
    state = pin_state(settings)
    if state == "unset":
        detail = "not set: the first person to press FN at the counter chooses it"
        return Check("supervisor PIN", False, detail, fix)
    if state == "trivial":
        detail = "a PIN anyone tries first (0000, 1234...): the FN menu is barely guarded"
        return Check("supervisor PIN", False, detail, fix)
    return Check("supervisor PIN", True, "set (stored as a salted scrypt hash)")


def check_link_watch(upstream: UpstreamConfig) -> Check:
    """The link monitor's cadence, and whether this kernel lets it watch the connection by TCP
    keepalive (tuned in seconds, TCP_INFO read): on a loopback connection of our own."""
    cadence = (
        f"echo after {upstream.echo_interval_s:g} s without an answer "
        f"(<= {3600 / upstream.echo_interval_s:.0f}/h idle), every {upstream.probe_interval_s:g} s "
        f"while in doubt; keepalive {upstream.keepalive_idle_s} s + "
        f"{upstream.keepalive_grace_s:g} s grace; name every {upstream.resolve_interval_s:g} s"
    )
    keepalive = KeepAlive(upstream.keepalive_idle_s, upstream.keepalive_idle_s)
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        socket.create_connection(server.getsockname()[:2], timeout=2) as sock,
    ):
        tuned = tune(sock, keepalive)
        readable = ack_age_s(sock) is not None
    if tuned and readable:
        return Check("link watch", True, cadence)
    return Check(
        "link watch",
        False,
        f"this kernel cannot tune TCP keepalive or read TCP_INFO: a link that swallows packets "
        f"shows only to an echo or a sale ({cadence})",
        "run pitill on Linux (the Pi's kernel has both)",
    )


REVERSALS_FIX = (
    "the host did NOT reverse these sales: the customer may be charged. Give the acquirer the "
    "terminal id and each STAN above to reverse them by hand (pitill does not send them "
    "again), then record it: pitill journal settle --data-dir DIR --seq SEQ --note REFERENCE"
)


def check_reversals(data_dir: Path) -> Check:
    """Reversals the host refused fail (the sale may stand); owed reversals without their card
    (journaled before pitill kept it) are named, since a host that wants the card refuses them."""
    from pitill.journal.report import read_reversal_trouble
    from pitill.journal.store import JOURNAL_FILE_NAME

    if not (data_dir / JOURNAL_FILE_NAME).exists():
        return Check("reversals", True, "no journal yet")
    trouble = read_reversal_trouble(data_dir)
    owed = ""
    if trouble.without_card:
        seqs = ", ".join(map(str, trouble.without_card))
        owed = (
            f"; owed without the sale's card (journaled by an older pitill): seq {seqs}, sent "
            "as they are (by field 90); a host that wants fields 2, 14, 22 refuses them"
        )
    if trouble.refused:
        detail = f"{len(trouble.refused)} refused by the host, NOT reversed: "
        return Check("reversals", False, detail + _listed(trouble.refused) + owed, REVERSALS_FIX)
    return Check("reversals", True, f"none refused by the host{owed}")


def _listed(rows: tuple[tuple[int, int, int, str, str], ...]) -> str:
    """Rows waiting for a person, as `pitill doctor` names them: seq, STAN, amount, code."""
    from pitill.core.types import format_amount

    return ", ".join(
        f"seq {seq}, STAN {stan:06d} {format_amount(amount)} {currency} (code {code})"
        for seq, stan, amount, currency, code in rows
    )


ADVICES_FIX = (
    "the host did not process these offline sales' advices (the card was never judged): "
    "nothing is collected yet. Fix the cause (the code says which: 30 format error, 58/03 the "
    "acquirer's set-up of this terminal, 92 routing), then send them again: pitill journal "
    "requeue --data-dir DIR --seq SEQ --note WHY; or record one lost: pitill journal decline "
    "--data-dir DIR --seq SEQ --note WHY"
)


def check_advices(data_dir: Path) -> Check:
    """Advices the host refused without processing them (ADVICE_REFUSED) fail: held, their card
    kept sealed, until a person re-queues or declines each one."""
    from pitill.journal.report import read_reversal_trouble
    from pitill.journal.store import JOURNAL_FILE_NAME

    if not (data_dir / JOURNAL_FILE_NAME).exists():
        return Check("advices", True, "no journal yet")
    held = read_reversal_trouble(data_dir).advices_refused
    if held:
        detail = f"{len(held)} held, refused by the host unprocessed: {_listed(held)}"
        return Check("advices", False, detail, ADVICES_FIX)
    return Check("advices", True, "none held")


def run_journal_checks(data_dir: Path, config_mode: OfflineMode | None) -> list[Check]:
    """The checks that read the data directory (read-only; no lock, no key needed)."""
    return [
        _guarded("clock", lambda: check_clock(data_dir)),
        _guarded("offline mode", lambda: check_offline_mode(data_dir, config_mode)),
        _guarded("supervisor PIN", lambda: check_supervisor_pin(data_dir)),
        _guarded("reversals", lambda: check_reversals(data_dir)),
        _guarded("advices", lambda: check_advices(data_dir)),
    ]


# --- all together -----------------------------------------------------------------------------


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # a doctor must report, never crash
        return Check(name, False, f"the check itself failed: {type(exc).__name__}: {exc}")


def run_doctor(
    *,
    gpio: GpioConfig | None = None,
    keypad: KeypadConfig | None = None,
    buttons: ButtonsConfig | None = None,
    usb_keypad: UsbKeypadConfig | None = None,
    indicators: IndicatorsConfig | None = None,
    display_i2c: tuple[int, int] | None = (1, 0x3C),  # (bus, address); None: not on I2C
    serial_port: str | None = "/dev/serial0",  # None: no serial card reader
    reader: ReaderConfig | None = None,  # which reader; None: the serial stripe reader
    extra_pins: Sequence[PinUse] = (),  # pins other parts claim (an SPI display's DC/RST...)
    paths: SystemPaths | None = None,
    printer: StatusSink | None = None,  # the receipt printer ([receipt]); None: none fitted
) -> list[Check]:
    gpio = gpio or GpioConfig()
    usb_keypad = usb_keypad or UsbKeypadConfig()
    paths = paths or SystemPaths()
    uses = [
        *(keypad or KeypadConfig()).pin_uses("keypad"),
        *(buttons or ButtonsConfig()).pin_uses("buttons"),
        *(indicators or IndicatorsConfig()).pin_uses("indicators"),
        *extra_pins,
    ]
    try:
        factory_check, factory = check_pin_factory(gpio.pin_factory)
    except Exception as exc:
        factory_check, factory = Check("pin factory", False, f"{type(exc).__name__}: {exc}"), None
    checks = [factory_check, _guarded("GPIO pins", lambda: check_gpio_pins(factory, uses))]
    if display_i2c is not None:
        bus, address = display_i2c
        checks.append(
            _guarded("I2C display", lambda: check_i2c_display(bus, address, dev_dir=paths.dev_dir))
        )
    if serial_port is not None:
        port = serial_port
        checks.append(_guarded("serial port", lambda: check_serial_port(port)))
        checks.append(
            _guarded(
                "serial console",
                lambda: check_serial_console(
                    port,
                    cmdline_path=paths.proc_cmdline,
                    getty_dirs=paths.getty_dirs,
                    dev_dir=paths.dev_dir,
                ),
            )
        )
    if reader is not None and reader.type == "pn532":
        nfc = reader
        checks.append(_guarded("PN532", lambda: check_pn532(nfc.port, nfc.sun_meta_key_file)))
    elif reader is not None and reader.type == "usb-stripe":
        pattern = reader.port
        checks.append(_guarded("USB stripe reader", lambda: check_usb_stripe_reader(pattern)))
    if usb_keypad.enabled:
        device = usb_keypad.device
        checks.append(_guarded("USB keypad", lambda: check_usb_keypad(device)))
    if printer is not None:
        sink = printer
        checks.append(_guarded("receipt printer", lambda: check_receipt_printer(sink)))
    return checks


def check_receipt_printer(sink: StatusSink) -> Check:
    """Out of paper or offline fails (sales go on, receipts do not print); silent is unknown."""
    ok, detail = check_printer(sink)
    fix = "load paper, switch the printer on, check its cable and [receipt] in the config"
    return Check("receipt printer", ok, detail, fix)


def format_report(checks: Sequence[Check]) -> str:
    lines = []
    for check in checks:
        mark = "skip" if check.skipped else "ok" if check.ok else "FAIL"
        lines.append(f"{mark:<5} {check.name}: {check.detail}")
        if check.fix and check.failed:
            lines.append(f"      fix: {check.fix}")
    problems = sum(check.failed for check in checks)
    lines.append("all good" if not problems else f"{problems} problem(s) found")
    return "\n".join(lines)


def exit_code(checks: Sequence[Check]) -> int:
    return 1 if any(check.failed for check in checks) else 0


def main() -> int:
    """The doctor with the default hardware config (`pitill doctor` passes the real config)."""
    checks = run_doctor()
    print(format_report(checks))
    return exit_code(checks)


if __name__ == "__main__":
    sys.exit(main())
