"""The --events file: JSON lines with a monotonic time, and never a full card number."""

from __future__ import annotations

import json
from pathlib import Path

from pitill.eventlog import EventLog


def test_lines_carry_time_event_and_fields_and_reach_listeners(tmp_path: Path) -> None:
    heard: list[tuple[str, dict[str, object]]] = []
    log = EventLog(tmp_path / "events.jsonl")
    log.listeners.append(lambda event, fields: heard.append((event, fields)))
    log.write(1.23456, "journal", seq=3, kind="card", masked_pan="411111******1111")
    log.close()
    (line,) = (tmp_path / "events.jsonl").read_text().splitlines()
    assert json.loads(line) == {
        "t_s": 1.2346,
        "event": "journal",
        "seq": 3,
        "kind": "card",
        "masked_pan": "411111******1111",
    }
    assert heard == [("journal", {"seq": 3, "kind": "card", "masked_pan": "411111******1111"})]


def test_a_line_holding_a_full_pan_is_written_without_its_fields(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    log.write(0.5, "screen", text="card 4111 1111 1111 1111")
    log.write(0.6, "screen", text="order 1234567890123")  # 13 digits failing Luhn: kept
    log.close()
    text = (tmp_path / "events.jsonl").read_text()
    assert "1111 1111" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first == {"t_s": 0.5, "event": "screen", "redacted": True}
    assert second["text"] == "order 1234567890123"


def test_no_path_writes_nothing(tmp_path: Path) -> None:
    log = EventLog(None)
    log.write(0.0, "state", phase="IDLE")
    log.close()
    assert list(tmp_path.iterdir()) == []
