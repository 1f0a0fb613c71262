"""SystemResolver: getaddrinfo in threads of its own, asked again sooner than glibc, bounded.

The DNS server is a stand-in for socket.getaddrinfo (no real query): it answers, fails as
glibc does, or hangs until the test lets it go, as glibc does on a dead server for its own
timeout. Real threads, real asyncio timeouts; nothing is asserted about how long anything took.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any

import pytest

from pitill.errors import UpstreamError
from pitill.upstream.failures import LinkReason, ResolveError, UnreachableError
from pitill.upstream.resolver import MAX_ATTEMPTS, SystemResolver

NAME = "acquirer.pitill.test"
ANSWER = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 8583))]
TEMPORARY = socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
NXDOMAIN = socket.gaierror(socket.EAI_NONAME, "Name or service not known")

Step = Callable[[], list[Any]]  # one query: returns the answer or raises


class FakeDns:
    """Plays `steps` in turn, one per getaddrinfo call (the last one for every later call).
    HANG blocks until release(), then fails as glibc does after its timeout."""

    def __init__(self, *steps: str) -> None:
        self.steps = list(steps)
        self.calls = 0
        self.finished = 0
        self._released = threading.Event()
        self._lock = threading.Lock()

    def release(self) -> None:
        self._released.set()

    def __call__(self, host: str, port: int, **_kwargs: Any) -> list[Any]:
        with self._lock:
            step = self.steps[min(self.calls, len(self.steps) - 1)]
            self.calls += 1
        try:
            if step == "hang":
                self._released.wait(timeout=30)
                raise TEMPORARY
            if step == "fail":
                raise TEMPORARY
            if step == "nxdomain":
                raise NXDOMAIN
            return ANSWER
        finally:
            with self._lock:
                self.finished += 1


def resolve(resolver: SystemResolver) -> list[tuple[str, int]]:
    return asyncio.run(resolver.resolve(NAME, 8583))


def test_ip_literal_resolves_without_dns() -> None:
    addresses = asyncio.run(SystemResolver().resolve("127.0.0.1", 8583))
    assert addresses == [("127.0.0.1", 8583)]


def test_lookup_failure_is_a_dns_resolve_error() -> None:
    dns = FakeDns("nxdomain")
    with pytest.raises(ResolveError) as caught:
        resolve(SystemResolver(timeout_s=5, retry_s=0.01, lookup=dns))
    error = caught.value
    assert error.reason is LinkReason.DNS
    assert isinstance(error, UnreachableError) and isinstance(error, UpstreamError)
    assert NAME in str(error) and "Name or service not known" in str(error)


def test_a_lost_query_is_asked_again_before_glibc_would() -> None:
    """The first query's packet is lost (glibc would wait 5 s): the next one answers."""
    dns = FakeDns("hang", "answer")
    try:
        assert resolve(SystemResolver(timeout_s=10, retry_s=0.01, lookup=dns)) == [
            ("10.0.0.7", 8583)
        ]
        assert dns.calls == 2
    finally:
        dns.release()


def test_one_failed_query_then_an_answer_is_an_answer() -> None:
    """A SERVFAIL blip (or one ICMP refusal) is asked again, not reported."""
    dns = FakeDns("fail", "answer")
    assert resolve(SystemResolver(timeout_s=10, retry_s=0.01, lookup=dns)) == [("10.0.0.7", 8583)]


def test_a_slow_server_that_answers_within_the_window_is_an_answer() -> None:
    """Every query waits for the server (released only once all were sent): it answers."""
    dns = FakeDns("slow")

    def slow(host: str, port: int, **kwargs: Any) -> list[Any]:
        dns(host, port)  # counts the call
        released.wait(timeout=30)
        return ANSWER

    released = threading.Event()

    async def scenario() -> list[tuple[str, int]]:
        resolver = SystemResolver(timeout_s=10, retry_s=0.01, lookup=slow)
        lookup = asyncio.ensure_future(resolver.resolve(NAME, 8583))
        for _ in range(1000):  # bounded: until every query went out
            if dns.calls == MAX_ATTEMPTS:
                break
            await asyncio.sleep(0.01)
        released.set()
        return await lookup

    try:
        assert asyncio.run(scenario()) == [("10.0.0.7", 8583)]
        assert dns.calls == MAX_ATTEMPTS
    finally:
        released.set()


def test_a_dead_server_is_a_conclusive_failure_within_the_window() -> None:
    """No answer to any of the lookup's queries: conclusive (it asked again). While the name
    fails, a lookup sends one query, and alone it is not conclusive."""
    dns = FakeDns("hang")
    resolver = SystemResolver(timeout_s=0.2, retry_s=0.02, lookup=dns)
    try:
        with pytest.raises(ResolveError) as caught:
            resolve(resolver)
        assert caught.value.conclusive
        assert f"no answer within 0.2 s to {MAX_ATTEMPTS} queries" in str(caught.value)
        assert dns.calls == MAX_ATTEMPTS
        with pytest.raises(ResolveError) as again:
            resolve(resolver)
        assert not again.value.conclusive and "to 1 query" in str(again.value)
        assert dns.calls == MAX_ATTEMPTS + 1
    finally:
        dns.release()


def test_two_failed_queries_are_conclusive() -> None:
    dns = FakeDns("fail")
    resolver = SystemResolver(timeout_s=10, retry_s=0.01, lookup=dns)
    with pytest.raises(ResolveError) as caught:
        resolve(resolver)
    assert caught.value.conclusive and "Temporary failure in name resolution" in str(caught.value)
    assert dns.calls == 2
    with pytest.raises(ResolveError) as again:  # failing: one query, one failure
        resolve(resolver)
    assert not again.value.conclusive and dns.calls == 3


def test_hung_queries_are_bounded_and_the_name_comes_back_when_they_end() -> None:
    """At most max_threads getaddrinfo calls wait at once; a lookup that finds none free fails
    and says why; once glibc gives up on the hung ones, lookups work again."""
    dns = FakeDns("hang")
    resolver = SystemResolver(timeout_s=0.2, retry_s=0.02, max_threads=2, lookup=dns)
    try:
        with pytest.raises(ResolveError):
            resolve(resolver)
        assert dns.calls == 2  # the third query found no thread
        with pytest.raises(ResolveError) as starved:
            resolve(resolver)
        assert "every lookup thread still waits for the DNS server" in str(starved.value)
        assert dns.calls == 2 and resolver.counts["no_thread"] >= 2
    finally:
        dns.steps = ["answer"]
        dns.release()
    for _ in range(3000):  # bounded: until both hung threads ended
        if dns.finished == 2:
            break
        threading.Event().wait(0.01)
    assert dns.finished == 2
    assert resolve(resolver) == [("10.0.0.7", 8583)]


def test_a_name_the_idna_codec_rejects_is_one_clear_error() -> None:
    def reject(host: str, port: int, **_kwargs: Any) -> list[Any]:
        raise UnicodeError("label empty or too long")

    with pytest.raises(ResolveError, match="not a valid host name"):
        resolve(SystemResolver(lookup=reject))
