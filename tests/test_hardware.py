"""Building the real devices from the config: every part on its fake, clear errors, display wake."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero import LED, Device
from gpiozero.pins.mock import MockFactory

from pitill.config import Config, DisplayConfig, config_from_dict
from pitill.core.types import Key
from pitill.drivers.oled import DummyDisplay, OledDisplay
from pitill.drivers.protocols import KeySink
from pitill.drivers.render import render, screen_gallery
from pitill.errors import HardwareError
from pitill.hardware import DisplayKeeper, build_hardware
from pitill.sim.reader_emulator import open_pty_pair

# luma.oled 3.16 still calls Image.getdata (gone in Pillow 14; pyproject pins pillow<14)
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


@pytest.fixture
def reader_port() -> Iterator[str]:
    master_fd, slave_path = open_pty_pair()
    yield slave_path
    os.close(master_fd)


def fake_config(reader_port: str, **sections: dict[str, Any]) -> Config:
    """Every part on its fake: mock GPIO, luma's dummy display, the reader on a pty."""
    raw: dict[str, dict[str, Any]] = {
        "gpio": {"pin_factory": "mock"},
        "display": {"driver": "dummy"},
        "reader": {"port": reader_port},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return config_from_dict(raw)


def test_every_part_is_built_from_the_config_on_its_fake(reader_port: str) -> None:
    config = fake_config(reader_port, buttons={"enabled": True})
    hardware = build_hardware(config)
    try:
        assert isinstance(hardware.pin_factory, MockFactory)  # from gpio.pin_factory = "mock"
        assert hardware.owns_factory
        assert type(hardware.display.device).__name__ == "dummy"
        assert hardware.reader.config.port == reader_port
        assert hardware.keypad is not None and hardware.buttons is not None
        assert hardware.usb_keypad is None  # not enabled
        assert hardware.mock_keypad is not None  # the fake membrane on the mock pins
        devices = hardware.devices
        assert devices.display is hardware.keeper and hardware.keeper.display is hardware.display
        assert devices.reader is hardware.reader
        assert devices.indicators is hardware.indicators
        assert len(devices.key_sources) == 2
        devices.indicators.set_leds(green=True, red=False)
        assert hardware.pin_factory.pin(17).state and not hardware.pin_factory.pin(27).state
        assert "MockFactory on Raspberry Pi" in hardware.describe()
    finally:
        hardware.close()
        hardware.close()  # idempotent


def test_reader_type_usb_stripe_builds_the_evdev_stripe_reader(
    factory: MockFactory, tmp_path: Any
) -> None:
    from pitill.drivers.evdev_stripe import UsbStripeReader

    port = str(tmp_path / "*-event-kbd")  # nothing plugged in: it waits for one
    config = fake_config(port, reader={"type": "usb-stripe", "layout": "de"})
    hardware = build_hardware(config, pin_factory=factory)
    try:
        assert isinstance(hardware.reader, UsbStripeReader)
        assert hardware.devices.reader is hardware.reader
        assert f"reader {port}" in hardware.describe()
    finally:
        hardware.close()


def test_reader_type_pn532_builds_the_nfc_reader_with_its_meta_key(
    factory: MockFactory, reader_port: str, tmp_path: Any
) -> None:
    from pitill.drivers.pn532_reader import Pn532Reader

    key_file = tmp_path / "sun-meta.key"
    key_file.write_text("000102030405060708090a0b0c0d0e0f\n", encoding="ascii")
    config = fake_config(reader_port, reader={"type": "pn532", "sun_meta_key_file": str(key_file)})
    hardware = build_hardware(config, pin_factory=factory)
    try:
        assert isinstance(hardware.reader, Pn532Reader)
        assert hardware.reader._meta_key == bytes(range(16))
    finally:
        hardware.close()
    key_file.write_text("0001", encoding="ascii")
    with pytest.raises(HardwareError, match=r"sun_meta_key_file .*: holds 2 bytes"):
        build_hardware(config, pin_factory=factory)
    LED(17, pin_factory=factory).close()  # the parts opened before the reader were closed


def test_disabled_parts_are_not_built_and_leave_their_pins_free(
    factory: MockFactory, reader_port: str
) -> None:
    config = fake_config(reader_port, keypad={"enabled": False})
    hardware = build_hardware(config, pin_factory=factory)
    try:
        assert hardware.keypad is None and hardware.buttons is None
        assert hardware.devices.key_sources == []
        LED(5, pin_factory=factory).close()  # keypad row 0 is free
    finally:
        hardware.close()
    assert not hardware.owns_factory
    LED(17, pin_factory=factory).close()  # closed parts gave their pins back


def test_a_busy_pin_names_the_part_and_frees_what_was_opened(
    factory: MockFactory, reader_port: str
) -> None:
    holder = LED(12, pin_factory=factory)  # keypad column 0, held by "another program"
    with pytest.raises(HardwareError) as caught:
        build_hardware(fake_config(reader_port), pin_factory=factory)
    message = str(caught.value)
    assert message.startswith("keypad (rows GPIO5, GPIO6, GPIO13, GPIO19; columns GPIO12")
    assert "is pitill already running?" in message and "keypad.col_pins" in message
    assert "\n" not in message
    holder.close()
    LED(17, pin_factory=factory).close()  # the indicators opened before were closed again
    LED(5, pin_factory=factory).close()  # and the keypad's rows


def test_a_busy_indicator_pin_is_named(factory: MockFactory, reader_port: str) -> None:
    holder = LED(22, pin_factory=factory)
    with pytest.raises(HardwareError, match=r"^indicators \(.*drawer GPIO22\): .*\[indicators\]"):
        build_hardware(fake_config(reader_port), pin_factory=factory)
    holder.close()


def test_a_missing_i2c_display_says_what_to_check(factory: MockFactory, reader_port: str) -> None:
    config = fake_config(reader_port, display={"driver": "ssd1306", "i2c_port": 99})
    with pytest.raises(HardwareError) as caught:
        build_hardware(config, pin_factory=factory)
    message = str(caught.value)
    assert message.startswith("display: ssd1306 at I2C address 0x3C on /dev/i2c-99")
    assert "i2cdetect -y 99" in message and "\n" not in message


def test_no_pin_factory_off_a_pi_says_to_use_the_mock(
    monkeypatch: pytest.MonkeyPatch, reader_port: str
) -> None:
    if os.path.exists("/proc/device-tree/model"):
        pytest.skip("this machine may be a Pi")
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    config = fake_config(reader_port, gpio={"pin_factory": ""})
    with pytest.raises(HardwareError, match="no GPIO pin factory could be loaded") as caught:
        build_hardware(config)
    assert 'gpio.pin_factory = "mock"' in str(caught.value)


def test_a_usb_keypad_without_evdev_says_how_to_install_it(
    factory: MockFactory, reader_port: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "evdev", None)  # `import evdev` now raises ImportError
    config = fake_config(reader_port, usb_keypad={"enabled": True})
    with pytest.raises(HardwareError, match=r"^USB keypad \(/dev/input/by-id/\*-event-kbd\)"):
        build_hardware(config, pin_factory=factory)
    LED(5, pin_factory=factory).close()  # the matrix keypad built before it was closed


# --- the display wakes on a key and dims when idle ----------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class ThreadKeySource:
    """A KeySource whose keys come from another thread, as the keypad scanner's do."""

    def __init__(self) -> None:
        self.post: KeySink | None = None
        self.closed = False

    def start(self, post: KeySink) -> None:
        self.post = post

    def press(self, key: Key) -> None:
        assert self.post is not None
        post = self.post
        thread = threading.Thread(target=post, args=(key,))
        thread.start()
        thread.join()

    def close(self) -> None:
        self.closed = True


def dimming_display(clock: FakeClock) -> DummyDisplay:
    return DummyDisplay(DisplayConfig(dim_after_s=5.0, dim_contrast=8), clock=clock)


def test_a_key_wakes_the_dimmed_display_on_the_loop_before_it_is_dispatched() -> None:
    clock = FakeClock()
    keeper = DisplayKeeper(dimming_display(clock))
    source = ThreadKeySource()
    waking = keeper.waking(source)
    seen: list[tuple[Key, bool, bool]] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        main_thread = threading.current_thread()

        def post(key: Key) -> None:  # what Terminal.post_key does: hop onto the loop
            def dispatch() -> None:
                on_loop = threading.current_thread() is main_thread
                seen.append((key, keeper.display.dimmed, on_loop))

            loop.call_soon_threadsafe(dispatch)

        waking.start(post)
        clock.now_s += 5.0
        keeper.tick()
        assert keeper.display.dimmed
        source.press(Key.D7)
        for _ in range(100):  # bounded: the loop runs the wake, then the dispatch
            if seen:
                break
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert seen == [(Key.D7, False, True)]  # woken before the key was dispatched, on the loop
    waking.close()
    assert source.closed


def test_the_dimming_task_dims_an_idle_display() -> None:
    clock = FakeClock()
    keeper = DisplayKeeper(dimming_display(clock), tick_s=0)

    async def scenario() -> bool:
        task = asyncio.create_task(keeper.run())
        await asyncio.sleep(0)
        clock.now_s += 4.0
        for _ in range(5):
            await asyncio.sleep(0)
        before = keeper.display.dimmed
        clock.now_s += 1.0
        for _ in range(100):
            if keeper.display.dimmed:
                break
            await asyncio.sleep(0)
        task.cancel()
        return before

    assert asyncio.run(scenario()) is False
    assert keeper.display.dimmed


class FlakyBus:
    """A luma serial interface that fails like an I2C bus with a loose wire, until mended."""

    def __init__(self) -> None:
        self.broken = False
        self.frames = 0

    def command(self, *cmd: int) -> None:
        if self.broken:
            raise OSError(121, "Remote I/O error")

    def data(self, data: Any) -> None:
        if self.broken:
            raise OSError(121, "Remote I/O error")
        self.frames += 1

    def cleanup(self) -> None:
        pass


def test_a_failing_panel_is_logged_once_and_the_next_screen_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = FlakyBus()
    keeper = DisplayKeeper(OledDisplay(DisplayConfig(), serial_interface=bus))
    bus.frames = 0  # forget the blank frame of the panel's power-on
    gallery = screen_gallery()
    keeper.show(gallery["idle_online"])
    assert bus.frames == 1
    bus.broken = True
    image = keeper.show(gallery["amount_entry"])  # does not raise into the terminal's loop
    assert image.tobytes() == render(gallery["amount_entry"]).tobytes()
    keeper.show(gallery["approved"])
    keeper.tick()
    keeper.wake()
    assert keeper.failures == 2  # the two frames; dim and wake had nothing to send yet
    failures = [r for r in caplog.records if "display_failed" in r.getMessage()]
    assert len(failures) == 1
    bus.broken = False
    keeper.show(gallery["approved"])  # the frame that failed goes out now
    assert bus.frames == 2


def test_keys_from_the_mock_keypad_wake_the_display(reader_port: str) -> None:
    """The real scanner thread on the mock pins, through the wrapper build_hardware made."""
    hardware = build_hardware(fake_config(reader_port, display={"dim_after_s": 0.001}))
    keys: list[Key] = []
    try:
        wiring = hardware.mock_keypad
        assert wiring is not None

        async def scenario() -> None:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(0.01)  # longer than dim_after_s: the next tick dims
            hardware.keeper.tick()
            assert hardware.display.dimmed
            source = hardware.devices.key_sources[0]

            def post(key: Key) -> None:  # as Terminal.post_key: onto the loop
                loop.call_soon_threadsafe(keys.append, key)

            source.start(post)
            wiring.press("#")
            for _ in range(500):  # bounded: the scanner needs 3 stable scans of 10 ms
                if keys:
                    break
                await asyncio.sleep(0.01)

        asyncio.run(scenario())
    finally:
        hardware.close()
    assert keys == [Key.OK]
    assert not hardware.display.dimmed  # the wake ran on the loop before the key arrived
