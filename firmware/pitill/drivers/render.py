"""The one renderer: a core Screen becomes the 128x64 1-bit image that the OLED, the simulator
and the PNG gallery all show, so what the docs show is what the Pi shows.

Layout (pixel rows): status bar 0-6 (link icon, link word, reason, backlog "Q3" at the right),
separator 8, title band 10-29 (large FreeType text, shrunk until it fits), up to three small
lines below (5x7 LCD font from luma.core.legacy). Text that fits no font is cut with a visible
".." and reported by `layout(...).clipped`, never clipped silently.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from luma.core.legacy.font import LCD_FONT, TINY_FONT, proportional
from PIL import Image, ImageDraw, ImageFont

from pitill.core.screens import Emphasis, Screen, StatusBar, link_words
from pitill.core.types import LinkStatus

WIDTH_PX = 128
HEIGHT_PX = 64
MAX_LINES = 3

_STATUS_TOP = 0
_SEPARATOR_Y = 8
_TITLE_TOP = 10
_TITLE_BOTTOM = 29  # inclusive
_LINES_TOP = 32
_LINE_PITCH = 10
_ICON_WIDTH = 11
_MARKER_WIDTH = 11  # the "!" box of a warning
_ELLIPSIS = ".."
_TITLE_SIZES = (18, 16, 14, 12, 11, 10)  # Aileron sizes that look crisp in 1 bit
_WIDTH_CACHE_SIZE = 512  # titles measured per font; amounts vary, so bounded


class _Font(Protocol):
    """A font as the layout needs it: positions are the top of a capital letter."""

    name: str
    cap_height: int

    def width(self, text: str) -> int: ...

    def draw(self, draw: ImageDraw.ImageDraw, x: int, y: int, text: str, fill: int) -> None: ...


class _GlyphFont:
    """A luma.core.legacy column font (proportional), each glyph pre-rendered once as a mask."""

    def __init__(self, name: str, table: list[list[int]]) -> None:
        self.name = name
        self._columns = proportional(table)
        self._glyphs: dict[str, Image.Image] = {}
        rows = [row for code in range(ord("A"), ord("Z") + 1) for row in self._rows(chr(code))]
        self._top = min(rows)
        self.cap_height = max(rows) - self._top + 1

    def _rows(self, char: str) -> list[int]:
        bits = functools.reduce(lambda acc, col: acc | col, self._columns[ord(char)], 0)
        return [row for row in range(8) if bits >> row & 1]

    def _glyph(self, char: str) -> Image.Image:
        glyph = self._glyphs.get(char)
        if glyph is None:
            code = ord(char) if 32 <= ord(char) < 127 else ord("?")  # visible, never dropped
            columns = self._columns[code]
            glyph = Image.new("1", (len(columns), 8))
            for x, column in enumerate(columns):
                for row in range(8):
                    if column >> row & 1:
                        glyph.putpixel((x, row), 1)
            self._glyphs[char] = glyph
        return glyph

    def width(self, text: str) -> int:
        # each glyph carries one spacing column; the last one is not part of the text
        return max(0, sum(self._glyph(char).width for char in text) - 1)

    def draw(self, draw: ImageDraw.ImageDraw, x: int, y: int, text: str, fill: int) -> None:
        for char in text:
            glyph = self._glyph(char)
            draw.bitmap((x, y - self._top), glyph, fill=fill)
            x += glyph.width


class _FreeFont:
    """Pillow's bundled FreeType font (Aileron) at one size, drawn without antialiasing."""

    def __init__(self, size: int) -> None:
        self.name = f"aileron-{size}"
        self._font = ImageFont.load_default(size=size)
        _, top, _, bottom = self._font.getbbox("H", mode="1")
        self._top = int(top)
        self.cap_height = int(bottom) - self._top
        self._widths: dict[str, int] = {}

    def width(self, text: str) -> int:
        width = self._widths.get(text)
        if width is None:
            left, _, right, _ = self._font.getbbox(text, mode="1") if text else (0, 0, 0, 0)
            width = int(right - min(left, 0))
            if len(self._widths) < _WIDTH_CACHE_SIZE:
                self._widths[text] = width
        return width

    def draw(self, draw: ImageDraw.ImageDraw, x: int, y: int, text: str, fill: int) -> None:
        draw.text((x, y - self._top), text, font=self._font, fill=fill)


