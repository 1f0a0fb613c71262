"""A membrane matrix keypad (the common 4x4, or any rows x columns) scanned over GPIO via gpiozero.

Wiring: each row line is a GPIO the scanner drives; each column line is a GPIO input with the
Pi's internal pull-up. Pressing a key joins its row to its column.

How a scan drives the rows: one row at a time is switched to an output driving LOW; every other
row is an INPUT (high impedance), not an output driving high. A column reads low exactly when a
pressed key joins it to the selected row. Rows that are not selected float because two keys in
one column would otherwise join a row driven high to the row driven low: a short between two
push-pull outputs with nothing but the pins' own few tens of ohms in its way. Floating rows make
the rows open-drain, so any combination of keys is electrically safe. gpiozero has no
open-drain output device, so a row is a small GPIODevice that switches its pin between "output,
low" and "input"; columns are plain InputDevice(pull_up=True): no edge detection, since the
scanner reads them and a callback thread (lgpio alerts) would only wake up on every scan.

Debouncing is ours (gpiozero's bounce_time differs per pin backend and the mock ignores it), in
the pure `Debouncer`: a key's debounced state flips after `stable_scans` consecutive scans that
disagree with it, so a contact bouncing for fewer scans never counts, and each press is reported
once however long it is held. Several keys at once: each key is debounced on its own and every
key that becomes stably pressed is reported; keys that settle in the same scan are reported in
row-major order (top row first, left to right). Three keys on the corners of a rectangle make the
fourth corner read as pressed too ("ghosting": the current flows round through the three), so a
scan in which two rows share a pressed column while together spanning two or more columns is
ambiguous and is skipped: it changes nothing, and the scans after it decide.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gpiozero import GPIODevice, InputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from pitill.config import KeypadConfig
from pitill.core.types import Key
from pitill.drivers.protocols import KeySink

if TYPE_CHECKING:
    from gpiozero.pins import Factory

log = logging.getLogger(__name__)

ACTIVE_HOLD_S = 1.0  # keep scanning fast this long after the last closed contact

Cell = tuple[int, int]
"""(row, column) of a key, counted from the top left, 0-based."""


def cell_keys(config: KeypadConfig) -> dict[Cell, Key]:
    """The logical key of every mapped cell: keymap entries, else digits stand for themselves."""
    keys: dict[Cell, Key] = {}
    for r, row in enumerate(config.layout):
        for c, char in enumerate(row):
            name = config.keymap.get(char, char if char.isdigit() else None)
            if name:
                keys[(r, c)] = Key.parse(name)
    return keys


def is_ambiguous(pressed: Collection[Cell]) -> bool:
    """True when the pressed set may contain a ghost (3+ corners of a row/column rectangle)."""
    by_row: dict[int, set[int]] = {}
    for r, c in pressed:
        by_row.setdefault(r, set()).add(c)
    rows = list(by_row.values())
    return any(a & b and len(a | b) >= 2 for i, a in enumerate(rows) for b in rows[i + 1 :])


@dataclass(frozen=True)
class ScanChanges:
    """Keys whose debounced state changed in one scan, each tuple in row-major order."""

    pressed: tuple[Cell, ...] = ()
    released: tuple[Cell, ...] = ()


class Debouncer:
    """Turns raw scans (the set of cells that read pressed) into debounced presses and releases.

    Pure: no clock, no GPIO; one `feed` per scan.
    """

    def __init__(self, stable_scans: int) -> None:
        if stable_scans < 1:
            raise ValueError(f"stable_scans must be >= 1, got {stable_scans}")
        self._stable_scans = stable_scans
        self._pressed: set[Cell] = set()
        self._disagreeing: dict[Cell, int] = {}  # cell -> scans in a row its raw state differed
        self.ambiguous_scans = 0  # counted, for the bench and the log

    @property
    def pressed(self) -> frozenset[Cell]:
        """The cells currently held down, debounced."""
        return frozenset(self._pressed)

    def feed(self, raw: Collection[Cell]) -> ScanChanges:
        raw = frozenset(raw)
        if is_ambiguous(raw):
            self.ambiguous_scans += 1
            return ScanChanges()
        pressed: list[Cell] = []
        released: list[Cell] = []
        for cell in sorted((raw ^ self._pressed) | self._disagreeing.keys()):
            down = cell in raw
            if down == (cell in self._pressed):
                del self._disagreeing[cell]  # a bounce back to the settled state: start over
                continue
            run = self._disagreeing.pop(cell, 0) + 1
            if run < self._stable_scans:
                self._disagreeing[cell] = run
            elif down:
                self._pressed.add(cell)
                pressed.append(cell)
            else:
                self._pressed.discard(cell)
                released.append(cell)
        return ScanChanges(tuple(pressed), tuple(released))


class _MatrixRow(GPIODevice):  # type: ignore[misc]  # gpiozero has no type hints
    """A row line used open-drain: released (input, no pull) or selected (output, low)."""

    def __init__(self, pin: int, *, pin_factory: Factory | None = None) -> None:
        super().__init__(pin, pin_factory=pin_factory)
        self.release()
        self.pin.pull = "floating"

    def select(self) -> None:
        self.pin.function = "output"
        self.pin.state = False

    def release(self) -> None:
        self.pin.function = "input"


class MatrixKeypad:
    """KeySource for a matrix keypad: a thread calls `scan_once` every scan_interval_s."""

    def __init__(self, config: KeypadConfig, *, pin_factory: Factory | None = None) -> None:
        self._keys = cell_keys(config)
        self._debouncer = Debouncer(config.stable_scans)
        self._interval_s = config.scan_interval_s
        self._idle_interval_s = max(config.idle_scan_interval_s, config.scan_interval_s)
        self._rows: list[_MatrixRow] = []
        self._cols: list[InputDevice] = []
        try:
            for pin in config.row_pins:
                self._rows.append(_MatrixRow(pin, pin_factory=pin_factory))
            for pin in config.col_pins:
                self._cols.append(InputDevice(pin, pull_up=True, pin_factory=pin_factory))
        except Exception:
            self._close_devices()  # give back the pins claimed so far
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.scan_errors = 0
        self.touched_at_s = -ACTIVE_HOLD_S  # when a scan last saw any cell closed
        self._rows_held = False  # every row selected at once, for the idle check

    @property
    def debouncer(self) -> Debouncer:
        return self._debouncer

    def any_contact(self) -> bool:
        """The idle check: every row held low, so any closed key pulls its column low; reading
        the columns then costs no pin switching at all (the rows stay selected between checks)."""
        if not self._rows_held:
            for row in self._rows:
                row.select()
            self._rows_held = True
        return any(col.is_active for col in self._cols)

    def _release_rows(self) -> None:
        if self._rows_held:
            for row in self._rows:
                row.release()
            self._rows_held = False

    def poll(self) -> list[Key]:
        """What the scanning thread does each tick: while idle only `any_contact`; a full scan
        (and fast ticks, see interval_s) as soon as a contact closes or lately did."""
        idle = self.interval_s(time.monotonic()) == self._idle_interval_s
        if idle and self._idle_interval_s > self._interval_s and not self.any_contact():
            return []
        return self.scan_once()

    def read_matrix(self) -> frozenset[Cell]:
        """One raw pass over the matrix: the cells that read pressed right now."""
        self._release_rows()
        pressed: set[Cell] = set()
        # No settle delay: a column's pull-up (~50 kohm) charges the line's few tens of pF in
        # microseconds, less than one gpiozero call takes on a Pi.
        for r, row in enumerate(self._rows):
            row.select()
            try:
                pressed.update((r, c) for c, col in enumerate(self._cols) if col.is_active)
            finally:
                row.release()
        return frozenset(pressed)

    def scan_once(self) -> list[Key]:
        """Scan, debounce, and return the logical keys newly pressed (unmapped cells dropped)."""
        raw = self.read_matrix()
        if raw:
            self.touched_at_s = time.monotonic()
        changes = self._debouncer.feed(raw)
        return [self._keys[cell] for cell in changes.pressed if cell in self._keys]

    def interval_s(self, now_s: float) -> float:
        """Fast scans while a key is touched or was within the last second, slow ones idle:
        the first contact is seen within the idle interval, then debounced at full speed."""
        recent = now_s - self.touched_at_s < ACTIVE_HOLD_S
        return self._interval_s if recent else self._idle_interval_s

    def start(self, post: KeySink) -> None:
        if self._thread is not None:
            raise RuntimeError("MatrixKeypad already started")
        self._thread = threading.Thread(
            target=self._run, args=(post,), name="pitill-keypad", daemon=True
        )
        self._thread.start()

    def _run(self, post: KeySink) -> None:
        next_s = time.monotonic()
        while not self._stop.is_set():
            try:
                keys = self.poll()
            except Exception:
                # A GPIO read failing must not kill the keypad; log the first and every 1000th.
                keys = []
                if self.scan_errors % 1000 == 0:
                    log.exception("keypad scan failed (%d so far)", self.scan_errors + 1)
                self.scan_errors += 1
            for key in keys:
                post(key)
            next_s += self.interval_s(time.monotonic())
            delay_s = next_s - time.monotonic()
            if delay_s < 0:  # fell behind (a busy CPU): skip the missed scans, don't burst
                next_s, delay_s = time.monotonic(), 0.0
            self._stop.wait(delay_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close_devices()

    def _close_devices(self) -> None:
        for device in (*self._rows, *self._cols):
            device.close()
        self._rows, self._cols = [], []


class _MockRowPin(MockPin):  # type: ignore[misc]
    """A MockPin that tells its MockKeypadWiring whenever it changes function or level."""

    def __init__(self, factory: MockFactory, info: Any, wiring: MockKeypadWiring) -> None:
        super().__init__(factory, info)
        self._wiring = wiring

    def _set_function(self, value: str) -> None:
        super()._set_function(value)
        self._wiring.update()

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        if getattr(self, "_wiring", None) is not None:
            self._wiring.update()
        return changed


class MockKeypadWiring:
    """A working fake keypad for gpiozero's MockFactory (tests, `pitill run` against mocks).

    Create it before the MatrixKeypad (it installs its own row pins), then `press("5")`: the
    columns follow the rows exactly as the membrane would, including ghost keys when three
    corners of a rectangle are held.
    """

    def __init__(self, factory: MockFactory, config: KeypadConfig) -> None:
        self._layout = config.layout
        self._pressed: set[Cell] = set()
        self._rows: list[_MockRowPin] = []
        for pin in config.row_pins:
            row = factory.pin(pin, pin_class=_MockRowPin, wiring=self)
            if not isinstance(row, _MockRowPin):
                raise ValueError(f"GPIO{pin} already exists: create MockKeypadWiring first")
            self._rows.append(row)
        self._cols: list[MockPin] = [factory.pin(pin) for pin in config.col_pins]

    def cell(self, char: str) -> Cell:
        for r, row in enumerate(self._layout):
            if char in row:
                return (r, row.index(char))
        raise ValueError(f"{char!r} is not on the keypad layout {self._layout!r}")

    def press(self, *chars: str) -> None:
        self.set_pressed(self._pressed | {self.cell(ch) for ch in chars})

    def release(self, *chars: str) -> None:
        self.set_pressed(self._pressed - {self.cell(ch) for ch in chars})

    def set_pressed(self, cells: Iterable[Cell]) -> None:
        self._pressed = set(cells)
        self.update()

    def update(self) -> None:
        """Pull low every column electrically joined (through held keys) to a row driven low."""
        if not hasattr(self, "_cols"):
            return  # still installing the row pins
        low_rows = {
            r for r, pin in enumerate(self._rows) if pin.function == "output" and not pin.state
        }
        low_cols: set[int] = set()
        frontier = set(low_rows)
        while frontier:  # current flows row -> key -> column -> key -> row ...
            cols = {c for r, c in self._pressed if r in frontier} - low_cols
            low_cols |= cols
            frontier = {r for r, c in self._pressed if c in cols} - low_rows
            low_rows |= frontier
        for c, pin in enumerate(self._cols):
            if pin.function != "input":
                continue
            if c in low_cols:
                pin.drive_low()
            elif pin.pull == "up":
                pin.drive_high()
