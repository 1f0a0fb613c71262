"""The terminal display: half blocks that decode back to exactly the pixels, and the panel."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pitill.drivers.render import render, screen_gallery
from pitill.sim.tty_display import (
    PANEL_WIDTH,
    framed,
    from_halfblocks,
    render_panel,
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


def test_frame_surrounds_the_rows() -> None:
    rows = framed(["ab", "c"], "t")
    assert rows == ["┌ t┐", "│ab│", "│c │", "└──┘"]


def sample_panel(**options: object) -> str:
    image = render(GALLERY["approved_offline"])
    return render_panel(
        image,
        green_led=True,
        red_led=False,
        link_text="OFFLINE DNS Q3",
        legend=["0-9 digits  Enter OK  Backspace CLEAR  Esc CANCEL", "s swipe  q quit"],
        log_lines=[f"event {n}" for n in range(20)] + ["bad \x1b[2J line"],
        **options,  # type: ignore[arg-type]
    )


def test_panel_fits_132_columns_and_50_rows() -> None:
    lines = sample_panel().split("\n")
    visible = [ANSI.sub("", line) for line in lines]
    assert len(lines) <= 50
    assert {len(line) for line in visible} == {PANEL_WIDTH}  # padded for in-place redraws


def test_panel_display_is_the_image() -> None:
    lines = sample_panel().split("\n")
    inner = [line[1:-1] for line in lines[1:33]]
    assert lines[0].startswith("┌") and lines[33].startswith("└")
    expected = render(GALLERY["approved_offline"])
    assert from_halfblocks(inner).tobytes() == expected.tobytes()


def test_panel_leds_are_coloured_and_readable_without_colour() -> None:
    coloured = sample_panel()
    assert "\x1b[1;32m● GREEN\x1b[0m" in coloured
    assert "\x1b[2m○ red\x1b[0m" in coloured
    plain = sample_panel(ansi=False)
    assert "\x1b" not in plain
    assert "● GREEN  ○ red   link OFFLINE DNS Q3" in plain


def test_panel_shows_the_last_log_lines_made_harmless() -> None:
    plain = sample_panel(ansi=False, log_rows=3)
    log = plain.split("\n")[-3:]
    assert [line.strip() for line in log] == ["event 18", "event 19", "bad ?[2J line"]
    assert "event 17" not in plain
    assert "s swipe  q quit" in plain


def test_panel_height_does_not_change_with_the_log() -> None:
    image = render(GALLERY["idle_online"])
    short = render_panel(image, False, True, "ONLINE", ["k"], [])
    long = render_panel(image, False, True, "ONLINE", ["k"], [str(n) for n in range(100)])
    assert len(short.split("\n")) == len(long.split("\n"))
