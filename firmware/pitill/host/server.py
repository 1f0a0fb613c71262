"""`pitill host serve`: the program's host on TCP, ISO 8583 behind a length prefix (2-byte binary
unless --length-prefix says otherwise; --bitmap likewise: upstream/wireformat.py).

With `tls` (a context from `server_context`) every terminal must present a certificate the
program's CA issued: one without is refused in the handshake; one whose terminal was revoked (or
re-enrolled with a new certificate) is closed at once; and a message whose field 41 is not the
certificate's terminal id is answered 58 (not permitted to this terminal) and changes nothing.

Each connection reads frames, answers each request in order, and never waits on another
connection: the store's work runs on one worker thread (SQLite takes one writer at a time, and
its BEGIN IMMEDIATE makes concurrent sales on one card, from any connection or host process,
take turns). A frame that is not a message pitill's wire (docs/iso8583.md) allows is answered 30
(format error) when its MTI can be read, and otherwise the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pitill.core.responses import APPROVED, FORMAT_ERROR, SYSTEM_MALFUNCTION
from pitill.errors import PitillError, ProtocolError, StorageError
from pitill.host.authorize import Answer, authorize
from pitill.host.pki import fingerprint_of, peer_terminal_id
from pitill.host.settlement import day_totals
from pitill.host.store import HostStore
from pitill.logs import log_event
from pitill.upstream.connect import close_stream
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import (
    ECHO_REQUEST,
    RECONCILIATION,
    Message,
    balance_amount,
    build_reconciliation_response,
    build_response,
    decode,
    encode,
    parse_batch,
    parse_request,
    reconciliation_of,
    response_mti,
)
from pitill.upstream.wireformat import DEFAULT_WIRE, WireFormat

log = logging.getLogger("pitill.host")

BALANCE_FIELD = "54"
DATA_FIELD = "48"
NOT_PERMITTED_TO_TERMINAL = "58"


def server_context(cert_file: Path, key_file: Path, ca_file: Path) -> ssl.SSLContext:
    """TLS 1.2+ with the host's certificate, requiring a client certificate from the CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


