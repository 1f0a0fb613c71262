"""systemd's sd_notify protocol with no dependency: one datagram to $NOTIFY_SOCKET per message.

Under `Type=notify` the service manager waits for READY=1 before it calls the unit started, and
with `WatchdogSec=` it kills and restarts the service when WATCHDOG=1 stops arriving. The pings
come from a task on the terminal's one asyncio loop (`run_watchdog`), never from a side thread:
a loop that hangs (a blocking call, a deadlock) stops pinging, and that is exactly what should
get the process restarted. Outside systemd (a laptop, the simulator, tests without the variable)
every method is a silent no-op.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

HealthCheck = Callable[[], bool]
"""Returns False when the terminal is alive but wedged; a False skips the ping on purpose."""


class Notifier:
    """Sends state changes to the service manager; a no-op when `address` is None."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = _socket_address(address) if address else None
        self._watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd set up for this process, or a no-op one when there is none.

        The watchdog is only ours when WATCHDOG_PID is unset or names this process (a child
        started by us inherits the variables but must not ping on our behalf).
        """
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        if address is not None and address[0] not in "/@":
            log.warning("NOTIFY_SOCKET=%r is not a unix socket path; not notifying", address)
            address = None
        return cls(address, _watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def watchdog_interval_s(self) -> float | None:
        """Seconds between pings: half of WatchdogSec, as sd_watchdog_enabled(3) advises."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self, status: str = "") -> bool:
        """The devices are up and the terminal takes input: systemd now calls the unit started."""
        return self.notify("READY=1", *_status_field(status))

    def status(self, text: str) -> bool:
        """A one-line status shown by `systemctl status pitill`."""
        return self.notify(*_status_field(text))

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *_status_field(status))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, timeout_s: float) -> bool:
        """Ask for more start-up time, e.g. while a long journal recovery runs before READY=1."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={round(timeout_s * 1_000_000)}")

    def notify(self, *fields: str) -> bool:
        """Send `fields` as one message; True when it was handed to the socket.

        A failure is logged and swallowed: the terminal keeps selling even when the service
        manager is gone. The socket is non-blocking so a full queue drops a message instead of
        stalling the loop (a dropped ping is better than a hung till).
        """
        if self._address is None or not fields:
            return False
        message = "\n".join(fields).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            level = logging.DEBUG if exc.errno == errno.EAGAIN else logging.WARNING
            log.log(level, "sd_notify to %s failed: %s", self._address, exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def run_watchdog(notifier: Notifier, healthy: HealthCheck | None = None) -> None:
    """Ping the watchdog every interval from the calling event loop, until cancelled.

    Run it as a task on the loop that owns the terminal state. Because the ping is a coroutine
    on that loop, it only happens when the loop turns: a blocked loop sends nothing and systemd
    restarts the service after WatchdogSec. `healthy` can veto a ping (for example when the
    journal has stopped committing), which turns a silent wedge into a restart too.
    Returns at once when no watchdog is configured.
    """
    interval_s = notifier.watchdog_interval_s()
    if interval_s is None or not notifier.enabled:
        return
    while True:
        if healthy is None or healthy():
            notifier.watchdog()
        else:
            log.warning("health check failed: withholding the watchdog ping")
        await asyncio.sleep(interval_s)


def _socket_address(address: str) -> str:
    # A leading '@' names the Linux abstract namespace, written with a NUL byte in sockaddr_un.
    return "\0" + address[1:] if address.startswith("@") else address


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    raw_usec = env.get("WATCHDOG_USEC", "")
    raw_pid = env.get("WATCHDOG_PID", "")
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
        if raw_pid and int(raw_pid) != os.getpid():
            return None
    except ValueError:
        log.warning("WATCHDOG_USEC=%r / WATCHDOG_PID=%r are not integers", raw_usec, raw_pid)
        return None
    return usec if usec > 0 else None


def _status_field(text: str) -> tuple[str, ...]:
    # The protocol is one field per line: a newline inside the text would start a new field.
    return (f"STATUS={' '.join(text.split())}",) if text else ()
