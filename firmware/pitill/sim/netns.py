"""Real network faults for the terminal: a host in a network namespace, joined to the terminal's
namespace by a veth pair, and cut the ways networks fail.

A `Lab` is two namespaces made for one test or bench run ("<tag>-host" and "<tag>-till", a unique
tag each), a veth pair between them (HOST_IP on the host's end, TILL_IP on the terminal's), and
/etc/netns/<tag>-till/resolv.conf naming the host's address as the only nameserver: a process
started with `ip netns exec <tag>-till` resolves through the lab's DNS server. The root namespace
is never touched. `open_lab()` removes everything again, whatever happened (it kills what still
runs in the lab's namespaces, by pid, deletes them and their resolv.conf).

A `HostSite` runs the host side: the sandbox acquirer (`python -m pitill.sim.acquirer`) on
HOST_IP, and dnsmasq on HOST_IP:53 serving DNS_NAME. Its faults (FAULTS), each healed by `heal`:

- link-down:        the host's end of the veth goes down (the terminal's end loses its carrier);
- firewall-drop:    the host's firewall drops every TCP packet to the acquirer's port (iptables);
- route-blackhole:  the terminal's namespace routes HOST_IP into a blackhole;
- host-stopped:     the acquirer is frozen with SIGSTOP (its kernel still accepts connections);
- host-killed:      the acquirer is killed with SIGKILL (connections reset, then refused);
                    healing starts it again on the same port with the same ledger;
- dns-stopped:      dnsmasq is stopped (queries meet a closed port);
- dns-servfail:     dnsmasq answers SERVFAIL: it validates DNSSEC and cannot build the chain of
                    trust for the name (a second dnsmasq, on the host's loopback, holds the record);
- dns-nxdomain:     dnsmasq answers NXDOMAIN for the name.

Needs root, `ip` (iproute2), dnsmasq and iptables; `unavailable()` says what is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

HOST_IP = "10.213.0.1"
TILL_IP = "10.213.0.2"
PREFIX_LEN = 24
DNS_NAME = "acquirer.netns.test"
DNS_BACKEND_PORT = 5354  # the servfail mode's record holder, on the host namespace's loopback
# The Debian 12 root KSK: any anchor will do, the lab's zone can never be proven against it.
TRUST_ANCHOR = ".,20326,8,2,E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"
NETNS_ETC = Path("/etc/netns")
START_LIMIT_S = 15.0  # a host process that has not said it is serving by then failed to start
COMMAND_LIMIT_S = 10.0
ACQUIRER = (sys.executable, "-m", "pitill.sim.acquirer")  # `pitill acquirer` with --host
TOOLS = ("ip", "dnsmasq", "iptables")
DNS_FAULTS = ("dns-stopped", "dns-servfail", "dns-nxdomain")
FAULTS = (
    "link-down",
    "firewall-drop",
    "route-blackhole",
    "host-stopped",
    "host-killed",
    *DNS_FAULTS,
)
DNS_MODES = ("up", "servfail", "nxdomain")


class LabError(RuntimeError):
    """A namespace, link or host process of the lab could not be made."""


def _run(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=COMMAND_LIMIT_S, check=False
    )
    if check and result.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result


def unavailable() -> str | None:
    """Why a lab cannot be made here (None when it can). A reason starting "machine:" is what no
    amount of installing fixes (not root, namespaces refused); otherwise a tool is missing."""
    if os.geteuid() != 0:
        return "machine: network namespaces need root (ip netns add)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (
            f"{', '.join(missing)} not installed (apt-get install iproute2 dnsmasq-base iptables)"
        )
    probe = f"pitill-probe-{secrets.token_hex(3)}"
    made = _run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        return f"machine: cannot create a network namespace here: {made.stderr.strip()}"
    _run(["ip", "netns", "del", probe], check=False)
    return None


@dataclass(frozen=True)
class Lab:
    """The names of one lab's namespaces and interfaces (JSON-able: passed to child processes)."""

    tag: str  # 7 characters: interface names stay within the kernel's 15

    @property
    def host_ns(self) -> str:
        return f"{self.tag}-host"

    @property
    def till_ns(self) -> str:
        return f"{self.tag}-till"

    @property
    def host_if(self) -> str:
        return f"{self.tag}h"

    @property
    def till_if(self) -> str:
        return f"{self.tag}t"

    def in_host(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.host_ns, *argv]

    def in_till(self, argv: Sequence[str]) -> list[str]:
        """argv run in the terminal's namespace, resolving through the lab's DNS server."""
        return ["ip", "netns", "exec", self.till_ns, *argv]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Lab:
        return cls(**json.loads(text))


