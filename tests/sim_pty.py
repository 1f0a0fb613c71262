"""`pitill sim` in a real pty of a chosen size, read through a minimal terminal emulator.

The emulator knows what the simulator sends (cursor position, clear, colours, modes) and keeps
a grid of the window; a character written past the right edge is recorded as an overflow
instead of wrapping, so a test can assert that nothing is wider than the window.
"""

from __future__ import annotations

import codecs
import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time
from collections.abc import Callable
from pathlib import Path

from pitill_cli import PITILL

_CSI = re.compile(r"\x1b\[([?0-9;]*)([@-~])")
JUNK = "~"  # never drawn by the simulator
READ_WAIT_S = 30.0  # the most a test waits for the screen it expects (a bound, not a timing)


class Screen:
    """A cols x rows character grid fed with the simulator's output."""

    def __init__(self, cols: int, rows: int) -> None:
        self.resize(cols, rows)
        self.overflow: list[tuple[int, str]] = []  # (row, text written past the right edge)
        self._pending = ""

    def resize(self, cols: int, rows: int, junk: str = " ") -> None:
        """A new size; `junk` fills the grid like the leftovers of a terminal that reflowed its
        text, which only a complete redraw removes."""
        self.cols, self.rows = cols, rows
        self.grid = [[junk] * cols for _ in range(rows)]
        self.row = self.col = 0

    def feed(self, text: str) -> None:
        text = self._pending + text
        self._pending = ""
        index = 0
        while index < len(text):
            char = text[index]
            if char == "\x1b":
                match = _CSI.match(text, index)
                if match is None:
                    if len(text) - index < 16:  # a sequence cut between two reads
                        self._pending = text[index:]
                        return
                    index += 2
                    continue
                self._control(match.group(1), match.group(2))
                index = match.end()
                continue
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row = min(self.row + 1, self.rows - 1)
            elif char.isprintable():
                if self.col >= self.cols:
                    self.overflow.append((self.row, char))
                elif self.row < self.rows:
                    self.grid[self.row][self.col] = char
                    self.col += 1
            index += 1

    def _control(self, params: str, final: str) -> None:
        if final == "H":
            parts = [int(p) if p else 1 for p in params.split(";")] if params else [1, 1]
            row, col = [*parts, 1, 1][:2]
            self.row, self.col = min(row, self.rows) - 1, min(col, self.cols) - 1
        elif final == "J" and params == "2":  # the simulator clears after a resize: a frame
            self.grid = [[" "] * self.cols for _ in range(self.rows)]  # drawn for the old size
            self.overflow.clear()  # may have arrived after the resize, as in a real terminal
        # colours (m) and modes (h, l) change nothing on the grid

    def lines(self) -> list[str]:
        return ["".join(row).rstrip() for row in self.grid]

    def text(self) -> str:
        return "\n".join(self.lines())


def set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class SimInPty:
    """`pitill sim --data-dir DIR` as a child on a pty of `cols` x `rows`."""

    def __init__(self, data_dir: Path, cols: int, rows: int) -> None:
        self.screen = Screen(cols, rows)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pid, fd = pty.fork()
        if pid == 0:  # the child: size its terminal before anything reads it, then run pitill
            try:
                set_size(0, cols, rows)
                env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # stdout as in a container
                os.execve(PITILL[0], [*PITILL, "sim", "--data-dir", str(data_dir)], env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.returncode: int | None = None

    def send(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def resize(self, cols: int, rows: int) -> None:
        """Like dragging the window: the kernel sends SIGWINCH to the child. The old contents
        become JUNK, as in a terminal that reflows its lines."""
        self.screen.resize(cols, rows, JUNK)
        set_size(self.fd, cols, rows)

    def _read(self, wait_s: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], wait_s)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the pty
            return False
        if not data:
            return False
        self.screen.feed(self._decoder.decode(data))
        return True

    def wait_for(self, condition: Callable[[Screen], bool], what: str) -> Screen:
        deadline = time.monotonic() + READ_WAIT_S
        while time.monotonic() < deadline:
            if condition(self.screen):
                return self.screen
            if not self._read(0.2):
                break
        if condition(self.screen):
            return self.screen
        raise AssertionError(f"never saw {what}; the screen:\n{self.screen.text()}")

    def wait_text(self, *parts: str) -> Screen:
        return self.wait_for(lambda s: all(p in s.text() for p in parts), " and ".join(parts))

    def quit(self) -> int:
        """q, then the exit status (the child is killed if it does not leave in time)."""
        self.send("q")
        deadline = time.monotonic() + READ_WAIT_S
        while time.monotonic() < deadline:
            open_ = self._read(0.2)
            pid, status = os.waitpid(self.pid, 0 if not open_ else os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
                return self.returncode
        self.close()
        assert self.returncode is not None
        return self.returncode

    def close(self) -> None:
        """Kill the child if it still runs, and close the pty (idempotent)."""
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
