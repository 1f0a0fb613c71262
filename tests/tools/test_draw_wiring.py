"""tools/draw-wiring: one table of wires behind the diagram, the README and the drivers' defaults.

The pin numbers live in three places a reader trusts: the drivers' defaults (what the software
drives), hw/README.md (what people wire from) and hw/wiring.png. These tests make them agree
and make sure the committed pictures are what the script draws today.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from pitill.config import (
    DEFAULT_MATRIX_KEYMAP,
    I2C1_PINS,
    UART_PINS,
    ButtonsConfig,
    DisplayConfig,
    IndicatorsConfig,
    KeypadConfig,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "draw-wiring"
HW = REPO / "hw"


@pytest.fixture(scope="module")
def draw() -> types.ModuleType:
    """The script, imported as a module (it has no .py suffix)."""
    loader = importlib.machinery.SourceFileLoader("draw_wiring", str(SCRIPT))
    spec = importlib.util.spec_from_loader("draw_wiring", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["draw_wiring"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


def bcm_of(draw: types.ModuleType, part: str, signal: str) -> int:
    (wire,) = [w for w in draw.WIRES if w.part == part and w.signal == signal]
    assert wire.bcm is not None, f"{part} {signal} is not on a GPIO pin"
    return int(wire.bcm)


def test_the_header_map_is_the_40_pin_header(draw: types.ModuleType) -> None:
    header = draw.HEADER
    assert sorted(header) == list(range(1, 41))
    counts = Counter(name for name in header.values() if not name.startswith("GPIO"))
    assert counts == {"GND": 8, "5V": 2, "3V3": 2}
    assert sorted(int(n[4:]) for n in header.values() if n.startswith("GPIO")) == list(range(28))
    # A few everyone can check on pinout.xyz.
    well_known = {3: "GPIO2", 8: "GPIO14", 12: "GPIO18", 37: "GPIO26", 40: "GPIO21"}
    assert {pin: header[pin] for pin in well_known} == well_known


def test_no_gpio_pin_serves_two_parts(draw: types.ModuleType) -> None:
    gpio_wires = [w for w in draw.WIRES if w.bcm is not None]
    assert len({w.pin for w in gpio_wires}) == len(gpio_wires)
    drawn = [w.pin for w in draw.WIRES if w.drawn]
    assert len(set(drawn)) == len(drawn), "two labels drawn on one pin"
    assert all(w.part in draw.PARTS for w in draw.WIRES)


def test_the_drawing_uses_the_drivers_default_pins(draw: types.ModuleType) -> None:
    keypad = KeypadConfig()
    rows = [bcm_of(draw, "keypad", f"row {i}") for i in range(1, 5)]
    cols = [bcm_of(draw, "keypad", f"col {i}") for i in range(1, 5)]
    assert (tuple(rows), tuple(cols)) == (keypad.row_pins, keypad.col_pins)
    assert keypad.layout == draw.KEYPAD_LAYOUT
    assert DEFAULT_MATRIX_KEYMAP == draw.KEY_MEANINGS
    buttons = ButtonsConfig()
    assert [bcm_of(draw, "buttons", s) for s in ("OK", "CANCEL", "FN")] == [
        buttons.ok_pin,
        buttons.cancel_pin,
        buttons.fn_pin,
    ]
    indicators = IndicatorsConfig()
    assert bcm_of(draw, "led_green", "anode") == indicators.green_led_pin
    assert bcm_of(draw, "led_red", "anode") == indicators.red_led_pin
    assert bcm_of(draw, "buzzer", "NPN base") == indicators.buzzer_pin
    assert bcm_of(draw, "relay", "IN") == indicators.drawer_pin
    display = DisplayConfig()
    assert bcm_of(draw, "spi", "DC") == display.spi_gpio_dc
    assert bcm_of(draw, "spi", "RST") == display.spi_gpio_rst
    assert {bcm_of(draw, "oled", "SDA"), bcm_of(draw, "oled", "SCL")} == {p for _, p in I2C1_PINS}
    assert {bcm_of(draw, "reader", "RXD"), bcm_of(draw, "reader", "TXD")} == {
        p for _, p in UART_PINS
    }


def test_the_readme_table_is_the_generated_one(draw: types.ModuleType) -> None:
    readme = (HW / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- pinout:start")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- pinout:end -->")
    assert readme[start:end] == draw.markdown_table(), (
        "hw/README.md's pinout table is stale: paste `tools/draw-wiring --markdown` there"
    )


@pytest.mark.parametrize(
    ("name", "render"), [("wiring.png", "wiring_image"), ("keypad-label.png", "keypad_label_png")]
)
def test_the_committed_pictures_are_up_to_date(
    draw: types.ModuleType, name: str, render: str
) -> None:
    committed = Image.open(HW / name).convert("RGB")
    fresh = getattr(draw, render)()
    assert committed.size == fresh.size
    assert ImageChops.difference(committed, fresh).getbbox() is None, (
        f"hw/{name} differs from what tools/draw-wiring draws: run it and commit the result"
    )


def test_the_keypad_label_svg(draw: types.ModuleType) -> None:
    svg = (HW / "keypad-label.svg").read_text(encoding="utf-8")
    assert svg == draw.keypad_label_svg()
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("width", "").endswith("mm")  # prints at its real size
    assert len(root.findall(f"{ns}rect")) == 16
    texts = [t.text for t in root.findall(f"{ns}text")]
    for meaning in ("OK", "CLEAR", "CANCEL", "FN"):
        assert meaning in texts
    assert any("# = OK" in (t or "") and "D = CANCEL" in (t or "") for t in texts)


def test_the_command_line(draw: types.ModuleType, tmp_path: Path) -> None:
    table = subprocess.run(
        [sys.executable, str(SCRIPT), "--markdown"], capture_output=True, text=True, check=True
    )
    assert table.stdout == draw.markdown_table()
    helped = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    )
    assert "tools/draw-wiring --markdown" in helped.stdout  # an example, as every --help has
    subprocess.run(
        [sys.executable, str(SCRIPT), "--out-dir", str(tmp_path)], check=True, capture_output=True
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "keypad-label.png",
        "keypad-label.svg",
        "wiring.png",
    ]
    with Image.open(tmp_path / "keypad-label.png") as label:
        assert label.info["dpi"] == pytest.approx((300, 300), rel=1e-3)