class HostServer:
    """Listens on host:port and answers every pitill terminal that connects."""

    def __init__(
        self,
        store: HostStore,
        host: str = "127.0.0.1",
        port: int = 8583,
        tls: ssl.SSLContext | None = None,
        *,
        open_store: Callable[[], HostStore] | None = None,
        workers: int = 1,
        wire: WireFormat = DEFAULT_WIRE,
    ) -> None:
        """`store` serves one worker thread; with `open_store` (PostgreSQL, which takes many
        writers) `workers` threads each open a connection of their own."""
        self.store = store
        self.tls = tls
        self.wire = wire  # bitmap encoding and length prefix, as the terminals' [upstream]
        self._open_store = open_store
        self._local = threading.local()
        self._opened: list[HostStore] = []
        self.host = host
        self.port = port
        self.instance = ""  # this process's address, in the links it records
        self.counts: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._worker = ThreadPoolExecutor(
            max_workers=workers if open_store is not None else 1,
            thread_name_prefix="pitill-host-store",
        )
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.tls is None:
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
        else:
            self._server = await asyncio.start_server(
                self._serve, self.host, self.port, ssl=self.tls, ssl_handshake_timeout=10.0
            )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        # the terminals' links this address recorded before a restart are gone
        self.instance = f"{socket.gethostname()}:{self.host}:{self.port}"
        await self._in_worker(lambda store: store.close_links(self.instance))

    async def _in_worker(self, work: Callable[[HostStore], object]) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, lambda: work(self._thread_store()))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        self._worker.shutdown(wait=True)
        for opened in self._opened:
            opened.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        peer = writer.get_extra_info("peername")
        speaker: str | None = None  # the terminal id a client certificate proves
        link_id: int | None = None  # this connection's row in `links` (the outage view)
        try:
            if self.tls is not None:
                speaker = await self._enrolled(writer)
                if speaker is None:
                    return
            while True:
                try:
                    data = await read_frame(reader, wire=self.wire)
                except ProtocolError as exc:
                    log_event(log, "frame_refused", level=logging.WARNING, peer=peer, error=exc)
                    return
                if data is None:
                    return
                answer = await self._answer(data, speaker)
                if answer is None:
                    return
                if link_id is None and (speaker or answer.get("41")):
                    link_id = await self._link_up(speaker or answer["41"])
                writer.write(frame(encode(answer, self.wire), wire=self.wire))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if link_id is not None:
                down = link_id
                await self._link(lambda store: store.link_down(down))
            if task is not None:
                self._connections.discard(task)
            with contextlib.suppress(Exception):
                await close_stream(writer)

    async def _link_up(self, terminal_id: str) -> int | None:
        return await self._link(lambda store: store.link_up(terminal_id, self.instance))

    async def _link(self, work: Callable[[HostStore], int | None]) -> int | None:
        """Record a link going up or down; a store failure here never drops a terminal."""
        try:
            result = await asyncio.shield(self._in_worker(work))
        except Exception as exc:  # a side record, never the terminal's answer
            log_event(log, "link_not_recorded", level=logging.WARNING, error=exc)
            return None
        return result if isinstance(result, int) else None

    def _thread_store(self) -> HostStore:
        """The store of the calling worker thread (its own connection with open_store)."""
        if self._open_store is None:
            return self.store
        store: HostStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._open_store()
            self._local.store = store
            self._opened.append(store)
        return store

    async def _enrolled(self, writer: asyncio.StreamWriter) -> str | None:
        """The terminal id of the peer's certificate, if that certificate is the one its
        terminal is enrolled with and the terminal is not revoked; else None."""
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        terminal_id = peer_terminal_id(der)
        if der is None or terminal_id is None:
            return None
        loop = asyncio.get_running_loop()
        enrolled = await loop.run_in_executor(
            self._worker, lambda: self._thread_store().terminal(terminal_id)
        )
        if (
            enrolled is None
            or enrolled.status != "active"
            or enrolled.fingerprint != fingerprint_of(der)
        ):
            self.counts["refused_terminal"] += 1
            log_event(log, "terminal_refused", level=logging.WARNING, terminal_id=terminal_id)
            return None
        return terminal_id

    async def _reconcile(self, message: Message, speaker: str | None) -> Message:
        """0510 to an 0500 (end of day): this host's own totals of that terminal's day from its
        tables (host/settlement.py); 00 when they equal the terminal's, 95 when they do not."""
        terminal_id = message.get("41", "")
        try:
            batch = parse_batch(message)
            theirs = reconciliation_of(message)
        except ProtocolError as exc:
            self.counts["format_error"] += 1
            log_event(log, "format_error", level=logging.WARNING, error=exc)
            return build_response(message, FORMAT_ERROR)
        if speaker is not None and terminal_id != speaker:
            self.counts["impersonation"] += 1
            return build_response(message, NOT_PERMITTED_TO_TERMINAL)
        loop = asyncio.get_running_loop()
        try:
            ours = await loop.run_in_executor(
                self._worker, lambda: day_totals(self._thread_store(), terminal_id, batch)
            )
        except (StorageError, PitillError) as exc:
            self.counts["store_failed"] += 1
            log_event(log, "store_failed", level=logging.ERROR, error=exc)
            return build_response(message, SYSTEM_MALFUNCTION)
        agrees = ours == theirs
        self.counts["day_agreed" if agrees else "day_disagreed"] += 1
        level = logging.INFO if agrees else logging.WARNING
        differ = "; ".join(theirs.differences(ours))
        log_event(log, "day_checked", level=level, terminal_id=terminal_id, day=batch.day,
                  agrees=agrees, differ=differ)  # fmt: skip
        return build_reconciliation_response(message, agrees, ours)

    async def _answer(self, data: bytes, speaker: str | None = None) -> Message | None:
        """The response to one frame, or None to close the connection."""
        try:
            message = decode(data, self.wire)
        except ProtocolError:
            self.counts["undecodable"] += 1
            return None
        if message.get("t") == RECONCILIATION:
            return await self._reconcile(message, speaker)
        try:
            request = parse_request(message)
        except ProtocolError as exc:
            self.counts["format_error"] += 1
            log_event(log, "format_error", level=logging.WARNING, error=exc)
            try:
                response_mti(message.get("t", ""))
            except ProtocolError:
                return None
            return build_response(message, FORMAT_ERROR)
        if speaker is not None and request.terminal_id not in ("", speaker):
            self.counts["impersonation"] += 1
            log_event(
                log, "other_terminal_id", level=logging.WARNING, speaker=speaker,
                claimed=request.terminal_id,
            )  # fmt: skip
            return build_response(message, NOT_PERMITTED_TO_TERMINAL)
        loop = asyncio.get_running_loop()
        if speaker is not None and request.mti != ECHO_REQUEST:
            await loop.run_in_executor(
                self._worker, lambda: self._thread_store().seen(speaker, request.stan)
            )
        try:
            answer: Answer = await loop.run_in_executor(
                self._worker, lambda: authorize(self._thread_store(), request)
            )
        except (StorageError, PitillError) as exc:
            self.counts["store_failed"] += 1
            log_event(log, "store_failed", level=logging.ERROR, error=exc)
            return build_response(message, SYSTEM_MALFUNCTION)  # retry later: nothing changed
        self.counts["duplicate" if answer.duplicate else answer.response_code] += 1
        response = build_response(message, answer.response_code, answer.auth_code)
        if answer.data:
            response[DATA_FIELD] = answer.data
        if answer.balance_minor is not None and answer.response_code in (APPROVED, "51"):
            response[BALANCE_FIELD] = balance_amount(answer.balance_minor, request.currency_numeric)
        return response
