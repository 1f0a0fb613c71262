"""`pitill sim --upstream HOST:PORT`: the simulated terminal against a `pitill acquirer` started
as a process of its own, the script's faults made on the real connection by the fault proxy;
the acquirer's ledger then holds exactly what the terminal's journal says (pitill.sim.reconcile)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fast_config import ECHO_FAST_S, write_config
from pitill.sim.acquirer import LEDGER_NAME, read_ledger
from pitill.sim.reconcile import read_journal, reconcile
from pitill_cli import PITILL, serving_acquirer

# A host that accepts but never answers (the proxy's blackhole) shows only to an echo or a
# request: echoes every ECHO_FAST_S, so the script's idle `expect link offline` after `upstream
# blackhole` (and `slow`) need not wait a minute.
SCRIPT = """expect link online
press 1 2 5 0 OK
swipe approved
expect screen "APPROVED"
press OK
upstream down
expect link offline
press 3 0 0 OK
swipe approved
expect screen "OFFLINE"
press OK
upstream up
expect link online
upstream blackhole
expect link offline
press 4 0 0 OK
swipe approved
expect screen "OFFLINE"
press OK
upstream up
expect link online
expect pending 0
"""


@pytest.fixture
def acquirer(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Path, int]]:
    data = tmp_path / "acquirer"
    wire: list[str] = getattr(request, "param", [])  # --bitmap, --length-prefix
    with serving_acquirer(data, *wire) as port:
        yield data, port


def run(
    tmp_path: Path, port: int, script: str, config: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The script through `pitill sim --upstream`; the fast config with fast echoes by default."""
    if config is None:
        config = write_config(tmp_path / "fast.toml", echo_interval_s=ECHO_FAST_S)
    (tmp_path / "s.pitill").write_text(script, encoding="utf-8")
    return subprocess.run(
        [*PITILL, "sim", "--config", str(config), "--upstream",
         f"127.0.0.1:{port}", "--script", str(tmp_path / "s.pitill"), "--data-dir",
         str(tmp_path / "terminal"), "--expect-timeout", "10"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_sale_outages_and_the_forward_against_a_separate_acquirer(
    tmp_path: Path, acquirer: tuple[Path, int]
) -> None:
    data, port = acquirer
    result = run(tmp_path, port, SCRIPT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "terminal" / LEDGER_NAME).exists()  # no sandbox host of its own
    rows = read_journal(tmp_path / "terminal" / "journal.sqlite3")
    ledger = read_ledger(data / LEDGER_NAME)
    assert sorted(e["amount_minor"] for e in ledger if not e["duplicate"]) == [300, 400, 1250]
    assert reconcile(rows, ledger, "PITILL01", settled=True).problems() == []


@pytest.mark.parametrize(
    "acquirer", [["--bitmap", "binary", "--length-prefix", "4-digit-ascii"]], indirect=True
)
def test_the_same_run_in_another_wire_format_set_alike_on_both_sides(
    tmp_path: Path, acquirer: tuple[Path, int]
) -> None:
    data, port = acquirer
    wire = {"bitmap": "binary", "length_prefix": "4-digit-ascii"}
    config = write_config(tmp_path / "fast.toml", echo_interval_s=ECHO_FAST_S, **wire)
    result = run(tmp_path, port, SCRIPT, config)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_journal(tmp_path / "terminal" / "journal.sqlite3")
    ledger = read_ledger(data / LEDGER_NAME)
    assert sorted(e["amount_minor"] for e in ledger if not e["duplicate"]) == [300, 400, 1250]
    assert reconcile(rows, ledger, "PITILL01", settled=True).problems() == []


def test_a_slow_host_through_the_proxy_is_degraded(
    tmp_path: Path, acquirer: tuple[Path, int]
) -> None:
    script = "expect link online\nupstream slow\nexpect link degraded\nupstream up\n"
    script += "expect link online\n"
    _, port = acquirer
    # The default probe timeout (a slow answer is not a failed one); echoes every second.
    config = tmp_path / "slow.toml"
    config.write_text("[upstream]\necho_interval_s = 1.0\n", encoding="utf-8")
    result = run(tmp_path, port, script, config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_fault_only_the_sandbox_host_can_make_is_refused_before_the_run(
    tmp_path: Path, acquirer: tuple[Path, int]
) -> None:
    _, port = acquirer
    result = run(tmp_path, port, "expect link online\nupstream failing\n")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "line 2: `upstream failing` needs the sandbox host" in result.stderr
    assert not (tmp_path / "terminal" / "journal.sqlite3").exists()
