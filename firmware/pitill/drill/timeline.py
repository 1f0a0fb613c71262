"""Outage timelines for `pitill drill`: what the upstream does, and for how long.

A timeline is a list of segments, each a simulated duration with an upstream mode (up, down,
blackhole, dns-fail) and optional fault shares on top of it (a share of name lookups failing, of
connections refused or reset, of answers 91/96, slow or lost). Durations are simulated time, which
the drill compresses by its speed; latencies (`slow_s`) are real seconds, because the terminal
lives in real time and a slow answer is slow whatever the speed.

Built-in timelines are below (BUILT_IN). A file (TOML or JSON, by suffix) has the same shape:

    name = "lunch-outage"
    title = "The router dies at lunch"
    start = "2025-10-20T11:45"      # local clock shown in the report
    timezone = "CET"                # a label only
    speed = 120                     # optional; default: the whole timeline in about a minute

    [[segments]]
    label = "healthy"
    duration = "15m"                # "2h37m", "90s", or a number of seconds

    [[segments]]
    label = "router down"
    duration = "1h"
    mode = "down"

    [[segments]]
    label = "recovering"
    duration = "30m"
    refuse = 0.2                    # shares, 0..1 (see Faults)
    retry = 0.1
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pitill.core.types import LinkStatus
from pitill.errors import ConfigError
from pitill.sim.script import SLOW_ANSWER_S
from pitill.textfile import read_text

MODES = ("up", "down", "blackhole", "dns-fail")
MODE_REASONS = {"down": "REFUSED", "blackhole": "TIMEOUT", "dns-fail": "DNS"}  # as the screen says
MAX_DURATION_S = 366 * 24 * 3600.0  # one segment; a longer one is a typo, not an outage
TARGET_REAL_S = 60.0  # the default speed plays a whole timeline in about this long
_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)
_MAX_SLOW_S = 30.0


@dataclass(frozen=True)
class Faults:
    """What goes wrong on top of the mode; shares are probabilities from 0 to 1.

    dns, refuse and reset are drawn per connection (each probe and each reconnect of the
    terminal), retry and lost_answer per financial message, slow per quarter second of real time
    (every answer the host sends in that quarter, echoes included, waits slow_s first).
    """

    dns: float = 0.0  # the name lookup fails (NXDOMAIN)
    refuse: float = 0.0  # the connection is refused
    reset: float = 0.0  # the connection opens, then is reset when the first request arrives
    retry: float = 0.0  # the host answers 91 or 96 without processing
    slow: float = 0.0  # answers come after slow_s
    slow_s: float = SLOW_ANSWER_S  # real seconds, never compressed; "slow" as everywhere
    lost_answer: float = 0.0  # processed and ledgered, the answer never sent (outcome unknown)

    def check(self, where: str) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "slow_s":
                if not 0.0 <= value <= _MAX_SLOW_S:
                    raise ConfigError(f"{where}.slow_s: must be 0..{_MAX_SLOW_S:g} s, got {value}")
            elif not 0.0 <= value <= 1.0:
                raise ConfigError(f"{where}.{f.name}: must be a share from 0 to 1, got {value}")

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name != "slow_s")

    def describe(self) -> str:
        """ "refuse 8%, slow 20% (0.8 s)": the shares that are set."""
        parts = []
        for f in fields(self):
            share = getattr(self, f.name)
            if f.name == "slow_s" or share <= 0:
                continue
            late = f" ({self.slow_s:g} s)" if f.name == "slow" else ""
            parts.append(f"{f.name.replace('_', ' ')} {share:.0%}{late}")
        return ", ".join(parts)


@dataclass(frozen=True)
class Segment:
    label: str
    duration_s: float  # simulated seconds
    mode: str = "up"
    faults: Faults = field(default_factory=Faults)

    @property
    def healthy(self) -> bool:
        return self.mode == "up" and not self.faults.active

    def expects(self, before: LinkStatus) -> tuple[frozenset[LinkStatus], str]:
        """The link states (and the reason, "" for any) that show the terminal noticed this
        segment, given what it showed when the segment began.

        A partial fault after an outage is noticed when the host is seen answering again; after
        a healthy spell, when the link is seen degraded or lost. A dead name may be ridden out
        on addresses resolved earlier: DEGRADED with the DNS reason is noticing it too.
        """
        if self.healthy:
            return frozenset({LinkStatus.ONLINE}), ""
        if self.mode == "dns-fail":
            return frozenset({LinkStatus.OFFLINE, LinkStatus.DEGRADED}), MODE_REASONS[self.mode]
        if self.mode != "up":
            return frozenset({LinkStatus.OFFLINE}), MODE_REASONS[self.mode]
        if before is LinkStatus.OFFLINE:
            return frozenset({LinkStatus.ONLINE, LinkStatus.DEGRADED}), ""
        return frozenset({LinkStatus.DEGRADED, LinkStatus.OFFLINE}), ""

    def describe(self) -> str:
        """ "healthy", "dns-fail", or the fault shares of a degraded segment."""
        if self.healthy:
            return "healthy"
        extra = self.faults.describe()
        if self.mode == "up":
            return extra
        return f"{self.mode}, {extra}" if extra else self.mode


@dataclass(frozen=True)
class Timeline:
    name: str
    title: str
    segments: tuple[Segment, ...]
    start: datetime  # the local clock at simulated time 0, for the report
    timezone: str = ""
    speed: float | None = None  # None: TARGET_REAL_S for the whole timeline

    @property
    def total_s(self) -> float:
        return sum(s.duration_s for s in self.segments)

    @property
    def default_speed(self) -> float:
        return self.speed if self.speed is not None else max(1.0, self.total_s / TARGET_REAL_S)

    def starts_s(self) -> list[float]:
        """The simulated start of each segment."""
        starts, at = [], 0.0
        for segment in self.segments:
            starts.append(at)
            at += segment.duration_s
        return starts

    def segment_at(self, sim_s: float) -> int:
        """The index of the segment playing at sim_s (the last one after the end)."""
        for index, start_s in reversed(list(enumerate(self.starts_s()))):
            if sim_s >= start_s:
                return index
        return 0

    def clock(self, sim_s: float) -> str:
        """The local wall clock at sim_s, HH:MM."""
        return (self.start + timedelta(seconds=sim_s)).strftime("%H:%M")


def format_duration(seconds: float) -> str:
    """2 h 37 min, 15 min, 48 s: the coarse units a shop owner reads."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs and minutes < 10 else f"{minutes} min"
    return f"{secs} s"


