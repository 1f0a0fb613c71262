"""The README's gallery is what the renderer draws for the states the core really reaches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pitill.gallery import core_gallery

ROOT = Path(__file__).resolve().parent.parent


def test_committed_gallery_matches_the_renderer() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "record-demo"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_gallery_covers_the_cash_and_offline_screens() -> None:
    texts = {name: screen.text() for name, screen in core_gallery().items()}
    assert "CASH ONLY" in texts["cash_only"] and "OFFLINE - queued" in texts["approved_offline"]
    assert "EUR 7.90" in texts["change"] and "FORWARD SOON" in texts["age_alarm"]
