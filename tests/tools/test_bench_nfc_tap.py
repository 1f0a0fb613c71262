"""tools/bench_nfc_tap.py runs: taps of both kinds reach the screen (no timing asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_nfc_tap.py"


def test_the_bench_taps_both_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_nfc_tap", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    assert module.main(["--poll-s", "0.02", "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    assert "UID-only tag" in out and "NTAG 424 DNA (SUN)" in out
