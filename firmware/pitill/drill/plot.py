"""The drill's timeline as a PNG, drawn with Pillow from the report's series (so a saved JSON
report can be drawn again): what the upstream did, what the terminal's link showed, the backlog,
and the sales by kind, against the local clock of the timeline.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH_PX = 1200
HEIGHT_PX = 640
LEFT_PX = 130  # room for the row labels
RIGHT_PX = 20
SALE_BINS = 60
TICK_STEPS_S = (300, 600, 900, 1800, 3600, 7200, 10800, 21600)
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
GRID = (225, 225, 225)
MODE_COLOURS = {
    "healthy": (120, 190, 120),
    "up": (240, 170, 60),  # up with faults: degraded
    "dns-fail": (150, 100, 190),
    "down": (215, 70, 60),
    "blackhole": (60, 60, 60),
}
LINK_COLOURS = {
    "ONLINE": (120, 190, 120),
    "DEGRADED": (240, 170, 60),
    "OFFLINE": (215, 70, 60),
    "UNKNOWN": (180, 180, 180),
}
SALE_COLOURS = {
    "approved online": (70, 120, 200),
    "approved offline": (60, 170, 160),
    "cash": (235, 200, 60),
    "declined": (215, 70, 60),
    "refused": (130, 40, 90),
    "failed": (0, 0, 0),
}

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


class _Axis:
    """Maps simulated seconds to x pixels."""

    def __init__(self, end_sim_s: float) -> None:
        self.end_sim_s = max(end_sim_s, 1.0)
        self.width_px = WIDTH_PX - LEFT_PX - RIGHT_PX

    def x(self, sim_s: float) -> int:
        return LEFT_PX + round(
            min(max(sim_s, 0.0), self.end_sim_s) / self.end_sim_s * self.width_px
        )


def _font(size: int) -> Font:
    return ImageFont.load_default(size=size)


def _band(
    draw: ImageDraw.ImageDraw,
    axis: _Axis,
    top: int,
    spans: list[tuple[float, float, tuple[int, int, int]]],
    label: str,
    font: Font,
) -> None:
    for start_s, end_s, colour in spans:
        draw.rectangle(
            (axis.x(start_s), top, max(axis.x(end_s), axis.x(start_s) + 1), top + 26), fill=colour
        )
    draw.text((8, top + 6), label, fill=INK, font=font)


def _segment_spans(series: dict[str, Any]) -> list[tuple[float, float, tuple[int, int, int]]]:
    spans = []
    for start_s, duration_s, mode, _label, healthy in series["segments"]:
        colour = MODE_COLOURS["healthy" if healthy else mode]
        spans.append((start_s, start_s + duration_s, colour))
    return spans


def _link_spans(
    series: dict[str, Any], end_s: float
) -> list[tuple[float, float, tuple[int, int, int]]]:
    points = series["link"]
    spans = []
    for (at_s, status), nxt in zip(points, [*points[1:], [end_s, None]], strict=True):
        spans.append((at_s, nxt[0], LINK_COLOURS.get(status, LINK_COLOURS["UNKNOWN"])))
    return spans


def _backlog_panel(
    draw: ImageDraw.ImageDraw,
    axis: _Axis,
    top: int,
    height: int,
    series: dict[str, Any],
    font: Font,
) -> None:
    points = series["backlog"] or [[0.0, 0]]
    peak = max(1, max(p for _, p in points))
    bottom = top + height
    draw.rectangle((LEFT_PX, top, WIDTH_PX - RIGHT_PX, bottom), outline=GRID)
    line: list[tuple[int, int]] = []
    for (at_s, pending), nxt in zip(points, [*points[1:], [axis.end_sim_s, None]], strict=True):
        y = bottom - round(pending / peak * (height - 4))
        line += [(axis.x(at_s), y), (axis.x(nxt[0]), y)]
    draw.line(line, fill=(70, 120, 200), width=2)
    draw.text((8, top + 4), "backlog", fill=INK, font=font)
    draw.text((8, top + 20), f"peak {peak}", fill=INK, font=font)


def _sales_panel(
    draw: ImageDraw.ImageDraw,
    axis: _Axis,
    top: int,
    height: int,
    series: dict[str, Any],
    font: Font,
) -> None:
    bin_s = axis.end_sim_s / SALE_BINS
    bins: list[dict[str, int]] = [{} for _ in range(SALE_BINS)]
    for at_s, outcome in series["sales"]:
        slot = bins[min(SALE_BINS - 1, int(at_s / bin_s))]
        slot[outcome] = slot.get(outcome, 0) + 1
    tallest = max([1, *(sum(b.values()) for b in bins)])
    bottom = top + height
    draw.rectangle((LEFT_PX, top, WIDTH_PX - RIGHT_PX, bottom), outline=GRID)
    for index, slot in enumerate(bins):
        x0, x1 = axis.x(index * bin_s) + 1, axis.x((index + 1) * bin_s) - 1
        y = bottom
        for outcome, colour in SALE_COLOURS.items():
            count = slot.get(outcome, 0)
            if count:
                step = round(count / tallest * (height - 4))
                draw.rectangle((x0, y - step, x1, y), fill=colour)
                y -= step
    draw.text((8, top + 4), "sales", fill=INK, font=font)
    draw.text((8, top + 20), f"max {tallest}/bin", fill=INK, font=font)
    draw.text((8, top + 36), f"bin {bin_s / 60:.0f} min", fill=INK, font=font)


def _clock_axis(
    draw: ImageDraw.ImageDraw, axis: _Axis, start: datetime, top: int, bottom: int, font: Font
) -> None:
    step_s = next((s for s in TICK_STEPS_S if axis.end_sim_s / s <= 16), TICK_STEPS_S[-1])
    # Ticks on round clock times: the first multiple of the step after the start.
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    offset_s = (start - midnight).total_seconds()
    at_s = (step_s - offset_s % step_s) % step_s
    while at_s <= axis.end_sim_s:
        x = axis.x(at_s)
        draw.line((x, top, x, bottom), fill=GRID)
        label = (start + timedelta(seconds=at_s)).strftime("%H:%M")
        draw.text((x - 16, bottom + 4), label, fill=INK, font=font)
        at_s += step_s


def _legend(draw: ImageDraw.ImageDraw, y: int, font: Font) -> None:
    x = LEFT_PX
    entries = [
        *(("upstream " + k, v) for k, v in MODE_COLOURS.items() if k != "up"),
        ("upstream degraded", MODE_COLOURS["up"]),
        *(("link " + k.lower(), v) for k, v in LINK_COLOURS.items() if k != "UNKNOWN"),
    ]
    rows = [entries, list(SALE_COLOURS.items())]
    for row in rows:
        x = LEFT_PX
        for text, colour in row:
            draw.rectangle((x, y + 2, x + 12, y + 14), fill=colour)
            draw.text((x + 16, y), text, fill=INK, font=font)
            x += 22 + round(draw.textlength(text, font=font))
        y += 20


def draw_timeline(report: dict[str, Any]) -> Image.Image:
    """The report's timeline as an RGB image of WIDTH_PX x HEIGHT_PX."""
    timeline, series, check = report["timeline"], report["series"], report["check"]
    sales = report["sales"]
    start = datetime.fromisoformat(timeline["start"])
    axis = _Axis(max(timeline["sim_s"], series["end_sim_s"]))
    image = Image.new("RGB", (WIDTH_PX, HEIGHT_PX), BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, big = _font(12), _font(16)
    draw.text((8, 8), f"pitill drill: {timeline['name']} - {timeline['title']}", fill=INK, font=big)
    draw.text(
        (8, 30),
        f"{sales['attempted']} sales: {sales['approved_online']} online, "
        f"{sales['approved_offline']} offline, {sales['cash']} cash, {sales['declined']} declined, "
        f"{sales['refused']} refused | lost {check['lost']}, duplicated {check['duplicated']} | "
        f"speed {report['run']['speed']:g}x, times {timeline['timezone'] or 'local'}",
        fill=INK,
        font=small,
    )
    _clock_axis(draw, axis, start, 56, 540, small)
    _band(draw, axis, 60, _segment_spans(series), "upstream", small)
    _band(draw, axis, 96, _link_spans(series, axis.end_sim_s), "terminal link", small)
    _backlog_panel(draw, axis, 134, 150, series, small)
    _sales_panel(draw, axis, 296, 244, series, small)
    _legend(draw, 578, small)
    return image


def save_plot(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_timeline(report).save(path, format="PNG")
