"""A fault proxy between the simulated terminal and a host the simulator does not own.

`pitill sim --upstream HOST:PORT` dials a real host (a `pitill acquirer` or `pitill host serve`
started separately, a jPOS test host, a program's own host) through this proxy on 127.0.0.1, so
the script's `upstream` faults still apply to the real connection where a network can cause them:

- up: bytes pass both ways untouched (TLS too: the proxy never looks inside);
- down: the proxy stops listening and resets every open connection (connection refused);
- blackhole: connections are accepted and whatever the terminal sends is swallowed;
- slow: every chunk from the host is held back SLOW_ANSWER_S first;
- dns-fail: the terminal's resolver fails for the host's name (the proxy keeps passing bytes,
  so a terminal that remembers the address rides it out, as with the sandbox host).

`failing` (a host answering 91) needs a host that answers for itself: refused here, by name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from pitill.errors import ConfigError
from pitill.sim.script import SLOW_ANSWER_S

PROXY_MODES = ("up", "down", "blackhole", "slow", "dns-fail")
CHUNK = 65536


class FaultProxy:
    """Listens on 127.0.0.1 and relays each connection to target_host:target_port."""

    def __init__(self, target_host: str, target_port: int, port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = port
        self.mode = "up"
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._switching: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def set_mode(self, mode: str) -> None:
        if mode not in PROXY_MODES:
            raise ConfigError(
                f"upstream {mode!r} cannot be made on a host the simulator does not run "
                f"(--upstream); it can do: {', '.join(PROXY_MODES)}"
            )
        previous, self.mode = self.mode, mode
        if mode == "down" and previous != "down":
            self._switch(self._go_down())
        elif previous == "down" and mode != "down":
            self._switch(self.start())

    def _switch(self, action: Coroutine[Any, Any, None]) -> None:
        """Stop or start listening, after any switch still under way (in the order asked)."""
        before = self._switching

        async def in_turn() -> None:
            if before is not None:
                await before
            await action

        self._switching = asyncio.ensure_future(in_turn())

    async def _go_down(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()  # a reset, as when the host's process dies
        self.counts["downs"] += 1

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.counts["connections"] += 1
        self._writers.add(client_w)
        task = asyncio.current_task()
        if task is not None:
            self._pipes.add(task)
        try:
            if self.mode == "blackhole":
                self.counts["blackholed"] += 1
                while await client_r.read(CHUNK):
                    pass  # swallowed
                return
            try:
                host_r, host_w = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                self.counts["target_refused"] += 1
                return
            self._writers.add(host_w)
            try:
                await asyncio.gather(
                    self._pipe(client_r, host_w, towards_host=True),
                    self._pipe(host_r, client_w, towards_host=False),
                )
            finally:
                self._writers.discard(host_w)
                host_w.close()
        finally:
            self._writers.discard(client_w)
            if task is not None:
                self._pipes.discard(task)
            with contextlib.suppress(Exception):
                client_w.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, towards_host: bool
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                if self.mode == "blackhole":
                    continue  # a host that went silent mid-connection
                if not towards_host and self.mode == "slow":
                    await asyncio.sleep(SLOW_ANSWER_S)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def close(self) -> None:
        if self._switching is not None:
            await self._switching
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            transport = writer.transport
            if isinstance(transport, asyncio.Transport):
                transport.abort()  # every relay sees its end and returns
        await asyncio.gather(*self._pipes, return_exceptions=True)
