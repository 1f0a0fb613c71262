"""The one fast config for tests that run `pitill sim` (or a terminal inside a test) as a process.

Faster than the defaults so an outage is noticed in a fraction of a second; same code paths.
Tests that need more (echoes every 0.2 s, a terminal id, an [offline] limit) pass them to
`write_config`; nothing else writes an [upstream] section of its own.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

from pitill.config import UpstreamConfig

Value = str | bool | int | float

FAST_UPSTREAM: dict[str, float | int] = {
    "request_timeout_s": 0.5,
    "probe_interval_s": 0.1,
    "probe_timeout_s": 0.3,
    "fail_threshold": 2,
    "recover_threshold": 1,
    "forward_retry_s": 0.05,
    "forward_retry_max_s": 0.3,
    "forward_jitter_s": 0.2,  # a heal's wait before forwarding (3 s by default)
    "failing_hold_s": 0.5,  # a host that fails requests is held OFFLINE this long (not 10 s)
}
FAST_TIMEOUTS: dict[str, float] = {"authorizing_s": 3.0}
# An idle terminal echoes once a minute, and a host that keeps the connection but never answers
# (a blackhole, a frozen process) shows only to an echo or a request: tests that wait for an idle
# terminal to notice one pass echo_interval_s=ECHO_FAST_S (make bench P1 times the defaults).
ECHO_FAST_S = 0.2
UPSTREAM_KEYS = frozenset(f.name for f in dataclasses.fields(UpstreamConfig))


def _toml(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the plain values tests use
    return repr(value)


def write_config(
    path: Path,
    sections: Mapping[str, Mapping[str, Value]] | None = None,
    **upstream: Value,
) -> Path:
    """A config with FAST_UPSTREAM and FAST_TIMEOUTS, `upstream` overriding [upstream] keys (only
    those this pitill has) and `sections` adding or overriding others ({"offline": {...}})."""
    tables: dict[str, dict[str, Value]] = {
        "upstream": {k: v for k, v in {**FAST_UPSTREAM, **upstream}.items() if k in UPSTREAM_KEYS},
        "timeouts": dict(FAST_TIMEOUTS),
    }
    for name, values in (sections or {}).items():
        tables.setdefault(name, {}).update(values)
    lines: list[str] = []
    for name, values in tables.items():
        lines += [f"[{name}]", *(f"{k} = {_toml(v)}" for k, v in values.items()), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
