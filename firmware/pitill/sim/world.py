"""The simulated shop: the real terminal wired to emulated parts and a sandbox acquirer host.

Everything here is real except the hardware: the journal is a SQLite file, the host listens on
127.0.0.1, the card reader speaks its wire protocol over a pty pair through the same pyserial
driver the Pi uses, and the display is luma's dummy device fed by the one renderer.

There is one sandbox host, plain TCP, dialled by upstream.host: upstream.hosts and TLS are
ignored here. With `external` (`pitill sim --upstream HOST:PORT`, or a config whose [upstream]
names another host) the terminal dials that real host instead, through a FaultProxy (sim/proxy.py)
that makes the same faults on the real connection; its TLS settings are kept. With `proxy=False`
it dials the external host itself, by the name or address given, through `resolver` (the network
namespace kit, sim/netns.py, makes the faults on the network then: set_upstream refuses).
The sandbox host's modes (set_upstream): up, down, blackhole, dns-fail (the name stops resolving,
the host answers: a terminal that resolved it before rides it out on the remembered address),
slow (every answer, echoes too, takes SLOW_ANSWER_S: DEGRADED SLOW) and failing (echoes answered,
every transaction answered 91: the host is up but failing, OFFLINE RETRY after the threshold).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Literal, Protocol

from pitill.app import Devices, Terminal, build_terminal
from pitill.config import Config, DisplayConfig, ReaderConfig
from pitill.core.responses import ISSUER_INOPERATIVE
from pitill.drivers.multi_reader import MultiReader
from pitill.drivers.oled import DummyDisplay
from pitill.drivers.protocols import CardReader
from pitill.drivers.serial_reader import SerialCardReader
from pitill.errors import ConfigError, ScriptError
from pitill.eventlog import EventLog
from pitill.journal.datadir import DataDirLock
from pitill.receipt import FileReceipts, ReceiptHeader
from pitill.sim.acquirer import AcquirerHost, ChaosPlan
from pitill.sim.indicators import SimIndicators
from pitill.sim.nfc_taps import NfcTaps
from pitill.sim.proxy import FaultProxy
from pitill.sim.reader_emulator import (
    TEST_CARDS,
    Format,
    ReaderEmulator,
    SwipeResult,
    open_pty_pair,
)
from pitill.sim.resolver import SimResolver
from pitill.sim.script import SLOW_ANSWER_S, UPSTREAM_MODES
from pitill.sim.wedge_emulator import WedgeEmulator
from pitill.upstream.messages import RESPONSE_MTI
from pitill.upstream.resolver import Resolver

CARD_NAMES = tuple(TEST_CARDS)
# The modes that are the healthy host plus a fault plan on its answers.
CHAOS_MODES = {
    "slow": ChaosPlan(delay_s=SLOW_ANSWER_S, mtis=frozenset(RESPONSE_MTI)),
    "failing": ChaosPlan(retry=1.0, retry_code=ISSUER_INOPERATIVE),  # echoes still answered
}
HOST_MODES = {"down": "down", "blackhole": "blackhole"}  # every other mode keeps the host up


class Companion(Protocol):
    """Something that runs beside the simulated terminal on its loop (the web mirror)."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...


