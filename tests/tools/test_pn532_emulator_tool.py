"""tools/pn532-emulator: a PN532 on a pty in its own process, tapped from its prompt, read by
pitill's PN532 reader (nfcpy's driver) in this one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pitill.card.model import Card, CardTier
from pitill.config import ReaderConfig
from pitill.drivers.pn532_reader import Pn532Reader
from reader_sink import QueueSink

TOOL = Path(__file__).resolve().parents[2] / "tools" / "pn532-emulator"
WAIT_S = 10.0


def test_a_tap_at_the_tools_prompt_reaches_the_reader() -> None:
    tool = subprocess.Popen(
        [sys.executable, str(TOOL), "--pty"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert tool.stdin is not None and tool.stdout is not None
    try:
        banner = tool.stdout.readline()
        assert banner.startswith("PN532 emulator on /dev/pts/"), banner
        port = banner.split()[3].rstrip(";")
        reader = Pn532Reader(ReaderConfig(port=port, type="pn532", nfc_poll_s=0.02))
        sink = QueueSink()
        reader.start(sink)
        try:
            tool.stdin.write("tap uid 04A1B2C3D4E5F6\n")
            tool.stdin.flush()
            assert tool.stdout.readline() == "tapped UID-only tag 04A1B2C3D4E5F6\n"
            sink.until_connected()
            card = sink.next_card()
            assert isinstance(card, Card) and card.tier is CardTier.UID_ONLY
            assert card.uid == "04A1B2C3D4E5F6"
            tool.stdin.write("tap clone nobody\n")
            tool.stdin.flush()
            assert "tap ntag424 nobody first" in tool.stdout.readline()
        finally:
            reader.close()
        tool.stdin.write("quit\n")
        tool.stdin.flush()
        assert tool.wait(timeout=WAIT_S) == 0
    finally:
        tool.kill()
        tool.wait()


def test_help_has_examples() -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), "--help"], capture_output=True, text=True, check=True
    )
    assert "pn532-emulator --port /dev/ttyUSB0" in done.stdout and "tap ntag424" in done.stdout
