"""USB keypad: real 24-byte input_event records through a pipe, read by evdev's own EventIO.

/dev/uinput is absent on CI machines, so the keypad is a pipe: the test writes the records a
kernel would send (struct input_event: time, type, code, value) and the driver reads them with
evdev's C reader (EventIO.read -> _input.device_read_many). Unplugging is the device file going
away plus either ENODEV from read (as on a Pi) or the pipe's end of file.
"""

from __future__ import annotations

import errno
import os
import queue
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from evdev import ecodes
from evdev.eventio import EventIO
from evdev.events import InputEvent

from pitill.config import UsbKeypadConfig
from pitill.core.types import Key
from pitill.drivers.evdev_keypad import UsbKeypad, find_device, usb_keymap
from pitill.errors import ConfigError

WAIT_S = 5.0  # bound on every wait for the reader thread; never reached when things work


def record(etype: int, code: int, value: int) -> bytes:
    return struct.pack("llHHi", 1_700_000_000, 0, etype, code, value)


def key_records(code: int, value: int) -> bytes:
    """What a USB keyboard sends for one key transition: scan code, key, sync."""
    return (
        record(ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70059)
        + record(ecodes.EV_KEY, code, value)
        + record(ecodes.EV_SYN, ecodes.SYN_REPORT, 0)
    )


def tap(code: int, *, repeats: int = 0) -> bytes:
    return key_records(code, 1) + key_records(code, 2) * repeats + key_records(code, 0)


