"""Real network faults (pitill.sim.netns): the host in a network namespace of its own, joined to
the terminal's namespace by a veth pair, cut the ways networks fail, and a real DNS server
(dnsmasq) that stops, answers SERVFAIL or NXDOMAIN. The terminal, in its namespace, must show
OFFLINE, sell offline, come back and forward its sale exactly once (pitill.sim.reconcile).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fast_config import ECHO_FAST_S, write_config
from pitill.config import Config
from pitill.core.types import TxnStatus
from pitill.errors import ConfigError
from pitill.sim.acquirer import LEDGER_NAME, read_ledger
from pitill.sim.netns import (
    DNS_BACKEND_PORT,
    DNS_FAULTS,
    DNS_NAME,
    FAULTS,
    HOST_IP,
    NETNS_ETC,
    HostSite,
    Lab,
    open_lab,
    unavailable,
)
from pitill.sim.netns_trials import SALE_MINOR, Plan, spawn
from pitill.sim.reconcile import read_journal, reconcile
from pitill.sim.world import SimWorld
from pitill_cli import PITILL

# A stopped host (SIGSTOP: its kernel still answers keepalives) shows only to an echo or a
# request: echoes every ECHO_FAST_S here, so an idle trial sees it without waiting a minute (P1 in
# make bench times the defaults). Every round sells offline with the same test card.
OFFLINE = {"offline": {"max_per_card": 100}}
NETWORK_FAULTS = [f for f in FAULTS if f not in DNS_FAULTS]


@pytest.fixture
def lab() -> Iterator[Lab]:
    reason = unavailable()
    if reason is not None:
        pytest.skip(
            reason
        )  # "machine: ..." where namespaces cannot be made; a missing tool fails CI
    with open_lab() as made:
        yield made


def fast_config(tmp_path: Path, **upstream: bool) -> Path:
    return write_config(tmp_path / "fast.toml", OFFLINE, echo_interval_s=ECHO_FAST_S, **upstream)


def check_rounds(outcome: dict[str, Any], faults: list[str]) -> None:
    assert [r["fault"] for r in outcome["rounds"]] == faults
    for r in outcome["rounds"]:
        fault = r["fault"]
        assert r["detect_s"] is not None, f"{fault}: the screen never showed OFFLINE"
        assert r["offline_phase"] == "OFFLINE_APPROVED", f"{fault}: {r}"
        assert r["healed"], f"{fault}: not ONLINE again after healing"
        assert r["pending_after"] == 0, f"{fault}: the offline sale was not forwarded"


def check_forwarded_once(directory: Path, sales: int) -> None:
    ledger = read_ledger(directory / "host" / LEDGER_NAME)
    rows = read_journal(directory / "till" / "journal.sqlite3")
    # Every sale the customer was told was paid is charged once, nothing else is (a timed-out
    # request's reversal included), and nothing is left in flight.
    assert reconcile(rows, ledger, "PITILL01", settled=True).problems() == []
    forwarded = [r.amount_minor for r in rows if r.status == TxnStatus.FORWARDED]
    assert forwarded == [SALE_MINOR] * sales, rows


def test_each_network_fault_shows_offline_then_sells_offline_and_forwards_once(
    lab: Lab, tmp_path: Path
) -> None:
    plan = Plan(faults=NETWORK_FAULTS, rounds=1, offline_sale=True)
    outcome = spawn(lab, tmp_path, plan, fast_config(tmp_path), limit_s=300)
    check_rounds(outcome, NETWORK_FAULTS)
    check_forwarded_once(tmp_path, len(NETWORK_FAULTS))


def test_each_dns_fault_shows_offline_without_remembered_addresses(
    lab: Lab, tmp_path: Path
) -> None:
    # The terminal resolves the lab's name through the system resolver and the lab's dnsmasq:
    # with no remembered addresses, a name that does not resolve is an unreachable host.
    faults = list(DNS_FAULTS)
    config = fast_config(tmp_path, cache_resolved=False)
    outcome = spawn(lab, tmp_path, Plan(faults=faults, offline_sale=True), config, limit_s=300)
    check_rounds(outcome, faults)
    check_forwarded_once(tmp_path, len(faults))


def test_a_dns_fault_with_remembered_addresses_is_degraded_and_sales_go_online(
    lab: Lab, tmp_path: Path
) -> None:
    plan = Plan(faults=["dns-nxdomain"], expect="DEGRADED", offline_sale=True)
    outcome = spawn(lab, tmp_path, plan, fast_config(tmp_path), limit_s=300)
    [r] = outcome["rounds"]
    assert r["detect_s"] is not None and r["healed"], r
    assert r["offline_phase"] == "APPROVED", r  # the remembered address still reaches the host


def test_the_first_customer_after_a_fault_gets_an_answer(lab: Lab, tmp_path: Path) -> None:
    plan = Plan(faults=["host-stopped"], rounds=0, customers=1, idle_s=0.5)
    outcome = spawn(lab, tmp_path, plan, fast_config(tmp_path), limit_s=300)
    [r] = outcome["rounds"]
    assert r["customer_s"] is not None, r  # the sale settled within the trial's limit
    assert r["customer_phase"] == "OFFLINE_APPROVED" and r["pending_after"] == 0, r
    assert r["detect_s"] is not None and r["healed"], r
    # The host was asked for its counts over the window (how many echoes is the monitor's call).
    assert outcome["idle_window_s"] >= 0.5 and isinstance(outcome["idle_counts"], dict)
    check_forwarded_once(tmp_path, 1)


def dig(lab: Lab) -> str:
    if shutil.which("dig") is None:
        pytest.skip("dig not installed (apt-get install dnsutils)")
    done = subprocess.run(
        lab.in_till(["dig", "+tries=1", "+time=2", DNS_NAME]),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return done.stdout


def getent(lab: Lab) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        lab.in_till(["getent", "ahostsv4", DNS_NAME]),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_the_lab_dns_server_answers_as_each_fault_says(lab: Lab, tmp_path: Path) -> None:
    site = HostSite(lab, tmp_path)
    try:
        site.start_dns("up")  # dig and getent in the terminal's namespace use its resolv.conf
        assert "status: NOERROR" in dig(lab) and getent(lab).stdout.startswith(HOST_IP)
        site.fault("dns-servfail")
        assert "status: SERVFAIL" in dig(lab) and getent(lab).returncode != 0
        site.fault("dns-nxdomain")
        assert "status: NXDOMAIN" in dig(lab) and getent(lab).returncode == 2  # no such name
        site.heal("dns-nxdomain")
        site.fault("dns-stopped")
        assert "status:" not in dig(lab) and getent(lab).returncode != 0
        site.heal("dns-stopped")
        assert getent(lab).stdout.startswith(HOST_IP)
    finally:
        site.close()


# Run in the terminal's namespace: SystemResolver (glibc underneath, the lab's resolv.conf) looks
# the lab's name up N times; one word per lookup.
LOOKUPS = """
import asyncio, json, sys
from pitill.upstream.resolver import SystemResolver
async def main() -> None:
    resolver, said = SystemResolver(), []
    for _ in range(int(sys.argv[1])):
        try:
            said.append("ok" if await resolver.resolve(sys.argv[2], 80) else "none")
        except Exception as exc:
            said.append("conclusive" if getattr(exc, "conclusive", False) else "failed")
        await asyncio.sleep(0.1)
    print(json.dumps(said))
