"""LinkMonitor: the connectivity monitor's task. Probes the host, feeds the LinkTracker, reports.

Every probe_interval_s (start to start; an overrunning probe is followed at once) it resolves the
name, opens a fresh TCP (or TLS) connection, sends an 0800 echo, waits up to probe_timeout_s in
all for the 0810 and closes. A fresh connection each time tests what a new request would meet: the
name, the listener and the host, not a socket that happens to still be open. With several hosts
configured it tries them in order, each within probe_timeout_s, until one answers; the probe fails
only when every host failed, with the primary's reason.

An answer that needed a fallback is a degraded answer with the fault it rode out as its reason: a
remembered address answering while the name does not resolve (DNS), or the secondary answering
while the primary refused (REFUSED). So when the name vanishes but its servers still answer, the
link goes DEGRADED "DNS" and sales continue online; it goes OFFLINE "DNS" only when the
remembered addresses do not answer either (or none are remembered).

Passive signals from real requests come in through `report_failure` (failures and retry-later
codes) and `report_answer` (useful answers); see tracker.py for how a host that answers echoes
but fails requests counts as down for sales. `on_change(status, reason)` hears every change.

With the defaults (0.5 s interval, 1.0 s timeout, thresholds 2) a refused port or a dead name is
OFFLINE after two quick failed probes (about 1 s). An echo still unanswered one probe interval
after it was sent counts as a failure at once, and its timeout as a second one, so a silent host
is OFFLINE within probe interval + probe timeout (1.5 s) from the first probe it swallows.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from pitill.config import TerminalConfig, UpstreamConfig
from pitill.core.types import LinkStatus
from pitill.errors import ProtocolError
from pitill.upstream.connect import Connection, Endpoint, close_stream, connect
from pitill.upstream.exchange import await_response, discard_stale, send_request
from pitill.upstream.failures import LinkReason, OutcomeUnknown, UnreachableError
from pitill.upstream.messages import build_echo, parse_answer, transmission_stamp
from pitill.upstream.resolver import Resolver
from pitill.upstream.tls import client_context
from pitill.upstream.tracker import Change, LinkTracker, ProbeResult

log = logging.getLogger(__name__)

ChangeHook = Callable[[LinkStatus, str], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LinkMonitor:
    def __init__(
        self,
        config: UpstreamConfig,
        terminal: TerminalConfig,
        resolver: Resolver,
        on_change: ChangeHook,
        *,
        slow_threshold_s: float | None = None,
        wall_clock: Callable[[], datetime] = _utc_now,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._config = config
        self._terminal_id = terminal.terminal_id
        self._resolver = resolver
        self._on_change = on_change
        self._wall_clock = wall_clock
        self.endpoints = tuple(Endpoint(*pair) for pair in config.endpoints())
        self._tls = tls if tls is not None else client_context(config)
        slow_s = config.slow_threshold_s if slow_threshold_s is None else slow_threshold_s
        self.tracker = LinkTracker(
            config.fail_threshold,
            config.recover_threshold,
            slow_s,
            request_fail_threshold=config.request_fail_threshold,
            failing_hold_s=config.failing_hold_s,
        )
        self._stans = itertools.cycle(range(1, 1_000_000))
        self._task: asyncio.Task[None] | None = None
        self.last_probe: ProbeResult | None = None
        self.counts: Counter[str] = Counter()  # probes, failures, dropped frames by Drop kind

    @property
    def status(self) -> LinkStatus:
        return self.tracker.status

    @property
    def reason(self) -> str:
        return self.tracker.reason

    def report_failure(self, reason: LinkReason | str) -> None:
        """A passive signal from a real request (fits UpstreamClient's on_signal).

        A LinkReason or its value; RETRY and SLOW degrade, anything else counts as one failed
        probe (an unknown word as RESET). Call it on the monitor's loop.
        """
        try:
            link_reason = LinkReason(reason)
        except ValueError:
            log.warning("unknown link failure reason %r, counted as RESET", reason)
            link_reason = LinkReason.RESET
        now_s = asyncio.get_running_loop().time()
        self._publish(self.tracker.observe_passive(now_s, link_reason))

    def report_answer(self) -> None:
        """A real request got a useful answer (fits UpstreamClient's on_answer). On the loop."""
        self._publish(self.tracker.observe_answer(asyncio.get_running_loop().time()))

    async def probe(self) -> ProbeResult:
        """One active probe: each host in order, each within probe_timeout_s, until one answers."""
        self.counts["probes"] += 1
        failures: list[ProbeResult] = []
        for endpoint in self.endpoints:
            result = await self._probe_endpoint(endpoint)
            if result.ok and failures:  # the primary failed, a later host answered
                first = failures[0]
                detail = f"{self.endpoints[0]}: {first.detail}"
                return ProbeResult.answered(
                    result.rtt_s, result.response_code, first.reason, detail
                )
            if result.ok:
                return result
            failures.append(result)
        if len(failures) == 1:
            return failures[0]
        pairs = zip(self.endpoints, failures, strict=True)
        detail = "; ".join(f"{endpoint}: {failure.detail}" for endpoint, failure in pairs)
        assert failures[0].reason is not None
        return ProbeResult.failed(failures[0].reason, detail)

    async def _probe_endpoint(self, endpoint: Endpoint) -> ProbeResult:
        """Connect, echo, close: bounded by probe_timeout_s from resolving to the 0810."""
        loop = asyncio.get_running_loop()
        timeout_s = self._config.probe_timeout_s
        deadline = loop.time() + timeout_s
        connection: Connection | None = None
        try:
            connection = await connect(self._resolver, endpoint, timeout_s, self._tls)
            stamp = transmission_stamp(self._wall_clock())
            request = build_echo(next(self._stans), stamp, self._terminal_id)
            if not await discard_stale(connection.reader, counts=self.counts):
                return self._failed(connection, LinkReason.PROTOCOL, "stream out of step")
            sent_at = loop.time()
            await send_request(connection.writer, request)
            answer = asyncio.ensure_future(
                await_response(connection.reader, request, counts=self.counts)
            )
            try:
                overdue_at = min(sent_at + self._config.probe_interval_s, deadline)
                done, _ = await asyncio.wait({answer}, timeout=max(0.0, overdue_at - loop.time()))
                if not done:
                    # Unanswered past one probe interval: that already counts as one failure,
                    # so a silent host is OFFLINE within probe interval + probe timeout.
                    overdue = ProbeResult.failed(LinkReason.TIMEOUT, "0810 overdue")
                    self._publish(self.tracker.observe_probe(loop.time(), overdue))
                async with asyncio.timeout_at(deadline):
                    response = await answer
            finally:
                answer.cancel()
            code = parse_answer(response).response_code
            dns_error = connection.dns_error
            if dns_error is not None:
                return ProbeResult.answered(
                    loop.time() - sent_at, code, dns_error.reason, str(dns_error)
                )
            return ProbeResult.answered(loop.time() - sent_at, code)
        except (UnreachableError, OutcomeUnknown) as exc:
            return self._failed(connection, exc.reason, str(exc))
        except TimeoutError:
            return self._failed(connection, LinkReason.TIMEOUT, f"no 0810 within {timeout_s:g} s")
        except ProtocolError as exc:
            return self._failed(connection, LinkReason.PROTOCOL, str(exc))
        finally:
            if connection is not None:
                await close_stream(connection.writer)

    @staticmethod
    def _failed(connection: Connection | None, reason: LinkReason, detail: str) -> ProbeResult:
        """A failed probe; reason DNS when only a remembered address got us this far."""
        if connection is not None and connection.dns_error is not None:
            return ProbeResult.failed(LinkReason.DNS, f"{connection.dns_error}; then {detail}")
        return ProbeResult.failed(reason, detail)

    async def run(self) -> None:
        """Probe forever, every probe_interval_s; cancel to stop."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            result = await self.probe()
            self.last_probe = result
            if not result.ok:
                self.counts["failures"] += 1
                log.debug("probe failed: %s %s", result.reason, result.detail)
            self._publish(self.tracker.observe_probe(loop.time(), result))
            next_at = max(next_at + self._config.probe_interval_s, loop.time())
            await asyncio.sleep(next_at - loop.time())

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="pitill-link-monitor")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    def _publish(self, change: Change | None) -> None:
        if change is None:
            return
        status, reason = change
        log.info("upstream link %s %s", status, reason)
        try:
            self._on_change(status, reason)
        except Exception:  # the monitor must outlive a faulty listener
            log.exception("link change listener failed on %s %s", status, reason)
