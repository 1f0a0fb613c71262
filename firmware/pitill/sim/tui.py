"""The interactive simulator: the terminal's panel drawn in a real terminal, keys from the keyboard.

tty_display.compose lays the panel out for the window's size (80x24 at least; the display at
full size from FULL_COLS x FULL_ROWS); a SIGWINCH clears and redraws it for the new size. Input
is read raw from stdin on the one event loop; the log lists what happened, one line each.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import time
import tty
from collections import Counter, deque
from collections.abc import Mapping, Sequence

from pitill.core.screens import link_words
from pitill.core.types import Key, format_amount
from pitill.errors import PitillError
from pitill.sim.keymap import KEY_HELP, Hotkey, decode_input
from pitill.sim.tty_display import PanelState, compose
from pitill.sim.world import SimWorld

REFRESH_S = 0.25
LOG_LINES = 200  # kept for a tall window; a small one shows the last few
ENTER_ALT_SCREEN = "\x1b[?1049h\x1b[?25l\x1b[?7l"  # alternate screen, no cursor, no auto-wrap
LEAVE_ALT_SCREEN = "\x1b[?7h\x1b[?25h\x1b[?1049l"
CLEAR_SCREEN = "\x1b[2J"


def terminal_size(fd: int) -> tuple[int, int]:
    """(columns, rows) of the terminal on `fd`; 80x24 when it cannot say (or says 0x0, as a
    pty nobody sized does)."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    if size.columns == 0 or size.lines == 0:
        return 80, 24
    return size.columns, size.lines


def write_all(fd: int, text: str) -> None:
    """All of `text` to `fd`, however many writes it takes. A signal (SIGWINCH, a child's SIGCHLD)
    cuts a blocked tty write short, and sys.stdout over an unbuffered stream (PYTHONUNBUFFERED=1,
    common in containers) drops the rest: the lost lines stayed blank, only changed lines are
    redrawn."""
    sys.stdout.flush()  # anything printed before stays before
    data = memoryview(text.encode())
    while data:
        data = data[os.write(fd, data) :]


def describe_event(kind: str, fields: Mapping[str, object]) -> str | None:
    """One log line for an event of the terminal, or None for those the panel shows itself."""
    if kind in ("screen", "state"):
        return None  # the display and the side panel show them
    if kind == "beep":  # the buzzer: only the sounds that ask for attention, not every key click
        pattern = fields.get("pattern")
        return f"buzzer: {pattern}" if pattern in ("error", "alert") else None
    if kind == "link":
        reason = f" {fields['reason']}" if fields.get("reason") else ""
        return f"link: terminal sees {fields['status']}{reason}"
    if kind == "upstream":
        return f"host: you set it {fields['mode']}"
    if kind == "backlog":
        return f"queue: {fields['pending']} to forward"
    if kind == "journal":
        amount = format_amount(int(str(fields["amount_minor"])))
        pan = f" {fields['masked_pan']}" if fields.get("masked_pan") else ""
        return (
            f"journal #{fields['seq']}: {fields['kind']} {fields['mode']} {fields['status']}"
            f" {fields['currency']} {amount}{pan}"
        )
    if kind in ("forwarding", "forwarded"):
        return _describe_batch(kind, fields)
    if kind == "forward_retry":
        retry = f"retry in {fields['retry_in_s']} s"
        return f"forwarding paused at #{fields['seq']}: {fields['reason']}; {retry}"
    if kind == "forward_wait":  # forward_jitter_s: a fleet back at once must not all send at once
        return f"link back: forwarding starts in {fields['wait_s']} s (spread, forward_jitter_s)"
    if kind == "web":
        return f"web page: {fields['url']}"
    if kind == "drawer":
        return f"drawer: opened ({fields['count']} so far)"
    return f"{kind}: " + " ".join(f"{k}={v}" for k, v in fields.items())


def _seq_ranges(seqs: Sequence[int]) -> str:
    """#3-#5,#9 for 3, 4, 5, 9."""
    ranges: list[list[int]] = []
    for seq in seqs:
        if ranges and seq == ranges[-1][-1] + 1:
            ranges[-1].append(seq)
        else:
            ranges.append([seq])
    return ",".join(f"#{r[0]}" if len(r) == 1 else f"#{r[0]}-#{r[-1]}" for r in ranges)