class SimWorld:
    """Builds, starts and stops the simulated terminal and its surroundings."""

    def __init__(
        self,
        config: Config,
        data_dir: Path,
        events: Path | None = None,
        *,
        lock: DataDirLock | None = None,
        external: tuple[str, int] | None = None,
        receipts: Path | None = None,
        proxy: bool = True,
        resolver: Resolver | None = None,
    ) -> None:
        self.config = config
        self.data_dir = data_dir
        self.lock = lock  # the caller's lock on data_dir (the drill's), else start() takes one
        self._own_lock = lock is None
        self.events_path = events
        self.receipts_dir = receipts  # --receipts DIR: each receipt as text and PNG
        self.indicators = SimIndicators()
        self.resolver = SimResolver({config.upstream.host: "127.0.0.1"})
        self.dial_resolver = resolver  # what the terminal resolves with, when not self.resolver
        # the sandbox speaks the wire format the config's [upstream] asks the terminal for
        self.host = AcquirerHost(
            data_dir=data_dir, host="127.0.0.1", port=0, wire=config.upstream.wire
        )
        # a host the simulator does not run (address, port), reached through a fault proxy
        self.proxy = FaultProxy(*external) if external is not None and proxy else None
        self.direct = external if external is not None and not proxy else None
        self.upstream_mode = "up"
        self.emulator: ReaderEmulator | None = None
        self.nfc: NfcTaps | None = None
        self.wedge: WedgeEmulator | None = None
        self.terminal: Terminal | None = None
        # What else runs with the terminal (the web mirror): started after it, closed before it.
        self.companions: list[Companion] = []

    async def start(self) -> Terminal:
        if self.lock is None or not self.lock.held:
            self.lock = DataDirLock.acquire(self.data_dir)  # before the ledger and the journal
        try:
            return await self._start()
        except BaseException:
            if self._own_lock:
                self.lock.release()
            raise

    async def _start(self) -> Terminal:
        if self.direct is not None:
            # Dialled as given (a name goes through self.resolver); TLS settings are kept.
            host, port = self.direct
            upstream = dataclasses.replace(self.config.upstream, host=host, port=port, hosts=())
        elif self.proxy is not None:
            # The terminal dials the proxy by the configured name (TLS, if configured, passes
            # through it untouched and is checked against that name).
            await self.proxy.start()
            upstream = dataclasses.replace(self.config.upstream, port=self.proxy.port, hosts=())
        else:
            await self.host.start()
            # The terminal dials the host's ephemeral port by the configured name, in plain TCP.
            upstream = dataclasses.replace(
                self.config.upstream, port=self.host.port, hosts=(), tls=False, tls_ca_file=""
            )
        config = dataclasses.replace(self.config, upstream=upstream)

        master_fd, slave_path = open_pty_pair()
        self.emulator = ReaderEmulator.from_fd(master_fd)  # owns the master end
        stripe = SerialCardReader(ReaderConfig(port=slave_path, protocol="framed"))
        # Beside it, a PN532 on its own pty, read by nfcpy's real driver (taps: sim/nfc_taps.py).
        self.nfc = NfcTaps.start()
        readers: list[CardReader] = [stripe]
        if self.nfc.reader is not None:
            readers.append(self.nfc.reader)
        try:  # and a USB keyboard-wedge stripe reader, read through evdev (an optional extra)
            self.wedge = WedgeEmulator()
        except ImportError:
            self.wedge = None
        else:
            readers.append(self.wedge.reader)
        display = DummyDisplay(DisplayConfig(driver="dummy"))
        devices = Devices(display=display, indicators=self.indicators, reader=MultiReader(readers))

        receipts = None
        if self.receipts_dir is not None:
            terminal_id = config.terminal.terminal_id
            receipt = config.receipt
            header = ReceiptHeader(receipt.shop, receipt.address, receipt.width)
            receipts = FileReceipts(self.receipts_dir, terminal_id, header)
        terminal = build_terminal(
            config,
            self.data_dir,
            devices,
            self.dial_resolver or self.resolver,
            event_log=EventLog(self.events_path),
            receipts=receipts,
        )
        self.terminal = terminal
        await terminal.start()
        for companion in self.companions:
            await companion.start()
        return terminal

    def set_upstream(self, mode: str) -> None:
        """One of UPSTREAM_MODES: what the sandbox host and its name do from now on."""
        if mode not in UPSTREAM_MODES:
            known = ", ".join(UPSTREAM_MODES)
            raise ConfigError(f"upstream mode {mode!r} is unknown; modes: {known}")
        if self.direct is not None:
            raise ConfigError(
                f"upstream {mode!r}: the terminal dials {self.direct[0]}:{self.direct[1]} "
                "directly; make faults on the network (pitill.sim.netns), not here"
            )
        if self.proxy is not None:
            self.proxy.set_mode(mode)  # refuses what only a host of our own can do
            previous, self.upstream_mode = self.upstream_mode, mode
            self.resolver.set_failing(mode == "dns-fail")
        else:
            previous, self.upstream_mode = self.upstream_mode, mode
            self.resolver.set_failing(mode == "dns-fail")
            self.host.set_mode(HOST_MODES.get(mode, "up"))
            if mode in CHAOS_MODES or previous in CHAOS_MODES:  # leave others' fault plans
                self.host.set_chaos(CHAOS_MODES.get(mode))
        if self.terminal is not None:
            self.terminal.event_log.write(self.terminal.now_s(), "upstream", mode=mode)

    def swipe(self, pan: str, expiry_yymm: str, fmt: str = "track2") -> str:
        """Blocking: send a swipe through the pty and return the terminal's answer (ACK/NAK)."""
        return self.swipe_result(pan, expiry_yymm, fmt).describe()

    def swipe_result(self, pan: str, expiry_yymm: str, fmt: str = "track2") -> SwipeResult:
        """Blocking: swipe() with the answer as the emulator's SwipeResult."""
        assert self.emulator is not None
        track: Literal[1, 2] = 1 if fmt == "track1" else 2
        wire: Format = "lines" if fmt == "lines" else "framed"
        return self.emulator.swipe(pan, expiry_yymm, fmt=wire, track=track)

    def swipe_named(self, name: str, fmt: str = "track2") -> str:
        card = TEST_CARDS[name]
        return self.swipe(card.pan, card.expiry_yymm, fmt)

    def tap(self, kind: str, arg: str) -> str:
        """Tap a virtual NFC card on the emulated PN532: uid HEX, ntag424 NAME or clone NAME."""
        if self.nfc is None:
            raise ConfigError("the simulator has not started: no PN532 to tap on")
        return self.nfc.tap(kind, arg)

    def type_stripe(self, pan: str, expiry_yymm: str) -> str:
        """A swipe on the USB keyboard-wedge reader: both tracks typed as key events."""
        if self.wedge is None:
            raise ScriptError("type-stripe needs evdev: pip install 'pitill[usb]'")
        return self.wedge.type_stripe(pan, expiry_yymm)

    async def stop(self) -> None:
        for companion in self.companions:
            await companion.close()
        if self.terminal is not None:
            await self.terminal.stop()
        if self.nfc is not None:
            self.nfc.close()
        if self.wedge is not None:
            self.wedge.close()
        if self.proxy is not None:
            await self.proxy.close()
        elif self.direct is None:
            await self.host.close()
        if self.emulator is not None:
            self.emulator.close()
        if self._own_lock and self.lock is not None:
            self.lock.release()
        await asyncio.sleep(0)
