"""systemd/99-pitill.rules: well-formed udev rules that name the reader and the keypad.

There is no device to trigger here, so the rules are parsed with udev(7)'s grammar: every rule is
comma-separated KEY[{attr}]OP"value" pairs, match keys use == or !=, assignments =, +=, -=, :=.
Where `udevadm verify` exists (systemd >= 254) it checks the file as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RULES = Path(__file__).resolve().parents[2] / "systemd" / "99-pitill.rules"

MATCH_KEYS = {
    "ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SYMLINK", "SUBSYSTEM", "SUBSYSTEMS",
    "DRIVER", "DRIVERS", "ATTR", "ATTRS", "ENV", "TAG", "TAGS", "TEST", "PROGRAM", "RESULT",
    "CONST", "SYSCTL",
}  # fmt: skip
ASSIGN_KEYS = {
    "NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "ENV", "TAG", "RUN", "LABEL", "GOTO",
    "IMPORT", "OPTIONS", "ATTR", "SECLABEL", "SYSCTL", "PROGRAM",
}  # fmt: skip
PAIR = re.compile(
    r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]+)\})?(?P<op>==|!=|\+=|-=|:=|=)"(?P<value>[^"]*)"\s*'
)

Rule = list[tuple[str, str | None, str, str]]


def parse_rules(text: str) -> list[Rule]:
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pairs: Rule = []
        position = 0
        while position < len(line):
            found = PAIR.match(line, position)
            assert found, f"line {number}: cannot parse from column {position}: {line!r}"
            key, attr, op, value = found.group("key", "attr", "op", "value")
            if op in ("==", "!="):
                assert key in MATCH_KEYS, f"line {number}: {key} is not a match key"
            else:
                assert key in ASSIGN_KEYS, f"line {number}: {key} cannot be assigned"
            pairs.append((key, attr, op, value))
            position = found.end()
            if position < len(line):
                assert line[position] == ",", f"line {number}: expected ',' at {position}"
                position += 1
        rules.append(pairs)
    return rules


def symlinks(rule: Rule) -> list[str]:
    return [value for key, _, op, value in rule if key == "SYMLINK" and op == "+="]


def matches(rule: Rule, key: str, attr: str | None = None) -> str | None:
    for k, a, op, value in rule:
        if k == key and a == attr and op == "==":
            return value
    return None


def test_rules_parse_and_name_the_devices() -> None:
    rules = parse_rules(RULES.read_text())
    reader = [r for r in rules if "pitill-reader" in symlinks(r)]
    keypad = [r for r in rules if "input/pitill-keypad" in symlinks(r)]
    assert all(matches(r, "SUBSYSTEM") == "tty" for r in reader)
    assert all(matches(r, "SUBSYSTEM") == "input" for r in keypad)
    # The Pi UART, on every model, and at least the common USB serial bridges.
    uart_kernels = {matches(r, "KERNEL") for r in reader if matches(r, "KERNEL")}
    assert uart_kernels == {"ttyAMA0|ttyS0", "ttyAMA0"}
    usb_vendors = {matches(r, "ATTRS", "idVendor") for r in reader} - {None}
    assert usb_vendors >= {"0403", "10c4", "1a86", "067b"}
    assert len(keypad) == 1
    assert matches(keypad[0], "KERNEL") == "event*"


def test_a_usb_reader_outranks_the_uart() -> None:
    rules = parse_rules(RULES.read_text())
    for rule in rules:
        if "pitill-reader" not in symlinks(rule):
            continue
        options = [value for key, _, _, value in rule if key == "OPTIONS"]
        is_usb = matches(rule, "ATTRS", "idVendor") is not None
        assert options == (["link_priority=10"] if is_usb else [])


def test_remove_events_skip_to_the_end_label() -> None:
    rules = parse_rules(RULES.read_text())
    assert rules[0] == [("ACTION", None, "==", "remove"), ("GOTO", None, "=", "pitill_end")]
    assert rules[-1] == [("LABEL", None, "=", "pitill_end")]


def test_the_commented_examples_parse_once_uncommented() -> None:
    examples = [
        line.lstrip("#")
        for line in RULES.read_text().splitlines()
        if line.startswith("#SUBSYSTEM==")
    ]
    assert len(examples) == 2
    for rule in parse_rules("\n".join(examples)):
        assert ("OPTIONS", None, "+=", "link_priority=20") in rule


def test_the_parser_rejects_a_broken_rule() -> None:
    with pytest.raises(AssertionError, match="expected ','"):
        parse_rules('SUBSYSTEM=="tty" KERNEL=="ttyS0"\n')  # missing comma
    with pytest.raises(AssertionError, match="not a match key"):
        parse_rules('LABEL=="x"\n')
    with pytest.raises(AssertionError, match="cannot parse"):
        parse_rules("SUBSYSTEM==tty\n")  # unquoted value


@pytest.mark.skipif(shutil.which("udevadm") is None, reason="udevadm is not installed")
def test_udevadm_verify(tmp_path: Path) -> None:
    help_text = subprocess.run(
        ["udevadm", "--help"], capture_output=True, text=True, check=False
    ).stdout
    if "verify" not in help_text:
        pytest.skip("machine: this udevadm has no verify command (systemd < 254)")
    result = subprocess.run(
        ["udevadm", "verify", "--resolve-names=never", str(RULES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