asyncio.run(main())
"""
# Run in the host's namespace: a DNS server that answers 0.3 s late (queries on HOST_IP:53 go on
# to a dnsmasq on loopback after the delay; no qdisc needed).
SLOW_DNS = """
import socket, sys, threading, time
front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
front.bind((sys.argv[1], 53))
def answer(query, client):
    time.sleep(0.3)
    back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    back.settimeout(2)
    back.sendto(query, ("127.0.0.1", int(sys.argv[2])))
    front.sendto(back.recv(4096), client)
print("relaying", flush=True)
while True:
    threading.Thread(target=answer, args=front.recvfrom(4096), daemon=True).start()
"""


def lookups(lab: Lab, count: int) -> list[str]:
    done = subprocess.run(
        lab.in_till([sys.executable, "-c", LOOKUPS, str(count), DNS_NAME]),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said: list[str] = json.loads(done.stdout)
    return said


def test_the_system_resolver_tells_a_slow_dns_server_from_a_dead_one(
    lab: Lab, tmp_path: Path
) -> None:
    """Through glibc and a real dnsmasq: answers 0.3 s late are answers, every time; a stopped
    server is a conclusive failure at the first lookup (it asked again within its window)."""
    site = HostSite(lab, tmp_path)
    relay: subprocess.Popen[str] | None = None
    try:
        site.start_dns("servfail")  # its loopback dnsmasq holds the record: the relay's backend
        front = site.dns.pop()  # the DNSSEC front goes: HOST_IP:53 is the relay's
        front.terminate()
        front.wait(timeout=10)
        assert front.stderr is not None
        front.stderr.close()
        relay = subprocess.Popen(
            lab.in_host([sys.executable, "-c", SLOW_DNS, HOST_IP, str(DNS_BACKEND_PORT)]),
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert relay.stdout is not None and relay.stdout.readline() == "relaying\n"
        assert lookups(lab, 4) == ["ok"] * 4
        relay.kill()
        relay.wait(timeout=10)
        relay = None
        assert lookups(lab, 1) == ["conclusive"]
    finally:
        if relay is not None:
            relay.kill()
            relay.wait(timeout=10)
        site.close()


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
expect pending 0
"""


