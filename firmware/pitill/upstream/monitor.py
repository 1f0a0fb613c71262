"""LinkMonitor: the connectivity monitor's task. Watches the host, feeds the LinkTracker, reports.

It watches the client's one persistent connection (client.py) at a cost a host accepts: an idle
terminal sends one 0800 echo per echo_interval_s (60 s) at most, and still sees a fault within a
second or so. What it uses, cheapest first:

- The connection itself, read every WATCH_S (a syscall, no packet). A reset or an end of stream
  is a failure at once, and the monitor reconnects and echoes right away (a second look).
- TCP keepalive (keepalive.py): the kernel probes the host after keepalive_idle_s of silence and
  the host's kernel answers; its application never sees it. No acknowledgement for
  keepalive_idle_s + grace (grace: keepalive_grace_s, or three round trips if longer) is one
  failure, and each further grace without one another: with fail_threshold 2 a swallowed link is
  OFFLINE about 1.3 s after its first unanswered probe. Each overdue check asks the kernel for
  one more probe, so one lost packet is not an outage.
- The name, re-resolved every resolve_interval_s (and once more at once after a failure): a name
  that does not resolve is a failure (OFFLINE "DNS" after two, or at once when the lookup was
  conclusive: it asked again within itself, see resolver.SystemResolver); one that
  resolves only to remembered addresses while the connection works is a degraded answer (DEGRADED
  "DNS"). Re-resolving costs the host nothing.
- Real requests: their answers are passive probes (no echo is due while they come), their
  failures and their answers slower than slow_threshold_s passive signals (`report_failure`,
  `report_answer`; see tracker.py), each but a retry code earning a quick echo to confirm. A
  request that waited its whole timeout (a host that accepts and never answers) takes the link
  OFFLINE at once.
- Echo probes: resolve, have a connection (primary first), send an 0800 and wait up to
  probe_timeout_s; unanswered past probe_interval_s is one failure already and the timeout a
  second. One after echo_interval_s without any answer on the link; every probe_interval_s
  while the link is UNKNOWN or OFFLINE, or a failure or a healing cheap check left it in doubt
  (the fast re-probe burst, which also finds recovery quickly). With several hosts a probe tries
  them in order until one answers; the answer of a later host is degraded with the primary's
  fault as its reason (DEGRADED "REFUSED"), and a calm probe goes back to the primary when it
  accepts again.

`on_change(status, reason)` hears every change.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from pitill.config import TerminalConfig, UpstreamConfig
from pitill.core.types import LinkStatus
from pitill.upstream.client import UpstreamClient
from pitill.upstream.connect import Connection, Endpoint
from pitill.upstream.failures import (
    LinkReason,
    OutcomeUnknown,
    ResolveError,
    UnreachableError,
    reason_for_os_error,
)
from pitill.upstream.keepalive import AckWatch, KernelAckWatch
from pitill.upstream.resolver import Remembered, Resolver
from pitill.upstream.tls import client_context
from pitill.upstream.tracker import Change, LinkTracker, ProbeResult, Verdict

log = logging.getLogger(__name__)

ChangeHook = Callable[[LinkStatus, str], None]

WATCH_S = 0.05  # the connection's state is read this often (getsockopt, no packet)
RESOLVE_RETRY_S = 0.1  # a failed lookup is tried again this soon: two in a row decide


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _is_ip_literal(host: str) -> bool:
    """An address, not a name: nothing to resolve."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class LinkMonitor:
    def __init__(
        self,
        config: UpstreamConfig,
        terminal: TerminalConfig,
        resolver: Resolver,
        on_change: ChangeHook,
        *,
        client: UpstreamClient | None = None,
        slow_threshold_s: float | None = None,
        wall_clock: Callable[[], datetime] = _utc_now,
        tls: ssl.SSLContext | None = None,
        acks: AckWatch | None = None,
    ) -> None:
        self._config = config
        self._acks = acks or KernelAckWatch()
        self._resolver = resolver
        self._on_change = on_change
        self._own_client = client is None
        slow_s = config.slow_threshold_s if slow_threshold_s is None else slow_threshold_s
        if client is None:  # a monitor alone (tests, tools): a client of its own
            client = UpstreamClient.from_config(
                config, terminal, resolver, tls=tls if tls is not None else client_context(config)
            )
            client._wall_clock = wall_clock
            client.slow_threshold_s = slow_s
        self.client = client
        self.endpoints = client.endpoints
        self.tracker = LinkTracker(
            config.fail_threshold,
            config.recover_threshold,
            slow_s,
            request_fail_threshold=config.request_fail_threshold,
            failing_hold_s=config.failing_hold_s,
        )
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._doubt = False  # a failure or a healing check: probe again soon
        self._probed_at_s: float | None = None  # when the latest echo probe started
        self._watched: Connection | None = None  # the connection the keepalive counts are of
        self._silent_failures = 0  # failures counted for the current keepalive silence
        self._name_failed: ResolveError | None = None  # the latest lookup's error, if it failed
        self.last_probe: ProbeResult | None = None
        self.counts: Counter[str] = Counter()  # probes, failures, lookups, keepalive misses

    @property
    def status(self) -> LinkStatus:
        return self.tracker.status

    @property
    def reason(self) -> str:
        return self.tracker.reason

    # --- passive signals -----------------------------------------------------------------------

    def report_failure(self, reason: LinkReason | str) -> None:
        """A passive signal from a real request (fits UpstreamClient's on_signal).

        A LinkReason or its value; RETRY and SLOW degrade, TIMEOUT (a request that waited its
        whole timeout) takes the link OFFLINE at once, anything else counts as one failed probe
        (an unknown word as RESET). All but RETRY earn a quick echo to confirm (a slow sale: is
        the echo slow too?). Call it on the monitor's loop.
        """
        try:
            link_reason = LinkReason(reason)
        except ValueError:
            log.warning("unknown link failure reason %r, counted as RESET", reason)
            link_reason = LinkReason.RESET
        now_s = asyncio.get_running_loop().time()
        self._publish(self.tracker.observe_passive(now_s, link_reason))
        if link_reason is not LinkReason.RETRY:
            self._suspect()

    def report_answer(self) -> None:
        """A real request got a useful answer (fits UpstreamClient's on_answer). On the loop.

        While the probe layer is not ONLINE that is a healing sign: echoes confirm it."""
        self._publish(self.tracker.observe_answer(asyncio.get_running_loop().time()))
        if self.tracker.probe_status is not LinkStatus.ONLINE:
            self._suspect()

    # --- the echo probe ------------------------------------------------------------------------

    async def probe(self) -> ProbeResult:
        """One echo probe: each host in order, each within probe_timeout_s, until one answers."""
        self.counts["probes"] += 1
        self._probed_at_s = asyncio.get_running_loop().time()
        failures: list[tuple[Endpoint, ProbeResult]] = []
        first = 0
        while first < len(self.endpoints):
            result, used = await self._probe_from(first)
            if result.ok:
                if not failures:
                    return result
                endpoint, primary = failures[0]
                assert primary.reason is not None
                return ProbeResult.answered(
                    result.rtt_s,
                    result.response_code,
                    primary.reason,
                    f"{endpoint}: {primary.detail}",
                )
            failures.append((used, result))
            first = self.endpoints.index(used) + 1
        if len(failures) == 1:
            return failures[0][1]
        detail = "; ".join(f"{endpoint}: {failure.detail}" for endpoint, failure in failures)
        reason = failures[0][1].reason
        assert reason is not None
        return ProbeResult.failed(reason, detail)

    async def _probe_from(self, first: int) -> tuple[ProbeResult, Endpoint]:
        """Connect to endpoints[first:] (keeping a connection in place) and echo on it; the
        result and the host it was about (the last one tried when none accepted).

        A connection in place that turns out broken (reset, closed) is no verdict on the host:
        the echo is tried once more on a fresh one, which tests what a new request would meet.
        """
        loop = asyncio.get_running_loop()
        timeout_s = self._config.probe_timeout_s
        deadline = loop.time() + timeout_s
        for _attempt in range(2):
            try:
                opened = await self.client.open(max(0.01, deadline - loop.time()), first)
            except UnreachableError as exc:
                conclusive = isinstance(exc, ResolveError) and exc.conclusive
                return ProbeResult.failed(exc.reason, str(exc), conclusive), self.endpoints[-1]
            connection = opened.connection
            self._watch_connection(connection)
            fallback: LinkReason | None = None
            detail = ""
            if opened.failures:  # a later host accepted: the first one's fault was ridden out
                fallback, detail = opened.failures[0].reason, str(opened.failures[0])
            dns_error: ResolveError | None = connection.dns_error
            if not opened.fresh:
                dns_error = await self._name_now(connection)
                if dns_error is not None and not isinstance(dns_error, _Remembered):
                    return self._dns_failed(dns_error), connection.endpoint
            if dns_error is not None and fallback is None:
                fallback, detail = LinkReason.DNS, str(dns_error)
            sent_at = loop.time()
            try:
                code = await self._echo(sent_at, deadline)
            except (UnreachableError, OutcomeUnknown) as exc:
                if not opened.fresh and exc.reason is LinkReason.RESET:
                    continue  # the connection was gone before we knew: once more, fresh
                if dns_error is not None:
                    failed = ProbeResult.failed(LinkReason.DNS, f"{dns_error}; then {exc}")
                    return failed, connection.endpoint
                return ProbeResult.failed(exc.reason, str(exc)), connection.endpoint
            rtt_s = loop.time() - sent_at
            return ProbeResult.answered(rtt_s, code, fallback, detail), connection.endpoint
        return ProbeResult.failed(LinkReason.RESET, "connection lost twice"), self.endpoints[first]

    async def _echo(self, sent_at: float, deadline: float) -> str:
        """An 0800 on the client's connection; its response code. Unanswered past one probe
        interval it counts as one failure already, so a silent host is OFFLINE within probe
        interval + probe timeout."""
        loop = asyncio.get_running_loop()
        answer = asyncio.ensure_future(
            self.client.echo(max(0.01, deadline - sent_at), signal=False)
        )
        try:
            overdue_at = min(sent_at + self._config.probe_interval_s, deadline)
            done, _ = await asyncio.wait({answer}, timeout=max(0.0, overdue_at - loop.time()))
            if not done:
                overdue = ProbeResult.failed(LinkReason.TIMEOUT, "0810 overdue")
                self._observe(loop.time(), overdue)
            return await answer
        finally:
            answer.cancel()

    async def _name_now(self, connection: Connection) -> ResolveError | None:
        """Resolve the name of the host `connection` is to: None when it resolves, the error
        (a _Remembered one when remembered addresses stood in) when it does not."""
        host, port = connection.endpoint
        if _is_ip_literal(host):
            return None
        self.counts["lookups"] += 1
        try:
            async with asyncio.timeout(self._config.probe_timeout_s):
                addresses = await self._resolver.resolve(host, port)
        except ResolveError as exc:
            return exc
        except TimeoutError:
            return ResolveError(host, f"no answer within {self._config.probe_timeout_s:g} s")
        if isinstance(addresses, Remembered):
            return _Remembered(addresses.error)
        return None

    def _dns_failed(self, error: ResolveError) -> ProbeResult:
        return ProbeResult.failed(LinkReason.DNS, str(error), conclusive=error.conclusive)

    # --- the cheap checks ----------------------------------------------------------------------

    def _watch_connection(self, connection: Connection) -> None:
        if connection is not self._watched:
            self._watched = connection
            self._silent_failures = 0

    def _check_connection(self, now_s: float) -> None:
        """The connection in place: broken (a failure, then a probe at once) or silent past
        its keepalive (a failure per grace period)."""
        connection = self.client.current
        if connection is None:
            return
        self._watch_connection(connection)
        reader, writer = connection.streams
        error = reader.exception()
        broken = error is not None or reader.at_eof() or writer.is_closing()
        if broken and not self.client.busy:  # a request's own failure is reported by it
            reason = reason_for_os_error(error) if isinstance(error, OSError) else LinkReason.RESET
            what = f"{error}" if error is not None else "closed by the host"
            self._observe(now_s, ProbeResult.failed(reason, f"{connection.endpoint}: {what}"))
            self.counts["connection_lost"] += 1
            self.client.discard(connection)
            self._watched = None
            self._suspect()
            return
        if broken:
            return
        keepalive = self.client.keepalive
        sock = writer.get_extra_info("socket")
        if keepalive is None or sock is None:
            return
        age_s = self._acks.ack_age_s(sock)
        if age_s is None:
            return
        grace_s = max(self._config.keepalive_grace_s, 3 * (self._acks.round_trip_s(sock) or 0.0))
        over_s = age_s - keepalive.idle_s
        if over_s <= grace_s:
            if self._silent_failures:
                self._silent_failures = 0
                self._observe(now_s, self._answered_by_keepalive())
            return
        self._acks.kick(sock, keepalive)  # one more probe now: a lost one is not an outage
        due = int(over_s // grace_s)
        while self._silent_failures < due:
            self._silent_failures += 1
            self.counts["keepalive_misses"] += 1
            detail = f"{connection.endpoint}: no TCP acknowledgement for {age_s:.2f} s"
            self._observe(now_s, ProbeResult.failed(LinkReason.TIMEOUT, detail))

    def _answered_by_keepalive(self) -> ProbeResult:
        """The host's TCP answers again: as good as the last probe's answer allowed."""
        last = self.last_probe
        fallback = last.fallback if last is not None and last.ok else None
        return ProbeResult.answered(0.0, fallback=fallback)

    async def _check_name(self) -> None:
        """Resolve the name in use: a failure, a degraded answer (remembered addresses while the
        connection works), or a heal that earns a probe to confirm it."""
        connection = self.client.current
        if connection is None or not self.client.connected:
            return  # the probes resolve, connecting
        error = await self._name_now(connection)
        now_s = asyncio.get_running_loop().time()
        if error is None:
            # The name is back: an echo decides. Also when the failure the link shows was seen
            # by another lookup (a probe's, a connect's): else a DEGRADED DNS answer is a calm
            # state, and only the next echo (a minute on) would clear it.
            if self._name_failed is not None or self._shows_dns():
                self._name_failed = None
                self._suspect()
            return
        self._name_failed = error
        if isinstance(error, _Remembered):
            by_remembered = ProbeResult.answered(0.0, fallback=LinkReason.DNS, detail=str(error))
            self._observe(now_s, by_remembered)
        else:
            self._observe(now_s, self._dns_failed(error))

    def _shows_dns(self) -> bool:
        """The link is shown DEGRADED or OFFLINE because of the name."""
        return (
            self.tracker.status is not LinkStatus.ONLINE and self.tracker.reason == LinkReason.DNS
        )

    def _name_unshown(self) -> bool:
        """The name failed and the link does not show it yet (OFFLINE, or DEGRADED when
        remembered addresses stand in)."""
        failed, status = self._name_failed, self.tracker.probe_status
        if failed is None or status is LinkStatus.OFFLINE:
            return False
        return not isinstance(failed, _Remembered) or status is not LinkStatus.DEGRADED

    async def _check_primary(self) -> None:
        """On a later host: connect to an earlier one again when it accepts (no message sent;
        a probe then confirms it answers)."""
        connection = self.client.current
        if connection is None or connection.endpoint == self.endpoints[0] or self.client.busy:
            return
        with suppress(UnreachableError):
            opened = await self.client.open(self._config.probe_timeout_s, 0)
            if opened.fresh:
                self._suspect()

    # --- the loops -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Watch, resolve and probe until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._watch_loop())
            group.create_task(self._resolve_loop())
            group.create_task(self._probe_loop())

    async def _watch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._check_connection(loop.time())
            self._publish(self.tracker.tick(loop.time()))  # a request layer's hold may end
            await asyncio.sleep(WATCH_S)

    async def _resolve_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self._check_name()
            await self._check_primary()
            # A failed lookup not yet shown is tried again soon: two in a row decide.
            wait_s = RESOLVE_RETRY_S if self._name_unshown() else self._config.resolve_interval_s
            await asyncio.sleep(max(0.0, started + wait_s - loop.time()))

    async def _probe_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now_s = loop.time()
            due_s = self._next_probe_s()
            if due_s > now_s:
                self._wake.clear()
                with suppress(TimeoutError):
                    async with asyncio.timeout(due_s - now_s):
                        await self._wake.wait()
                continue
            result = await self.probe()
            self.last_probe = result
            if not result.ok:
                self.counts["failures"] += 1
                log.debug("probe failed: %s %s", result.reason, result.detail)
            self._observe(loop.time(), result)
            # Doubt lasts while probes fail, and while an answer disagrees with the picture
            # (a good one while not ONLINE, a degraded one while ONLINE): another look soon.
            # A degraded answer while DEGRADED (slow, by a fallback) is a steady state: calm.
            verdict, _ = self.tracker.verdict(result)
            status = self.tracker.probe_status
            self._doubt = (
                verdict is Verdict.FAILED
                or (verdict is Verdict.GOOD and status is not LinkStatus.ONLINE)
                or (verdict is Verdict.DEGRADED and status is LinkStatus.ONLINE)
            )

    def _next_probe_s(self) -> float:
        """When the next echo probe is due (loop time)."""
        last = self._probed_at_s
        if last is None:
            return 0.0
        burst = self._doubt or self.tracker.probe_status in (LinkStatus.UNKNOWN, LinkStatus.OFFLINE)
        if burst:
            return last + self._config.probe_interval_s
        heard = max(last, self.client.heard_at_s or 0.0)
        return heard + self._config.echo_interval_s

    def _suspect(self) -> None:
        """Something changed: probe at the burst pace, starting now if none ran lately."""
        self._doubt = True
        self._wake.set()

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
        if self._own_client:
            await self.client.close()

    def _observe(self, now_s: float, result: ProbeResult) -> None:
        self._publish(self.tracker.observe_probe(now_s, result))

    def _publish(self, change: Change | None) -> None:
        if change is None:
            return
        status, reason = change
        self._wake.set()  # the probes' pace may have changed with the picture
        log.info("upstream link %s %s", status, reason)
        try:
            self._on_change(status, reason)
        except Exception:  # the monitor must outlive a faulty listener
            log.exception("link change listener failed on %s %s", status, reason)


class _Remembered(ResolveError):
    """The name did not resolve, and remembered addresses stood in for it."""

    def __init__(self, error: ResolveError) -> None:
        UnreachableError.__init__(self, LinkReason.DNS, str(error))
        self.host = error.host
