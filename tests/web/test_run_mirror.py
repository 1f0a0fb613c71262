"""`pitill run --web`: a real terminal (mock pins, dummy display, pty reader) mirrored read-only;
with --web-control the page's keys reach it."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pitill.config import config_from_dict
from pitill.core.state import Phase
from pitill.errors import ConfigError
from pitill.service import PiRunner
from pitill.sim.reader_emulator import open_pty_pair

pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")


def config(reader_port: str) -> Any:
    return config_from_dict(
        {
            "gpio": {"pin_factory": "mock"},
            "display": {"driver": "dummy"},
            "reader": {"port": reader_port},
            "upstream": {"host": "127.0.0.1", "port": 9, "probe_interval_s": 0.2},
        }
    )


@pytest.mark.parametrize("control", [False, True])
def test_run_mirrors_the_terminal_and_takes_keys_only_when_allowed(
    tmp_path: Path, control: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    _, reader_port = open_pty_pair()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], Phase]:
        runner = PiRunner(
            config(reader_port), tmp_path / "data", web="127.0.0.1:0", web_control=control
        )
        terminal = await runner.start()
        try:
            url = runner.mirror.url
            async with aiohttp.ClientSession() as session:
                async with session.get(url) as page:
                    assert page.status == 200 and 'role="status"' in await page.text()
                async with session.ws_connect(url + "socket") as ws:
                    hello = await ws.receive_json(timeout=5)
                    first = await ws.receive_json(timeout=5)
                    await ws.send_str(json.dumps({"type": "press", "key": "1"}))
                    await ws.send_str(json.dumps({"type": "swipe", "card": "approved"}))
                    await asyncio.sleep(0.5)
            return hello, first, terminal.state.phase
        finally:
            await runner.stop()

    hello, first, phase = asyncio.run(scenario())
    assert hello["control"] is control
    frame = first["frame"]
    assert len(base64.b64decode(frame["bits"])) == 128 * 64 // 8  # the panel's pixels
    assert frame["text"] and frame["phase"] == "IDLE"
    # a key from the page reaches the terminal only when control is allowed; swipes never do
    assert phase is (Phase.AMOUNT if control else Phase.IDLE)


def test_the_config_can_ask_for_the_mirror_and_its_control() -> None:
    web = config_from_dict({"web": {"listen": "0.0.0.0:8580", "control": True}}).web
    assert (web.listen, web.control) == ("0.0.0.0:8580", True)
    assert config_from_dict({}).web.control is False  # read-only unless asked
    with pytest.raises(ConfigError, match=r"web.listen 'x:99999': the port must be 0-65535"):
        config_from_dict({"web": {"listen": "x:99999"}})