def _describe_batch(kind: str, fields: Mapping[str, object]) -> str:
    """One line per forwarded batch: how many advices and reversals, which, and the answers."""
    seqs = [int(str(seq)) for seq in _items(fields.get("seqs"))]
    kinds = [str(k) for k in _items(fields.get("kinds"))]
    counts = [
        f"{n} {name}{'s' if n > 1 else ''}"
        for name in ("advice", "reversal")
        if (n := kinds.count(name))
    ]
    what = f"{' + '.join(counts) or 'nothing'} {_seq_ranges(seqs)}"
    if kind == "forwarding":
        repeats = int(str(fields.get("repeats", 0)))
        return f"forwarding: sending {what}" + (f" ({repeats} repeated)" if repeats else "")
    codes = Counter(str(code) for code in _items(fields.get("codes")))
    answers = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
    left = int(str(fields.get("left", 0)))
    return f"forwarded: host answered {what}: {answers}" + (f"; {left} not sent" if left else "")


def _items(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


class SimUI:
    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.log: deque[str] = deque(maxlen=LOG_LINES)
        self.quit = asyncio.Event()
        self.help = False
        self._last_lines: list[str] = []
        self._busy_swipe = False
        self._swipe_task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        if not sys.stdin.isatty():
            raise SystemExit("pitill sim needs a terminal; use --script FILE to run headless")
        terminal = await self.world.start()
        terminal.event_log.listeners.append(self._on_event)
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        loop = asyncio.get_running_loop()
        try:
            tty.setraw(fd)
            write_all(sys.stdout.fileno(), ENTER_ALT_SCREEN)
            loop.add_reader(fd, self._on_input, fd)
            loop.add_signal_handler(signal.SIGWINCH, self._on_resize)
            while not self.quit.is_set():
                self._draw()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.quit.wait(), REFRESH_S)
        finally:
            loop.remove_signal_handler(signal.SIGWINCH)
            loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            write_all(sys.stdout.fileno(), LEAVE_ALT_SCREEN)
            await self.world.stop()

    def _note(self, text: str) -> None:
        self.log.append(f"{time.strftime('%H:%M:%S')} {text}")

    def _on_event(self, kind: str, fields: dict[str, object]) -> None:
        line = describe_event(kind, fields)
        if line is not None:
            self._note(line)

    def _on_input(self, fd: int) -> None:
        data = os.read(fd, 64).decode("utf-8", errors="ignore")
        terminal = self.world.terminal
        assert terminal is not None
        for item in decode_input(data):
            if isinstance(item, Key):
                terminal.dispatch_key(item)
            else:
                self._hotkey(item)
        self._draw()

    def _on_resize(self) -> None:
        """SIGWINCH: forget what is on screen, clear it and draw for the new size."""
        self._last_lines = []
        write_all(sys.stdout.fileno(), CLEAR_SCREEN)
        self._draw()

    def _hotkey(self, hotkey: Hotkey) -> None:
        kind, _, arg = hotkey.action.partition(":")
        if kind == "quit":
            self.quit.set()
        elif kind == "help":
            self.help = not self.help
        elif kind == "upstream":
            self.world.set_upstream(arg)  # the world logs it as an "upstream" event
        elif kind == "swipe":
            self._swipe_task = asyncio.ensure_future(self._swipe(arg))
        elif kind == "tap":
            self._swipe_task = asyncio.ensure_future(self._tap(*arg.split(" ", 1)))

    async def _tap(self, kind: str, arg: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            tapped = await loop.run_in_executor(None, self.world.tap, kind, arg)
        except PitillError as exc:
            self._note(str(exc))
        else:
            self._note(f"tapped {tapped}")

    async def _swipe(self, name: str) -> None:
        if self._busy_swipe:
            return
        self._busy_swipe = True
        try:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(None, self.world.swipe_named, name)
            self._note(f"swiped {name} card: reader got {answer}")
        finally:
            self._busy_swipe = False

    def panel(self) -> PanelState | None:
        """This frame's contents, or None before the terminal has drawn its first screen."""
        terminal = self.world.terminal
        if terminal is None or terminal.image is None or terminal.screen is None:
            return None
        state = terminal.state
        screen = terminal.screen
        green, red = terminal.leds
        return PanelState(
            image=terminal.image,
            green_led=green,
            red_led=red,
            link=link_words(screen.status),
            host_mode=self.world.upstream_mode,
            pending=state.pending,
            phase=state.phase.value,
            screen_text=tuple(screen.text().split("\n")),
            keys=KEY_HELP,
            log=tuple(self.log),
            help=self.help,
        )

    def _draw(self) -> None:
        panel = self.panel()
        if panel is None:
            return
        cols, rows = terminal_size(sys.stdout.fileno())
        lines = compose(panel, cols, rows)
        # Rewrite only the lines that changed, each at its own row: nothing can scroll.
        out = [
            f"\x1b[{row};1H{line}"
            for row, line in enumerate(lines, start=1)
            if row > len(self._last_lines) or self._last_lines[row - 1] != line
        ]
        if out:
            write_all(sys.stdout.fileno(), "".join(out))
        self._last_lines = lines