@functools.cache
def _small_fonts() -> tuple[_Font, ...]:
    """The status bar and the lines: 5x7 LCD first, the 3x5 TINY font when that is too wide."""
    return (_GlyphFont("lcd", LCD_FONT), _GlyphFont("tiny", TINY_FONT))


@functools.cache
def _title_fonts() -> tuple[_Font, ...]:
    return tuple(_FreeFont(size) for size in _TITLE_SIZES)


@dataclass(frozen=True)
class PlacedText:
    """One piece of text as laid out: where it goes, in which font, and whether it was cut."""

    role: str  # "status", "backlog", "title", "line1".."line3"
    source: str  # the text asked for
    text: str  # the text drawn (source, or source cut with "..")
    font: _Font = field(compare=False, repr=False)
    x: int
    y: int  # top of a capital letter
    width: int

    @property
    def font_name(self) -> str:
        return self.font.name

    @property
    def truncated(self) -> bool:
        return self.text != self.source


@dataclass(frozen=True)
class Layout:
    """Every text of one screen as placed; `render` draws exactly this."""

    screen: Screen
    texts: tuple[PlacedText, ...]
    dropped_lines: int  # lines past MAX_LINES, marked on screen with an arrow

    @property
    def clipped(self) -> list[str]:
        """What did not fit as asked; empty for every screen the terminal should show."""
        cut = [placed.source for placed in self.texts if placed.truncated]
        outside = [p.source for p in self.texts if p.x < 0 or p.x + p.width > WIDTH_PX]
        dropped = list(self.screen.lines[MAX_LINES:])
        return cut + outside + dropped


def _fit(text: str, fonts: Sequence[_Font], max_width: int) -> tuple[_Font, str]:
    """The largest font in which `text` fits, else the smallest with the text cut visibly."""
    for font in fonts:
        if font.width(text) <= max_width:
            return font, text
    smallest = fonts[-1]
    # every glyph is at least 1 px wide, so no more than max_width characters can fit
    for end in range(min(len(text) - 1, max_width), -1, -1):
        cut = text[:end].rstrip() + _ELLIPSIS
        if smallest.width(cut) <= max_width:
            return smallest, cut
    return smallest, _ELLIPSIS


def _centered(
    role: str, text: str, fonts: Sequence[_Font], left: int, right: int, y_top: int, height: int
) -> PlacedText:
    font, drawn = _fit(text, fonts, right - left)
    width = font.width(drawn)
    x = left + (right - left - width) // 2
    y = y_top + (height - font.cap_height + 1) // 2
    return PlacedText(role, text, drawn, font, x, y, width)


def _status_texts(status: StatusBar) -> list[PlacedText]:
    small = _small_fonts()
    placed: list[PlacedText] = []
    right = WIDTH_PX
    if status.pending > 0:
        backlog = f"Q{status.pending}"
        font = small[0]
        width = font.width(backlog)
        right = WIDTH_PX - width
        placed.append(PlacedText("backlog", backlog, backlog, font, right, _STATUS_TOP, width))
        right -= 4
    words = link_words(status)
    left = _ICON_WIDTH + 3
    font, drawn = _fit(words, small, right - left)
    y = _STATUS_TOP + (small[0].cap_height - font.cap_height) // 2
    placed.append(PlacedText("status", words, drawn, font, left, y, font.width(drawn)))
    return placed


