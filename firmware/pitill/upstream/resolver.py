"""Name resolution for the upstream host, behind a Protocol so the simulator can make DNS fail.

A failed lookup raises ResolveError (an UnreachableError with reason DNS), so the monitor can
tell "the name is gone" (the October 2025 outage) from "the host refuses connections". A resolver
that remembers earlier answers (upstream/resolver_cache.py) may instead return them as
`Remembered` addresses, which carry the ResolveError: the caller can use them and still report
that the name does not resolve.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any, Protocol

from pitill.upstream.failures import ResolveError

Address = tuple[str, int]

# A lookup with no answer this long is a dead DNS server: with the name re-resolved every 0.5 s
# that shows it within a second; a slow server answering in 300 ms still passes
# (upstream.lookup_timeout_s).
LOOKUP_TIMEOUT_S = 0.4
MAX_ATTEMPTS = 3  # queries per lookup, one every timeout_s / 3 while none answered
MAX_LOOKUP_THREADS = 16  # getaddrinfo calls waiting at once, hung ones included


class Remembered(list[Address]):
    """Addresses the name resolved to earlier, handed out because resolving it now failed."""

    def __init__(self, addresses: Iterable[Address], error: ResolveError) -> None:
        super().__init__(addresses)
        self.error = error  # why the name did not resolve this time


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[Address]:
        """The addresses to try, in order; raises ResolveError when there are none."""
        ...


class SystemResolver:
    """The operating system's resolver (getaddrinfo), asking again sooner than glibc does and
    bounded in time, so a dead DNS server is known within timeout_s.

    glibc waits its resolv.conf timeout (5 s) before it asks again, and an abandoned
    getaddrinfo cannot be cancelled. So each lookup runs getaddrinfo in threads of its own
    (daemon threads: a hung one never holds up an exit): a first one, and while no answer
    came, another every retry_s (timeout_s / 3: fresh queries, so a lost packet is asked for
    again), MAX_ATTEMPTS at most. The first answer wins. Two failed queries, or no answer
    within timeout_s after two or more went out, make a *conclusive* ResolveError (the monitor
    shows it at once); one query alone that failed or went unanswered makes a plain one. While
    a name fails its lookups send one query each (no point asking a dead server thrice), and
    at most max_threads getaddrinfo calls wait at once: hung ones end at glibc's own timeout.
    """

    def __init__(
        self,
        timeout_s: float = LOOKUP_TIMEOUT_S,
        retry_s: float | None = None,
        max_threads: int = MAX_LOOKUP_THREADS,
        lookup: Callable[..., list[Any]] = socket.getaddrinfo,
    ) -> None:
        retry_s = timeout_s / MAX_ATTEMPTS if retry_s is None else retry_s
        if not 0 < retry_s <= timeout_s or max_threads < 1:
            raise ValueError(
                f"need 0 < retry_s <= timeout_s and max_threads >= 1, got retry_s={retry_s} "
                f"timeout_s={timeout_s} max_threads={max_threads}"
            )
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._lookup = lookup  # socket.getaddrinfo; a test's stand-in
        self._threads = threading.BoundedSemaphore(max_threads)
        self._failing: set[str] = set()  # names whose latest lookup failed
        self.counts: Counter[str] = Counter()  # queries (getaddrinfo calls), no_thread

    async def resolve(self, host: str, port: int) -> list[Address]:
        pending: set[asyncio.Future[list[Any]]] = set()
        try:
            return await self._resolve(host, port, pending)
        finally:
            for query in pending:  # unanswered: a late answer or error goes nowhere
                query.cancel()

    async def _resolve(
        self, host: str, port: int, pending: set[asyncio.Future[list[Any]]]
    ) -> list[Address]:
        loop = asyncio.get_running_loop()
        name = host.lower()
        attempts = 1 if name in self._failing else MAX_ATTEMPTS
        failures: list[str] = []
        sent = 0
        deadline_s = loop.time() + self.timeout_s
        next_s = loop.time()
        while True:
            now_s = loop.time()
            if sent < attempts and now_s >= next_s:
                query = self._query(loop, host, port)
                if query is not None:
                    pending.add(query)
                    sent += 1
                next_s = now_s + self.retry_s
            wake_s = min(deadline_s, next_s) if sent < attempts else deadline_s
            done: set[asyncio.Future[list[Any]]] = set()
            if pending:
                done, _ = await asyncio.wait(
                    pending, timeout=max(0.0, wake_s - loop.time()), return_when="FIRST_COMPLETED"
                )
                pending -= done
            else:
                await asyncio.sleep(max(0.0, wake_s - loop.time()))
            answers = [query.result() for query in done if query.exception() is None]
            errors = [error for query in done if (error := query.exception()) is not None]
            if answers:
                self._failing.discard(name)
                return _addresses(host, answers[0])
            for error in errors:
                if isinstance(error, UnicodeError):  # a name the IDNA codec rejects
                    raise ResolveError(host, f"not a valid host name: {error}") from None
                failures.append(_gai_detail(error))
            if len(failures) >= 2 or (failures and sent >= attempts and not pending):
                self._failing.add(name)
                detail = "; ".join(dict.fromkeys(failures))
                raise ResolveError(host, detail, conclusive=len(failures) >= 2)
            if loop.time() >= deadline_s:
                self._failing.add(name)
                if sent == 0:
                    detail = "every lookup thread still waits for the DNS server"
                else:
                    queries = "1 query" if sent == 1 else f"{sent} queries"
                    detail = f"no answer within {self.timeout_s:g} s to {queries}"
                raise ResolveError(host, detail, conclusive=sent >= 2)

    def _query(
        self, loop: asyncio.AbstractEventLoop, host: str, port: int
    ) -> asyncio.Future[list[Any]] | None:
        """One getaddrinfo in a thread of its own; None when max_threads already wait."""
        if not self._threads.acquire(blocking=False):
            self.counts["no_thread"] += 1
            return None
        self.counts["queries"] += 1
        future: asyncio.Future[list[Any]] = loop.create_future()

        def settle(result: list[Any] | None, error: BaseException | None) -> None:
            if future.done():  # the lookup was over (answered, or its caller gave up)
                return
            if error is not None:
                future.set_exception(error)
            else:
                assert result is not None
                future.set_result(result)

        def work() -> None:
            result: list[Any] | None = None
            error: BaseException | None = None
            try:
                result = self._lookup(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
                error = exc
            finally:
                self._threads.release()
            with suppress(RuntimeError):  # the loop closed while glibc waited
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=work, name="pitill-lookup", daemon=True).start()
        return future


def _gai_detail(error: BaseException) -> str:
    if isinstance(error, socket.gaierror):
        return error.strerror or str(error)
    return str(error)


def _addresses(host: str, infos: list[Any]) -> list[Address]:
    addresses: list[Address] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = (str(sockaddr[0]), int(sockaddr[1]))
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolveError(host, "no addresses")
    return addresses
