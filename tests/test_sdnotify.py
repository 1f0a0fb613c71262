"""sd_notify against a real unix datagram socket standing in for systemd's notify socket.

The watchdog tests show the property the unit file relies on: pings come from the event loop
itself, so a loop that blocks stops pinging, and a supervisor that applies systemd's rule
(no WATCHDOG=1 within WatchdogSec -> SIGABRT) kills the hung process.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pitill.sdnotify import Notifier, run_watchdog

RECV_BOUND_S = 10.0  # an upper bound for waiting on a datagram, never an assertion on speed


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket, as systemd creates /run/systemd/notify, and its path."""
    directory = tmp_path
    if len(str(tmp_path)) > 90:  # sockaddr_un paths stop at 107 bytes
        directory = Path(tempfile.mkdtemp(prefix="sdn"))
    path = str(directory / "notify.sock")
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(path)
    rx.settimeout(RECV_BOUND_S)
    yield rx, path
    rx.close()


def drain(rx: socket.socket) -> list[bytes]:
    rx.setblocking(False)
    messages = []
    try:
        while True:
            messages.append(rx.recv(4096))
    except BlockingIOError:
        pass
    finally:
        rx.settimeout(RECV_BOUND_S)
    return messages


def test_without_notify_socket_everything_is_a_noop() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert notifier.ready("idle") is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval_s() is None


def test_ready_status_and_stopping_arrive_as_datagrams(
    notify_socket: tuple[socket.socket, str],
) -> None:
    rx, path = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path})
    assert notifier.ready("idle, 0 pending")
    assert rx.recv(4096) == b"READY=1\nSTATUS=idle, 0 pending"
    assert notifier.status("offline:\n3 pending")
    assert rx.recv(4096) == b"STATUS=offline: 3 pending"  # a newline would start a new field
    assert notifier.stopping()
    assert rx.recv(4096) == b"STOPPING=1"
    assert notifier.extend_timeout(2.5)
    assert rx.recv(4096) == b"EXTEND_TIMEOUT_USEC=2500000"
    notifier.close()


def test_abstract_namespace_address() -> None:
    name = f"pitill-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind("\0" + name)
        rx.settimeout(RECV_BOUND_S)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "@" + name})
        assert notifier.watchdog()
        assert rx.recv(4096) == b"WATCHDOG=1"
        notifier.close()


def test_a_vanished_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.enabled
    assert notifier.ready() is False


def test_a_socket_that_is_not_a_unix_path_disables_notification() -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled


@pytest.mark.parametrize(
    ("env", "interval_s"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "ten"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_pid(
    env: dict[str, str], interval_s: float | None
) -> None:
    assert Notifier.from_env({"NOTIFY_SOCKET": "/run/x", **env}).watchdog_interval_s() == interval_s


def test_run_watchdog_pings_from_the_loop(notify_socket: tuple[socket.socket, str]) -> None:
    rx, path = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})

    async def main() -> list[bytes]:
        loop = asyncio.get_running_loop()
        rx.setblocking(False)
        task = asyncio.create_task(run_watchdog(notifier))
        pings = [await asyncio.wait_for(loop.sock_recv(rx, 64), RECV_BOUND_S) for _ in range(3)]
        task.cancel()
        return pings

    assert asyncio.run(main()) == [b"WATCHDOG=1"] * 3


def test_run_watchdog_returns_at_once_without_a_watchdog(
    notify_socket: tuple[socket.socket, str],
) -> None:
    _, path = notify_socket
    asyncio.run(run_watchdog(Notifier.from_env({"NOTIFY_SOCKET": path})))  # would hang otherwise


def test_a_failing_health_check_withholds_pings(notify_socket: tuple[socket.socket, str]) -> None:
    rx, path = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000"})
    calls = 0

    async def main() -> None:
        sixth_call = asyncio.Event()

        def healthy() -> bool:
            nonlocal calls
            calls += 1
            if calls == 6:
                sixth_call.set()
            return calls > 2  # wedged for the first two rounds

        task = asyncio.create_task(run_watchdog(notifier, healthy))
        await asyncio.wait_for(sixth_call.wait(), RECV_BOUND_S)
        task.cancel()

    asyncio.run(main())
    # The ping follows the health check synchronously, so rounds 3..6 pinged and 1..2 did not.
    assert drain(rx) == [b"WATCHDOG=1"] * 4


def test_a_blocked_loop_sends_no_pings(notify_socket: tuple[socket.socket, str]) -> None:
    rx, path = notify_socket
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})
    interval_s = notifier.watchdog_interval_s()
    assert interval_s == 0.01
    loop = asyncio.new_event_loop()
    task = loop.create_task(run_watchdog(notifier))
    hang_started = threading.Event()
    release = threading.Event()

    def hang() -> None:  # what a blocking call in a callback does to the loop
        hang_started.set()
        release.wait(RECV_BOUND_S)

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        assert rx.recv(64) == b"WATCHDOG=1"  # pings flow while the loop turns
        loop.call_soon_threadsafe(hang)
        assert hang_started.wait(RECV_BOUND_S)
        drain(rx)  # pings sent before the hang began; nothing on the loop runs after this
        rx.settimeout(20 * interval_s)
        with pytest.raises(TimeoutError):
            rx.recv(64)  # twenty intervals pass in silence: systemd would now restart us
        release.set()
        rx.settimeout(RECV_BOUND_S)
        assert rx.recv(64) == b"WATCHDOG=1"  # and they resume once the loop turns again
    finally:
        release.set()
        loop.call_soon_threadsafe(task.cancel)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(RECV_BOUND_S)
        loop.close()


HUNG_TERMINAL = textwrap.dedent(
    """
    import asyncio, threading
    from pitill.sdnotify import Notifier, run_watchdog

    def hang_forever():
        threading.Event().wait()

    async def main():
        notifier = Notifier.from_env()
        notifier.ready("idle")
        asyncio.create_task(run_watchdog(notifier))
        await asyncio.sleep(0)  # the first ping goes out
        asyncio.get_running_loop().call_soon(hang_forever)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


def test_a_hung_terminal_is_aborted_like_systemd_does(
    notify_socket: tuple[socket.socket, str],
) -> None:
    """Plays systemd's part: READY=1 arms the watchdog; silence for WatchdogSec -> SIGABRT.

    With PYTHONFAULTHANDLER=1 (set in pitill.service) the abort prints every thread's stack,
    so the journal shows where the loop hung before Restart=on-failure starts a fresh process.
    """
    rx, path = notify_socket
    watchdog_s = 0.4
    env = {
        **os.environ,
        "NOTIFY_SOCKET": path,
        "WATCHDOG_USEC": str(int(watchdog_s * 1_000_000)),
        "PYTHONFAULTHANDLER": "1",
    }
    child = subprocess.Popen([sys.executable, "-c", HUNG_TERMINAL], env=env, stderr=subprocess.PIPE)
    try:
        assert rx.recv(4096) == b"READY=1\nSTATUS=idle"
        assert rx.recv(64) == b"WATCHDOG=1"  # only bounded: start-up may be slow
        pings = 1
        rx.settimeout(watchdog_s)
        for _ in range(1000):  # bounded: the child hangs right after its first ping
            try:
                assert rx.recv(64) == b"WATCHDOG=1"
                pings += 1
            except TimeoutError:
                child.send_signal(signal.SIGABRT)
                break
        _, stderr = child.communicate(timeout=RECV_BOUND_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert pings >= 1
    assert child.returncode == -signal.SIGABRT
    assert b"hang_forever" in stderr  # faulthandler's traceback names the blocking call