def test_pitill_sim_upstream_sells_through_an_outage_with_a_host_in_a_namespace(
    lab: Lab, tmp_path: Path
) -> None:
    site = HostSite(lab, tmp_path / "host")
    site.start_acquirer()
    try:
        (tmp_path / "s.pitill").write_text(SCRIPT, encoding="utf-8")
        result = subprocess.run(
            lab.in_till([*PITILL, "sim", "--config", str(fast_config(tmp_path)), "--upstream",
                         f"{HOST_IP}:{site.port}", "--script", str(tmp_path / "s.pitill"),
                         "--data-dir", str(tmp_path / "till"), "--expect-timeout", "10"]),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        site.close()
    assert result.returncode == 0, result.stdout + result.stderr
    ledger = read_ledger(tmp_path / "host" / LEDGER_NAME)
    rows = read_journal(tmp_path / "till" / "journal.sqlite3")
    assert sorted(e["amount_minor"] for e in ledger if not e["duplicate"]) == [300, 1250]
    assert reconcile(rows, ledger, "PITILL01", settled=True).problems() == []


def test_a_lab_leaves_nothing_behind(tmp_path: Path) -> None:
    reason = unavailable()
    if reason is not None:
        pytest.skip(reason)
    with open_lab() as lab:
        site = HostSite(lab, tmp_path)
        site.start()  # processes left running on purpose
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert lab.host_ns in listed and (NETNS_ETC / lab.till_ns / "resolv.conf").exists()
        pids = [site.acquirer.pid] + [p.pid for p in site.dns]  # type: ignore[union-attr]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert lab.host_ns not in listed and lab.till_ns not in listed
    assert not (NETNS_ETC / lab.till_ns).exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    site.close()  # reaps what the lab killed


def test_a_directly_dialled_host_takes_no_simulated_faults(tmp_path: Path) -> None:
    world = SimWorld(Config(), tmp_path, external=("10.0.0.1", 8583), proxy=False)
    with pytest.raises(ConfigError, match="make faults on the network"):
        world.set_upstream("down")
    assert world.proxy is None and world.direct == ("10.0.0.1", 8583)
