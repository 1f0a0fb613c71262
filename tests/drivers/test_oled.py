"""The OLED driver on luma.oled's real ssd1306 / sh1106 / ssd1309 classes over a recording bus."""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
from pathlib import Path
from typing import Any

import luma.core.error
import pytest
from luma.core.interface.serial import i2c
from PIL import Image

from pitill.config import DisplayConfig
from pitill.core.screens import Emphasis, Screen, StatusBar
from pitill.core.types import LinkStatus
from pitill.drivers.oled import DummyDisplay, OledDisplay
from pitill.drivers.render import render, screen_gallery
from pitill.errors import ConfigError, HardwareError

# luma.oled 3.16 still calls Image.getdata (gone in Pillow 14; pyproject pins pillow<14)
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

SETCONTRAST = 0x81
DISPLAYOFF = 0xAE
COLUMNADDR = 0x21
PAGEADDR = 0x22
APPROVED = screen_gallery()["approved"]
READY = screen_gallery()["idle_online"]


class RecordingSerial:
    """A luma serial interface that keeps every command and data write in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[int, ...]]] = []
        self.cleaned_up = False

    def command(self, *cmd: int) -> None:
        self.calls.append(("command", tuple(cmd)))

    def data(self, data: Any) -> None:
        self.calls.append(("data", tuple(data)))

    def cleanup(self) -> None:
        self.cleaned_up = True

    def commands(self) -> list[tuple[int, ...]]:
        return [args for kind, args in self.calls if kind == "command"]

    def frames(self) -> list[tuple[int, ...]]:
        return [args for kind, args in self.calls if kind == "data"]


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def open_display(**overrides: Any) -> tuple[OledDisplay, RecordingSerial, FakeClock]:
    serial, clock = RecordingSerial(), FakeClock()
    display = OledDisplay(DisplayConfig(**overrides), serial_interface=serial, clock=clock)
    serial.calls.clear()  # forget the panel's power-on sequence
    return display, serial, clock


def decode_pages(frame: tuple[int, ...], width: int = 128, height: int = 64) -> Image.Image:
    """The image a page-addressed frame shows: byte (page, x), bit b is pixel (x, 8 * page + b)."""
    image = Image.new("1", (width, height))
    for index, byte in enumerate(frame):
        page, x = divmod(index, width)
        for bit in range(8):
            if byte >> bit & 1:
                image.putpixel((x, 8 * page + bit), 1)
    return image


@pytest.mark.parametrize("driver", ["ssd1306", "ssd1309"])
def test_ssd130x_sends_one_1024_byte_frame_of_the_rendered_screen(driver: str) -> None:
    display, serial, _ = open_display(driver=driver)
    shown = display.show(APPROVED)
    assert serial.commands() == [(COLUMNADDR, 0, 127, PAGEADDR, 0, 7)]
    (frame,) = serial.frames()
    assert len(frame) == 1024
    assert decode_pages(frame).tobytes() == render(APPROVED).tobytes() == shown.tobytes()


def test_sh1106_sends_eight_page_writes() -> None:
    display, serial, _ = open_display(driver="sh1106")
    display.show(APPROVED)
    commands, frames = serial.commands(), serial.frames()
    # page address, column offset 2 (132-column RAM), column high nibble 0
    assert commands == [(0xB0 + page, 0x02, 0x10) for page in range(8)]
    assert [len(frame) for frame in frames] == [128] * 8
    whole = tuple(byte for frame in frames for byte in frame)
    assert decode_pages(whole).tobytes() == render(APPROVED).tobytes()


def test_the_same_image_is_not_sent_again() -> None:
    display, serial, _ = open_display()
    display.show(APPROVED)
    display.show(APPROVED)
    display.show(dataclasses.replace(APPROVED))  # equal screen, new object
    assert len(serial.frames()) == 1
    display.show(READY)
    assert len(serial.frames()) == 2


def test_contrast_is_set_from_the_config_at_start() -> None:
    serial = RecordingSerial()
    OledDisplay(DisplayConfig(contrast=200), serial_interface=serial, clock=FakeClock())
    contrast = [cmd for cmd in serial.commands() if cmd[0] == SETCONTRAST]
    assert contrast[-1] == (SETCONTRAST, 200)  # after luma's own power-on value


def test_dims_after_the_quiet_spell_and_wakes_on_a_key() -> None:
    display, serial, clock = open_display(dim_after_s=60.0, contrast=255, dim_contrast=16)
    display.show(READY)
    clock.now_s += 59.9
    display.tick()
    assert not display.dimmed
    assert (SETCONTRAST, 16) not in serial.commands()
    clock.now_s += 0.1
    display.tick()
    display.tick()  # once dimmed, no repeated commands
    assert display.dimmed
    assert [cmd for cmd in serial.commands() if cmd[0] == SETCONTRAST] == [(SETCONTRAST, 16)]
    display.wake()
    assert not display.dimmed
    assert serial.commands()[-1] == (SETCONTRAST, 255)
    clock.now_s += 30.0
    display.tick()
    assert not display.dimmed  # the key restarted the 60 s


def test_a_new_screen_wakes_but_the_same_screen_does_not() -> None:
    display, serial, clock = open_display(dim_after_s=10.0)
    display.show(READY)
    clock.now_s += 10.0
    display.show(READY)  # a repeat is not activity: it dims on the way
    assert display.dimmed
    display.show(APPROVED)
    assert not display.dimmed
    assert serial.commands()[-1] == (SETCONTRAST, 255)


def test_dim_after_zero_never_dims() -> None:
    display, serial, clock = open_display(dim_after_s=0.0)
    display.show(READY)
    clock.now_s += 1e6
    display.tick()
    assert not display.dimmed
    assert all(cmd[0] != SETCONTRAST for cmd in serial.commands())


def test_rotate_2_sends_the_image_upside_down() -> None:
    display, serial, _ = open_display(rotate=2)
    display.show(APPROVED)
    (frame,) = serial.frames()
    upside_down = render(APPROVED).rotate(180)
    assert decode_pages(frame).tobytes() == upside_down.tobytes()
    assert display.image is not None
    assert display.image.tobytes() == render(APPROVED).tobytes()  # what the sim shows


def test_close_blanks_and_switches_the_panel_off() -> None:
    display, serial, _ = open_display()
    display.show(APPROVED)
    serial.calls.clear()
    display.close()
    assert (DISPLAYOFF,) in serial.commands()
    assert serial.frames()[-1] == (0,) * 1024
    assert serial.cleaned_up
    display.close()  # idempotent
    with pytest.raises(HardwareError, match="after close"):
        display.show(READY)


def test_close_keep_image_leaves_the_last_screen_lit() -> None:
    display, serial, _ = open_display()
    display.show(Screen("OUT OF ORDER", emphasis=Emphasis.ERROR))
    serial.calls.clear()
    display.close(keep_image=True)
    assert serial.calls == []
    assert serial.cleaned_up


@pytest.mark.skipif(Path("/dev/i2c-1").exists(), reason="this machine has an I2C bus")
def test_missing_i2c_bus_is_a_hardware_error_saying_what_to_check() -> None:
    with pytest.raises(HardwareError) as caught:
        OledDisplay(DisplayConfig())
    message = str(caught.value)
    assert "/dev/i2c-1" in message
    assert "enable I2C" in message
    assert 'driver = "dummy"' in message


class NackBus:
    """An smbus whose device never acknowledges: what luma sees with nothing at the address."""

    def write_i2c_block_data(self, address: int, register: int, data: list[int]) -> None:
        raise OSError(errno.EREMOTEIO, "Remote I/O error")

    def close(self) -> None:
        pass


def test_nothing_at_the_address_is_a_hardware_error_naming_it() -> None:
    bus = i2c(bus=NackBus(), address=0x3D)
    with pytest.raises(HardwareError) as caught:
        OledDisplay(DisplayConfig(i2c_address=0x3D), serial_interface=bus)
    assert "0x3D" in str(caught.value)
    assert "i2cdetect -y 1" in str(caught.value)


@pytest.mark.skipif(
    importlib.util.find_spec("RPi") is not None, reason="RPi.GPIO is installed here"
)
def test_spi_without_the_pi_libraries_is_a_hardware_error() -> None:
    with pytest.raises(HardwareError, match="spidev"):
        OledDisplay(DisplayConfig(interface="spi"))


class UnpluggableSerial(RecordingSerial):
    unplugged = False

    def data(self, data: Any) -> None:
        if self.unplugged:
            raise luma.core.error.DeviceNotFoundError("I2C device not found on address: 0x3C")
        super().data(data)


def test_a_failed_frame_write_is_a_hardware_error_and_is_retried() -> None:
    serial = UnpluggableSerial()
    display = OledDisplay(DisplayConfig(), serial_interface=serial, clock=FakeClock())
    serial.unplugged = True
    with pytest.raises(HardwareError, match="writing a frame failed"):
        display.show(APPROVED)
    assert display.image is None  # not counted as shown: the next show tries again
    serial.unplugged = False
    display.show(APPROVED)
    assert display.image is not None
    assert len(serial.frames()) == 2  # the power-on clear, then the retried screen


def test_dummy_display_keeps_the_image() -> None:
    clock = FakeClock()
    display = DummyDisplay(DisplayConfig(driver="ssd1306", rotate=2, dim_after_s=5), clock)
    shown = display.show(READY)
    assert display.image is not None
    assert display.image.tobytes() == shown.tobytes() == render(READY).tobytes()
    assert display.device.image.tobytes() == render(READY).rotate(180).tobytes()
    clock.now_s += 5
    display.tick()
    assert display.dimmed
    display.close()


def test_default_config_is_valid() -> None:
    DisplayConfig().validate("display")
    DisplayConfig(driver="sh1106", interface="spi", rotate=2, dim_after_s=0).validate("display")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"driver": "ssd1351"}, "driver"),
        ({"interface": "parallel"}, "interface"),
        ({"i2c_address": 0x80}, "i2c_address"),
        ({"i2c_port": -1}, "i2c_port"),
        ({"spi_gpio_dc": 40}, "spi_gpio_dc"),
        ({"spi_gpio_rst": 24}, "spi_gpio_rst"),
        ({"rotate": 1}, "rotate"),
        ({"contrast": 256}, "contrast"),
        ({"dim_contrast": -1}, "dim_contrast"),
        ({"contrast": 100, "dim_contrast": 120}, "dim_contrast"),
        ({"dim_after_s": -1.0}, "dim_after_s"),
    ],
)
def test_bad_config_names_the_key(overrides: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^display\.{key}: "):
        DisplayConfig(**overrides).validate("display")


def test_display_validates_its_config() -> None:
    with pytest.raises(ConfigError, match=r"display\.rotate"):
        OledDisplay(DisplayConfig(rotate=3), serial_interface=RecordingSerial())


def test_status_change_reaches_the_panel() -> None:
    display, serial, _ = open_display()
    display.show(Screen("READY", status=StatusBar(LinkStatus.ONLINE)))
    display.show(Screen("READY", status=StatusBar(LinkStatus.OFFLINE, "DNS")))
    first, second = serial.frames()
    assert first != second