def parse_duration(value: object, where: str) -> float:
    """Seconds from a number of seconds or a "2h37m" / "15m" / "90s" string."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: a duration, not {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)) and any(match.groups()):
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        seconds = h * 3600 + m * 60 + s
    else:
        raise ConfigError(f"{where}: {value!r} is not a duration; write seconds or e.g. '2h37m'")
    if not 0 < seconds <= MAX_DURATION_S:  # also NaN and infinity: a drill that never ends
        raise ConfigError(f"{where}: a duration must be > 0 and at most a year, got {value!r}")
    return seconds


_SEGMENT_KEYS = {"label", "duration", "mode"} | {f.name for f in fields(Faults)}
_TIMELINE_KEYS = {"name", "title", "start", "timezone", "speed", "segments"}


def _check_keys(raw: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown key; known keys here: {', '.join(sorted(known))}"
        )


def _number(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{where}.{key}: must be a number (finite), got {value!r}")
    return float(value)


def segment_from_dict(raw: Mapping[str, Any], where: str) -> Segment:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table, got {raw!r}")
    _check_keys(raw, _SEGMENT_KEYS, where)
    if "duration" not in raw:
        raise ConfigError(f"{where}.duration: missing; every segment needs one, e.g. '15m'")
    mode = raw.get("mode", "up")
    if mode not in MODES:
        raise ConfigError(f"{where}.mode: {mode!r} is not one of {', '.join(MODES)}")
    shares = {k: _number(raw, k, where) for k in raw if k in {f.name for f in fields(Faults)}}
    faults = Faults(**shares)
    faults.check(where)
    label = raw.get("label", "healthy" if mode == "up" and not faults.active else mode)
    if not isinstance(label, str):
        raise ConfigError(f"{where}.label: must be a string, got {label!r}")
    return Segment(label, parse_duration(raw["duration"], f"{where}.duration"), mode, faults)


def timeline_from_dict(raw: Mapping[str, Any], name: str, where: str) -> Timeline:
    """Build and check a timeline; `where` names the source in error messages."""
    _check_keys(raw, _TIMELINE_KEYS, where)
    segments_raw = raw.get("segments")
    if not isinstance(segments_raw, list) or not segments_raw:
        raise ConfigError(f"{where}.segments: a non-empty list of segments is required")
    segments = tuple(
        segment_from_dict(s, f"{where}.segments[{i}]") for i, s in enumerate(segments_raw)
    )
    start_raw = raw.get("start", "2025-01-01T00:00")
    try:
        start = datetime.fromisoformat(str(start_raw))
    except ValueError:
        raise ConfigError(
            f"{where}.start: {start_raw!r} is not a local date and time like 2025-10-19T23:48"
        ) from None
    speed = _number(raw, "speed", where) if "speed" in raw else None
    if speed is not None and speed <= 0:
        raise ConfigError(f"{where}.speed: must be > 0, got {speed}")
    return Timeline(
        name=str(raw.get("name", name)),
        title=str(raw.get("title", name)),
        segments=segments,
        start=start,
        timezone=str(raw.get("timezone", "")),
        speed=speed,
    )


BUILT_IN: dict[str, dict[str, Any]] = {
    "aws-2025-10": {
        "title": "AWS us-east-1, 19-20 October 2025: the endpoint's name vanished, then a slow "
        "recovery",
        "start": "2025-10-19T23:30",
        "timezone": "PDT",
        "segments": [
            {"label": "healthy", "duration": "18m"},
            # 23:48: the regional endpoint's name stops resolving.
            {"label": "DNS fails", "duration": "2h37m", "mode": "dns-fail"},
            # 02:25: DNS repaired; clients reconnect as their caches expire, by 02:40.
            {"label": "flapping", "duration": "15m", "dns": 0.5, "refuse": 0.1},
            # Until 14:20: load-balancer health checks and recovery backlogs.
            {
                "label": "degraded",
                "duration": "11h40m",
                "refuse": 0.08,
                "reset": 0.04,
                "retry": 0.1,
                "slow": 0.2,
                "lost_answer": 0.01,
            },
            {"label": "healthy", "duration": "30m"},
        ],
    },
    "short-flap": {
        "title": "A short flap: the host drops out three times in ten minutes",
        "start": "2025-10-20T12:00",
        "segments": [
            {"label": "healthy", "duration": "5m"},
            {"label": "down", "duration": "2m", "mode": "down"},
            {"label": "up", "duration": "2m"},
            {"label": "down", "duration": "2m", "mode": "down"},
            {"label": "up", "duration": "2m"},
            {"label": "down", "duration": "2m", "mode": "down"},
            {"label": "healthy", "duration": "5m"},
        ],
    },
    "blackhole": {
        "title": "A blackhole: connections open, nothing ever answers, for 45 minutes",
        "start": "2025-10-20T12:00",
        "segments": [
            {"label": "healthy", "duration": "10m"},
            {"label": "blackhole", "duration": "45m", "mode": "blackhole"},
            {"label": "healthy", "duration": "15m"},
        ],
    },
    "long-outage": {
        "title": "A long outage: the host is down for a whole trading day, past the offline limits",
        "start": "2025-10-20T07:45",
        "segments": [
            {"label": "healthy", "duration": "15m"},
            {"label": "down", "duration": "10h", "mode": "down"},
            {"label": "healthy", "duration": "30m"},
        ],
    },
}
DEFAULT_TIMELINE = "aws-2025-10"


def built_in(name: str) -> Timeline:
    return timeline_from_dict(BUILT_IN[name], name, f"timeline {name}")


def load_timeline(name_or_path: str) -> Timeline:
    """A built-in timeline by name, or one read from a .toml or .json file."""
    if name_or_path in BUILT_IN:
        return built_in(name_or_path)
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(BUILT_IN)
        raise ConfigError(
            f"timeline {name_or_path!r} is neither a built-in ({known}) nor a file; "
            "pass a name or the path of a .toml or .json timeline"
        )
    text = read_text(path, "timeline file", ConfigError)
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
        elif path.suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raise ConfigError(f"timeline file {path}: the name must end in .toml or .json")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"timeline file {path} cannot be parsed: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"timeline file {path}: the top level must be a table")
    return timeline_from_dict(raw, path.stem, str(path))
