"""`pitill run` and `pitill doctor` on the command line: parsing, the doctor's verdicts."""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pitill.cli import main
from pitill.config import config_from_dict
from pitill.service_cli import (
    DEFAULT_DATA_DIR,
    add_parsers,
    doctor_checks,
    doctor_command,
    run_command,
)
from pitill.sim.reader_emulator import open_pty_pair
from pitill_cli import PITILL

on_a_pi = os.path.exists("/dev/i2c-1") or os.path.exists("/dev/serial0")


@pytest.fixture
def pty_port() -> Iterator[str]:
    master_fd, slave_path = open_pty_pair()
    yield slave_path
    os.close(master_fd)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pitill")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_the_commands_parse_as_the_unit_calls_them() -> None:
    args = parse("run", "--config", "/etc/pitill/pitill.toml", "--data-dir", "/var/lib/pitill")
    assert args.handler is run_command
    assert args.config == Path("/etc/pitill/pitill.toml")
    assert args.data_dir == Path("/var/lib/pitill") and args.log_level is None  # config decides
    assert parse("run", "--config", "c.toml").data_dir == DEFAULT_DATA_DIR
    doctor = parse("doctor")
    assert doctor.handler is doctor_command and doctor.config is None


def test_run_needs_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("run")
    assert exited.value.code == 2
    assert "--config" in capsys.readouterr().err


def test_the_doctor_checks_what_the_config_uses(pty_port: str) -> None:
    config = config_from_dict(
        {
            "gpio": {"pin_factory": "mock"},
            "display": {"interface": "spi"},
            "reader": {"port": pty_port},
            "buttons": {"enabled": True},
            "upstream": {"bitmap": "binary", "length_prefix": "4-digit-ascii"},
        }
    )
    checks = {check.name: check for check in doctor_checks(config)}
    assert checks["upstream"].detail.startswith(
        "acquirer.pitill.test:8583 over plain TCP; bitmap binary, length prefix 4-digit-ascii"
    )
    assert "I2C display" not in checks  # on SPI
    assert checks["pin factory"].ok and "MockFactory" in checks["pin factory"].detail
    pins = checks["GPIO pins"]
    assert pins.ok
    for pin in ("24", "25", "26", "23", "5", "22"):  # SPI DC/RST, buttons, keypad, drawer
        assert pin in pins.detail.removeprefix("free: ").split(", ")
    assert checks["serial port"].ok and pty_port in checks["serial port"].detail
    assert "USB keypad" not in checks


def test_the_doctor_on_fakes_is_all_good(
    tmp_path: Path, pty_port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pitill.toml"
    config.write_text(
        '[gpio]\npin_factory = "mock"\n[display]\ndriver = "dummy"\n'
        f'[reader]\nport = "{pty_port}"\n'
    )
    data = tmp_path / "data"  # a terminal whose supervisor PIN is set: nothing left to fix
    set_pin = subprocess.run(
        [*PITILL, "pin", "set", "--data-dir", str(data)],
        input="2580\n2580\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert set_pin.returncode == 0, set_pin.stderr
    code = main(["doctor", "--config", str(config), "--data-dir", str(data)])
    out = capsys.readouterr().out
    if "FAIL  serial console" in out:
        pytest.skip("this machine's kernel console is on a pty")
    assert code == 0, out
    assert out.splitlines()[0] == f"ok    config: {config}: valid"
    assert out.splitlines()[-1] == "all good"


def test_the_doctor_reports_a_bad_config_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "pitill.toml"
    config.write_text("[buttons]\nok_pin = 5\nenabled = true\n")
    code = main(["doctor", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[:2] == [
        "FAIL  config: buttons.ok_pin: GPIO5 is already used by keypad.row_pins[0]; "
        "pick a free pin",
        f"      fix: correct it in {config}; hw/pitill.example.toml lists every key with its "
        "default",
    ]
    assert out.splitlines()[-1].endswith("problem(s) found")  # the PIN's check runs too


def test_the_doctor_reports_a_missing_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--config", str(tmp_path / "nope.toml")]) == 1
    assert f"FAIL  config: config file {tmp_path / 'nope.toml'} does not exist" in (
        capsys.readouterr().out
    )


@pytest.mark.skipif(on_a_pi, reason="this machine has an I2C bus or a serial0 port")
def test_pitill_doctor_on_this_machine_names_the_missing_bus_and_port() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    done = subprocess.run(
        [*PITILL, "doctor"], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == "ok    config: no --config: the built-in defaults"
    assert "FAIL  I2C display: /dev/i2c-1 does not exist: the I2C bus is off" in lines
    assert "FAIL  serial port: /dev/serial0 does not exist" in lines
    assert lines[-1].endswith("problem(s) found")
