"""The `pitill run` and `pitill doctor` subcommands: argument parsing and the handlers.

cli.py adds them with `add_run_parser(commands)` and `add_doctor_parser(commands)` (or both with
`add_parsers`); a handler returns the exit code and lets a PitillError reach cli.main, which
prints it on one line. `python -m pitill.service_cli run|doctor ...` runs the same commands.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TypeAlias

from pitill.config import EXAMPLE_CONFIG, Config, load_config
from pitill.doctor import (
    Check,
    check_link_watch,
    describe_upstream,
    exit_code,
    format_report,
    run_doctor,
    run_journal_checks,
)
from pitill.errors import ConfigError
from pitill.logs import configure_logging
from pitill.receipt import SerialReceipts, StatusSink, UsbReceipts, receipt_sink

DEFAULT_DATA_DIR = Path("/var/lib/pitill")  # the unit's StateDirectory

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ArgumentParser.add_subparsers() returns."""


def add_parsers(commands: Commands) -> None:
    add_run_parser(commands)
    add_doctor_parser(commands)


def add_run_parser(commands: Commands) -> argparse.ArgumentParser:
    run = commands.add_parser(
        "run",
        help="run the terminal on a Raspberry Pi's keypad, OLED and card reader",
        description=(
            "Run the terminal on real hardware: the parts named in the config (see "
            f"{EXAMPLE_CONFIG} for every key), the acquirer host from [upstream], the journal "
            "in DATA_DIR. Logs go to stdout; SIGTERM or Ctrl-C stops it cleanly. Under systemd "
            "it reports READY=1 once the devices are up. A bad config or a missing part stops "
            "it at once with the key or the part to fix; `pitill doctor` checks them all."
        ),
        epilog=(
            "examples:\n  pitill run --config /etc/pitill/pitill.toml --data-dir /var/lib/pitill\n"
            "  pitill run --config /etc/pitill/pitill.toml --web 0.0.0.0:8580   # a live view"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--config", type=Path, required=True, metavar="FILE", help="TOML config")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"journal and sealing key (default {DEFAULT_DATA_DIR})",
    )
    run.add_argument(
        "--log-level",
        default=None,
        type=str.upper,
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING, ERROR (default: log.level of the config, INFO)",
    )
    run.add_argument(
        "--web",
        nargs="?",
        const="127.0.0.1:8580",
        metavar="ADDR",
        help="mirror the terminal live, read-only, on a web page at ADDR (default "
        "127.0.0.1:8580; another address prints a URL with a token; needs the 'web' extra; "
        "[web] listen in the config does the same)",
    )
    run.add_argument(
        "--web-control",
        action="store_true",
        help="let the --web page press the terminal's keys too (off: the page only watches; "
        "[web] control = true in the config does the same)",
    )
    run.set_defaults(handler=run_command)
    return run


def add_doctor_parser(commands: Commands) -> argparse.ArgumentParser:
    doctor = commands.add_parser(
        "doctor",
        help="check each configured part and say what to fix",
        description=(
            "Check the config and each part it names: the GPIO pin factory and Pi model, the "
            "GPIO pins being free, the I2C bus and a display answering at its address, the "
            "card reader's serial port (opens, not the login console), the USB keypad, the "
            "clock (not before the build date nor behind the journal's newest date) and the "
            "offline mode the terminal starts in. Prints a fix for each problem and exits 1 "
            "when there is one, 0 when all is well."
        ),
        epilog=(
            "example:\n  pitill doctor --config /etc/pitill/pitill.toml --data-dir /var/lib/pitill"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    doctor.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML config (default: the built-in defaults)"
    )
    doctor.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"the journal to check the clock against (default {DEFAULT_DATA_DIR})",
    )
    doctor.set_defaults(handler=doctor_command)
    return doctor


def run_command(args: argparse.Namespace) -> int:
    from pitill.service import PiRunner, serve  # the drivers load only for this command

    config = load_config(args.config)
    configure_logging(args.log_level or config.log.level, config.log.file)
    web = args.web or config.web.listen or None
    control = args.web_control or config.web.control
    runner = PiRunner(config, args.data_dir, web=web, web_control=control)
    asyncio.run(serve(runner))
    return 0


def doctor_checks(config: Config) -> list[Check]:
    """The doctor's checks for the parts this config uses."""
    display = config.display
    on_bus = display.driver != "dummy"
    spi_pins = (
        ("display.spi_gpio_dc", display.spi_gpio_dc),
        ("display.spi_gpio_rst", display.spi_gpio_rst),
    )
    return [
        *run_doctor(
            gpio=config.gpio,
            keypad=config.keypad,
            buttons=config.buttons,
            usb_keypad=config.usb_keypad,
            indicators=config.indicators,
            display_i2c=(
                (display.i2c_port, display.i2c_address)
                if on_bus and display.interface == "i2c"
                else None
            ),
            serial_port=config.reader.port if config.reader.type != "usb-stripe" else None,
            reader=config.reader,
            extra_pins=spi_pins if on_bus and display.interface == "spi" else (),
            printer=printer_of(config),
        ),
        describe_upstream(config.upstream),
    ]


def printer_of(config: Config) -> StatusSink | None:
    """The receipt printer [receipt] names, as the doctor asks it for its status."""
    sink = receipt_sink(config)
    return sink if isinstance(sink, (SerialReceipts, UsbReceipts)) else None


def config_checks(path: Path | None) -> tuple[list[Check], Config | None]:
    """Loading the config is the first check, one failed Check per problem (the fix after the
    last); the Config is None when it failed."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        fix = f"correct it in {path}; {EXAMPLE_CONFIG} lists every key with its default"
        last = len(exc.problems) - 1
        return [
            Check("config", False, problem, fix if i == last else "")
            for i, problem in enumerate(exc.problems)
        ], None
    detail = f"{path}: valid" if path is not None else "no --config: the built-in defaults"
    return [Check("config", True, detail)], config


def doctor_command(args: argparse.Namespace) -> int:
    checks, config = config_checks(args.config)
    checks += doctor_checks(config) if config is not None else []
    checks += [check_link_watch(config.upstream)] if config is not None else []
    mode = config.offline.mode if config is not None else None
    checks += run_journal_checks(args.data_dir, mode)
    print(format_report(checks))
    return exit_code(checks)
