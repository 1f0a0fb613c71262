"""`pitill run` with every part on its fake: mock GPIO pins, luma's dummy display, a pty reader.

The sale test runs the runner in this process, so it can press keys on the mock pins; the
command-line tests run `python -m pitill.cli` as a process, as systemd would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from pitill.config import config_from_dict
from pitill.core.state import Phase
from pitill.core.types import LinkStatus
from pitill.drivers.keypad_matrix import Cell, Debouncer
from pitill.journal.listing import read_rows
from pitill.journal.store import JOURNAL_FILE_NAME
from pitill.service import PiRunner
from pitill.sim.acquirer import AcquirerHost
from pitill.sim.reader_emulator import TEST_CARDS, ReaderEmulator, open_pty_pair
from pitill_cli import PITILL

pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")

FAST_LINK = {"probe_interval_s": 0.1, "probe_timeout_s": 0.5}


def fake_parts(reader_port: str, upstream_port: int) -> dict[str, dict[str, Any]]:
    """A config pointing every part at its fake and the upstream at 127.0.0.1."""
    return {
        "gpio": {"pin_factory": "mock"},
        "display": {"driver": "dummy"},
        "reader": {"port": reader_port},
        "upstream": {"host": "127.0.0.1", "port": upstream_port, **FAST_LINK},
    }


def toml(sections: dict[str, dict[str, Any]]) -> str:
    """Just enough TOML for these configs: strings, numbers and booleans."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        for key, value in values.items():
            shown = (
                f'"{value}"'
                if isinstance(value, str)
                else str(value).lower()
                if isinstance(value, bool)
                else value
            )
            lines.append(f"{key} = {shown}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def pty_reader() -> Iterator[tuple[ReaderEmulator, str]]:
    master_fd, slave_path = open_pty_pair()
    emulator = ReaderEmulator.from_fd(master_fd)
    yield emulator, slave_path
    emulator.close()


@pytest.fixture(autouse=True)
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def is_held(debouncer: Debouncer, cell: Cell) -> bool:
    return cell in debouncer.pressed


async def until(condition: Callable[[], bool], what: str, limit_s: float = 10.0) -> None:
    """Wait (bounded) for `condition`; fail naming `what` when it does not come."""
    for _ in range(int(limit_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_sale_from_the_keypad_pins_to_the_journal(
    tmp_path: Path, pty_reader: tuple[ReaderEmulator, str]
) -> None:
    emulator, reader_port = pty_reader
    data_dir = tmp_path / "data"
    card = TEST_CARDS["approved"]

    async def scenario() -> tuple[int, list[dict[str, Any]]]:
        async with AcquirerHost(tmp_path / "host", host="127.0.0.1", port=0) as host:
            config = config_from_dict(fake_parts(reader_port, host.port))
            runner = PiRunner(config, data_dir)
            terminal = await runner.start()
            try:
                hardware = runner.hardware
                assert hardware is not None and hardware.mock_keypad is not None
                assert hardware.keypad is not None
                wiring, debouncer = hardware.mock_keypad, hardware.keypad.debouncer
                factory = hardware.pin_factory
                await until(lambda: terminal.state.link is LinkStatus.ONLINE, "link online")
                assert factory.pin(17).state and not factory.pin(27).state  # green LED lit

                for char in "1250#":  # press and release each key on the pins
                    cell = wiring.cell(char)
                    wiring.press(char)
                    await until(partial(is_held, debouncer, cell), f"{char} pressed")
                    wiring.release(char)
                    await until(lambda: not debouncer.pressed, f"{char} released")
                await until(lambda: terminal.state.phase is Phase.AWAIT_CARD, "swipe card")
                assert terminal.state.amount_minor == 1250

                answer = await asyncio.to_thread(emulator.swipe, card.pan, card.expiry_yymm)
                assert answer.describe().startswith("ACK")
                await until(lambda: terminal.state.phase is Phase.APPROVED, "approved")
                assert terminal.screen is not None and "APPROVED" in terminal.screen.text()
                image = hardware.display.device.image  # luma's dummy holds what the panel shows
                assert image.getbbox() is not None  # something is lit
                ledger = host.ledger()
            finally:
                await runner.stop()
        sales = [(e["mti"], e["response_code"], e["stan"]) for e in ledger if e["mti"] == "0200"]
        assert [sale[:2] for sale in sales] == [("0200", "00")]
        return sales[0][2], read_rows(data_dir)

    stan, rows = asyncio.run(scenario())
    recorded_at = [row.pop("created_at") for row in rows]
    assert all(recorded_at)  # when the sale was recorded
    # One counter of seqs and STANs: the row's seq is the STAN its 0200 carried, and seq 1 went
    # to the echo that brought the link up before the sale.
    assert [row.pop("seq") for row in rows] == [stan]
    assert stan >= 2
    assert rows == [
        {
            "kind": "card",
            "mode": "online",
            "amount_minor": 1250,
            "currency": "EUR",
            "status": "APPROVED",
            "masked_pan": "411111******1111",
            "card_tier": "stripe",
            "response_code": "00",
        }
    ]


# --- as a process -------------------------------------------------------------------------------


def run_pitill(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
    return subprocess.run(
        [*PITILL, *args], capture_output=True, text=True, env=env, timeout=timeout_s, check=False
    )


def test_pitill_run_reports_ready_to_systemd_and_stops_cleanly_on_sigterm(
    tmp_path: Path, pty_reader: tuple[ReaderEmulator, str]
) -> None:
    _, reader_port = pty_reader
    config = tmp_path / "pitill.toml"
    config.write_text(toml(fake_parts(reader_port, 9)), encoding="utf-8")  # port 9: nobody
    address = f"@pitill-test-{uuid.uuid4().hex}"  # abstract: no path length limit
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + address[1:])
        notify.settimeout(30)  # a bound, not an expectation: start-up takes well under a second
        env = {k: v for k, v in os.environ.items() if k != "GPIOZERO_PIN_FACTORY"}
        env["NOTIFY_SOCKET"] = address
        process = subprocess.Popen(
            [*PITILL, "run", "--config", str(config), "--data-dir", str(tmp_path / "data")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            ready = notify.recv(4096).decode()
            process.send_signal(signal.SIGTERM)
            stopping = notify.recv(4096).decode()
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert ready.startswith("READY=1")
    assert stopping.startswith("STOPPING=1")
    assert process.returncode == 0, err
    assert "Traceback" not in out + err
    assert "event=hardware_up" in out and "MockFactory" in out
    assert "event=stopping signal=SIGTERM" in out
    assert "event=stopped" in out
    assert (tmp_path / "data" / JOURNAL_FILE_NAME).exists()


def test_pitill_run_with_a_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "pitill.toml"
    config.write_text("[keypad]\nrow_pins = [5, 6, 13, 99]\n", encoding="utf-8")
    done = run_pitill("run", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip() == (
        "pitill: keypad.row_pins[3]: must be a BCM GPIO number 0..27, got 99"
    )


def test_pitill_run_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    config = tmp_path / "pitill.toml"
    config.write_text('[reader]\nspeed = 9600\nport = "/dev/ttyUSB0"\n', encoding="utf-8")
    done = run_pitill("run", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert done.stderr.startswith("pitill: reader.speed: unknown key; known keys here:")


@pytest.mark.skipif(os.path.exists("/dev/i2c-1"), reason="this machine has an I2C bus")
def test_pitill_run_without_its_display_says_what_to_check(
    tmp_path: Path, pty_reader: tuple[ReaderEmulator, str]
) -> None:
    _, reader_port = pty_reader
    parts = fake_parts(reader_port, 9)
    parts["display"] = {"driver": "ssd1306"}  # the real panel, on a bus this machine lacks
    config = tmp_path / "pitill.toml"
    config.write_text(toml(parts), encoding="utf-8")
    done = run_pitill("run", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("pitill: display: ssd1306 at I2C address 0x3C on /dev/i2c-1")
    assert "enable I2C" in line and 'display.driver = "dummy"' in line
