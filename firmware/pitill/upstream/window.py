"""Window: several requests in flight on the one upstream connection, each answer matched to its
request by STAN.

The forwarder sends up to upstream.forward_window advices (or reversals) before the first answer
comes back, so a backlog drains at about window / round trip instead of 1 / round trip (33 a
second over a 30 ms WAN). Each caller of `exchange` gets the answer to its own request, whatever
order the host answers in:

- A session holds the connection (the client's lock, so a sale or echo waits for it) from the
  first request until no request is in flight; frames received before it began are discarded
  (the client's hold does that). While a sale or echo waits for the connection (`yield_to`), the
  session takes no newcomers: they queue behind the sale, which waits one window at most.
- One reader task reads every frame and hands each to the request whose STAN (field 11) it
  carries, when it also has that request's response MTI, terminal id (41), amount (4) and
  transmission time (7) (exchange.mismatch). Anything else (a STAN not in
  flight, a late answer, a lie) is dropped and counted, never taken as an answer.
- Two requests in flight with one STAN would make an answer ambiguous: the second is refused.
- The first failure ends the session for everyone in flight: a request without an answer within
  its timeout, a reset, an unreadable stream. The connection is dropped (so no late answer can
  reach a later request), every request still in flight gets OutcomeUnknown (it was sent: the
  host may hold it), and the link monitor hears of it once, not once per request.
- A caller cancelled while others wait just leaves; the last one leaving drops the connection
  (the reader may be inside a frame).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from pitill.errors import ProtocolError
from pitill.upstream.exchange import DROPS, Drop, DropLog, describe, mismatch, send_request
from pitill.upstream.failures import LinkReason, OutcomeUnknown, reason_for_os_error
from pitill.upstream.framing import MAX_FRAME, read_frame
from pitill.upstream.messages import Message, decode
from pitill.upstream.wireformat import DEFAULT_WIRE, WireFormat

log = logging.getLogger(__name__)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Hold = Callable[[], AbstractAsyncContextManager[Streams]]
"""Exclusive use of the open connection for one session; leaving it with an exception drops it."""

FailureHook = Callable[[LinkReason], None]

_IDLE_TURNS = 3  # loop turns an idle session waits for a next request before it lets go


class _Session:
    """The requests in flight on one held connection, and its reader."""

    def __init__(
        self,
        streams: Streams,
        max_frame: int,
        counts: Counter[str],
        drops: DropLog,
        joining: Callable[[], bool],
        yield_to: Callable[[], bool],
        wire: WireFormat = DEFAULT_WIRE,
    ) -> None:
        self.reader, self.writer = streams
        self._wire = wire
        self._joining = joining
        self._yield_to = yield_to
        self._max_frame = max_frame
        self._counts = counts
        self._drops = drops
        self.pending: dict[str, tuple[Message, asyncio.Future[Message]]] = {}
        self.failure: OutcomeUnknown | None = None
        self.closing = False  # the reader has let go: no new request may join
        self.signalled: set[LinkReason] = set()  # reasons already told to the monitor
        self.reader_task: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.failure is None and not self.closing and not self._yield_to()

    def fail(self, failure: OutcomeUnknown) -> None:
        """End the session: every request in flight gets `failure` (first failure wins)."""
        if self.failure is not None:
            return
        self.failure = failure
        for request, answer in self.pending.values():
            if not answer.done():  # each caller its own exception: they are raised in many tasks
                what = f"{request['t']} STAN {request['11']}: given up with its window: "
                answer.set_exception(OutcomeUnknown(failure.reason, what + str(failure)))
        self.pending.clear()
        if self.reader_task is not None and self.reader_task is not asyncio.current_task():
            self.reader_task.cancel()

    async def read(self) -> None:
        """Hand each frame to its request until nothing is in flight (or the session fails)."""
        while self.failure is None:
            if not self.pending:
                for _ in range(_IDLE_TURNS):  # the forwarder refills the window within a turn
                    await asyncio.sleep(0)
                    if self.pending or self.failure is not None:
                        break
                else:
                    if self._joining() and self.open:
                        continue  # a caller is on its way in (it saw this session start)
                    self.closing = True  # at a frame boundary: the connection stays usable
                    return
                continue
            self._take(await self._next_frame())

    async def _next_frame(self) -> bytes | None:
        what = f"{len(self.pending)} request(s) in flight"
        try:
            payload = await read_frame(self.reader, self._max_frame, self._wire)
        except ProtocolError as exc:
            self.fail(OutcomeUnknown(LinkReason.PROTOCOL, f"{what}: unreadable stream: {exc}"))
            return None
        except OSError as exc:
            reason = reason_for_os_error(exc)
            self.fail(OutcomeUnknown(reason, f"{what}: connection lost before the answers: {exc}"))
            return None
        if payload is None:
            self.fail(OutcomeUnknown(LinkReason.RESET, f"{what}: host closed before answering"))
        return payload

    def _take(self, payload: bytes | None) -> None:
        if payload is None:
            return
        try:
            message = decode(payload, self._wire)
        except ProtocolError as exc:
            self._drops.dropped(Drop.GARBAGE, f"in a window: {exc}", self._counts)
            return
        stan = message.get("11", "")
        waiting = self.pending.get(stan)
        if waiting is None:
            self._drops.dropped(
                Drop.OTHER_STAN, f"{describe(message)}: no request in flight has it", self._counts
            )
            return
        request, answer = waiting
        drop = mismatch(request, message)
        if drop is not None:
            what = f"{describe(message)} awaiting {request['t']} STAN {request['11']}"
            self._drops.dropped(drop, what, self._counts)
            return
        del self.pending[stan]
        answer.set_result(message)

    async def exchange(self, request: Message, timeout_s: float) -> Message:
        stan = request["11"]
        if stan in self.pending:
            raise ValueError(f"STAN {stan} is already in flight: an answer would be ambiguous")
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.pending[stan] = (request, answer)
        try:
            await send_request(self.writer, request, self._max_frame, self._wire)
            async with asyncio.timeout(timeout_s):
                return await answer
        except OutcomeUnknown:
            raise  # the session failed (is a TimeoutError too: keep its own reason)
        except TimeoutError:
            self.fail(
                OutcomeUnknown(
                    LinkReason.TIMEOUT,
                    f"{request['t']} STAN {stan}: no answer within {timeout_s:g} s"
                    f" ({len(self.pending)} other request(s) in flight given up with it)",
                )
            )
            failure = self.failure
            assert failure is not None
            raise OutcomeUnknown(failure.reason, str(failure)) from None
        except BaseException as exc:
            # Not sent (UnreachableError), or the caller was cancelled: this one leaves. The
            # reader may be inside a frame now: when nobody is left, drop the connection.
            if self.pending.get(stan, (None, None))[1] is answer:
                del self.pending[stan]
            if not self.pending and self.failure is None and not self.closing:
                why = "the connection broke" if isinstance(exc, OSError) else "cancelled"
                self.fail(OutcomeUnknown(LinkReason.RESET, f"window abandoned: {why}"))
            raise


class Window:
    """Requests in flight at once on the connection `hold` gives; see the module docstring."""

    def __init__(
        self,
        hold: Hold,
        *,
        max_frame: int = MAX_FRAME,
        counts: Counter[str] | None = None,
        on_failure: FailureHook = lambda reason: None,
        drops: DropLog | None = None,
        yield_to: Callable[[], bool] = lambda: False,
        wire: WireFormat = DEFAULT_WIRE,
    ) -> None:
        self._hold = hold
        self._yield_to = yield_to
        self._wire = wire  # [upstream] bitmap and length_prefix
        self._max_frame = max_frame
        self._counts: Counter[str] = counts if counts is not None else Counter()
        self._on_failure = on_failure
        self._drops = drops or DROPS
        self._session: _Session | None = None
        self._starting: asyncio.Future[_Session] | None = None
        self._joining = 0  # callers waiting for a session to start
        self.sessions = 0  # sessions begun: one per burst of requests, for tests and logs

    @property
    def in_flight(self) -> int:
        return len(self._session.pending) if self._session is not None else 0

    async def exchange(self, request: Message, timeout_s: float) -> Message:
        """Send `request`, return its answer; OutcomeUnknown when it was sent and no usable
        answer came, UnreachableError when it could not be sent."""
        self._joining += 1  # an idle session waits for us instead of letting go
        try:
            session = await self._joined()
        finally:
            self._joining -= 1
        return await session.exchange(request, timeout_s)  # in flight before its first await

    def signal_once(self, reason: LinkReason) -> bool:
        """True the first time `reason` is to be told in the current session (a window of
        answers all saying 91 is one signal to the monitor, as one answer was before)."""
        session = self._session
        if session is None:
            return True
        if reason in session.signalled:
            return False
        session.signalled.add(reason)
        return True

    async def _joined(self) -> _Session:
        """The open session, or a new one once the connection is ours (shared by the callers
        arriving meanwhile)."""
        while True:
            session = self._session
            if session is not None and session.open:
                return session
            if self._starting is None or self._starting.done():
                self._starting = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().create_task(
                    self._run(self._starting), name="upstream-window"
                )
            # shield: one caller cancelled while waiting must not stop the start for the others
            await asyncio.shield(self._starting)

    async def _run(self, started: asyncio.Future[_Session]) -> None:
        session: _Session | None = None
        try:
            async with self._hold() as streams:
                session = _Session(
                    streams,
                    self._max_frame,
                    self._counts,
                    self._drops,
                    lambda: self._joining > 0,
                    self._yield_to,
                    self._wire,
                )
                session.reader_task = asyncio.current_task()
                self._session = session
                self.sessions += 1
                started.set_result(session)
                try:
                    await session.read()
                except asyncio.CancelledError:
                    if session.failure is None:  # not our own fail(): the task was cancelled
                        raise
                    if (task := asyncio.current_task()) is not None:
                        task.uncancel()
                if session.failure is not None:
                    raise session.failure  # leaves the hold with an error: the connection drops
        except OutcomeUnknown as failure:
            if session is not None and failure is session.failure:
                self._tell(session, failure.reason)
            else:
                _reject(started, failure)
        except asyncio.CancelledError:
            if session is not None:
                session.fail(OutcomeUnknown(LinkReason.RESET, "window cancelled"))
            _reject(started, OutcomeUnknown(LinkReason.RESET, "window cancelled"))
            raise
        except Exception as exc:  # could not connect (UnreachableError): nothing was sent
            _reject(started, exc)
            if session is not None:
                session.fail(OutcomeUnknown(LinkReason.RESET, f"window ended: {exc}"))
        finally:
            if session is not None and self._session is session:
                self._session = None

    def _tell(self, session: _Session, reason: LinkReason) -> None:
        if reason in session.signalled:
            return
        session.signalled.add(reason)
        if session.failure is not None:
            log.info("upstream window failed: %s", session.failure)
        self._on_failure(reason)


def _reject(started: asyncio.Future[_Session], exc: BaseException) -> None:
    if not started.done():
        started.set_exception(exc)
