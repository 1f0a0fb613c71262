"""Timelines: the built-ins match the published story, files parse, mistakes are named."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from pitill.core.types import LinkStatus
from pitill.drill.timeline import (
    BUILT_IN,
    TARGET_REAL_S,
    Faults,
    Segment,
    built_in,
    format_duration,
    load_timeline,
    parse_duration,
)
from pitill.errors import ConfigError

TOML_TIMELINE = """
name = "lunch"
title = "The router dies at lunch"
start = "2025-10-20T11:45"
timezone = "CET"
speed = 120

[[segments]]
duration = "15m"

[[segments]]
label = "router down"
duration = "1h"
mode = "down"

[[segments]]
label = "recovering"
duration = 1800
refuse = 0.2
retry = 0.1
slow = 0.5
slow_s = 1.5
"""


def test_aws_follows_the_published_account() -> None:
    timeline = built_in("aws-2025-10")
    assert timeline.start == datetime(2025, 10, 19, 23, 30)
    assert timeline.timezone == "PDT"
    starts = timeline.starts_s()
    clocks = [timeline.clock(s) for s in starts]
    assert clocks == ["23:30", "23:48", "02:25", "02:40", "14:20"]
    modes = [(s.mode, s.healthy) for s in timeline.segments]
    assert modes == [("up", True), ("dns-fail", False), ("up", False), ("up", False), ("up", True)]
    dns, flap, degraded = timeline.segments[1:4]
    assert dns.duration_s == 2 * 3600 + 37 * 60
    assert flap.duration_s == 15 * 60
    assert 11.5 * 3600 <= degraded.duration_s <= 12 * 3600
    assert degraded.faults.refuse > 0 and degraded.faults.reset > 0
    assert degraded.faults.retry > 0 and degraded.faults.slow > 0
    # From the first fault to healthy again: about 14.5 hours.
    assert 14.4 * 3600 <= starts[4] - starts[1] <= 14.6 * 3600


@pytest.mark.parametrize("name", sorted(BUILT_IN))
def test_every_built_in_ends_healthy_and_plays_in_about_a_minute(name: str) -> None:
    timeline = load_timeline(name)
    assert timeline.segments[-1].healthy
    assert timeline.total_s / timeline.default_speed == pytest.approx(TARGET_REAL_S)


def test_a_toml_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "lunch.toml"
    path.write_text(TOML_TIMELINE)
    timeline = load_timeline(str(path))
    assert timeline.name == "lunch"
    assert timeline.default_speed == 120
    assert [s.label for s in timeline.segments] == ["healthy", "router down", "recovering"]
    assert [s.duration_s for s in timeline.segments] == [900, 3600, 1800]
    assert timeline.segments[2].faults == Faults(refuse=0.2, retry=0.1, slow=0.5, slow_s=1.5)
    assert timeline.clock(900) == "12:00"
    assert timeline.segment_at(900) == 1
    assert timeline.segment_at(99_999) == 2


def test_a_json_file_parses_like_the_toml(tmp_path: Path) -> None:
    import tomllib

    raw = tomllib.loads(TOML_TIMELINE)
    toml_path, json_path = tmp_path / "a.toml", tmp_path / "a.json"
    toml_path.write_text(TOML_TIMELINE)
    json_path.write_text(json.dumps(raw))
    assert load_timeline(str(json_path)) == load_timeline(str(toml_path))


@pytest.mark.parametrize(
    ("segment", "message"),
    [
        ({"duration": "5m", "mode": "sideways"}, "mode: 'sideways' is not one of"),
        ({"duration": "5m", "refuse": 1.5}, "refuse: must be a share from 0 to 1"),
        ({"duration": "5m", "slow_s": -1}, "slow_s: must be"),
        ({"duration": "five minutes"}, "is not a duration"),
        ({"duration": 0}, "must be > 0"),
        ({"mode": "down"}, "duration: missing"),
        ({"duration": "5m", "colour": "red"}, "segments[0].colour: unknown key"),
        ({"duration": "5m", "retry": "lots"}, "retry: must be a number"),
    ],
)
def test_mistakes_in_a_file_name_the_key(
    tmp_path: Path, segment: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"segments": [segment]}))
    with pytest.raises(ConfigError) as info:
        load_timeline(str(path))
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_unknown_names_and_files_list_the_built_ins(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aws-2025-10"):
        load_timeline("aws-2026")
    (tmp_path / "t.yaml").write_text("segments: []")
    with pytest.raises(ConfigError, match=r"\.toml or \.json"):
        load_timeline(str(tmp_path / "t.yaml"))
    (tmp_path / "t.toml").write_text("segments = [")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        load_timeline(str(tmp_path / "t.toml"))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h37m", 9420.0), ("15m", 900.0), ("90s", 90.0), ("1.5h", 5400.0), (42, 42.0)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "d") == seconds


def test_formatted_durations_read_like_a_clock() -> None:
    assert format_duration(9420) == "2 h 37 min"
    assert format_duration(3600) == "1 h"
    assert format_duration(125) == "2 min 5 s"
    assert format_duration(48) == "48 s"


def test_what_counts_as_noticing_depends_on_what_the_terminal_showed() -> None:
    degraded = Segment("degraded", 60, "up", Faults(refuse=0.1))
    assert degraded.expects(LinkStatus.OFFLINE)[0] == {LinkStatus.ONLINE, LinkStatus.DEGRADED}
    assert degraded.expects(LinkStatus.ONLINE)[0] == {LinkStatus.DEGRADED, LinkStatus.OFFLINE}
    assert Segment("dns", 60, "dns-fail").expects(LinkStatus.ONLINE) == (
        {LinkStatus.OFFLINE, LinkStatus.DEGRADED},
        "DNS",
    )
    assert Segment("down", 60, "down").expects(LinkStatus.ONLINE) == (
        {LinkStatus.OFFLINE},
        "REFUSED",
    )
    assert Segment("ok", 60).expects(LinkStatus.OFFLINE) == ({LinkStatus.ONLINE}, "")
    assert degraded.describe() == "refuse 10%"


@pytest.mark.parametrize(
    ("segment", "top", "expected"),
    [
        ("NaN", "", "a duration must be > 0 and at most a year"),
        ("Infinity", "", "a duration must be > 0 and at most a year"),
        ('"99999999h"', "", "a duration must be > 0 and at most a year"),
        ("10", '"speed": NaN, ', r"speed: must be a number \(finite\)"),
        ("10", '"speed": Infinity, ', r"speed: must be a number \(finite\)"),
    ],
)
def test_a_timeline_that_would_never_end_is_refused(
    segment: str, top: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "t.json"  # json.loads takes NaN and Infinity, as a hand-edited file may
    path.write_text(f'{{"name": "t", {top}"segments": [{{"duration": {segment}, "mode": "up"}}]}}')
    with pytest.raises(ConfigError, match=expected):
        load_timeline(str(path))
