"""Screens as data: what the display shows, independent of pixels.

drivers/render.py turns a Screen into a 128x64 1-bit image; the OLED, the simulator and the
PNG gallery all use that one renderer, so what the docs show is what the Pi shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pitill.core.types import LinkStatus


class Emphasis(StrEnum):
    NORMAL = "normal"
    SUCCESS = "success"  # approved: title drawn inverted
    ERROR = "error"  # declined, faults
    WARNING = "warning"  # offline, cash only


@dataclass(frozen=True)
class StatusBar:
    """The top line on every screen: link icon and word, why it is down, backlog count."""

    link: LinkStatus
    reason: str = ""  # short cause while not online: "DNS", "REFUSED", "TIMEOUT"
    pending: int = 0  # card sales waiting to be forwarded


@dataclass(frozen=True)
class Screen:
    """One full screen. `title` is drawn large, `lines` small below it (at most 3 fit)."""

    title: str
    lines: tuple[str, ...] = ()
    emphasis: Emphasis = Emphasis.NORMAL
    status: StatusBar = StatusBar(LinkStatus.UNKNOWN)

    def text(self) -> str:
        """All words on the screen, status bar included, for `expect screen` and logs."""
        return "\n".join((status_text(self.status), self.title, *self.lines))


def link_words(status: StatusBar) -> str:
    """The status bar's words for the link: CHECKING until the first verdict, then the
    status and, while not online, why ("OFFLINE DNS")."""
    if status.link is LinkStatus.UNKNOWN:
        return "CHECKING"
    if status.reason and status.link is not LinkStatus.ONLINE:
        return f"{status.link.value} {status.reason}"
    return status.link.value


def status_text(status: StatusBar) -> str:
    words = [link_words(status)]
    if status.pending:
        words.append(f"Q{status.pending}")
    return " ".join(words)
