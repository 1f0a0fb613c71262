"""P5: time from start to ready, peak RSS, and CPU used while idle.

The process measured is `pitill run` itself (python -m pitill.cli run), with a config that swaps
the hardware for what this machine has: gpiozero's mock pin factory, luma's dummy display, the
card reader on a pty pair held here. Its host is the sandbox acquirer in a process of its own (so
the host's work is not counted). Ready is systemd's READY=1, received on a NOTIFY_SOCKET this
bench binds; the start is the moment before the process is spawned. Idle CPU is utime + stime
from /proc over the idle window (60 s by default, --idle-s to change), after 2 s to settle; peak
RSS is VmHWM. The baseline for ready and RSS is a bare `python -c pass` on the same interpreter.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import Figure, Options

from pitill.sim.reader_emulator import open_pty_pair

READY_LIMIT_S = 30.0
SETTLE_S = 2.0
GOALS = {"ready": 1.0, "rss": 60.0, "idle": 1.0}


def _bare_python() -> tuple[float, float]:
    """(seconds to run `python -c pass`, the peak RSS in MB of a bare interpreter)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    elapsed = time.perf_counter() - start
    idle = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; print('up', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert idle.stdout is not None and idle.stdin is not None
    idle.stdout.readline()
    rss_mb = _peak_rss_mb(idle.pid)
    idle.stdin.close()
    idle.wait(timeout=10)
    return elapsed, rss_mb


def _start_host(data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    host = subprocess.Popen(
        [sys.executable, "-m", "pitill.sim.acquirer", "--data-dir", str(data_dir), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert host.stdout is not None
    line = host.stdout.readline()  # "acquirer listening on 127.0.0.1:PORT mode up"
    try:
        return host, int(line.split()[3].rsplit(":", 1)[1])
    except (IndexError, ValueError):
        host.kill()
        raise SystemExit(f"P5: the acquirer did not say where it listens: {line!r}") from None


def _cpu_s(stat_path: Path) -> float:
    """utime + stime of a process or thread, in seconds."""
    fields = stat_path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_by_thread(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of `pid` (the main thread's id is the pid)."""
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread may end while we look
            seconds[int(task.name)] = _cpu_s(task / "stat")
    return seconds


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _config(path: Path, reader_port: str, host_port: int) -> None:
    path.write_text(
        f'[gpio]\npin_factory = "mock"\n\n[display]\ndriver = "dummy"\n\n'
        f'[reader]\nport = "{reader_port}"\n\n'
        f'[upstream]\nhost = "127.0.0.1"\nport = {host_port}\n'
    )


def _run_terminal(work: Path, idle_s: float) -> tuple[float, float, float, float]:
    """(seconds to READY=1, peak RSS MB, idle CPU % in all, % of it in the event loop thread)
    of one `pitill run`."""
    host, port = _start_host(work / "host")
    master_fd, slave_path = open_pty_pair()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(work / "notify"))
    notify.settimeout(READY_LIMIT_S)
    _config(work / "bench.toml", slave_path, port)
    env = {**os.environ, "NOTIFY_SOCKET": str(work / "notify")}
    for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(name, None)
    command = [sys.executable, "-m", "pitill.cli", "run", "--config", str(work / "bench.toml")]
    start = time.perf_counter()
    terminal = subprocess.Popen(
        [*command, "--data-dir", str(work / "data"), "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        while b"READY=1" not in notify.recv(4096).split(b"\n"):
            pass
        ready_s = time.perf_counter() - start
        time.sleep(SETTLE_S)
        before = _cpu_by_thread(terminal.pid)
        idle_start = time.perf_counter()
        time.sleep(idle_s)
        after = _cpu_by_thread(terminal.pid)
        window_s = time.perf_counter() - idle_start
        idle_pct = 100 * sum(s - before.get(tid, 0.0) for tid, s in after.items()) / window_s
        loop_pct = 100 * (after[terminal.pid] - before[terminal.pid]) / window_s
        rss_mb = _peak_rss_mb(terminal.pid)
    except TimeoutError:
        raise SystemExit(f"P5: no READY=1 from `pitill run` within {READY_LIMIT_S:g} s") from None
    finally:
        terminal.send_signal(signal.SIGTERM)
        try:
            terminal.wait(timeout=10)
        except subprocess.TimeoutExpired:
            terminal.kill()
        host.terminate()
        host.wait(timeout=10)
        notify.close()
        os.close(master_fd)
    return ready_s, rss_mb, idle_pct, loop_pct


def measure(options: Options) -> list[Figure]:
    idle_s = min(options.idle_s, 2.0) if options.quick else options.idle_s
    bare_s, bare_mb = _bare_python()
    with tempfile.TemporaryDirectory(prefix="bench-p5-", dir=options.work_dir) as work:
        ready_s, rss_mb, idle_pct, loop_pct = _run_terminal(Path(work), idle_s)
    return [
        Figure(
            "P5",
            "start -> READY=1",
            ready_s,
            "s",
            baseline=bare_s,
            baseline_name="python -c pass",
            goal=f"<= {GOALS['ready']:g} s",
            meets=ready_s <= GOALS["ready"],
            note="`pitill run` with mock GPIO, dummy display, a pty reader",
        ),
        Figure(
            "P5",
            "peak RSS",
            rss_mb,
            "MB",
            baseline=bare_mb,
            baseline_name="python -c pass",
            goal=f"<= {GOALS['rss']:g} MB",
            meets=rss_mb <= GOALS["rss"],
        ),
        Figure(
            "P5",
            f"CPU while idle ({idle_s:g} s window)",
            idle_pct,
            "%",
            goal=f"< {GOALS['idle']:g} %",
            meets=idle_pct < GOALS["idle"],
            note=(
                f"utime + stime of every thread from /proc (10 ms ticks); the event loop "
                f"thread (probes every 0.5 s, timers) took {loop_pct:.2f} %, the other threads "
                f"(the matrix keypad's scan every keypad.scan_interval_s, the card reader) "
                f"{idle_pct - loop_pct:.2f} %"
            ),
        ),
    ]
