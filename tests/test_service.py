"""PiRunner: what a failed start leaves behind (nothing), and a start and stop on fakes."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from pitill.config import Config, config_from_dict
from pitill.errors import SealError, StorageError
from pitill.journal.seal import KEY_FILE_NAME
from pitill.service import PiRunner, serve
from pitill.sim.reader_emulator import open_pty_pair
from pitill.sim.resolver import SimResolver

pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


@pytest.fixture
def config() -> Iterator[Config]:
    master_fd, slave_path = open_pty_pair()
    yield config_from_dict(
        {
            "display": {"driver": "dummy"},
            "reader": {"port": slave_path},
            "upstream": {"host": "127.0.0.1", "port": 9},
        }
    )
    os.close(master_fd)


@pytest.fixture(autouse=True)
def no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


def pins_free(factory: MockFactory, *pins: int) -> bool:
    for pin in pins:
        LED(pin, pin_factory=factory).close()
    return True


def test_a_data_dir_that_cannot_be_made_names_it(
    tmp_path: Path, factory: MockFactory, config: Config
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    runner = PiRunner(config, blocker / "data", pin_factory=factory, resolver=SimResolver({}))
    with pytest.raises(StorageError, match=rf"^data directory {blocker}/data: cannot create it"):
        asyncio.run(runner.start())
    assert runner.hardware is None and pins_free(factory, 5, 12, 17, 22)


def test_a_journal_that_cannot_open_closes_the_hardware_again(
    tmp_path: Path, factory: MockFactory, config: Config
) -> None:
    (tmp_path / KEY_FILE_NAME).mkdir()  # the sealing key's place is taken by a directory
    runner = PiRunner(config, tmp_path, pin_factory=factory, resolver=SimResolver({}))
    with pytest.raises(SealError, match="not a regular file"):
        asyncio.run(runner.start())
    assert runner.hardware is None and runner.terminal is None
    assert pins_free(factory, 5, 6, 13, 19, 12, 16, 20, 21, 17, 27, 18, 22)


def test_serve_runs_until_a_signal_then_stops_everything(
    tmp_path: Path, factory: MockFactory, config: Config
) -> None:
    runner = PiRunner(config, tmp_path, pin_factory=factory, resolver=SimResolver({}))
    seen: dict[str, object] = {}

    async def scenario() -> None:
        serving = asyncio.create_task(serve(runner, signals=(signal.SIGUSR1,)))
        for _ in range(500):  # bounded: start takes a few loop turns
            if runner.terminal is not None and runner.terminal.screen is not None:
                break
            await asyncio.sleep(0.01)
        seen["started"] = runner.terminal is not None
        os.kill(os.getpid(), signal.SIGUSR1)
        await serving

    asyncio.run(scenario())
    assert seen["started"] is True
    assert runner.terminal is None and runner.hardware is None
    assert pins_free(factory, 5, 12, 17, 22)  # the injected factory stays open, its pins free
