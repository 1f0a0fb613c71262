"""Running the `pitill` command as a process, as a user or CI would, and reading what it wrote."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

PITILL = (sys.executable, "-m", "pitill.cli")


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