def _create(lab: Lab) -> None:
    _run(["ip", "netns", "add", lab.host_ns])
    _run(["ip", "netns", "add", lab.till_ns])
    _run(["ip", "link", "add", lab.host_if, "netns", lab.host_ns, "type", "veth",
          "peer", "name", lab.till_if, "netns", lab.till_ns])  # fmt: skip
    for ns, interface, address in (
        (lab.host_ns, lab.host_if, HOST_IP),
        (lab.till_ns, lab.till_if, TILL_IP),
    ):
        _run(["ip", "-n", ns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", interface])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "link", "set", interface, "up"])
    etc = NETNS_ETC / lab.till_ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(f"nameserver {HOST_IP}\n", encoding="ascii")


def _destroy(lab: Lab) -> None:
    for ns in (lab.host_ns, lab.till_ns):
        pids = _run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:  # only what runs in this lab's own namespaces
            with suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _run(["ip", "netns", "del", ns], check=False)
    shutil.rmtree(NETNS_ETC / lab.till_ns, ignore_errors=True)


@contextmanager
def open_lab() -> Iterator[Lab]:
    """A new lab, removed on the way out (on errors too)."""
    lab = Lab(tag=f"pt{secrets.token_hex(3)[:5]}")
    try:
        _create(lab)
        yield lab
    finally:
        _destroy(lab)


def _read_line(stream: IO[str], limit_s: float, what: str) -> str:
    """The next line of a child's pipe, or LabError once limit_s has passed."""
    ready, _, _ = select.select([stream], [], [], limit_s)
    if not ready:
        raise LabError(f"{what}: nothing said within {limit_s:g} s")
    return stream.readline()


class HostSite:
    """The acquirer and the DNS server in a lab's host namespace, and the faults between them and
    the terminal. Usable from any namespace (it works through `ip netns exec`)."""

    def __init__(self, lab: Lab, data_dir: Path, log_dir: Path | None = None) -> None:
        self.lab = lab
        self.data_dir = data_dir
        self.log_dir = log_dir or data_dir
        self.port = 0  # the acquirer's, known once it listens; kept across a restart
        self.acquirer: subprocess.Popen[str] | None = None
        self.dns: list[subprocess.Popen[str]] = []
        self.dns_mode: str | None = None

    # --- the acquirer -------------------------------------------------------------------------

    def start_acquirer(self) -> int:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "acquirer.log").open("a") as log:
            self.acquirer = subprocess.Popen(
                self.lab.in_host([*ACQUIRER, "--data-dir", str(self.data_dir),
                                  "--host", HOST_IP, "--port", str(self.port),
                                  "--stdin-control"]),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
        assert self.acquirer.stdout is not None
        line = _read_line(self.acquirer.stdout, START_LIMIT_S, "acquirer")
        if "listening on" not in line:  # "acquirer listening on IP:PORT mode up"
            raise LabError(f"acquirer did not start: {line!r} (see {self.log_dir})")
        self.port = int(line.split()[3].rsplit(":", 1)[1])
        return self.port

    def acquirer_counts(self) -> dict[str, int]:
        """What the acquirer has received (echoes, connections...), asked over its stdin."""
        process = self.acquirer
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write("counts\n")
        process.stdin.flush()
        line = _read_line(process.stdout, COMMAND_LIMIT_S, "acquirer counts")
        if not line.startswith("acquirer counts "):
            raise LabError(f"acquirer answered {line!r} to counts")
        counts: dict[str, int] = json.loads(line.removeprefix("acquirer counts "))
        return counts

    def stop_acquirer(self, sig: int = signal.SIGTERM) -> None:
        process, self.acquirer = self.acquirer, None
        if process is None:
            return
        if sig == signal.SIGTERM:
            os.kill(process.pid, signal.SIGCONT)  # a frozen host cannot stop
        process.send_signal(sig)
        try:
            process.wait(timeout=COMMAND_LIMIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=COMMAND_LIMIT_S)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with suppress(OSError):
                    stream.close()

    # --- the DNS server -----------------------------------------------------------------------

    def _dnsmasq(self, listen: str, port: int, *options: str) -> subprocess.Popen[str]:
        argv = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--conf-file=/dev/null", "--pid-file=", "--bind-interfaces", "--log-facility=-",
                f"--listen-address={listen}", f"--port={port}", *options]  # fmt: skip
        process = subprocess.Popen(
            self.lab.in_host(argv), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        assert process.stderr is not None
        deadline = time.monotonic() + START_LIMIT_S
        said: list[str] = []
        while True:  # dnsmasq logs "started" once its sockets are bound
            line = _read_line(process.stderr, max(0.0, deadline - time.monotonic()), "dnsmasq")
            said.append(line)
            if "started" in line:
                break
            if not line:
                raise LabError(f"dnsmasq did not start: {''.join(said)!r}")
        return process

    def start_dns(self, mode: str = "up") -> None:
        """dnsmasq on HOST_IP:53 in one of DNS_MODES (a running one is replaced)."""
        if mode not in DNS_MODES:
            raise ValueError(f"DNS mode {mode!r} is unknown; modes: {', '.join(DNS_MODES)}")
        self.stop_dns()
        record = f"--host-record={DNS_NAME},{HOST_IP}"
        if mode == "up":
            self.dns = [self._dnsmasq(HOST_IP, 53, record)]
        elif mode == "nxdomain":
            self.dns = [self._dnsmasq(HOST_IP, 53, f"--address=/{DNS_NAME}/")]
        else:
            backend = self._dnsmasq("127.0.0.1", DNS_BACKEND_PORT, record)
            self.dns = [backend]  # stopped with the front, whatever happens next
            self.dns.append(
                self._dnsmasq(
                    HOST_IP,
                    53,
                    f"--server=127.0.0.1#{DNS_BACKEND_PORT}",
                    "--dnssec",
                    f"--trust-anchor={TRUST_ANCHOR}",
                )
            )
        self.dns_mode = mode

    def stop_dns(self) -> None:
        processes, self.dns, self.dns_mode = self.dns, [], None
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=COMMAND_LIMIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=COMMAND_LIMIT_S)
            if process.stderr is not None:
                process.stderr.close()

    # --- the whole site -----------------------------------------------------------------------

    def start(self) -> int:
        """The acquirer and a healthy DNS server; the acquirer's port."""
        port = self.start_acquirer()
        self.start_dns("up")
        return port

    def close(self) -> None:
        self.stop_dns()
        self.stop_acquirer()

    def __enter__(self) -> HostSite:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- faults -------------------------------------------------------------------------------

    def _firewall(self, action: str) -> None:
        _run(self.lab.in_host(["iptables", action, "INPUT", "-p", "tcp", "--dport",
                               str(self.port), "-j", "DROP"]))  # fmt: skip

    def fault(self, name: str) -> None:
        """Make fault `name` (one of FAULTS) now."""
        lab = self.lab
        if name == "link-down":
            _run(["ip", "-n", lab.host_ns, "link", "set", lab.host_if, "down"])
        elif name == "firewall-drop":
            self._firewall("-I")
        elif name == "route-blackhole":
            _run(["ip", "-n", lab.till_ns, "route", "add", "blackhole", f"{HOST_IP}/32"])
        elif name == "host-stopped":
            assert self.acquirer is not None
            os.kill(self.acquirer.pid, signal.SIGSTOP)
        elif name == "host-killed":
            self.stop_acquirer(signal.SIGKILL)
        elif name == "dns-stopped":
            self.stop_dns()
        elif name in ("dns-servfail", "dns-nxdomain"):
            self.start_dns(name.removeprefix("dns-"))
        else:
            raise ValueError(f"fault {name!r} is unknown; faults: {', '.join(FAULTS)}")

    def heal(self, name: str) -> None:
        """Undo fault `name`."""
        lab = self.lab
        if name == "link-down":
            _run(["ip", "-n", lab.host_ns, "link", "set", lab.host_if, "up"])
        elif name == "firewall-drop":
            self._firewall("-D")
        elif name == "route-blackhole":
            _run(["ip", "-n", lab.till_ns, "route", "del", "blackhole", f"{HOST_IP}/32"])
        elif name == "host-stopped":
            assert self.acquirer is not None
            os.kill(self.acquirer.pid, signal.SIGCONT)
        elif name == "host-killed":
            self.start_acquirer()
        elif name in DNS_FAULTS:
            self.start_dns("up")
        else:
            raise ValueError(f"fault {name!r} is unknown; faults: {', '.join(FAULTS)}")
