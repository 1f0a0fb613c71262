"""hw/pitill.example.toml lists every config key with its default, so it cannot drift."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

from pitill.config import BOUNDS, ORDERS, Config, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "hw" / "pitill.example.toml"
DEFAULTS = Config()
# Where the installed example deliberately differs from the built-in default, and why: the
# udev rule's link names the header UART on every model (serial0 is the debug port on a Pi 5).
INSTALLED = dataclasses.replace(
    DEFAULTS, reader=dataclasses.replace(DEFAULTS.reader, port="/dev/pitill-reader")
)


def test_every_key_of_every_section_is_in_the_example() -> None:
    raw = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    sections = {f.name: getattr(DEFAULTS, f.name) for f in dataclasses.fields(Config)}
    assert set(raw) == set(sections)
    for name, section in sections.items():
        fields = {f.name for f in dataclasses.fields(section)}
        assert set(raw[name]) == fields, f"[{name}] in {EXAMPLE.name}"


def test_the_example_holds_the_defaults_except_what_it_says() -> None:
    assert load_config(EXAMPLE) == INSTALLED


def test_each_difference_from_the_default_says_the_default() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for section in dataclasses.fields(Config):
        installed, default = getattr(INSTALLED, section.name), getattr(DEFAULTS, section.name)
        for f in dataclasses.fields(default):
            ours, theirs = getattr(installed, f.name), getattr(default, f.name)
            if ours != theirs:
                assert f"# installed: {json.dumps(ours)} (default {json.dumps(theirs)})" in text


def test_each_number_says_its_range_on_its_line() -> None:
    """The ranges in BOUNDS (pitill.config) are written in the example, so it cannot drift."""
    section = ""
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]").split(".")[0]
            continue
        name = line.split(" = ")[0] if " = " in line and not line.startswith("#") else ""
        cls = type(getattr(DEFAULTS, section, None))
        bound = BOUNDS.get(cls, {}).get(name)
        if bound is not None:
            assert f"# {bound.text()}" in line, line


def test_each_rule_between_two_keys_is_written_in_the_example() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for order in ORDERS:
        low, high = order.low_key, order.high_key
        low_name, high_name = low.split(".")[1], high.split(".")[1]
        same_section = low.split(".")[0] == high.split(".")[0]
        mentions = (
            f"< {high_name if same_section else high}",
            f"<= {high_name if same_section else high}",
            f"> {low_name if same_section else low}",
            f">= {low_name if same_section else low}",
        )
        assert any(m in text for m in mentions), order
