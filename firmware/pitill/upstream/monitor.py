"""LinkMonitor: the connectivity monitor's task. Probes the host, feeds the LinkTracker, reports.

Every probe_interval_s (start to start; an overrunning probe is followed at once) it resolves the
name, opens a fresh TCP connection, sends an 0800 echo, waits up to probe_timeout_s in all for the
0810 and closes. A fresh connection each time tests what a new request would meet: the name, the
listener and the host, not a socket that happens to still be open. Passive signals from real
requests come in through `report_failure`. `on_change(status, reason)` hears every change.

With the defaults (0.5 s interval, 1.0 s timeout, thresholds 2) a refused port or a dead name is
OFFLINE after two quick failed probes (about 1 s), a silent host after two timed-out probes
(at most about 2.5 s).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime

from pitill.config import TerminalConfig, UpstreamConfig
from pitill.core.types import LinkStatus
from pitill.errors import ProtocolError
from pitill.upstream.connect import close_stream, open_stream
from pitill.upstream.exchange import await_response, send_request
from pitill.upstream.failures import LinkReason, OutcomeUnknown, UnreachableError
from pitill.upstream.messages import build_echo, parse_answer, transmission_stamp
from pitill.upstream.resolver import Resolver
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
    ) -> None:
        self._config = config
        self._terminal_id = terminal.terminal_id
        self._resolver = resolver
        self._on_change = on_change
        self._wall_clock = wall_clock
        # No config key yet: an echo taking half the probe timeout is slow.
        slow_s = config.slow_threshold_s if slow_threshold_s is None else slow_threshold_s
        self.tracker = LinkTracker(config.fail_threshold, config.recover_threshold, slow_s)
        self._stans = itertools.cycle(range(1, 1_000_000))
        self._task: asyncio.Task[None] | None = None
        self.last_probe: ProbeResult | None = None
        self.counts: Counter[str] = Counter()  # probes, failures, stray / garbage frames

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

    async def probe(self) -> ProbeResult:
        """One active probe, bounded by probe_timeout_s from resolving to the 0810."""
        loop = asyncio.get_running_loop()
        timeout_s = self._config.probe_timeout_s
        deadline = loop.time() + timeout_s
        writer: asyncio.StreamWriter | None = None
        self.counts["probes"] += 1
        try:
            reader, writer = await open_stream(
                self._resolver, self._config.host, self._config.port, timeout_s
            )
            stamp = transmission_stamp(self._wall_clock())
            request = build_echo(next(self._stans), stamp, self._terminal_id)
            sent_at = loop.time()
            await send_request(writer, request)
            async with asyncio.timeout_at(deadline):
                response = await await_response(reader, request, counts=self.counts)
            return ProbeResult.answered(loop.time() - sent_at, parse_answer(response).response_code)
        except (UnreachableError, OutcomeUnknown) as exc:
            return ProbeResult.failed(exc.reason, str(exc))
        except TimeoutError:
            return ProbeResult.failed(LinkReason.TIMEOUT, f"no 0810 within {timeout_s:g} s")
        except ProtocolError as exc:
            return ProbeResult.failed(LinkReason.PROTOCOL, str(exc))
        finally:
            if writer is not None:
                await close_stream(writer)

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