class PipeEventDevice(EventIO):
    """evdev's EventIO reading from a pipe: the real reader code with no /dev/input node."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.grabbed = False
        self.unplugged = False

    def grab(self) -> None:
        self.grabbed = True

    def read(self) -> Iterator[InputEvent]:
        if self.unplugged:
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        return super().read()

    def close(self) -> None:
        os.close(self.fd)


class FakeInput:
    """A /dev/input/by-id directory whose keypads are pipes; plug() and unplug() like a hand."""

    def __init__(self, root: Path) -> None:
        self.by_id = root / "by-id"
        self.by_id.mkdir()
        self.pattern = str(self.by_id / "*-event-kbd")
        self.devices: dict[str, tuple[PipeEventDevice, int]] = {}
        self.opened: queue.Queue[PipeEventDevice] = queue.Queue()

    def plug(self, name: str = "usb-ACME_Numpad-event-kbd") -> str:
        path = self.by_id / name
        path.touch()
        return str(path)

    def open_device(self, path: str) -> PipeEventDevice:
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        read_fd, write_fd = os.pipe()
        device = PipeEventDevice(read_fd)
        self.devices[path] = (device, write_fd)
        self.opened.put(device)
        return device

    def send(self, path: str, data: bytes) -> None:
        os.write(self.devices[path][1], data)

    def unplug_eof(self, path: str) -> None:
        os.unlink(path)
        os.close(self.devices.pop(path)[1])

    def unplug_enodev(self, path: str) -> None:
        os.unlink(path)
        device, write_fd = self.devices.pop(path)
        device.unplugged = True
        os.write(write_fd, record(ecodes.EV_SYN, ecodes.SYN_REPORT, 0))  # wake the reader
        os.close(write_fd)


@pytest.fixture
def fake_input(tmp_path: Path) -> FakeInput:
    return FakeInput(tmp_path)


class Running:
    def __init__(self, keypad: UsbKeypad) -> None:
        self.keypad = keypad
        self.keys: queue.Queue[Key] = queue.Queue()
        self.status: queue.Queue[tuple[bool, str]] = queue.Queue()

    def next_status(self) -> tuple[bool, str]:
        return self.status.get(timeout=WAIT_S)

    def keys_now(self, count: int) -> list[Key]:
        return [self.keys.get(timeout=WAIT_S) for _ in range(count)]


Start = Callable[..., Running]


@pytest.fixture
def start(fake_input: FakeInput) -> Iterator[Start]:
    started: list[UsbKeypad] = []

    def start(**overrides: object) -> Running:
        settings: dict[str, object] = {"reconnect_poll_s": 0.01, **overrides}
        config = UsbKeypadConfig(enabled=True, device=fake_input.pattern, **settings)  # type: ignore[arg-type]
        holder: list[Running] = []
        keypad = UsbKeypad(
            config,
            open_device=fake_input.open_device,
            status=lambda ok, detail: holder[0].status.put((ok, detail)),
        )
        running = Running(keypad)
        holder.append(running)
        keypad.start(running.keys.put)
        started.append(keypad)
        return running

    yield start
    for keypad in started:
        keypad.close()


def test_keypad_keys_map_and_repeats_and_releases_are_ignored(
    fake_input: FakeInput, start: Start
) -> None:
    path = fake_input.plug()
    running = start()
    assert running.next_status() == (True, f"USB keypad {path} attached")
    codes = [
        ecodes.KEY_KP1,
        ecodes.KEY_KP0,
        ecodes.KEY_7,
        ecodes.KEY_KPENTER,
        ecodes.KEY_BACKSPACE,
        ecodes.KEY_KPDOT,
        ecodes.KEY_ESC,
        ecodes.KEY_KPMINUS,
        ecodes.KEY_KPPLUS,
        ecodes.KEY_A,  # not on the map
        ecodes.KEY_ENTER,
    ]
    fake_input.send(path, b"".join(tap(code, repeats=3) for code in codes))
    expected = [Key.D1, Key.D0, Key.D7, Key.OK, Key.CLEAR, Key.CLEAR, Key.CANCEL, Key.CANCEL]
    expected += [Key.FN, Key.OK]
    assert running.keys_now(len(expected)) == expected
    assert running.keys.empty()
    device = fake_input.opened.get_nowait()
    assert device.grabbed


def test_keymap_overrides_add_and_remove_keys(fake_input: FakeInput, start: Start) -> None:
    path = fake_input.plug()
    running = start(keymap={"KEY_KPASTERISK": "CLEAR", "KEY_KPDOT": ""})
    running.next_status()
    fake_input.send(path, tap(ecodes.KEY_KPDOT) + tap(ecodes.KEY_KPASTERISK) + tap(ecodes.KEY_KP9))
    assert running.keys_now(2) == [Key.CLEAR, Key.D9]


@pytest.mark.parametrize("how", ["enodev", "eof"])
def test_unplug_is_reported_and_a_replug_reattaches(
    fake_input: FakeInput, start: Start, how: str
) -> None:
    path = fake_input.plug()
    running = start()
    assert running.next_status()[0] is True
    fake_input.send(path, tap(ecodes.KEY_KP1))
    assert running.keys_now(1) == [Key.D1]

    getattr(fake_input, f"unplug_{how}")(path)
    connected, detail = running.next_status()
    assert connected is False and "unplugged" in detail
    connected, detail = running.next_status()
    assert connected is False and "no USB keypad matches" in detail

    path = fake_input.plug()  # back, maybe as another by-id name
    assert running.next_status() == (True, f"USB keypad {path} attached")
    fake_input.send(path, tap(ecodes.KEY_KP2))
    assert running.keys_now(1) == [Key.D2]
    assert running.keypad.connected


def test_a_keypad_plugged_in_after_start_is_found(fake_input: FakeInput, start: Start) -> None:
    running = start()
    connected, detail = running.next_status()
    assert connected is False and fake_input.pattern in detail
    path = fake_input.plug()
    assert running.next_status() == (True, f"USB keypad {path} attached")


def test_a_grab_held_elsewhere_is_reported_and_retried(
    fake_input: FakeInput, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[int] = []

    def busy_once(self: PipeEventDevice) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        self.grabbed = True

    monkeypatch.setattr(PipeEventDevice, "grab", busy_once)
    fake_input.plug()
    running = start()
    connected, detail = running.next_status()
    assert connected is False and "another program holds it" in detail
    assert running.next_status()[0] is True


def test_close_is_prompt_while_waiting_and_idempotent(start: Start) -> None:
    running = start(reconnect_poll_s=60.0)
    running.next_status()
    running.keypad.close()  # would hang for a minute if close() did not wake the poll
    running.keypad.close()


def test_find_device_takes_a_path_or_the_first_glob_match(tmp_path: Path) -> None:
    (tmp_path / "b-event-kbd").touch()
    (tmp_path / "a-event-kbd").touch()
    assert find_device(str(tmp_path / "*-event-kbd")) == str(tmp_path / "a-event-kbd")
    assert find_device(str(tmp_path / "b-event-kbd")) == str(tmp_path / "b-event-kbd")
    assert find_device(str(tmp_path / "missing")) is None
    assert find_device(str(tmp_path / "*-event-mouse")) is None


def test_the_keymap_resolves_names_to_codes() -> None:
    keymap = usb_keymap(UsbKeypadConfig(keymap={"KEY_F1": "fn"}))
    assert keymap[ecodes.KEY_KP5] is Key.D5
    assert keymap[ecodes.KEY_F1] is Key.FN
    with pytest.raises(ConfigError, match="KEY_NOPE"):
        UsbKeypadConfig(keymap={"KEY_NOPE": "OK"}).validate("usb_keypad")


uinput_writable = os.access("/dev/uinput", os.W_OK)


@pytest.mark.skipif(not uinput_writable, reason="machine: /dev/uinput is absent or not writable")
def test_a_uinput_keypad_end_to_end() -> None:
    from evdev import UInput

    with UInput({ecodes.EV_KEY: [ecodes.KEY_KP3, ecodes.KEY_KPENTER]}, name="pitill-test") as ui:
        keys: queue.Queue[Key] = queue.Queue()
        keypad = UsbKeypad(UsbKeypadConfig(enabled=True, device=str(ui.device.path)))
        keypad.start(keys.put)
        try:
            for code in (ecodes.KEY_KP3, ecodes.KEY_KPENTER):
                ui.write(ecodes.EV_KEY, code, 1)
                ui.write(ecodes.EV_KEY, code, 0)
                ui.syn()
            assert [keys.get(timeout=WAIT_S) for _ in range(2)] == [Key.D3, Key.OK]
        finally:
            keypad.close()
