"""UpstreamClient: the terminal's one persistent TCP (or TLS) connection to the authorization host.

One request in flight at a time, except advices and reversals: the forwarder keeps up to
upstream.forward_window of them in flight, each answer matched by STAN (window.py). The
connection is opened on first use and after any failure;
after a failure it is dropped, so a late answer can never be read as the answer to a later request.
Before each request, frames already received are discarded, and only an answer that matches the
request (MTI pair, STAN, terminal id, amount, transmission time) is taken (see exchange.py).
Opening tries the configured hosts in order (primary first, each within connect_timeout_s); a
request is never sent to a second host once it went out to one (its outcome there is unknown).

What the caller learns from an exception:
- UnreachableError (reason DNS, REFUSED, TIMEOUT, RESET, UNREACHABLE, TLS): nothing was sent
  (to any host), the sale is not authorized and nothing needs reversing.
- OutcomeUnknown (an UpstreamTimeout; reason TIMEOUT, RESET, PROTOCOL): the request went out and
  no usable answer came. The host may have approved it: reverse it.
Each failure, each transient response code, and each answer to a real request that came later
than slow_threshold_s (SLOW) is also reported to `on_signal`, the monitor's passive input; each
useful answer to a real request (approved or a final decline, not an echo) to `on_answer`, so
the monitor can tell a host that answers echoes but fails requests.

The link monitor watches this same connection (monitor.py): TCP keepalive is tuned on it when
the client is given a KeepAlive, `open` lets the monitor (re)connect within its own bound and
go back to the primary, `heard_at_s` says when an answer last came (real answers are the
monitor's passive probes), and 0800s and 0500s take their STAN from `stans`, the terminal's one
counter.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from pitill.config import TerminalConfig, UpstreamConfig
from pitill.core.responses import APPROVED, ResponseClass
from pitill.core.settlement import Reconciliation
from pitill.core.txn import Txn
from pitill.errors import ProtocolError
from pitill.records import ForwardItem, ForwardKind, HotlistPage
from pitill.upstream.connect import Connection, Endpoint, close_stream, connect_first
from pitill.upstream.exchange import Drop, await_response, discard_stale, send_request
from pitill.upstream.failures import LinkReason, OutcomeUnknown, UnreachableError
from pitill.upstream.framing import MAX_FRAME
from pitill.upstream.keepalive import KeepAlive, tune
from pitill.upstream.messages import (
    ECHO_RESPONSE,
    AuthAnswer,
    Batch,
    Message,
    build_advice,
    build_echo,
    build_hotlist_request,
    build_reconciliation,
    build_reversal,
    build_sale_request,
    parse_answer,
    parse_hotlist,
    reconciliation_of,
    transmission_stamp,
)
from pitill.upstream.resolver import Resolver
from pitill.upstream.tls import client_context
from pitill.upstream.window import Streams, Window
from pitill.upstream.wireformat import DEFAULT_WIRE, WireFormat

log = logging.getLogger(__name__)

SignalHook = Callable[[LinkReason], None]
"""Told why a request failed (or that the host answered with a retry code)."""

AnswerHook = Callable[[], None]
"""Told that a real request got a useful answer."""

StanSource = Callable[[], int]
"""The next STAN (1..999999) for a message that has no transaction of its own (an 0800, an
0500). The shell injects the journal's counter, so such a message never reuses a sale's STAN;
upstream/ does not import the journal."""

Fresh = Callable[[int], Message]
"""A message of no transaction (0800, 0500), built with its STAN (from `stans`) only once the
connection is ready: a STAN is spent on a message that goes out, not on every probe that finds
the host unreachable."""


def _cycling_stans() -> StanSource:
    """A counter of its own, for a client without a terminal (tests, tools)."""
    return itertools.cycle(range(1, 1_000_000)).__next__


@dataclass(frozen=True)
class Opened:
    """The connection `open` left in place, the failures of the hosts tried before it, and
    whether it was opened just now."""

    connection: Connection
    failures: list[UnreachableError]
    fresh: bool


def _utc_now() -> datetime:
    return datetime.now(UTC)


class UpstreamClient:
    def __init__(
        self,
        host: str,
        port: int,
        resolver: Resolver,
        terminal: TerminalConfig,
        *,
        request_timeout_s: float = 3.0,
        connect_timeout_s: float = 3.0,
        max_frame: int = MAX_FRAME,
        on_signal: SignalHook | None = None,
        on_answer: AnswerHook | None = None,
        wall_clock: Callable[[], datetime] = _utc_now,
        fallbacks: Sequence[tuple[str, int]] = (),
        tls: ssl.SSLContext | None = None,
        keepalive: KeepAlive | None = None,
        stans: StanSource | None = None,
        wire: WireFormat = DEFAULT_WIRE,
        slow_threshold_s: float | None = None,
    ) -> None:
        self.host = host
        self.wire = wire  # bitmap encoding and length prefix the host speaks
        self.port = port
        # Tried in order when (re)connecting: host:port, then each fallback (secondary...).
        self.endpoints = (Endpoint(host, port), *(Endpoint(*pair) for pair in fallbacks))
        self._tls = tls
        self._resolver = resolver
        self._terminal = terminal
        self._request_timeout_s = request_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._max_frame = max_frame
        self.on_signal = on_signal
        self.on_answer = on_answer
        # A real request answered later than this is a passive signal (SLOW); None: never.
        self.slow_threshold_s = slow_threshold_s
        self._wall_clock = wall_clock
        self.keepalive = keepalive
        self.stans = stans or _cycling_stans()
        self._lock = asyncio.Lock()
        self._current: Connection | None = None
        self._failures: list[UnreachableError] = []  # of the hosts tried before the current one
        self.heard_at_s: float | None = None  # loop time of the latest answer matched
        self.counts: Counter[str] = Counter()  # connects, fallbacks, echoes, dropped frames
        self._queued = 0  # sales and echoes waiting for the connection: a window yields to them
        # Requests that waited their whole timeout. One that times out while others queue behind
        # it is conclusive for them too: they fail at once, unsent (a customer waits one timeout,
        # never the background 0800's and then their own).
        self._timeouts = 0
        self._window = Window(
            self._hold,
            max_frame=max_frame,
            counts=self.counts,
            on_failure=self._signal,
            yield_to=lambda: self._queued > 0,
            wire=wire,
        )

    @classmethod
    def from_config(
        cls,
        upstream: UpstreamConfig,
        terminal: TerminalConfig,
        resolver: Resolver,
        on_signal: SignalHook | None = None,
        on_answer: AnswerHook | None = None,
        tls: ssl.SSLContext | None = None,
        stans: StanSource | None = None,
    ) -> UpstreamClient:
        """The client of upstream's hosts; tls defaults to the context the config asks for."""
        (host, port), *fallbacks = upstream.endpoints()
        return cls(
            host,
            port,
            resolver,
            terminal,
            request_timeout_s=upstream.request_timeout_s,
            connect_timeout_s=upstream.request_timeout_s,
            on_signal=on_signal,
            on_answer=on_answer,
            fallbacks=fallbacks,
            tls=tls if tls is not None else client_context(upstream),
            keepalive=KeepAlive(
                idle_s=upstream.keepalive_idle_s,
                interval_s=upstream.keepalive_idle_s,
                user_timeout_s=upstream.tcp_user_timeout_s,
            ),
            stans=stans,
            wire=upstream.wire,
            slow_threshold_s=upstream.slow_threshold_s,
        )

    @property
    def connected(self) -> bool:
        return self._current is not None and _usable(*self._current.streams)

    @property
    def current(self) -> Connection | None:
        """The connection in place (usable or not: the monitor reads why it broke), or None."""
        return self._current

    async def open(self, timeout_s: float, first: int = 0) -> Opened:
        """Have a connection to one of endpoints[first:] (each tried within timeout_s).

        A usable connection to endpoints[first] is kept. One to a later host (a fallback) is
        kept unless a host before it accepts now: the terminal goes back to its primary. One to
        an earlier host is closed (the caller saw it fail). Raises UnreachableError when no
        host is left to use. Nothing is reported to on_signal: the caller observes.
        """
        async with self._turn():
            current = self._current if self.connected else None
            index = self.endpoints.index(current.endpoint) if current is not None else None
            if current is None or index is None or index < first:
                await self._drop()
                connection, failures = await self._connect(self.endpoints[first:], timeout_s)
                self._adopt(connection, failures)
                return Opened(connection, failures, fresh=True)
            if index == first:
                return Opened(current, self._failures, fresh=False)
            try:
                connection, failures = await self._connect(self.endpoints[first:index], timeout_s)
            except UnreachableError as exc:
                return Opened(current, [exc], fresh=False)  # still on the fallback, fresh reason
            await self._drop()
            self._adopt(connection, failures)
            return Opened(connection, failures, fresh=True)

    async def exchange(
        self,
        message: Message | Fresh,
        timeout_s: float | None = None,
        *,
        signal: bool = True,
        slow: bool = True,
    ) -> Message:
        """Send `message` and return the response with its MTI and STAN.

        A Fresh message is built with the next STAN of `stans` once the connection is ready.
        timeout_s bounds the wait for the answer once sent (connecting has its own bound).
        signal=False: a failure is not reported to on_signal (the monitor's own echoes).
        slow=False: a slow answer is no SLOW signal (the 0500 and the hotlist: a host may take
        its time over a day's totals or a long list; only authorizations and echoes measure it).
        """
        wait_s = self._request_timeout_s if timeout_s is None else timeout_s
        async with self._turn():
            try:
                reader, writer = await self._connection()
                if not await discard_stale(reader, self._max_frame, self.counts, wire=self.wire):
                    await self._drop()  # out of step, or gone: a fresh connection has no leftovers
                    reader, writer = await self._connection()
                request = message(self.stans()) if callable(message) else message
                await send_request(writer, request, self._max_frame, self.wire)
                sent_s = asyncio.get_running_loop().time()
                dropped_before = self._dropped()
                try:
                    async with asyncio.timeout(wait_s):
                        answer = await await_response(
                            reader, request, self._max_frame, self.counts, wire=self.wire
                        )
                    self.heard_at_s = asyncio.get_running_loop().time()
                    slow_s = self.slow_threshold_s
                    if signal and slow and slow_s is not None and self.heard_at_s - sent_s > slow_s:
                        self._signal(LinkReason.SLOW)  # answered, but slowly: a passive signal
                    return answer
                except OutcomeUnknown:
                    raise  # is a TimeoutError too: keep its own reason
                except TimeoutError:
                    self._timeouts += 1
                    dropped = self._dropped() - dropped_before
                    but = f" ({dropped} frame(s) that did not answer it dropped)" if dropped else ""
                    raise OutcomeUnknown(
                        LinkReason.TIMEOUT,
                        f"{request['t']} STAN {request['11']}: no answer within {wait_s:g} s{but}",
                    ) from None
            except (UnreachableError, OutcomeUnknown) as exc:
                await self._drop()
                if signal:
                    self._signal(exc.reason)
                raise
            except asyncio.CancelledError:
                self._abandon()  # a half-read answer would leave the stream out of step
                raise

    async def authorize(
        self, txn: Txn, local_datetime: str, timeout_s: float | None = None
    ) -> AuthAnswer:
        """0200 for an online card sale; the host's answer, approved or declined."""
        request = build_sale_request(txn, local_datetime, self._terminal)
        return await self._answered(request, timeout_s)

    async def send_advice(self, item: ForwardItem, timeout_s: float | None = None) -> str:
        """0220/0221 for an offline sale; the host's response code. Several may be in flight."""
        answer = await self._forwarded(build_advice(item, self._terminal), timeout_s)
        return answer.response_code

    async def send_reversal(self, item: ForwardItem, timeout_s: float | None = None) -> str:
        """0420/0421 reversing a 0200 whose outcome was unknown; the host's response code.
        Several may be in flight."""
        answer = await self._forwarded(build_reversal(item, self._terminal), timeout_s)
        return answer.response_code

    async def forward(self, item: ForwardItem, timeout_s: float | None = None) -> str:
        """The advice or reversal for a forwarder work item; the host's response code."""
        if item.kind is ForwardKind.REVERSAL:
            return await self.send_reversal(item, timeout_s)
        return await self.send_advice(item, timeout_s)

    async def reconcile(
        self, batch: Batch, totals: Reconciliation, currency: str, timeout_s: float | None = None
    ) -> tuple[str, Reconciliation | None]:
        """0500 for a closed day; the 0510's field 39 and the host's own totals (74-89, None
        when it sent none)."""
        stamp = transmission_stamp(self._wall_clock())
        response = await self.exchange(
            lambda stan: build_reconciliation(batch, totals, currency, stan, stamp, self._terminal),
            timeout_s,
            slow=False,
        )
        try:
            answer = parse_answer(response)
            theirs = reconciliation_of(response) if "76" in response else None
        except ProtocolError as exc:  # sent, and what came back cannot be used
            self._signal(LinkReason.PROTOCOL)
            raise OutcomeUnknown(LinkReason.PROTOCOL, f"unusable 0510: {exc}") from None
        return answer.response_code, theirs

    async def echo(self, timeout_s: float | None = None, *, signal: bool = True) -> str:
        """0800 echo test on the persistent connection; the host's response code.

        Its STAN comes from `stans`. signal=False: failures go only to the caller (the monitor).
        """
        stamp = transmission_stamp(self._wall_clock())
        terminal_id = self._terminal.terminal_id
        self.counts["echoes"] += 1
        answer = await self._answered(
            lambda stan: build_echo(stan, stamp, terminal_id), timeout_s, signal=signal
        )
        return answer.response_code

    async def fetch_hotlist(
        self, version: int, timeout_s: float | None = None
    ) -> HotlistPage | None:
        """0800 (field 70 890) for the hotlist's changes after `version`; None when the host
        keeps no hotlist or does not answer 00."""
        stamp = transmission_stamp(self._wall_clock())
        terminal_id = self._terminal.terminal_id
        response = await self.exchange(
            lambda stan: build_hotlist_request(stan, stamp, terminal_id, version),
            timeout_s,
            slow=False,
        )
        if parse_answer(response).response_code != APPROVED:
            return None
        try:
            return parse_hotlist(response)
        except ProtocolError:
            self._signal(LinkReason.PROTOCOL)
            raise

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    # --- internals ---------------------------------------------------------------------------

    async def _answered(
        self, request: Message | Fresh, timeout_s: float | None, *, signal: bool = True
    ) -> AuthAnswer:
        response = await self.exchange(request, timeout_s, signal=signal)
        return self._read_answer(response, None if signal else _never)

    async def _forwarded(self, request: Message, timeout_s: float | None) -> AuthAnswer:
        """Through the window: a window of answers saying 91 is one signal, as one answer was."""
        wait_s = self._request_timeout_s if timeout_s is None else timeout_s
        response = await self._window.exchange(request, wait_s)
        return self._read_answer(response, self._window.signal_once)

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """The connection's lock for one request; while waiting for it, no newcomer joins a
        window of advices (window.py), so the request waits one window at most."""
        self._queued += 1
        timeouts_before = self._timeouts
        try:
            await self._lock.acquire()
        finally:
            self._queued -= 1
        try:
            if self._timeouts != timeouts_before:
                raise UnreachableError(
                    LinkReason.TIMEOUT,
                    "not sent: the request before it got no answer within its timeout",
                )
            yield
        finally:
            self._lock.release()

    @asynccontextmanager
    async def _hold(self) -> AsyncIterator[Streams]:
        """The connection for one window of requests (window.py); an error inside drops it."""
        async with self._lock:
            try:
                reader, writer = await self._connection()
                if not await discard_stale(reader, self._max_frame, self.counts, wire=self.wire):
                    await self._drop()  # out of step, or gone: a fresh connection has no leftovers
                    reader, writer = await self._connection()
            except UnreachableError as exc:
                await self._drop()
                self._signal(exc.reason)
                raise
            try:
                yield reader, writer
            except BaseException:
                self._abandon()  # a failed window: no late answer may meet a later request
                raise

    def _read_answer(
        self,
        response: Message,
        signal_once: Callable[[LinkReason], bool] | None = None,
    ) -> AuthAnswer:
        """The answer read; `signal_once` says whether a failure or retry is signalled (None:
        always)."""
        self.heard_at_s = asyncio.get_running_loop().time()  # a real answer is a passive probe
        should = signal_once or _always
        try:
            answer = parse_answer(response)
        except ProtocolError as exc:  # sent, and what came back cannot be used
            if should(LinkReason.PROTOCOL):
                self._signal(LinkReason.PROTOCOL)
            raise OutcomeUnknown(LinkReason.PROTOCOL, f"unusable answer: {exc}") from None
        if answer.response_class is ResponseClass.RETRY:
            if should(LinkReason.RETRY):
                self._signal(LinkReason.RETRY)
        elif response["t"] != ECHO_RESPONSE and self.on_answer is not None:
            self.on_answer()  # an echo answered proves little about sales
        return answer

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._current is not None and not self.connected:
            await self._drop()  # the host closed it while we were idle
        if self._current is None:
            connection, failures = await self._connect(self.endpoints, self._connect_timeout_s)
            self._adopt(connection, failures)
        assert self._current is not None
        return self._current.streams

    async def _connect(
        self, endpoints: Sequence[Endpoint], timeout_s: float
    ) -> tuple[Connection, list[UnreachableError]]:
        connection, failures = await connect_first(self._resolver, endpoints, timeout_s, self._tls)
        if self.keepalive is not None:
            sock = connection.writer.get_extra_info("socket")
            if sock is not None:
                tune(sock, self.keepalive)
        return connection, failures

    def _adopt(self, connection: Connection, failures: list[UnreachableError]) -> None:
        if failures:
            self.counts["fallbacks"] += 1
            log.info("connected to %s; before it: %s", connection.endpoint, failures[0])
        self._current, self._failures = connection, failures
        self.counts["connects"] += 1

    def _dropped(self) -> int:
        return sum(self.counts[drop.value] for drop in Drop)

    def _abandon(self) -> None:
        """Close without waiting (we may be being cancelled): the next request reconnects."""
        current, self._current = self._current, None
        if current is not None:
            current.writer.close()

    def discard(self, connection: Connection) -> None:
        """Close `connection` if it is still the one in place (the monitor saw it break)."""
        if self._current is connection:
            self._abandon()

    @property
    def busy(self) -> bool:
        """A request (or an echo) is under way: its own failure will be reported."""
        return self._lock.locked()

    async def _drop(self) -> None:
        current, self._current = self._current, None
        if current is None:
            return
        await close_stream(current.writer)

    def _signal(self, reason: LinkReason) -> None:
        if self.on_signal is not None:
            self.on_signal(reason)


def _always(reason: LinkReason) -> bool:
    return True


def _never(reason: LinkReason) -> bool:
    return False


def _usable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    return not (writer.is_closing() or reader.at_eof() or reader.exception() is not None)
