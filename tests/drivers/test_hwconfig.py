"""Hardware config sections: loading through the config loader, validation, pin conflicts."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from pitill.config import (
    ButtonsConfig,
    GpioConfig,
    IndicatorsConfig,
    KeypadConfig,
    UsbKeypadConfig,
    _build,
    check_pin_conflicts,
)
from pitill.drivers.hwconfig import PIN_FACTORY_FIX, open_pin_factory
from pitill.errors import ConfigError, HardwareError

SECTIONS: dict[str, type[Any]] = {
    "keypad": KeypadConfig,
    "buttons": ButtonsConfig,
    "usb_keypad": UsbKeypadConfig,
    "indicators": IndicatorsConfig,
    "gpio": GpioConfig,
}


def load(section: str, raw: dict[str, Any]) -> Any:
    """What pitill.config does with a [section] table of the TOML file."""
    return _build(SECTIONS[section], raw, section)


def test_the_defaults_are_valid_and_use_distinct_pins() -> None:
    for section, cls in SECTIONS.items():
        cls().validate(section)
    check_pin_conflicts(
        KeypadConfig().pin_uses("keypad")
        + ButtonsConfig(enabled=True).pin_uses("buttons")
        + IndicatorsConfig().pin_uses("indicators")
    )


def test_toml_values_load_into_the_fields() -> None:
    keypad = load(
        "keypad",
        {
            "row_pins": [5, 6, 13, 19],
            "col_pins": [12, 16, 20],
            "layout": ["123", "456", "789", "*0#"],
            "keymap": {"#": "OK", "*": "cancel"},
            "stable_scans": 4,
        },
    )
    assert keypad.col_pins == (12, 16, 20) and keypad.keymap == {"#": "OK", "*": "cancel"}
    usb = load("usb_keypad", {"enabled": True, "keymap": {"KEY_KPASTERISK": "CLEAR"}})
    assert usb.merged_keymap()["KEY_KPASTERISK"] == "CLEAR"
    assert load("gpio", {"pin_factory": "lgpio"}).pin_factory == "lgpio"


@pytest.mark.parametrize(
    ("section", "raw", "message"),
    [
        ("keypad", {"row_pins": [5, 28, 13, 19]}, "keypad.row_pins[1]: must be a BCM GPIO"),
        ("keypad", {"col_pins": [12, 16, 12, 21]}, "keypad.col_pins[2]: GPIO12 is already used"),
        ("keypad", {"layout": ["123A", "456B", "789C"]}, "keypad.layout: has 3 rows"),
        ("keypad", {"layout": ["123A", "456B", "789", "*0#D"]}, "keypad.layout[2]: '789' has 3"),
        ("keypad", {"layout": ["123A", "456B", "789C", "*0#1"]}, "its own visible character"),
        ("keypad", {"keymap": {"#": "ENTER"}}, "keypad.keymap.#: unknown key 'ENTER'"),
        ("keypad", {"keymap": {"E": "OK"}}, "keypad.keymap.E: 'E' is not a character"),
        ("keypad", {"stable_scans": 0}, "keypad.stable_scans: must be 1..20"),
        ("keypad", {"scan_interval_s": 0}, "keypad.scan_interval_s: must be 0.001..0.1 s, got 0.0"),
        ("buttons", {"ok_pin": 40}, "buttons.ok_pin: must be a BCM GPIO number 0..27 or -1"),
        ("buttons", {"fn_pin": 26}, "buttons.fn_pin: GPIO26 is already used by buttons.ok_pin"),
        (
            "buttons",
            {"enabled": True, "ok_pin": -1, "cancel_pin": -1, "fn_pin": -1},
            "buttons: enabled but",
        ),
        ("usb_keypad", {"device": "event3"}, "usb_keypad.device: must be an absolute path"),
        ("usb_keypad", {"keymap": {"KP5": "5"}}, "usb_keypad.keymap.KP5: not an evdev key"),
        ("usb_keypad", {"keymap": {"KEY_KP5": "6x"}}, "usb_keypad.keymap.KEY_KP5: unknown key"),
        ("indicators", {"red_led_pin": 17}, "indicators.red_led_pin: GPIO17 is already used"),
        (
            "indicators",
            {"drawer_pulse_s": 5.0},
            "indicators.drawer_pulse_s: must be 0.01..2 s, got 5.0",
        ),
        ("gpio", {"pin_factory": "wiringpi"}, "gpio.pin_factory: must be one of"),
    ],
)
def test_bad_values_name_the_key(section: str, raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(section, raw)
    assert message in str(error.value)


def test_a_pin_shared_between_sections_names_both_keys() -> None:
    uses = KeypadConfig().pin_uses("keypad") + IndicatorsConfig(buzzer_pin=13).pin_uses(
        "indicators"
    )
    with pytest.raises(ConfigError, match=r"indicators.buzzer_pin: GPIO13 .* keypad.row_pins\[2\]"):
        check_pin_conflicts(uses)


def test_disabled_or_absent_parts_claim_no_pins() -> None:
    assert ButtonsConfig(enabled=False).pin_uses("buttons") == []
    assert KeypadConfig(enabled=False).pin_uses("keypad") == []
    indicators = IndicatorsConfig(buzzer_enabled=False, drawer_pin=-1)
    assert [pin for _, pin in indicators.pin_uses("indicators")] == [17, 27]


def test_usb_keymap_overrides_can_unmap() -> None:
    merged = UsbKeypadConfig(keymap={"KEY_NUMLOCK": ""}).merged_keymap()
    assert "KEY_NUMLOCK" not in merged and merged["KEY_KPPLUS"] == "FN"


def test_the_mock_pin_factory_opens_by_name() -> None:
    assert isinstance(open_pin_factory(GpioConfig(pin_factory="mock")), MockFactory)


@pytest.mark.skipif(importlib.util.find_spec("lgpio") is not None, reason="lgpio is installed")
def test_a_missing_pin_factory_library_says_what_to_install() -> None:
    with pytest.raises(HardwareError) as error:
        open_pin_factory(GpioConfig(pin_factory="lgpio"))
    assert "'lgpio' could not be loaded" in str(error.value)
    assert str(error.value).endswith(PIN_FACTORY_FIX)
