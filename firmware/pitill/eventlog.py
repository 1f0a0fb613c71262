"""The `--events` file: one JSON line per thing that happened, with a monotonic time in seconds.

Only masked card numbers are ever written; a last check (the logs' own PAN finder) refuses any
line that still holds a full PAN, so a bug upstream cannot leak one into the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pitill.logs import redact_pans


class EventLog:
    """Appends JSON lines to a file; a no-op when no path was given."""

    def __init__(self, path: Path | None) -> None:
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self._file: IO[str] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def write(self, t_s: float, event: str, /, **fields: Any) -> None:
        for listener in self.listeners:
            listener(event, fields)
        if self._file is None:
            return
        line = json.dumps({"t_s": round(t_s, 4), "event": event, **fields}, default=str)
        if redact_pans(line) != line:  # a full PAN somewhere: write only that something happened
            line = json.dumps({"t_s": round(t_s, 4), "event": event, "redacted": True})
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
