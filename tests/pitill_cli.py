"""Running the `pitill` command as a process, as a user or CI would, and reading what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PITILL = (sys.executable, "-m", "pitill.cli")
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def run_pitill(
    *args: str,
    timeout_s: float = 120,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """`pitill ARGS` to its end: its text output captured, a non-zero exit returned, not raised.
    `env` is added to this process's environment."""
    return subprocess.run(
        [*PITILL, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=None if env is None else {**os.environ, **env},
        cwd=cwd,
    )


def run_scenario(name: str, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`pitill sim --script tests/scenarios/NAME`, with the config beside it (NAME.toml) if any."""
    config = (SCENARIOS / name).with_suffix(".toml")
    if config.exists():
        extra = ("--config", str(config), *extra)
    return run_pitill("sim", "--script", str(SCENARIOS / name), "--data-dir", str(data_dir), *extra)


@contextmanager
def serving_acquirer(data_dir: Path, *args: str) -> Iterator[int]:
    """`pitill acquirer` (the sandbox host) as a process of its own on an ephemeral loopback port,
    its ledger in data_dir; its port, read from the line it prints when listening."""
    process = subprocess.Popen(
        [*PITILL, "acquirer", "--data-dir", str(data_dir), "--port", "0", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # "acquirer listening on 127.0.0.1:PORT mode up"
        assert "listening on" in line, line
        yield int(line.split()[3].rsplit(":", 1)[1])
    finally:
        process.terminate()
        process.wait(timeout=30)


def journal_rows(data_dir: Path) -> list[dict[str, Any]]:
    """`pitill journal list --json`: one dict per transaction."""
    out = subprocess.run(
        [*PITILL, "journal", "list", "--json", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]
