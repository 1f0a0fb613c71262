"""tools/bench_drivers.py runs, and counts what one frame puts on the I2C bus."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_drivers.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_drivers", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_bench_reports_scans_and_frames(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_tool()
    assert bench.main(["--scans", "5", "--frames", "2", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "scan, fake membrane, '5' held" in out
    assert "frame = render + display" in out
    # ssd1306: one window command, then all 8 pages in one write (address + control bytes each)
    assert "one frame on the bus: 2 writes, 1034 bytes (1026 pixel + 8 command" in out
    assert "I2C at 400 kHz: 23.3 ms per frame" in out
