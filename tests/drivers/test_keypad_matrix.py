"""Matrix keypad: the pure debouncer, and the scanner at pin level on gpiozero's MockFactory."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest
from gpiozero import LED
from gpiozero.exc import GPIOPinInUse
from gpiozero.pins.mock import MockFactory
from hypothesis import given
from hypothesis import strategies as st

from pitill.config import KeypadConfig
from pitill.core.types import Key
from pitill.drivers.keypad_matrix import (
    Cell,
    Debouncer,
    MatrixKeypad,
    MockKeypadWiring,
    cell_keys,
    is_ambiguous,
)

CONFIG = KeypadConfig()


class RecordingWiring(MockKeypadWiring):
    """The fake keypad, also recording the most rows ever driven low at the same moment."""

    max_rows_driven = 0

    def update(self) -> None:
        if hasattr(self, "_cols"):
            driven = sum(p.function == "output" and not p.state for p in self._rows)
            self.max_rows_driven = max(self.max_rows_driven, driven)
        super().update()


@pytest.fixture
def wired(factory: MockFactory) -> Iterator[tuple[RecordingWiring, MatrixKeypad]]:
    wiring = RecordingWiring(factory, CONFIG)
    keypad = MatrixKeypad(CONFIG, pin_factory=factory)
    yield wiring, keypad
    keypad.close()


def scan(keypad: MatrixKeypad, times: int) -> list[list[Key]]:
    """The keys each of `times` scans reported."""
    return [keypad.scan_once() for _ in range(times)]


def keys_from(keypad: MatrixKeypad, times: int) -> list[Key]:
    """Every key `times` scans reported, in order."""
    return [key for keys in scan(keypad, times) for key in keys]


# --- the pure debouncer ----------------------------------------------------------------------


def test_press_counts_after_n_identical_scans_and_once_per_press() -> None:
    debouncer = Debouncer(stable_scans=3)
    held = {(1, 1)}
    assert [debouncer.feed(held).pressed for _ in range(5)] == [(), (), ((1, 1),), (), ()]
    assert [debouncer.feed(set()).released for _ in range(3)] == [(), (), ((1, 1),)]
    assert debouncer.pressed == frozenset()


def test_a_bounce_shorter_than_n_scans_does_not_count() -> None:
    debouncer = Debouncer(stable_scans=3)
    bouncing: list[set[Cell]] = [{(0, 0)}, {(0, 0)}, set(), {(0, 0)}, set(), {(0, 0)}, {(0, 0)}]
    assert all(not debouncer.feed(raw).pressed for raw in bouncing)
    assert debouncer.feed({(0, 0)}).pressed == ((0, 0),)  # the third identical scan in a row


def test_a_release_bounce_does_not_repeat_the_key() -> None:
    debouncer = Debouncer(stable_scans=2)
    for raw in [{(2, 2)}, {(2, 2)}, set(), {(2, 2)}, set(), {(2, 2)}, {(2, 2)}]:
        changes = debouncer.feed(raw)
        assert not changes.released
    assert debouncer.pressed == {(2, 2)}


def test_keys_settling_together_come_in_row_major_order() -> None:
    debouncer = Debouncer(stable_scans=1)
    assert debouncer.feed({(3, 0), (0, 3), (0, 1)}).pressed == ((0, 1), (0, 3), (3, 0))


def test_three_corners_of_a_rectangle_are_ambiguous_two_keys_are_not() -> None:
    assert is_ambiguous({(0, 0), (0, 1), (1, 0)})
    assert is_ambiguous({(0, 0), (0, 1), (1, 0), (1, 1)})
    assert not is_ambiguous({(0, 0), (1, 0)})  # one column, two rows
    assert not is_ambiguous({(0, 0), (0, 3)})  # one row, two columns
    assert not is_ambiguous({(0, 0), (1, 1), (2, 2)})  # a diagonal is fine


def test_an_ambiguous_scan_changes_nothing() -> None:
    debouncer = Debouncer(stable_scans=1)
    debouncer.feed({(0, 0)})
    changes = debouncer.feed({(0, 0), (0, 1), (1, 0), (1, 1)})
    assert (changes.pressed, changes.released) == ((), ())
    assert debouncer.pressed == {(0, 0)}
    assert debouncer.ambiguous_scans == 1


@given(st.integers(1, 5), st.lists(st.booleans(), max_size=60))
def test_debounced_state_follows_only_runs_of_n(stable_scans: int, raw: list[bool]) -> None:
    debouncer = Debouncer(stable_scans)
    events: list[str] = []
    for down in raw:
        changes = debouncer.feed({(0, 0)} if down else set())
        events += ["press"] * len(changes.pressed) + ["release"] * len(changes.released)
    # Presses and releases alternate, starting with a press.
    assert events == ["press", "release"] * (len(events) // 2) + ["press"] * (len(events) % 2)
    # Without a run of n pressed scans nothing is ever reported.
    longest = max((len(run) for run in "".join("x" if d else " " for d in raw).split()), default=0)
    if longest < stable_scans:
        assert events == []
    # After n identical scans, the debounced state is that state.
    if len(raw) >= stable_scans and len(set(raw[-stable_scans:])) == 1:
        assert (debouncer.pressed == {(0, 0)}) is raw[-1]


# --- the scanner on MockFactory pins ---------------------------------------------------------


def test_the_scan_reads_the_pressed_cell_and_drives_one_row_at_a_time(
    wired: tuple[RecordingWiring, MatrixKeypad],
) -> None:
    wiring, keypad = wired
    assert keypad.read_matrix() == frozenset()
    wiring.press("5")
    assert keypad.read_matrix() == {(1, 1)}
    wiring.press("D")
    assert keypad.read_matrix() == {(1, 1), (3, 3)}
    assert wiring.max_rows_driven == 1  # no two rows ever driven at once
    assert all(p.function == "input" for p in wiring._rows)  # all released between scans


def test_keys_map_through_the_default_keymap(wired: tuple[RecordingWiring, MatrixKeypad]) -> None:
    wiring, keypad = wired
    seen: list[Key] = []
    for char in "7#*DA0B":
        wiring.press(char)
        seen += keys_from(keypad, CONFIG.stable_scans)
        wiring.release(char)
        scan(keypad, CONFIG.stable_scans)
    assert seen == [Key.D7, Key.OK, Key.CLEAR, Key.CANCEL, Key.FN, Key.D0]  # B is unmapped


def test_a_bouncing_contact_at_pin_level_needs_n_stable_scans(
    wired: tuple[RecordingWiring, MatrixKeypad],
) -> None:
    wiring, keypad = wired
    for _ in range(3):  # closes for two scans, opens: a bounce
        wiring.press("3")
        assert scan(keypad, 2) == [[], []]
        wiring.release("3")
        assert scan(keypad, 1) == [[]]
    wiring.press("3")
    assert scan(keypad, 4) == [[], [], [Key.D3], []]  # once, on the third stable scan


def test_two_keys_at_once_are_both_reported(wired: tuple[RecordingWiring, MatrixKeypad]) -> None:
    wiring, keypad = wired
    wiring.press("9", "1")  # same scan: row-major order, 1 before 9
    assert keys_from(keypad, 3) == [Key.D1, Key.D9]
    wiring.release("1", "9")
    scan(keypad, 3)
    wiring.press("2")  # rollover: 2 held while 8 (same column) goes down
    scan(keypad, 3)
    wiring.press("8")
    assert keys_from(keypad, 3) == [Key.D8]


def test_a_ghost_rectangle_reports_nothing_until_it_clears(
    wired: tuple[RecordingWiring, MatrixKeypad],
) -> None:
    wiring, keypad = wired
    wiring.press("1", "2", "4")  # "5" would read as pressed through 1-2-4
    assert keypad.read_matrix() == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert keys_from(keypad, 5) == []
    wiring.release("2", "4")
    assert keys_from(keypad, 3) == [Key.D1]


def test_a_custom_layout_and_keymap(factory: MockFactory) -> None:
    config = KeypadConfig(
        row_pins=(5, 6, 13, 19),
        col_pins=(12, 16, 20),
        layout=("123", "456", "789", "*0#"),
        keymap={"*": "CANCEL", "#": "ok"},
        stable_scans=1,
    )
    assert cell_keys(config)[(3, 0)] is Key.CANCEL
    wiring = MockKeypadWiring(factory, config)
    keypad = MatrixKeypad(config, pin_factory=factory)
    wiring.press("#")
    assert keypad.scan_once() == [Key.OK]
    keypad.close()


def test_the_thread_posts_keys_and_close_stops_it(
    wired: tuple[RecordingWiring, MatrixKeypad],
) -> None:
    wiring, keypad = wired
    posted: queue.Queue[Key] = queue.Queue()
    keypad.start(posted.put)
    wiring.press("#")
    assert posted.get(timeout=5) is Key.OK
    keypad.close()
    assert keypad._thread is None


def test_close_gives_the_pins_back(factory: MockFactory) -> None:
    keypad = MatrixKeypad(CONFIG, pin_factory=factory)
    keypad.close()
    LED(CONFIG.row_pins[0], pin_factory=factory).close()  # would raise GPIOPinInUse if kept


def test_a_pin_in_use_fails_and_releases_what_was_claimed(factory: MockFactory) -> None:
    blocker = LED(CONFIG.col_pins[2], pin_factory=factory)
    with pytest.raises(GPIOPinInUse):
        MatrixKeypad(CONFIG, pin_factory=factory)
    blocker.close()
    MatrixKeypad(CONFIG, pin_factory=factory).close()  # the rows were given back


def test_scans_slowly_while_idle_and_fast_once_a_key_is_touched(factory: MockFactory) -> None:
    config = KeypadConfig(scan_interval_s=0.01, idle_scan_interval_s=0.05)
    wiring = MockKeypadWiring(factory, config)
    keypad = MatrixKeypad(config, pin_factory=factory)
    try:
        now_s = time.monotonic()
        assert keypad.interval_s(now_s) == 0.05
        wiring.press("5")
        keypad.scan_once()
        assert keypad.interval_s(time.monotonic()) == 0.01
        assert keypad.interval_s(time.monotonic() + 2.0) == 0.05
    finally:
        keypad.close()


def test_idle_polls_read_only_the_columns_and_still_catch_a_press(factory: MockFactory) -> None:
    config = KeypadConfig(scan_interval_s=0.01, idle_scan_interval_s=0.05, stable_scans=1)
    wiring = MockKeypadWiring(factory, config)
    keypad = MatrixKeypad(config, pin_factory=factory)
    try:
        full_scans: list[int] = []
        read_matrix = keypad.read_matrix

        def counted() -> frozenset[tuple[int, int]]:
            full_scans.append(1)
            return read_matrix()

        keypad.read_matrix = counted  # type: ignore[method-assign]
        assert keypad.poll() == [] and keypad.poll() == []
        assert full_scans == []  # idle: only the columns were read, the rows stay held
        wiring.press("5")
        assert keypad.poll() == [Key.D5]  # the contact is seen, then the full scan names it
    finally:
        keypad.close()