def _title_box(emphasis: Emphasis) -> tuple[int, int, int]:
    """Left and right x of the title text and its largest cap height, inside any marker."""
    band_height = _TITLE_BOTTOM - _TITLE_TOP + 1
    if emphasis is Emphasis.WARNING:
        return _MARKER_WIDTH + 4, WIDTH_PX - 3, band_height - 6
    if emphasis is Emphasis.ERROR:
        return 5, WIDTH_PX - 5, band_height - 9  # inside the 2 px frame, 2 px clear of it
    return 3, WIDTH_PX - 3, band_height - 6


def layout(screen: Screen) -> Layout:
    """Where every text of `screen` goes and in which font; `render` draws exactly this."""
    title_left, title_right, max_cap = _title_box(screen.emphasis)
    texts = _status_texts(screen.status)
    fonts = [font for font in _title_fonts() if font.cap_height <= max_cap]
    band_height = _TITLE_BOTTOM - _TITLE_TOP + 1
    texts.append(
        _centered("title", screen.title, fonts, title_left, title_right, _TITLE_TOP, band_height)
    )
    lines = screen.lines[:MAX_LINES]
    small = _small_fonts()
    block_height = len(lines) * _LINE_PITCH - (_LINE_PITCH - small[0].cap_height)
    top = _LINES_TOP + (HEIGHT_PX - _LINES_TOP - block_height) // 2
    for index, line in enumerate(lines):
        y = top + index * _LINE_PITCH
        placed = _centered(f"line{index + 1}", line, small, 0, WIDTH_PX, y, small[0].cap_height)
        texts.append(placed)
    dropped = max(0, len(screen.lines) - MAX_LINES)
    return Layout(screen, tuple(texts), dropped)


def _draw_link_icon(draw: ImageDraw.ImageDraw, link: LinkStatus) -> None:
    """Four signal bars, 2 px wide: all full online, two degraded, stubs and a cross offline
    (stubs alone while the link is not yet known)."""
    bottom = _STATUS_TOP + 6
    lit = {LinkStatus.ONLINE: 4, LinkStatus.DEGRADED: 2}.get(link, 0)
    for bar in range(4):
        x = bar * 3
        top = bottom - 1 - bar * 2 if bar < lit else bottom
        draw.rectangle((x, top, x + 1, bottom), fill=1)
    if link is LinkStatus.OFFLINE:
        draw.line((2, 0, 8, 6), fill=1)
        draw.line((2, 6, 8, 0), fill=1)


def _draw_emphasis(draw: ImageDraw.ImageDraw, emphasis: Emphasis) -> int:
    """Draw the marker of `emphasis` around the title band; returns the title's text colour."""
    band = (0, _TITLE_TOP, WIDTH_PX - 1, _TITLE_BOTTOM)
    if emphasis is Emphasis.SUCCESS:
        draw.rectangle(band, fill=1)
        return 0
    if emphasis is Emphasis.ERROR:
        draw.rectangle(band, outline=1, width=2)
        return 1
    if emphasis is Emphasis.WARNING:
        draw.rectangle((0, _TITLE_TOP, _MARKER_WIDTH - 1, _TITLE_BOTTOM), fill=1)
        middle = _MARKER_WIDTH // 2
        draw.rectangle((middle - 1, _TITLE_TOP + 3, middle + 1, _TITLE_BOTTOM - 7), fill=0)
        draw.rectangle((middle - 1, _TITLE_BOTTOM - 4, middle + 1, _TITLE_BOTTOM - 3), fill=0)
    return 1


