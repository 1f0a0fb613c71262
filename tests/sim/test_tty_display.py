"""The terminal display: half blocks and braille that decode back to exactly the pixels, and
the panel laid out for any window from 80x24 up."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pitill.drivers.render import render, screen_gallery
from pitill.sim.keymap import KEY_HELP
from pitill.sim.tty_display import (
    FULL_COLS,
    FULL_ROWS,
    MIN_COLS,
    MIN_ROWS,
    PanelState,
    compose,
    framed,
    from_braille,
    from_halfblocks,
    to_braille,
    to_halfblocks,
)

ANSI = re.compile(r"\x1b\[[0-9;]*m")
GALLERY = screen_gallery()


def image_from_rows(rows: list[str]) -> Image.Image:
    """Build a test image from '#'/'.' rows."""
    image = Image.new("1", (len(rows[0]), len(rows)))
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            if char == "#":
                image.putpixel((x, y), 1)
    return image


def test_each_pixel_pair_becomes_its_half_block() -> None:
    image = image_from_rows(["#.#.", "..##"])
    assert to_halfblocks(image) == ["▀ █▄"]


def test_odd_height_pairs_the_last_row_with_dark() -> None:
    image = image_from_rows(["#.", ".#", "##"])
    rows = to_halfblocks(image)
    assert rows == ["▀▄", "▀▀"]
    assert from_halfblocks(rows, height=3).tobytes() == image.tobytes()


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_gallery_screens_round_trip_exactly(name: str) -> None:
    image = render(GALLERY[name])
    rows = to_halfblocks(image)
    assert len(rows) == 32
    assert all(len(row) == 128 for row in rows)
    assert set("".join(rows)) <= set(" ▀▄█")
    assert from_halfblocks(rows).tobytes() == image.tobytes()


@settings(max_examples=50, deadline=None)
@given(
    st.integers(min_value=1, max_value=12).flatmap(
        lambda width: st.lists(
            st.lists(st.booleans(), min_size=width, max_size=width), min_size=1, max_size=9
        )
    )
)
def test_any_image_round_trips(bits: list[list[bool]]) -> None:
    image = image_from_rows(["".join("#" if on else "." for on in row) for row in bits])
    decoded = from_halfblocks(to_halfblocks(image), height=image.height)
    assert decoded.tobytes() == image.tobytes()


def test_decoding_rejects_characters_that_are_not_half_blocks() -> None:
    with pytest.raises(ValueError, match="column 1"):
        from_halfblocks(["▀x"])
    with pytest.raises(ValueError, match="differ in length"):
        from_halfblocks(["▀▀", "▀"])


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_gallery_screens_round_trip_exactly_in_braille(name: str) -> None:
    image = render(GALLERY[name])
    rows = to_braille(image)
    assert len(rows) == 16 and all(len(row) == 64 for row in rows)
    assert from_braille(rows, 128, 64).tobytes() == image.tobytes()


def test_braille_dots_are_unicode_numbering() -> None:
    # dots 1-2-3-7 down the left column, 4-5-6-8 down the right
    assert to_braille(image_from_rows(["#.", "#.", "#.", "#."])) == ["⡇"]
    assert to_braille(image_from_rows([".#", ".#", ".#", ".#"])) == ["⢸"]
    assert to_braille(image_from_rows(["##", "..", "..", ".."])) == ["⠉"]


def sample(*, log: int = 20, help: bool = False, name: str = "approved_offline") -> PanelState:
    screen = GALLERY[name]
    return PanelState(
        image=render(screen),
        green_led=True,
        red_led=False,
        link="OFFLINE DNS",
        host_mode="dns-fail",
        pending=3,
        phase="OFFLINE_APPROVED",
        screen_text=tuple(screen.text().split("\n")),
        keys=KEY_HELP,
        log=(*(f"event {n}" for n in range(log)), "bad \x1b[2J line"),
        help=help,
    )


def plain(cols: int, rows: int, **options: object) -> list[str]:
    return compose(sample(**options), cols, rows, ansi=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("cols", [MIN_COLS, 81, 99, 100, 132, FULL_COLS - 1, FULL_COLS, 200, 300])
@pytest.mark.parametrize("rows", [MIN_ROWS, 25, 30, FULL_ROWS - 1, FULL_ROWS, 60])
def test_every_size_gets_exactly_its_rows_and_columns(cols: int, rows: int) -> None:
    coloured = compose(sample(), cols, rows)
    assert len(coloured) == rows
    assert all(len(ANSI.sub("", line)) == cols for line in coloured)  # padded: redraw in place
    lines = plain(cols, rows)
    assert all(char.isprintable() for line in lines for char in line)


def test_80x24_shows_the_display_in_braille_the_words_keys_and_log() -> None:
    lines = plain(80, 24)
    assert lines[0].startswith("┌ pitill OLED") and lines[17].startswith("└")
    inner = [line[1:65] for line in lines[1:17]]
    assert from_braille(inner, 128, 64).tobytes() == render(GALLERY["approved_offline"]).tobytes()
    text = "\n".join(lines)
    for part in ("● GREEN ○ red", "link OFFLINE", "host dns-fail", "queue 3", "Enter OK"):
        assert part in text
    for part in ("Bksp  CLEAR", "Esc   CANCEL", "a/d/e/l swipe", "? help q quit"):
        assert part in text
    assert "screen: OFFLINE DNS Q3 │ APPROVED" in lines[18]
    assert "EUR 12.50 │ 411111******1111 │ STORED, SENDS LATER" in lines[19]
    assert lines[20].startswith("─ log")
    assert [line.strip() for line in lines[21:]] == ["event 18", "event 19", "bad ?[2J line"]


def test_a_larger_window_gets_the_display_at_full_size() -> None:
    lines = plain(FULL_COLS, FULL_ROWS)
    assert lines[0].startswith("┌ pitill ─") and lines[33].startswith("└")
    inner = [line[1:129] for line in lines[1:33]]
    assert from_halfblocks(inner).tobytes() == render(GALLERY["approved_offline"]).tobytes()
    text = "\n".join(lines)
    assert "terminal sees:" in text and "you set host: dns-fail" in text
    assert "x fails sales (91)" in text
    assert plain(FULL_COLS - 1, FULL_ROWS)[0].startswith("┌ pitill OLED")  # one short: compact
    assert plain(FULL_COLS, FULL_ROWS - 1)[0].startswith("┌ pitill OLED")


def test_a_medium_window_puts_the_screen_words_beside_and_the_whole_legend_in_view() -> None:
    text = "\n".join(plain(100, 30))
    assert "terminal sees: OFFLINE DNS" in text and "you set host: dns-fail" in text
    assert "─ screen" in text and "APPROVED OFFLINE" in text and "STORED, SENDS LATER" in text
    for key, what in (*KEY_HELP.terminal, *KEY_HELP.swipe, *KEY_HELP.host):
        assert f"{key} {what}" in text


def test_more_rows_show_more_log() -> None:
    assert sum("event" in line for line in plain(100, 30)) > sum(
        "event" in line for line in plain(80, 24)
    )


@pytest.mark.parametrize(("cols", "rows"), [(79, 24), (80, 23), (40, 10), (1, 1)])
def test_a_window_too_small_says_what_size_it_needs(cols: int, rows: int) -> None:
    lines = plain(cols, rows)
    assert len(lines) == rows and all(len(line) == cols for line in lines)
    if cols >= 60 and rows >= 4:
        text = "\n".join(lines)
        assert f"needs a window of at least {MIN_COLS}x{MIN_ROWS}" in text
        assert f"this one is {cols}x{rows}" in text


def test_the_leds_are_coloured_and_readable_without_colour() -> None:
    coloured = compose(sample(), 80, 24)[0]
    assert "\x1b[1;32m● GREEN\x1b[0m" in coloured and "\x1b[2m○ red\x1b[0m" in coloured
    assert "\x1b" not in "".join(plain(80, 24))


def test_help_shows_every_key() -> None:
    lines = plain(80, 24, help=True)
    text = "\n".join(lines)
    for key, what in (*KEY_HELP.terminal_long, *KEY_HELP.swipe, *KEY_HELP.host):
        assert f"{key:<10} {what}" in text
    assert "CLEAR: takes back the last digit (* on the keypad)" in text
    assert all(len(line) == 80 for line in lines)


def test_frame_surrounds_the_rows() -> None:
    assert framed(["ab", "c"], "t") == ["┌ t┐", "│ab│", "│c │", "└──┘"]


@pytest.mark.parametrize("cols", [80, 85, 90, 99, 100, 120, 154, 155, 200])
@pytest.mark.parametrize("rows", [24, 26, 30, 39, 40])
def test_the_log_keeps_three_rows_and_its_place_whatever_the_screen(cols: int, rows: int) -> None:
    def log_rule_row(name: str, link: str) -> int:
        panel = dataclasses.replace(sample(name=name), link=link)
        lines = compose(panel, cols, rows, ansi=False)
        return next(i for i, line in enumerate(lines) if line.startswith("─ log"))

    row = log_rule_row("idle_online", "ONLINE")
    assert rows - row - 1 >= 3
    assert log_rule_row("cash_only", "DEGRADED UNREACHABLE") == row  # nothing jumps


def test_a_long_log_entry_wraps_instead_of_losing_its_end() -> None:
    url = "http://192.0.2.7:8580/?token=" + "k" * 60
    panel = dataclasses.replace(sample(), log=("11:00:00 first", f"11:00:01 web page: {url}"))
    lines = compose(panel, 80, 24, ansi=False)
    log = [line.strip() for line in lines[21:]]
    assert "".join(log).endswith("k" * 10) and "…" not in "".join(log)
    assert "".join(log).replace(" ", "").endswith(url.replace(" ", ""))
