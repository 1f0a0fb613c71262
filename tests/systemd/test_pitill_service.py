"""systemd/pitill.service: systemd's own checker accepts it, and it says what the terminal needs.

`systemd-analyze verify` also checks that ExecStart's binary exists and is executable, and
/opt/pitill/venv/bin/pitill only exists on an installed Pi. The verify tests therefore check a
copy of the unit whose ExecStart points at a stand-in executable in tmp_path; every other line
is checked as shipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "pitill.service"
INSTALLED_BINARY = "/opt/pitill/venv/bin/pitill"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed"
)


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value given (DeviceAllow= and Environment= repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), defaultdict(list))
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current[key.strip()].append(value.strip())
    return sections


def verify_copy(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` on `text` with ExecStart pointed at a real executable."""
    fake = tmp_path / "bin" / "pitill"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert INSTALLED_BINARY in text
    unit = tmp_path / "pitill.service"
    unit.write_text(text.replace(INSTALLED_BINARY, str(fake)))
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def complaints_about(result: subprocess.CompletedProcess[str]) -> list[str]:
    # verify exits 0 on an unknown key and only warns, so the warnings are what we check.
    return [line for line in (result.stdout + result.stderr).splitlines() if "pitill" in line]


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    result = verify_copy(tmp_path, UNIT.read_text())
    assert result.returncode == 0, result.stderr
    assert complaints_about(result) == []


@needs_systemd_analyze
def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported."""
    broken = UNIT.read_text().replace("WatchdogSec=10", "WatchdogSecs=10")
    assert any("WatchdogSecs" in line for line in complaints_about(verify_copy(tmp_path, broken)))


@needs_systemd_analyze
def test_hardening_exposure_stays_low(tmp_path: Path) -> None:
    unit = tmp_path / "pitill.service"
    unit.write_text(UNIT.read_text())
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for pitill\.service: ([0-9.]+)", result.stdout)
    if found is None:
        pytest.skip(f"this systemd-analyze cannot score units offline: {result.stderr.strip()}")
    assert float(found.group(1)) <= 3.0  # "OK" on systemd's 0 (locked down) .. 10 scale


def test_the_unit_says_what_the_terminal_needs() -> None:
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]

    def one(key: str) -> str:
        assert len(service[key]) == 1, f"{key}= given {len(service[key])} times"
        return service[key][0]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("WatchdogSec") == "10"
    assert one("Restart") == "on-failure"
    assert float(one("RestartSec")) > 0
    assert int(unit["Unit"]["StartLimitBurst"][0]) > 1
    assert int(unit["Unit"]["StartLimitIntervalSec"][0]) > 0
    assert one("StateDirectory") == "pitill"
    assert one("ExecStart") == (
        f"{INSTALLED_BINARY} run --config /etc/pitill/pitill.toml --data-dir ${{STATE_DIRECTORY}}"
    )
    assert one("User") == "pitill"
    assert set(one("SupplementaryGroups").split()) >= {"gpio", "i2c", "dialout", "input"}
    for key, value in {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "DevicePolicy": "closed",
    }.items():
        assert one(key) == value, key
    # Device classes are the driver names in /proc/devices (spidev registers as "spi").
    allowed = {entry.split()[0] for entry in service["DeviceAllow"]}
    assert allowed >= {
        "char-gpiochip",
        "char-i2c",
        "char-spi",
        "char-ttyAMA",
        "char-ttyS",
        "char-ttyUSB",
        "char-input",
    }
    environment = dict(entry.split("=", 1) for entry in service["Environment"])
    assert environment["GPIOZERO_PIN_FACTORY"] == "lgpio"
    assert environment["PYTHONUNBUFFERED"] == "1"
    # lgpio writes its notification pipes into the working directory: it must be writable.
    assert environment["LG_WD"] == one("WorkingDirectory") == "/run/pitill"
    assert one("RuntimeDirectory") == "pitill"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # The terminal sells offline: waiting for the network would keep it from starting.
    assert "Wants" not in unit["Unit"]
    assert "Requires" not in unit["Unit"]
