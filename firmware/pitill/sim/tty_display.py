"""The simulator's panel as text for a terminal of any size from 80x24 up.

The display is the renderer's 1-bit image, exactly its pixels: in half blocks (1x2 pixels per
character, 128x32 characters) when the window has room, else in braille (2x4 pixels per
character, 64x16), which fits an 80x24 terminal. Beside it: the LEDs, the link, the key legend
and, in braille mode, the screen's words as plain text (braille is legible in most fonts, not
all). Below: the log. `compose` returns exactly `rows` lines of exactly `cols` visible columns,
so a redraw in place leaves nothing behind, or a message saying what size is needed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

# (top pixel lit, bottom pixel lit) -> character
_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
_PIXELS = {char: pair for pair, char in _BLOCKS.items()}
# Braille dot bits by (row, column) inside a 2x4 cell (Unicode's dot numbering 1-8).
_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_BRAILLE_BLANK = 0x2800

MIN_COLS, MIN_ROWS = 80, 24  # the compact layout: braille display, short legend
FULL_SIDE_COLS = 24  # the full layout's side panel needs at least this much beside the display
FULL_COLS, FULL_ROWS = 128 + 2 + 1 + FULL_SIDE_COLS, 32 + 2 + 6  # 155x40: half blocks
SCREEN_TEXT_ROWS = 5  # the screen's words: status bar, title, up to three lines
LINK_ROWS = 2  # "terminal sees: DEGRADED UNREACHABLE" wraps in a narrow side panel
MIN_LOG_ROWS = 3
LOG_INDENT = " " * 9  # a wrapped log entry continues under its text, past the HH:MM:SS
_TRANSCRIPT_SIDE_COLS = 22  # a side panel this wide holds the screen's words, else they go below

_GREEN = "\x1b[1;32m"
_RED = "\x1b[1;31m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"


def to_halfblocks(image: Image.Image) -> list[str]:
    """One string per two pixel rows (an odd last row pairs with an unlit one); lit = ink."""
    width, height = image.size
    lit = image.convert("L").tobytes()  # one byte per pixel: 0 dark, anything else lit

    def pixel(x: int, y: int) -> bool:
        return y < height and lit[y * width + x] != 0

    return [
        "".join(_BLOCKS[pixel(x, y), pixel(x, y + 1)] for x in range(width))
        for y in range(0, height, 2)
    ]


def from_halfblocks(rows: Sequence[str], height: int | None = None) -> Image.Image:
    """The mode "1" image that `rows` show; the inverse of to_halfblocks (for tests and tools)."""
    width = len(rows[0]) if rows else 0
    if any(len(row) != width for row in rows):
        raise ValueError("half-block rows differ in length; pass the rows of one image")
    image = Image.new("1", (width, height if height is not None else 2 * len(rows)))
    for row_index, row in enumerate(rows):
        for x, char in enumerate(row):
            try:
                top, bottom = _PIXELS[char]
            except KeyError:
                raise ValueError(
                    f"row {row_index} column {x}: {char!r} is not a half block or a space"
                ) from None
            for dy, on in ((0, top), (1, bottom)):
                y = 2 * row_index + dy
                if on and y < image.height:
                    image.putpixel((x, y), 1)
    return image


def to_braille(image: Image.Image) -> list[str]:
    """One string per four pixel rows, one braille character per 2x4 pixels; lit = dot."""
    width, height = image.size
    lit = image.convert("L").tobytes()
    rows = []
    for top in range(0, height, 4):
        cells = []
        for left in range(0, width, 2):
            bits = 0
            for dy, row_bits in enumerate(_DOTS):
                for dx, bit in enumerate(row_bits):
                    x, y = left + dx, top + dy
                    if x < width and y < height and lit[y * width + x]:
                        bits |= bit
            cells.append(chr(_BRAILLE_BLANK + bits))
        rows.append("".join(cells))
    return rows


def from_braille(rows: Sequence[str], width: int, height: int) -> Image.Image:
    """The mode "1" image that braille `rows` show; the inverse of to_braille (for tests)."""
    image = Image.new("1", (width, height))
    for row_index, row in enumerate(rows):
        for column, char in enumerate(row):
            bits = ord(char) - _BRAILLE_BLANK
            if not 0 <= bits <= 0xFF:
                raise ValueError(f"row {row_index} column {column}: {char!r} is not braille")
            for dy, row_bits in enumerate(_DOTS):
                for dx, bit in enumerate(row_bits):
                    x, y = 2 * column + dx, 4 * row_index + dy
                    if bits & bit and x < width and y < height:
                        image.putpixel((x, y), 1)
    return image


def framed(rows: Sequence[str], title: str = "") -> list[str]:
    """`rows` inside a box-drawing frame, with an optional title in the top edge."""
    width = max((len(row) for row in rows), default=0)
    label = (f" {title} " if title else "")[:width]  # never wider than the frame
    top = "┌" + label + "─" * (width - len(label)) + "┐"
    return [top, *(f"│{row.ljust(width)}│" for row in rows), "└" + "─" * width + "┘"]


def _printable(text: str) -> str:
    """Control characters (ESC...) made harmless."""
    return "".join(char if char.isprintable() else "?" for char in text)


def fit(text: str, width: int) -> str:
    """`text` as exactly `width` columns: control characters made harmless, cut with "…"."""
    if width <= 0:
        return ""
    clean = _printable(text)
    return clean.ljust(width) if len(clean) <= width else clean[: width - 1] + "…"


def _rule(title: str, width: int) -> str:
    return fit(f"─ {title} ".ljust(width, "─"), width)


@dataclass(frozen=True)
class KeyHelp:
    """The key legend: (keys, what they do) in three groups, short words for narrow panels."""

    terminal: tuple[tuple[str, str], ...]
    swipe: tuple[tuple[str, str], ...]
    host: tuple[tuple[str, str], ...]
    terminal_long: tuple[tuple[str, str], ...] = ()  # for the ? page: what each key does
    tap: tuple[tuple[str, str], ...] = ()  # NFC taps on the emulated PN532


@dataclass(frozen=True)
class PanelState:
    """Everything the panel shows, gathered by the simulator for one frame."""

    image: Image.Image
    green_led: bool
    red_led: bool
    link: str  # what the terminal believes: "ONLINE", "OFFLINE REFUSED", "CHECKING"
    host_mode: str  # what the sandbox host was told to do: "up", "down", ...
    pending: int
    phase: str
    screen_text: tuple[str, ...]  # the screen's words: status bar, title, lines
    keys: KeyHelp
    log: tuple[str, ...] = ()
    help: bool = False  # the full key table in place of the display


@dataclass(frozen=True)
class Layout:
    """Which arrangement a window of `cols` x `rows` gets (see the module docstring)."""

    name: str  # "full", "compact" or "too-small"
    display_rows: int  # rows of the framed display
    display_cols: int

    @classmethod
    def for_size(cls, cols: int, rows: int) -> Layout:
        if cols >= FULL_COLS and rows >= FULL_ROWS:
            return cls("full", 32 + 2, 128 + 2)
        if cols >= MIN_COLS and rows >= MIN_ROWS:
            return cls("compact", 16 + 2, 64 + 2)
        return cls("too-small", 0, 0)


def too_small(cols: int, rows: int) -> list[str]:
    """What a window below MIN_COLS x MIN_ROWS shows: the size needed and this size."""
    words = [
        f"pitill sim needs a window of at least {MIN_COLS}x{MIN_ROWS}",
        f"this one is {cols}x{rows}: make it larger",
        f"(the display at full size needs {FULL_COLS}x{FULL_ROWS})",
        "q quits",
    ]
    lines = [fit(text.center(cols) if len(text) < cols else text, cols) for text in words][:rows]
    top = max(0, (rows - len(lines)) // 2)
    blank = " " * max(cols, 0)
    return [blank] * top + lines + [blank] * (rows - top - len(lines))


def compose(panel: PanelState, cols: int, rows: int, *, ansi: bool = True) -> list[str]:
    """The whole panel as `rows` lines of `cols` visible columns (colour codes not counted)."""
    layout = Layout.for_size(cols, rows)
    if layout.name == "too-small":
        return too_small(cols, rows)
    if panel.help:
        return _help_lines(panel.keys, cols, rows)
    pixels = to_halfblocks(panel.image) if layout.name == "full" else to_braille(panel.image)
    display = framed(pixels, "pitill" if layout.name == "full" else "pitill OLED")
    side_cols = cols - layout.display_cols - 1
    # Where the screen's words and the key legend go: the first arrangement that leaves the log
    # MIN_LOG_ROWS rows wins. It depends on the window's size only, never on what is shown.
    arrangements = [(True, False)]  # (words beside the display, the one-key-a-line legend)
    if layout.name == "compact":
        wide = side_cols >= _TRANSCRIPT_SIDE_COLS
        arrangements = [(True, False), (False, False), (False, True)] if wide else [(False, True)]
    best: tuple[list[str], list[str]] = ([], [])
    for words_beside, narrow_legend in arrangements:
        side, below = _side_lines(
            panel, side_cols, layout.display_rows, cols, words_beside, narrow_legend
        )
        if not words_beside:
            below = _transcript_below(panel.screen_text, cols) + below
        if not best[0] or len(below) < len(best[1]):
            best = side, below
        if rows - layout.display_rows - len(below) - 1 >= MIN_LOG_ROWS:
            best = side, below
            break
    side, below = best
    lines = [row + " " + fit(text, side_cols) for row, text in zip(display, side, strict=True)]
    log_rows = rows - len(lines) - len(below) - 1
    # Long entries (a web address with its token) wrap rather than lose their end.
    pieces = [
        piece
        for entry in panel.log[-max(log_rows, 0) :]
        for piece in _wrap(_printable(entry), cols - 1, LOG_INDENT)
    ]
    recent = pieces[-log_rows:] if log_rows > 0 else []
    recent += [""] * (log_rows - len(recent))
    lines += [fit(text, cols) for text in below]
    lines.append(_rule("log", cols))
    lines += [fit(f" {entry}" if entry else "", cols) for entry in recent]
    if ansi:
        lines[0] = _colour_leds(lines[0], panel, layout.display_cols + 1)
    return lines[:rows]


def _leds(panel: PanelState) -> str:
    green = "● GREEN" if panel.green_led else "○ green"
    red = "● RED" if panel.red_led else "○ red"
    return f"{green} {red}"


def _colour_leds(line: str, panel: PanelState, column: int) -> str:
    """The LED words of the side panel's first line in their colours (dim when off)."""
    green_on, red_on = panel.green_led, panel.red_led
    green = line[column : column + 7]
    red_at = column + 8
    red = line[red_at : red_at + 5]
    return (
        line[:column]
        + f"{_GREEN if green_on else _DIM}{green}{_RESET}"
        + line[column + 7 : red_at]
        + f"{_RED if red_on else _DIM}{red}{_RESET}"
        + line[red_at + 5 :]
    )