def render(screen: Screen) -> Image.Image:
    """The 128x64 mode "1" image of `screen` (1 = lit pixel)."""
    image = Image.new("1", (WIDTH_PX, HEIGHT_PX), 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # crisp 1-bit glyphs, no antialias grey
    placed = layout(screen)
    _draw_link_icon(draw, screen.status.link)
    draw.line((0, _SEPARATOR_Y, WIDTH_PX - 1, _SEPARATOR_Y), fill=1)
    title_fill = _draw_emphasis(draw, screen.emphasis)
    for text in placed.texts:
        fill = title_fill if text.role == "title" else 1
        text.font.draw(draw, text.x, text.y, text.text, fill)
    if placed.dropped_lines:
        # more lines than fit: a small down arrow in the bottom-right corner says so
        draw.polygon(
            (
                (WIDTH_PX - 5, HEIGHT_PX - 3),
                (WIDTH_PX - 1, HEIGHT_PX - 3),
                (WIDTH_PX - 3, HEIGHT_PX - 1),
            ),
            fill=1,
        )
    return image


def write_gallery(out_dir: Path) -> list[Path]:
    """Write `<name>.png` for every gallery screen into `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, screen in screen_gallery().items():
        path = out_dir / f"{name}.png"
        render(screen).save(path)
        written.append(path)
    return written


def screen_gallery() -> dict[str, Screen]:
    """A representative Screen for each screen the terminal shows, for the gallery and goldens."""
    online = StatusBar(LinkStatus.ONLINE)
    offline = StatusBar(LinkStatus.OFFLINE, reason="DNS", pending=3)
    pan = "411111******1111"
    success, error, warning = Emphasis.SUCCESS, Emphasis.ERROR, Emphasis.WARNING
    return {
        "idle_online": Screen("READY", ("ENTER AMOUNT", "FN = MENU"), status=online),
        "idle_offline_dns": Screen(
            "READY",
            ("HOST UNREACHABLE", "CARD UP TO EUR 25.00", "CASH ALWAYS OK"),
            warning,
            StatusBar(LinkStatus.OFFLINE, reason="DNS"),
        ),
        "idle_degraded": Screen(
            "READY",
            ("LINK UNSTABLE", "ENTER AMOUNT"),
            status=StatusBar(LinkStatus.DEGRADED, reason="TIMEOUT"),
        ),
        "amount_entry": Screen(
            "EUR 12.50", ("OK = CARD   FN = CASH", "CLEAR = CORRECT"), status=online
        ),
        "present_card": Screen(
            "PRESENT CARD", ("EUR 12.50", "SWIPE CARD", "CANCEL = ABORT"), status=online
        ),
        "authorizing": Screen("AUTHORIZING", ("EUR 12.50", pan, "PLEASE WAIT"), status=online),
        "approved": Screen("APPROVED", ("EUR 12.50", pan, "AUTH CODE 123456"), success, online),
        "declined": Screen("DECLINED", ("INSUFFICIENT FUNDS", "EUR 12.50", pan), error, online),
        "approved_offline": Screen(
            "APPROVED OFFLINE", ("EUR 12.50", pan, "STORED, SENDS LATER"), success, offline
        ),
        "cash_only": Screen(
            "CASH ONLY",
            ("TOTAL EUR 42.00", "CARD OVER OFFLINE LIMIT", "OK = TAKE CASH"),
            warning,
            StatusBar(LinkStatus.OFFLINE, reason="REFUSED", pending=3),
        ),
        "tender": Screen(
            "TENDERED", ("EUR 50.00", "TOTAL EUR 42.00", "OK = CONFIRM"), status=offline
        ),
        "change": Screen(
            "CHANGE", ("EUR 8.00", "TENDERED EUR 50.00", "CLOSE THE DRAWER"), status=offline
        ),
        "storage_fault": Screen(
            "STORAGE FAULT",
            ("JOURNAL NOT WRITABLE", "NO SALES POSSIBLE", "CHECK THE SD CARD"),
            error,
            online,
        ),
        "reader_disconnected": Screen(
            "NO CARD READER", ("CHECK THE USB CABLE", "CASH STILL WORKS"), warning, online
        ),
        "forwarding": Screen(
            "READY",
            ("SENDING STORED SALES", "3 LEFT", "ENTER AMOUNT"),
            status=StatusBar(LinkStatus.ONLINE, pending=3),
        ),
        "starting": Screen("PITILL", ("STARTING", "CHECKING JOURNAL")),
    }
