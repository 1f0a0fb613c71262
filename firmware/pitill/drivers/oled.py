"""The real display: screens rendered by drivers/render.py pushed to an SSD1306, SH1106 or
SSD1309 OLED through luma.oled, over I2C or SPI.

Only changed images go over the bus (a full frame is ~23 ms of I2C at 400 kHz). The panel dims
after `dim_after_s` without a new screen or a key (`wake()`), to spare the OLED from burn-in;
the app calls `tick()` from its loop so dimming needs no thread. DummyDisplay is the same
display on luma's dummy device, for the simulator and tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import luma.core.error
from luma.core.device import device as LumaDevice
from luma.core.device import dummy
from luma.core.interface.serial import i2c, spi
from luma.oled.device import sh1106, ssd1306, ssd1309
from PIL import Image

from pitill.config import DisplayConfig
from pitill.core.screens import Screen
from pitill.drivers.render import HEIGHT_PX, WIDTH_PX, render
from pitill.errors import HardwareError

_PANELS: dict[str, Callable[..., LumaDevice]] = {
    "ssd1306": ssd1306,
    "sh1106": sh1106,
    "ssd1309": ssd1309,
}
_I2C_HINT = (
    "enable I2C (raspi-config > Interface Options > I2C, or dtparam=i2c_arm=on in "
    "/boot/firmware/config.txt), check the wiring (SDA GPIO2, SCL GPIO3, 3.3 V, GND) and "
    "that `i2cdetect -y {port}` shows the display at display.i2c_address; "
    'or set display.driver = "dummy" to run without a display'
)


def open_device(config: DisplayConfig, serial_interface: Any = None) -> LumaDevice:
    """The luma device for `config`; `serial_interface` replaces the real bus (tests)."""
    if config.driver == "dummy":
        return dummy(width=WIDTH_PX, height=HEIGHT_PX, rotate=config.rotate, mode="1")
    where = (
        f"{config.driver} at I2C address 0x{config.i2c_address:02X} on /dev/i2c-{config.i2c_port}"
        if config.interface == "i2c"
        else f"{config.driver} on SPI /dev/spidev{config.spi_port}.{config.spi_device}"
    )
    try:
        serial = serial_interface if serial_interface is not None else _open_serial(config)
        return _PANELS[config.driver](
            serial, width=WIDTH_PX, height=HEIGHT_PX, rotate=config.rotate
        )
    except luma.core.error.DevicePermissionError as exc:
        raise HardwareError(
            f"display: {where}: {exc}; add the service user to the "
            f"{config.interface if config.interface == 'i2c' else 'spi and gpio'} group"
        ) from exc
    except (luma.core.error.Error, OSError) as exc:
        raise HardwareError(f"display: {where}: {exc}; {_hint(config)}") from exc
    except ImportError as exc:  # spidev / RPi.GPIO are only installed on a Pi
        raise HardwareError(
            f"display: {where} needs {exc.name or 'spidev and RPi.GPIO'} ({exc}); install "
            "python3-spidev and python3-rpi.gpio (rpi-lgpio on a Pi 5), or use interface = "
            '"i2c"'
        ) from exc


def _open_serial(config: DisplayConfig) -> Any:
    if config.interface == "i2c":
        return i2c(port=config.i2c_port, address=config.i2c_address)
    return spi(
        port=config.spi_port,
        device=config.spi_device,
        gpio_DC=config.spi_gpio_dc,
        gpio_RST=config.spi_gpio_rst,
    )


def _hint(config: DisplayConfig) -> str:
    if config.interface == "i2c":
        return _I2C_HINT.format(port=config.i2c_port)
    return (
        "enable SPI (raspi-config > Interface Options > SPI, or dtparam=spi=on), check the "
        f"wiring (MOSI GPIO10, SCLK GPIO11, CE{config.spi_device}, DC GPIO{config.spi_gpio_dc}, "
        f'RST GPIO{config.spi_gpio_rst}); or set display.driver = "dummy"'
    )


class OledDisplay:
    """A Display (drivers/protocols.py) on a luma device; `clock` is monotonic seconds."""

    def __init__(
        self,
        config: DisplayConfig,
        serial_interface: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        config.validate("display")
        self._config = config
        self._clock = clock
        self.device = open_device(config, serial_interface)
        self._image: Image.Image | None = None
        self._pixels: bytes | None = None
        self._closed = False
        self._dimmed = False
        self._set_contrast(config.contrast)
        self._active_at_s = clock()

    @property
    def image(self) -> Image.Image | None:
        """The last image shown (unrotated), or None before the first show."""
        return self._image

    @property
    def dimmed(self) -> bool:
        return self._dimmed

    def show(self, screen: Screen) -> Image.Image:
        """Render `screen`; only a changed image goes to the panel and counts as activity."""
        self._check_open()
        image = render(screen)
        pixels = image.tobytes()
        if pixels == self._pixels:
            self.tick()
            return image
        self._push(image)
        self._image, self._pixels = image, pixels
        self.wake()
        return image

    def wake(self) -> None:
        """A key was pressed or the screen changed: full contrast, and the dim timer restarts."""
        self._check_open()
        self._active_at_s = self._clock()
        if self._dimmed:
            self._set_contrast(self._config.contrast)
            self._dimmed = False

    def tick(self) -> None:
        """Dim when `dim_after_s` has passed quietly; call it from the app loop now and then."""
        self._check_open()
        if self._dimmed or self._config.dim_after_s == 0:
            return
        if self._clock() - self._active_at_s >= self._config.dim_after_s:
            self._set_contrast(self._config.dim_contrast)
            self._dimmed = True

    def close(self, keep_image: bool = False) -> None:
        """Switch the panel off and blank it (a stopped terminal must not look ready), or with
        `keep_image` leave the last screen lit, e.g. an out-of-order notice. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.device.persist = keep_image
        # a bus that is already gone leaves nothing to switch off
        with contextlib.suppress(luma.core.error.Error, OSError):
            self.device.cleanup()
        # luma's own atexit hook would run cleanup again: make it leave the panel alone
        self.device.persist = True

    def _push(self, image: Image.Image) -> None:
        try:
            self.device.display(image)
        except (luma.core.error.Error, OSError) as exc:
            raise HardwareError(
                f"display: writing a frame failed: {exc}; {_hint(self._config)}"
            ) from exc

    def _set_contrast(self, level: int) -> None:
        try:
            self.device.contrast(level)
        except (luma.core.error.Error, OSError) as exc:
            raise HardwareError(
                f"display: setting contrast {level} failed: {exc}; {_hint(self._config)}"
            ) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise HardwareError("display: used after close(); open a new OledDisplay")


class DummyDisplay(OledDisplay):
    """The display on luma's dummy device (no hardware): for the simulator and tests.

    `device.image` holds what the panel would show (rotated as configured); `image` the
    rendered screen.
    """

    def __init__(
        self, config: DisplayConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(
            dataclasses.replace(config or DisplayConfig(), driver="dummy"), None, clock
        )
