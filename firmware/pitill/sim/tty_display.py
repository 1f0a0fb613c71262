"""The simulator's display in a terminal: the renderer's 1-bit image as Unicode half blocks
(two pixel rows per character row, exactly the pixels), and the whole simulator panel
(display, LEDs, link, key legend, log) as one block of text that fits 132 x ~50.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

# (top pixel lit, bottom pixel lit) -> character
_BLOCKS = {(False, False): " ", (True, False): "▀", (False, True): "▄", (True, True): "█"}
_PIXELS = {char: pair for pair, char in _BLOCKS.items()}

PANEL_WIDTH = 130  # the framed 128-pixel display
LOG_ROWS = 8

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


def framed(rows: Sequence[str], title: str = "") -> list[str]:
    """`rows` inside a box-drawing frame, with an optional title in the top edge."""
    width = max((len(row) for row in rows), default=0)
    label = (f" {title} " if title else "")[:width]  # never wider than the frame
    top = "┌" + label + "─" * (width - len(label)) + "┐"
    return [top, *(f"│{row.ljust(width)}│" for row in rows), "└" + "─" * width + "┘"]


def _printable(text: str, width: int) -> str:
    """One line of at most `width` columns with control characters (ESC...) made harmless."""
    clean = "".join(char if char.isprintable() else "?" for char in text)
    return clean if len(clean) <= width else clean[: width - 1] + "…"


def _rule(title: str, width: int) -> str:
    return f"─ {title} ".ljust(width, "─")


def _led(lit: bool, name: str, colour: str, ansi: bool) -> tuple[str, int]:
    """An LED as (text with colour codes, visible width)."""
    plain = f"{'●' if lit else '○'} {name.upper() if lit else name.lower()}"
    if not ansi:
        return plain, len(plain)
    return f"{colour if lit else _DIM}{plain}{_RESET}", len(plain)


def render_panel(
    image: Image.Image,
    green_led: bool,
    red_led: bool,
    link_text: str,
    legend: list[str],
    log_lines: list[str],
    *,
    ansi: bool = True,
    log_rows: int = LOG_ROWS,
) -> str:
    """The whole simulator screen: the framed display, then LEDs and link, keys, recent log.

    Every line is padded to the panel width so a redraw in place leaves nothing behind; the
    last `log_rows` log lines are shown (padded with blanks so the height stays fixed).
    """
    width = PANEL_WIDTH
    lines = framed(to_halfblocks(image), "pitill")
    green, green_width = _led(green_led, "green", _GREEN, ansi)
    red, red_width = _led(red_led, "red", _RED, ansi)
    link = _printable(f"link {link_text}", width - green_width - red_width - 6)
    used = 1 + green_width + 2 + red_width + 3 + len(link)
    lines.append(f" {green}  {red}   {link}" + " " * (width - used))
    lines.append(_rule("keys", width))
    lines.extend(_printable(f" {entry}", width).ljust(width) for entry in legend)
    lines.append(_rule("log", width))
    recent = list(log_lines[-log_rows:]) if log_rows > 0 else []
    recent += [""] * (log_rows - len(recent))
    lines.extend(_printable(f" {entry}" if entry else "", width).ljust(width) for entry in recent)
    return "\n".join(lines)
