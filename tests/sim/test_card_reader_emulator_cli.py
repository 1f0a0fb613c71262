"""tools/card-reader-emulator as a user runs it: a subprocess, against a real pty.

The script is run with this interpreter (it has pyserial); its own shebang is `env python3`.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pitill.card.framing import ACK_BYTES, DecodedFrame, FrameDecoder
from pitill.card.track import build_track2
from pitill.config import ReaderConfig
from pitill.drivers.serial_reader import SerialCardReader
from pitill.sim.reader_emulator import FdLink, open_pty_pair
from reader_sink import QueueSink

TOOL = Path(__file__).resolve().parents[2] / "tools" / "card-reader-emulator"
WAIT_S = 10.0  # a subprocess start is slower than a thread
PAN = "4111111111111111"


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=WAIT_S
    )


class LineReader:
    """Lines of a subprocess's stdout, read by a thread so that every wait has a deadline."""

    def __init__(self, stream: object) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, fragment: str) -> str:
        deadline = time.monotonic() + WAIT_S
        seen = []
        while (left_s := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left_s)
            except queue.Empty:
                break
            seen.append(line)
            if fragment in line:
                return line
        pytest.fail(f"{fragment!r} not printed within {WAIT_S} s; got {seen}")


@pytest.fixture
def interactive_tool() -> Iterator[tuple[subprocess.Popen[str], LineReader]]:
    process = subprocess.Popen(
        [sys.executable, str(TOOL), "--pty"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield process, LineReader(process.stdout)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(WAIT_S)


def test_help_shows_usage_and_examples() -> None:
    result = run_tool("--help")
    assert result.returncode == 0
    for text in ("--pty", "--port", "--fault", "swipe", "examples:", "bad-lrc"):
        assert text in result.stdout


def test_cards_lists_the_test_cards_masked() -> None:
    result = run_tool("cards")
    assert result.returncode == 0
    assert "approved" in result.stdout and "bad-luhn" in result.stdout
    assert "411111******1111" in result.stdout
    assert "4111111111111111" not in result.stdout


def test_missing_port_is_a_clear_error(tmp_path: Path) -> None:
    result = run_tool("--port", str(tmp_path / "ttyUSB9"), "swipe", "approved")
    assert result.returncode == 2
    assert "cannot open" in result.stderr


def test_unknown_card_is_a_usage_error() -> None:
    master_fd, slave_path = open_pty_pair()
    try:
        result = run_tool("--port", slave_path, "swipe", "platinum")
    finally:
        FdLink(master_fd).close()
    assert result.returncode == 2
    assert "unknown card 'platinum'" in result.stderr


def test_one_swipe_on_a_port_prints_the_terminals_answer() -> None:
    master_fd, slave_path = open_pty_pair()
    terminal = FdLink(master_fd)  # the test plays the terminal on the pty master
    try:
        command = ["--port", slave_path, "--timeout", str(WAIT_S), "swipe", PAN, "3012"]
        process = subprocess.Popen(
            [sys.executable, str(TOOL), *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        decoder, frames = FrameDecoder(), []
        deadline = time.monotonic() + WAIT_S
        while not frames and time.monotonic() < deadline:
            frames += decoder.feed(terminal.read(0.05))
        assert frames == [
            DecodedFrame(build_track2("4111111111111111", "3012").encode(), ACK_BYTES)
        ]
        terminal.write(ACK_BYTES)
        out, err = process.communicate(timeout=WAIT_S)
    finally:
        terminal.close()
    assert process.returncode == 0, err
    assert out.strip() == "411111******1111 exp 3012 (track 2, framed): ACK"


def test_interactive_pty_mode_against_the_serial_reader(
    interactive_tool: tuple[subprocess.Popen[str], LineReader],
) -> None:
    process, output = interactive_tool
    slave_path = output.wait_for("pty: ").split("pty: ", 1)[1]
    sink = QueueSink()
    reader = SerialCardReader(ReaderConfig(port=slave_path), read_timeout_s=0.05)
    reader.start(sink)
    try:
        sink.until_connected()
        assert process.stdin is not None
        process.stdin.write("swipe approved\n")
        process.stdin.flush()
        assert output.wait_for("exp 3012").endswith(": ACK")
        process.stdin.write("fault bad-lrc\nswipe declined\n")
        process.stdin.flush()
        assert output.wait_for("fault: bad-lrc")
        assert output.wait_for("400000******0002").endswith("NAK, ACK (accepted on attempt 2)")
        process.stdin.write("format lines\nexpired\nbogus\nquit\n")
        process.stdin.flush()
        assert "sent (lines protocol" in output.wait_for("555555******4444")
        assert "not understood" in output.wait_for("bogus")
        assert process.wait(WAIT_S) == 0
        cards = [sink.next_card().pan, sink.next_card().pan]
    finally:
        reader.close()
    # The lines-format swipe went to a framed reader: dropped as noise, no card.
    assert cards == ["4111111111111111", "4000000000000002"]
    assert all(kind == "status" for kind, _ in list(sink.got.queue)), list(sink.got.queue)
    assert reader.stats.frames_bad_lrc == 1
