"""The one renderer: golden images of every gallery screen, layout that never clips, markers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pitill.core.screens import Emphasis, Screen, StatusBar
from pitill.core.types import LinkStatus
from pitill.drivers.render import (
    HEIGHT_PX,
    MAX_LINES,
    WIDTH_PX,
    layout,
    render,
    screen_gallery,
    write_gallery,
)

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
UPDATE_GOLDEN = os.environ.get("PITILL_UPDATE_GOLDEN") == "1"
GALLERY = screen_gallery()
ONLINE = StatusBar(LinkStatus.ONLINE)


def lit(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    """Lit pixels inside box (left, top, right, bottom), right and bottom exclusive."""
    return sum(1 for value in image.crop(box).convert("L").tobytes() if value)


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_gallery_screen_matches_its_golden_png(name: str, tmp_path: Path) -> None:
    golden = GOLDEN_DIR / f"{name}.png"
    actual = render(GALLERY[name])
    if UPDATE_GOLDEN:
        GOLDEN_DIR.mkdir(exist_ok=True)
        actual.save(golden)
    assert golden.exists(), (
        f"no golden image {golden}; run PITILL_UPDATE_GOLDEN=1 pytest tests/drivers/test_render.py"
    )
    expected = Image.open(golden)
    same = expected.mode == "1" and expected.size == actual.size
    if not same or expected.tobytes() != actual.tobytes():
        actual.save(tmp_path / f"{name}.png")
        pytest.fail(
            f"{name}: rendering differs from {golden}; the new image is {tmp_path / name}.png. "
            "If the change is intended, regenerate with "
            "PITILL_UPDATE_GOLDEN=1 pytest tests/drivers/test_render.py and commit the PNGs"
        )


def test_every_golden_png_belongs_to_a_gallery_screen() -> None:
    stale = sorted(path.stem for path in GOLDEN_DIR.glob("*.png") if path.stem not in GALLERY)
    assert stale == []


def test_gallery_covers_the_screens_the_terminal_shows() -> None:
    titles = {screen.title for screen in GALLERY.values()}
    for title in ("READY", "EUR 12.50", "PRESENT CARD", "AUTHORIZING", "APPROVED", "DECLINED"):
        assert title in titles
    for title in ("APPROVED OFFLINE", "CASH ONLY", "TENDERED", "CHANGE"):
        assert title in titles
    links = {screen.status.link for screen in GALLERY.values()}
    assert {LinkStatus.ONLINE, LinkStatus.DEGRADED, LinkStatus.OFFLINE} <= links
    assert any(screen.status.pending for screen in GALLERY.values())


def test_gallery_never_shows_a_full_pan() -> None:
    for screen in GALLERY.values():
        assert "4111111111111111" not in screen.text()
    assert "411111******1111" in GALLERY["approved"].text()


@pytest.mark.parametrize("name", sorted(GALLERY))
def test_every_gallery_text_fits_without_clipping(name: str) -> None:
    placed = layout(GALLERY[name])
    assert placed.clipped == []
    for text in placed.texts:
        assert text.text == text.source
        assert text.x >= 0 and text.x + text.width <= WIDTH_PX, text
        assert text.y >= 0 and text.y + text.font.cap_height <= HEIGHT_PX, text
    roles = [text.role for text in placed.texts]
    assert roles.count("title") == 1
    assert roles.count("status") == 1


def test_image_is_128x64_one_bit() -> None:
    image = render(GALLERY["idle_online"])
    assert image.mode == "1"
    assert image.size == (WIDTH_PX, HEIGHT_PX)
    assert render(GALLERY["idle_online"]).tobytes() == image.tobytes()  # deterministic


def test_separator_line_is_on_every_screen() -> None:
    for screen in GALLERY.values():
        assert lit(render(screen), (0, 8, WIDTH_PX, 9)) == WIDTH_PX


def test_long_titles_shrink_to_fit() -> None:
    ready = layout(Screen("READY", status=ONLINE)).texts[-1]
    long = layout(Screen("APPROVED OFFLINE", emphasis=Emphasis.SUCCESS, status=ONLINE)).texts[-1]
    assert ready.role == long.role == "title"
    assert long.font.cap_height < ready.font.cap_height
    assert long.x + long.width <= WIDTH_PX and not long.truncated


def test_text_too_long_for_any_font_is_cut_visibly_and_reported() -> None:
    title = "THIS TITLE IS FAR TOO LONG FOR THE SCREEN"
    placed = layout(Screen(title, ("X" * 60,), status=ONLINE))
    cut = [text for text in placed.texts if text.truncated]
    assert [text.role for text in cut] == ["title", "line1"]
    assert all(text.text.endswith("..") and text.x + text.width <= WIDTH_PX for text in cut)
    assert placed.clipped == [title, "X" * 60]


def test_lines_past_three_are_reported_and_marked() -> None:
    lines = ("ONE", "TWO", "THREE", "FOUR")
    placed = layout(Screen("T", lines, status=ONLINE))
    assert [text.source for text in placed.texts if text.role.startswith("line")] == list(
        lines[:MAX_LINES]
    )
    assert placed.clipped == ["FOUR"]
    corner = (WIDTH_PX - 6, HEIGHT_PX - 3, WIDTH_PX, HEIGHT_PX)
    assert lit(render(Screen("T", lines, status=ONLINE)), corner) > 0
    assert lit(render(Screen("T", lines[:3], status=ONLINE)), corner) == 0


def test_characters_the_font_lacks_show_as_question_marks() -> None:
    shown = render(Screen("X", ("€5 ÄB",), status=ONLINE))
    assert shown.tobytes() == render(Screen("X", ("?5 ?B",), status=ONLINE)).tobytes()


def test_status_bar_words_reason_and_backlog() -> None:
    offline = layout(Screen("T", status=StatusBar(LinkStatus.OFFLINE, "DNS", pending=3)))
    by_role = {text.role: text for text in offline.texts}
    assert by_role["status"].text == "OFFLINE DNS"
    assert by_role["backlog"].text == "Q3"
    assert by_role["backlog"].x + by_role["backlog"].width == WIDTH_PX  # right-aligned
    online = layout(Screen("T", status=StatusBar(LinkStatus.ONLINE, "DNS")))
    assert [text.text for text in online.texts if text.role in ("status", "backlog")] == ["ONLINE"]


def test_long_status_falls_back_to_the_tiny_font_then_cuts() -> None:
    status = StatusBar(LinkStatus.DEGRADED, "TLS HANDSHAKE", pending=123)
    placed = {text.role: text for text in layout(Screen("T", status=status)).texts}
    assert placed["status"].font_name == "tiny"
    assert not placed["status"].truncated
    assert placed["status"].x + placed["status"].width < placed["backlog"].x
    status = StatusBar(LinkStatus.DEGRADED, "A VERY LONG REASON NOBODY WOULD SEND", pending=9)
    placed = {text.role: text for text in layout(Screen("T", status=status)).texts}
    assert placed["status"].truncated and placed["status"].text.endswith("..")


def test_link_icons_differ_and_fill_with_link_quality() -> None:
    icon_box = (0, 0, 11, 7)
    icons = {
        link: render(Screen("T", status=StatusBar(link))).crop(icon_box).tobytes()
        for link in LinkStatus
    }
    assert len(set(icons.values())) == len(LinkStatus)

    def count(link: LinkStatus) -> int:
        return lit(render(Screen("T", status=StatusBar(link))), icon_box)

    assert count(LinkStatus.ONLINE) > count(LinkStatus.DEGRADED) > count(LinkStatus.UNKNOWN)
    # offline: the crossed-out icon, lit on its top row where no bar of the unknown one is
    assert lit(render(Screen("T", status=StatusBar(LinkStatus.OFFLINE))), (0, 0, 11, 1)) > 0
    assert lit(render(Screen("T", status=StatusBar(LinkStatus.UNKNOWN))), (0, 0, 11, 1)) == 0


def test_success_draws_the_title_inverted() -> None:
    band = (0, 10, WIDTH_PX, 30)
    normal = render(Screen("APPROVED", status=ONLINE))
    success = render(Screen("APPROVED", emphasis=Emphasis.SUCCESS, status=ONLINE))
    band_area = WIDTH_PX * 20
    assert lit(normal, band) < band_area // 4
    assert lit(success, band) > band_area * 3 // 4
    # exactly the same glyph shapes, in black on white
    assert lit(success, band) == band_area - lit(normal, band)


def test_error_frames_the_title_and_warning_marks_it() -> None:
    error = render(Screen("DECLINED", emphasis=Emphasis.ERROR, status=ONLINE))
    assert lit(error, (0, 10, WIDTH_PX, 12)) == 2 * WIDTH_PX  # top of the frame
    assert lit(error, (0, 28, WIDTH_PX, 30)) == 2 * WIDTH_PX  # bottom of the frame
    warning = render(Screen("CASH ONLY", emphasis=Emphasis.WARNING, status=ONLINE))
    normal = render(Screen("CASH ONLY", status=ONLINE))
    assert lit(warning, (0, 10, 11, 30)) > 150  # the "!" box
    assert lit(normal, (0, 10, 11, 30)) == 0


def test_write_gallery_writes_one_png_per_screen(tmp_path: Path) -> None:
    written = write_gallery(tmp_path / "gallery")
    assert sorted(path.stem for path in written) == sorted(GALLERY)
    approved = Image.open(tmp_path / "gallery" / "approved.png")
    assert approved.tobytes() == render(GALLERY["approved"]).tobytes()


printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    title=printable,
    lines=st.lists(printable, max_size=4),
    emphasis=st.sampled_from(Emphasis),
    link=st.sampled_from(LinkStatus),
    reason=printable,
    pending=st.integers(min_value=0, max_value=100_000),
)
def test_any_text_stays_on_screen(
    title: str, lines: list[str], emphasis: Emphasis, link: LinkStatus, reason: str, pending: int
) -> None:
    screen = Screen(title, tuple(lines), emphasis, StatusBar(link, reason, pending))
    placed = layout(screen)
    for text in placed.texts:
        assert text.x >= 0 and text.x + text.width <= WIDTH_PX, text
        assert text.text == text.source or text.text.endswith("..")
    assert render(screen).size == (WIDTH_PX, HEIGHT_PX)