def _wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]


def _side_lines(
    panel: PanelState, width: int, height: int, cols: int, words: bool, narrow_legend: bool
) -> tuple[list[str], list[str]]:
    """The column beside the display (LEDs, link, host, queue, the screen's `words`, keys) and
    the key legend for under the display when it does not fit beside it. How many rows each
    part takes depends on the width only, so the arrangement never changes with the screen."""
    long_labels = width >= _TRANSCRIPT_SIDE_COLS
    link = f"terminal sees: {panel.link}" if long_labels else f"link {panel.link}"
    host = f"you set host: {panel.host_mode}" if long_labels else f"host {panel.host_mode}"
    queue = f"queue {panel.pending} · {panel.phase}" if long_labels else f"queue {panel.pending}"
    lines = [_leds(panel), *[*_wrap(link, width, " "), ""][:LINK_ROWS], host, queue]
    if words:
        text = [*panel.screen_text, *[""] * SCREEN_TEXT_ROWS][:SCREEN_TEXT_ROWS]
        lines += [_rule("screen", width), *(fit(line, width) for line in text)]
    legend = _legend_narrow(panel.keys) if narrow_legend else _legend_wide(panel.keys, width)
    below: list[str] = []
    if len(lines) + 1 + len(legend) <= height:
        lines += [_rule("keys", width), *legend]
    else:  # under the display, across the whole width
        below = [_rule("keys", cols), *_legend_wide(panel.keys, cols)]
    return (lines + [""] * height)[:height], below


