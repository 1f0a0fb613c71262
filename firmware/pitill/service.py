"""`pitill run`: the terminal on real hardware, from start to a clean stop on SIGTERM or SIGINT.

PiRunner opens the parts (pitill.hardware), builds the same Terminal the simulator runs
(pitill.app.build_terminal) and starts it on the running loop; the terminal sends READY=1 to
systemd once its devices are up. Beside it runs the display's dimming task. `serve` waits for a
stop signal and then stops everything in order: dimming, the terminal (devices, upstream client,
journal), the pin factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pitill.app import Terminal, build_terminal
from pitill.config import Config
from pitill.errors import ConfigError, StorageError
from pitill.eventlog import EventLog
from pitill.hardware import Hardware, build_hardware, one_line
from pitill.journal.datadir import DataDirLock
from pitill.logs import log_event
from pitill.receipt import receipt_sink
from pitill.upstream.resolver import Resolver, SystemResolver

if TYPE_CHECKING:
    from gpiozero.pins import Factory

log = logging.getLogger(__name__)

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


def make_data_dir(data_dir: Path) -> None:
    """The journal's directory, created (owner only) when missing."""
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"data directory {data_dir}: cannot create it ({one_line(exc)}); check --data-dir "
            "and that the service user owns it (the unit's StateDirectory=pitill does)"
        ) from exc


class PiRunner:
    """Starts and stops the terminal on its hardware; `pin_factory` and `display_serial` are
    for tests and benches (see build_hardware)."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        *,
        resolver: Resolver | None = None,
        pin_factory: Factory | None = None,
        display_serial: Any = None,
        event_log: EventLog | None = None,
        web: str | None = None,
        web_control: bool = False,
    ) -> None:
        self.config = config
        self.web = web  # --web ADDR: the terminal mirrored live on a web page
        self.web_control = web_control  # the page's keypad works (off by default: read-only)
        self.mirror: Any = None
        self.data_dir = data_dir
        self.resolver: Resolver = resolver or SystemResolver(config.upstream.lookup_timeout_s)
        self._pin_factory = pin_factory
        self._display_serial = display_serial
        self._event_log = event_log
        self.hardware: Hardware | None = None
        self.terminal: Terminal | None = None
        self._dimming: asyncio.Task[None] | None = None
        self._lock: DataDirLock | None = None  # held from start() to stop()

    async def start(self) -> Terminal:
        """Open the parts and start the terminal; on any failure nothing is left open."""
        make_data_dir(self.data_dir)
        lock = DataDirLock.acquire(self.data_dir)  # before the devices and the journal
        try:
            hardware = build_hardware(
                self.config, pin_factory=self._pin_factory, display_serial=self._display_serial
            )
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        log_event(log, "hardware_up", parts=hardware.describe(), data_dir=str(self.data_dir))
        try:
            terminal = build_terminal(
                self.config,
                self.data_dir,
                hardware.devices,
                self.resolver,
                event_log=self._event_log,
                receipts=receipt_sink(self.config),
            )
        except BaseException:
            hardware.close()
            self._release()
            raise
        self.hardware, self.terminal = hardware, terminal
        try:
            await terminal.start()
        except BaseException:
            await self.stop()
            raise
        if self.config.display.dim_after_s > 0:
            self._dimming = asyncio.create_task(hardware.keeper.run(), name="pitill-dimming")
        if self.web is not None:
            try:
                await self._start_mirror(terminal, self.web)
            except BaseException:
                await self.stop()
                raise
        return terminal

    async def _start_mirror(self, terminal: Terminal, address: str) -> None:
        """The read-only mirror (keys too when web_control): loaded only when asked for."""
        try:
            from pitill.web.bind import parse_bind
            from pitill.web.mirror import Controls, Mirror
        except ImportError as exc:
            raise ConfigError(
                f"--web needs the web extra ({exc.name} is missing): pip install 'pitill[web]'"
            ) from None
        controls = Controls(terminal) if self.web_control else None
        self.mirror = Mirror(terminal, parse_bind(address), controls)
        await self.mirror.start()
        log_event(log, "web_mirror", url=self.mirror.url, control=self.web_control)

    async def stop(self) -> None:
        """Stop dimming, then the terminal (it closes the devices and the journal), then the
        pin factory. Safe to call more than once."""
        mirror, self.mirror = self.mirror, None
        if mirror is not None:
            await mirror.close()
        if self._dimming is not None:
            self._dimming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dimming
            self._dimming = None
        terminal, self.terminal = self.terminal, None
        hardware, self.hardware = self.hardware, None
        if terminal is not None:
            await terminal.stop()
        if hardware is not None:
            hardware.close()
            log_event(log, "stopped")
        self._release()

    def _release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()


async def serve(runner: PiRunner, signals: Sequence[signal.Signals] = STOP_SIGNALS) -> None:
    """Run until one of `signals` arrives, then stop cleanly."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await runner.start()  # a signal during start is kept and honoured right after it
        await stop.wait()
        log_event(log, "stopping", signal=received[0])
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await runner.stop()
