"""`pitill doctor`: each check against fakes in tmp_path, and the whole run on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial
from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory

from pitill.config import GpioConfig, UsbKeypadConfig
from pitill.doctor import (
    Check,
    SystemPaths,
    check_gpio_pins,
    check_i2c_display,
    check_pin_factory,
    check_serial_console,
    check_serial_port,
    check_usb_keypad,
    describe_factory,
    exit_code,
    format_report,
    run_doctor,
)


@pytest.fixture
def pty_port() -> Iterator[str]:
    controller, device = os.openpty()
    yield os.ttyname(device)
    os.close(device)
    os.close(controller)


class FakeBus:
    """An I2C bus where only `answering` addresses acknowledge."""

    def __init__(self, answering: set[int]) -> None:
        self.answering = answering
        self.closed = False

    def read_byte(self, i2c_addr: int) -> int:
        if i2c_addr not in self.answering:
            raise OSError(121, "Remote I/O error")
        return 0x43

    def close(self) -> None:
        self.closed = True


# --- pin factory and pins ---------------------------------------------------------------------


def test_the_mock_factory_is_described_with_its_board() -> None:
    check, factory = check_pin_factory("mock")
    assert check.ok and "MockFactory" in check.detail and "Pi 3B" in check.detail
    assert isinstance(factory, MockFactory)


def test_a_pi_5_without_lgpio_fails() -> None:
    class RPiGPIOFactory(MockFactory):  # type: ignore[misc]  # what a Pi 5 would get from RPi.GPIO
        pass

    check = describe_factory(RPiGPIOFactory(revision="d04170"))
    assert not check.ok and "Pi 5B" in check.detail and "lgpio" in check.fix


def test_no_pin_factory_here_is_a_clear_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.path.exists("/proc/device-tree/model"):
        pytest.skip("this machine may be a Pi")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)  # other tests may have set one
    check, factory = check_pin_factory("")
    assert factory is None and not check.ok
    assert check.detail.startswith("no GPIO pin factory could be loaded (not a Raspberry Pi?)")
    assert "lgpio" in check.fix and "mock" in check.fix


def test_free_pins_pass_and_a_busy_one_is_named(factory: MockFactory) -> None:
    uses = [("indicators.green_led_pin", 17), ("indicators.drawer_pin", 22)]
    assert check_gpio_pins(factory, uses).ok
    holder = LED(22, pin_factory=factory)
    check = check_gpio_pins(factory, uses)
    assert not check.ok and "GPIO22 (indicators.drawer_pin)" in check.detail
    assert "GPIO17" not in check.detail
    holder.close()


def test_a_pin_configured_twice_fails(factory: MockFactory) -> None:
    check = check_gpio_pins(factory, [("keypad.row_pins[0]", 5), ("buttons.ok_pin", 5)])
    assert not check.ok and "buttons.ok_pin: GPIO5 is already used by keypad.row_pins[0]" in (
        check.detail
    )


def test_pins_are_skipped_without_a_factory() -> None:
    check = check_gpio_pins(None, [("x", 5)])
    assert check.skipped and not check.failed


# --- I2C --------------------------------------------------------------------------------------


def test_a_missing_i2c_bus_says_how_to_enable_it(tmp_path: Path) -> None:
    check = check_i2c_display(1, 0x3C, dev_dir=tmp_path)
    assert not check.ok and f"{tmp_path}/i2c-1 does not exist" in check.detail
    assert "raspi-config nonint do_i2c 0" in check.fix


def test_a_file_that_is_no_i2c_adapter_fails_through_smbus2(tmp_path: Path) -> None:
    (tmp_path / "i2c-1").touch()  # a plain file: smbus2 opens it, its I2C ioctl then fails
    check = check_i2c_display(1, 0x3C, dev_dir=tmp_path)
    assert not check.ok and "does not work as an I2C adapter" in check.detail
    assert "i2c_arm=on" in check.fix


def test_a_display_answering_at_its_address(tmp_path: Path) -> None:
    (tmp_path / "i2c-1").touch()
    bus = FakeBus({0x3C})
    assert check_i2c_display(1, 0x3C, dev_dir=tmp_path, open_bus=lambda _: bus).ok
    assert bus.closed
    silent = check_i2c_display(1, 0x3D, dev_dir=tmp_path, open_bus=lambda _: bus)
    assert not silent.ok and "no device answers at 0x3D" in silent.detail
    assert "i2cdetect -y 1" in silent.fix


def test_no_permission_on_the_bus_names_the_group(tmp_path: Path) -> None:
    (tmp_path / "i2c-1").touch()

    def denied(path: str) -> FakeBus:
        raise PermissionError(13, "Permission denied", path)

    check = check_i2c_display(1, 0x3C, dev_dir=tmp_path, open_bus=denied)
    assert not check.ok and "group i2c" in check.fix


# --- serial -----------------------------------------------------------------------------------


def test_a_serial_port_that_opens(pty_port: str) -> None:
    assert check_serial_port(pty_port).ok


def test_a_missing_serial_port_says_how_to_enable_the_uart(tmp_path: Path) -> None:
    check = check_serial_port(str(tmp_path / "serial0"))
    assert not check.ok and "does not exist" in check.detail
    assert "do_serial_hw 0" in check.fix


def test_a_missing_udev_name_points_at_the_udev_rule() -> None:
    check = check_serial_port("/dev/pitill-reader")  # no udev rule on this machine
    assert not check.ok and "99-pitill.rules" in check.fix


def test_the_console_check_is_skipped_for_a_port_that_does_not_exist(
    fake_system: SystemPaths,
) -> None:
    fake_system.proc_cmdline.write_text("console=serial1,115200\n")
    check = console_check(str(fake_system.dev_dir / "serial1"), fake_system)
    assert check.skipped and "does not exist" in check.detail


def test_a_serial_port_held_by_another_program(pty_port: str) -> None:
    with serial.Serial(pty_port, exclusive=True):
        check = check_serial_port(pty_port)
    assert not check.ok and "does not open" in check.detail


@pytest.fixture
def fake_system(tmp_path: Path) -> SystemPaths:
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "ttyS0").touch()
    (dev / "serial0").symlink_to("ttyS0")
    getty = tmp_path / "getty.target.wants"
    getty.mkdir()
    return SystemPaths(dev_dir=dev, proc_cmdline=tmp_path / "cmdline", getty_dirs=(getty,))


def console_check(port: str, system: SystemPaths) -> Check:
    return check_serial_console(
        port,
        cmdline_path=system.proc_cmdline,
        getty_dirs=system.getty_dirs,
        dev_dir=system.dev_dir,
    )


def test_the_kernel_console_on_the_reader_port_fails(fake_system: SystemPaths) -> None:
    fake_system.proc_cmdline.write_text("coherent_pool=1M console=serial0,115200 console=tty1\n")
    check = console_check(str(fake_system.dev_dir / "ttyS0"), fake_system)  # serial0 -> ttyS0
    assert not check.ok and "console=serial0,115200" in check.detail
    assert "do_serial_cons 1" in check.fix
    assert console_check("/dev/ttyUSB0", fake_system).ok


def test_a_serial_getty_on_the_reader_port_fails(fake_system: SystemPaths) -> None:
    fake_system.proc_cmdline.write_text("console=tty1 root=PARTUUID=1234-02\n")
    port = str(fake_system.dev_dir / "serial0")
    assert console_check(port, fake_system).ok
    (fake_system.getty_dirs[0] / "serial-getty@ttyS0.service").symlink_to("/nonexistent")
    check = console_check(port, fake_system)
    assert not check.ok and "serial-getty@ttyS0.service" in check.detail


# --- USB keypad -------------------------------------------------------------------------------


def test_a_usb_keypad_found_by_glob_or_missing(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*-event-kbd")
    missing = check_usb_keypad(pattern)
    assert not missing.ok and "ls -l /dev/input/by-id/" in missing.fix
    (tmp_path / "usb-ACME-event-kbd").touch()
    check = check_usb_keypad(pattern)
    assert check.ok and "usb-ACME-event-kbd" in check.detail


# --- the whole run ----------------------------------------------------------------------------


def test_all_good_on_fakes_exits_zero(
    tmp_path: Path, pty_port: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("console=tty1\n")
    (tmp_path / "x-event-kbd").touch()
    checks = run_doctor(
        gpio=GpioConfig(pin_factory="mock"),
        usb_keypad=UsbKeypadConfig(enabled=True, device=str(tmp_path / "*-event-kbd")),
        display_i2c=None,
        serial_port=pty_port,
        paths=SystemPaths(dev_dir=tmp_path, proc_cmdline=cmdline, getty_dirs=()),
    )
    assert [c.name for c in checks] == [
        "pin factory",
        "GPIO pins",
        "serial port",
        "serial console",
        "USB keypad",
    ]
    assert exit_code(checks) == 0, format_report(checks)
    assert format_report(checks).endswith("all good")


def test_the_report_lists_failures_with_their_fix() -> None:
    checks = [
        Check("pin factory", True, "MockFactory"),
        Check("I2C display", False, "/dev/i2c-1 does not exist", "enable I2C"),
        Check("GPIO pins", False, "not checked", skipped=True),
    ]
    report = format_report(checks)
    assert report.splitlines() == [
        "ok    pin factory: MockFactory",
        "FAIL  I2C display: /dev/i2c-1 does not exist",
        "      fix: enable I2C",
        "skip  GPIO pins: not checked",
        "1 problem(s) found",
    ]
    assert exit_code(checks) == 1


def test_a_crashing_check_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(port: str) -> Check:
        raise RuntimeError("boom")

    monkeypatch.setattr("pitill.doctor.check_serial_port", broken)
    checks = run_doctor(gpio=GpioConfig(pin_factory="mock"), display_i2c=None)
    (serial_check,) = [c for c in checks if c.name == "serial port"]
    assert serial_check.failed and "RuntimeError: boom" in serial_check.detail


on_a_pi = os.path.exists("/dev/i2c-1") or os.path.exists("/dev/serial0")


@pytest.mark.skipif(on_a_pi, reason="this machine has an I2C bus or a serial0 port")
def test_on_this_machine_the_doctor_reports_missing_i2c_and_serial_without_a_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    done = subprocess.run(
        [sys.executable, "-m", "pitill.doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    assert "FAIL  I2C display: /dev/i2c-1 does not exist: the I2C bus is off" in done.stdout
    assert "raspi-config nonint do_i2c 0" in done.stdout
    assert "FAIL  serial port: /dev/serial0 does not exist" in done.stdout


def test_the_link_watch_names_its_cadence_and_works_on_this_kernel() -> None:
    from pitill.config import UpstreamConfig
    from pitill.doctor import check_link_watch

    check = check_link_watch(UpstreamConfig())
    assert check.ok, check
    assert "echo after 60 s without an answer (<= 60/h idle)" in check.detail
    assert "keepalive 1 s + 0.15 s grace" in check.detail