def _legend_narrow(keys: KeyHelp) -> list[str]:
    """The legend in about 13 columns: one key a line, the hotkeys as letter lists."""
    lines = [f"{key:<5} {what}" for key, what in keys.terminal]
    lines.append("/".join(key for key, _ in keys.swipe) + " swipe")
    lines.append("/".join(key for key, _ in keys.host[:-1]))
    lines.append("  break host")
    heal_key, heal = keys.host[-1]
    lines.append(f"{heal_key} {heal} host")
    lines.append("? help q quit")
    return lines


def _pack(label: str, pairs: Sequence[tuple[str, str]], width: int) -> list[str]:
    """`label` then as many "key what" pairs per line as fit, continuation lines indented."""
    pad = " " * (len(label) + 1)
    lines: list[str] = []
    current = f"{label} " if label else ""
    for key, what in pairs:
        item = f"{key} {what}"
        if current.strip() and len(current) + len(item) > width:
            lines.append(current.rstrip())
            current = pad
        current += item + "  "
    lines.append(current.rstrip())
    return lines


def _legend_wide(keys: KeyHelp, width: int) -> list[str]:
    return [
        *_pack("", [*keys.terminal, ("?", "all keys"), ("q", "quit")], width),
        *_pack("swipe", keys.swipe, width),
        *(_pack("tap  ", keys.tap, width) if keys.tap else []),
        *_pack("host ", keys.host, width),
    ]


def _help_lines(keys: KeyHelp, cols: int, rows: int) -> list[str]:
    """The full key table, in place of the panel until ? is pressed again."""
    lines = [_rule("keys (? again: back)", cols)]
    keypad = keys.terminal_long or keys.terminal
    groups = (("keypad", keypad), ("swipe", keys.swipe), ("tap", keys.tap), ("host", keys.host))
    for title, pairs in groups:
        lines.append(f" {title}")
        lines += [f"   {key:<10} {what}" for key, what in pairs]
    lines.append("   q          quit (the journal keeps everything)")
    return [fit(line, cols) for line in (lines + [""] * rows)[:rows]]


def _transcript_below(screen_text: Sequence[str], cols: int) -> list[str]:
    """The screen's words on two lines under a narrow panel: status and title, then the lines."""
    if not screen_text:
        return ["", ""]
    status, *rest = screen_text
    title, *body = rest or [""]
    return [f" screen: {status} │ {title}", "         " + " │ ".join(body)]
