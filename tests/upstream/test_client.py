"""UpstreamClient against a real AcquirerHost on loopback: answers, and what each failure means."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from upstream_helpers import HOST_TODAY, LOCAL_DATETIME, TERMINAL, forward_item, rig, sale

from pitill.config import UpstreamConfig
from pitill.core.settlement import Reconciliation
from pitill.errors import UpstreamError, UpstreamTimeout
from pitill.records import ForwardKind
from pitill.sim.acquirer import AcquirerHost, ChaosPlan, net_charged_minor
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.client import UpstreamClient
from pitill.upstream.failures import LinkReason, OutcomeUnknown, ResolveError, UnreachableError
from pitill.upstream.messages import AuthAnswer, Batch


@pytest.mark.parametrize(
    ("amount_minor", "pan", "expiry", "code"),
    [
        (1250, "4111111111111111", "3012", "00"),
        (1051, "4111111111111111", "3012", "51"),
        (1005, "4111111111111111", "3012", "05"),
        (1250, "4000000000000002", "3012", "05"),  # the test card, whatever the amount
        (1250, "4111111111111111", "2001", "54"),  # expired before the host's 2511
        (1250, "4111111111111112", "3012", "14"),  # fails Luhn
    ],
)
def test_authorize_decisions(
    tmp_path: Path, amount_minor: int, pan: str, expiry: str, code: str
) -> None:
    async def scenario() -> AuthAnswer:
        async with rig(tmp_path) as r:
            return await r.client.authorize(
                sale(amount_minor, pan=pan, expiry=expiry), LOCAL_DATETIME
            )

    answer = asyncio.run(scenario())
    assert answer.response_code == code
    assert bool(answer.auth_code) is (code == "00")
    assert len(answer.rrn) == 12


def test_one_connection_serves_many_requests(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], int]:
        async with rig(tmp_path) as r:
            codes = [
                (await r.client.authorize(sale(100 + i, seq=i), LOCAL_DATETIME)).response_code
                for i in range(1, 4)
            ]
            codes.append(await r.client.echo())
            return codes, r.client.counts["connects"]

    codes, connects = asyncio.run(scenario())
    assert codes == ["00", "00", "00", "00"]
    assert connects == 1


def test_refused_is_unreachable_not_a_timeout(tmp_path: Path) -> None:
    async def scenario() -> tuple[UpstreamError, list[LinkReason]]:
        async with rig(tmp_path) as r:
            r.host.set_mode("down")
            with pytest.raises(UpstreamError) as caught:
                await r.client.authorize(sale(), LOCAL_DATETIME)
            return caught.value, r.signals

    error, signals = asyncio.run(scenario())
    assert isinstance(error, UnreachableError) and error.reason is LinkReason.REFUSED
    assert not isinstance(error, UpstreamTimeout)  # not sent: nothing to reverse
    assert signals == [LinkReason.REFUSED]


def test_blackhole_is_outcome_unknown(tmp_path: Path) -> None:
    async def scenario() -> tuple[UpstreamError, list[LinkReason], list[dict[str, object]]]:
        async with rig(tmp_path, request_timeout_s=0.2) as r:
            assert await r.client.echo() == "00"  # the connection exists before the blackhole
            r.host.set_mode("blackhole")
            with pytest.raises(UpstreamError) as caught:
                await r.client.authorize(sale(), LOCAL_DATETIME)
            return caught.value, r.signals, r.host.ledger()

    error, signals, ledger = asyncio.run(scenario())
    assert isinstance(error, UpstreamTimeout) and isinstance(error, OutcomeUnknown)
    assert error.reason is LinkReason.TIMEOUT
    assert signals == [LinkReason.TIMEOUT]
    assert ledger == []  # the host never saw it: a blackhole drops, it does not process


def test_a_request_queued_behind_one_that_timed_out_fails_at_once_unsent(tmp_path: Path) -> None:
    """A background 0800 meets the blackhole first: the sale waiting behind it is not sent into
    the same silence (its customer would wait two timeouts): unreachable, nothing to reverse."""

    async def scenario() -> tuple[BaseException | str, BaseException | AuthAnswer, int]:
        async with rig(tmp_path, request_timeout_s=0.3) as r:
            assert await r.client.echo() == "00"
            r.host.set_mode("blackhole")
            blackholed_before = r.host.counts["blackholed"]
            first, second = await asyncio.gather(
                r.client.echo(),
                r.client.authorize(sale(), LOCAL_DATETIME),
                return_exceptions=True,
            )
            return first, second, r.host.counts["blackholed"] - blackholed_before

    first, second, frames = asyncio.run(scenario())
    assert isinstance(first, OutcomeUnknown)
    assert isinstance(second, UnreachableError) and not isinstance(second, OutcomeUnknown)
    assert second.reason is LinkReason.TIMEOUT
    assert frames == 1  # only the echo reached the host


def test_dns_failure(tmp_path: Path) -> None:
    async def scenario() -> tuple[UpstreamError, list[LinkReason]]:
        async with rig(tmp_path) as r:
            r.resolver.set_failing(True)
            with pytest.raises(UpstreamError) as caught:
                await r.client.authorize(sale(), LOCAL_DATETIME)
            return caught.value, r.signals

    error, signals = asyncio.run(scenario())
    assert isinstance(error, ResolveError) and error.reason is LinkReason.DNS
    assert not isinstance(error, UpstreamTimeout)
    assert signals == [LinkReason.DNS]


def test_reconnects_after_host_restart(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, str, int]:
        async with rig(tmp_path) as r:
            first = (await r.client.authorize(sale(seq=1), LOCAL_DATETIME)).response_code
            await r.host.close()
            restarted = AcquirerHost(tmp_path, port=r.host.port, today_yymm=lambda: "2511")
            await restarted.start()
            try:
                second = (await r.client.authorize(sale(seq=2), LOCAL_DATETIME)).response_code
            finally:
                await restarted.close()
            return first, second, r.client.counts["connects"]

    first, second, connects = asyncio.run(scenario())
    assert (first, second) == ("00", "00")
    assert connects == 2


def test_reconnects_after_refusal(tmp_path: Path) -> None:
    async def scenario() -> str:
        async with rig(tmp_path) as r:
            r.host.set_mode("down")
            with pytest.raises(UnreachableError):
                await r.client.echo()
            r.host.set_mode("up")
            return await r.client.echo()

    assert asyncio.run(scenario()) == "00"


def test_duplicate_and_stray_replies_are_ignored(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], int]:
        async with rig(tmp_path) as r:
            r.host.set_chaos(ChaosPlan(duplicate_reply=1.0))
            answers = [
                await r.client.authorize(sale(amount, seq=seq), LOCAL_DATETIME)
                for seq, amount in ((1, 1000), (2, 1051), (3, 1005))
            ]
            counts = r.client.counts
            return [a.response_code for a in answers], counts["stale"] + counts["other STAN"]

    codes, dropped = asyncio.run(scenario())
    assert codes == ["00", "51", "05"]  # each its own answer, never the previous one's copy
    assert dropped == 2  # the copies of the first two answers (the third's is never read)


def test_lost_answer_then_reversal_charges_nothing(tmp_path: Path) -> None:
    async def scenario() -> tuple[UpstreamError, str, list[dict[str, object]]]:
        async with rig(tmp_path, request_timeout_s=0.2) as r:
            r.host.set_chaos(ChaosPlan(drop_reply=1.0))
            with pytest.raises(UpstreamError) as caught:
                await r.client.authorize(sale(2000, seq=5), LOCAL_DATETIME)
            r.host.set_chaos(None)
            code = await r.client.send_reversal(
                forward_item(ForwardKind.REVERSAL, seq=5, amount_minor=2000)
            )
            return caught.value, code, r.host.ledger()

    error, code, ledger = asyncio.run(scenario())
    assert isinstance(error, OutcomeUnknown)  # the host approved it; the terminal cannot know
    assert code == "00"
    assert [(e["mti"], e["response_code"]) for e in ledger] == [("0200", "00"), ("0420", "00")]
    assert ledger[1]["reversed"] is True
    assert net_charged_minor(ledger) == 0


def test_advice_and_repeat_are_charged_once(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], list[dict[str, object]]]:
        async with rig(tmp_path) as r:
            codes = [
                await r.client.send_advice(forward_item(seq=8, amount_minor=900)),
                await r.client.forward(forward_item(seq=8, amount_minor=900, attempts=1)),
            ]
            return codes, r.host.ledger()

    codes, ledger = asyncio.run(scenario())
    assert codes == ["00", "00"]
    assert [(e["mti"], e["duplicate"]) for e in ledger] == [("0220", False), ("0221", True)]
    assert net_charged_minor(ledger) == 900


def test_retry_code_is_an_answer_and_a_signal(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, list[LinkReason]]:
        async with rig(tmp_path) as r:
            r.host.set_chaos(ChaosPlan(retry=1.0, retry_code="96"))
            code = await r.client.send_advice(forward_item())
            return code, r.signals

    assert asyncio.run(scenario()) == ("96", [LinkReason.RETRY])


def test_one_request_in_flight(tmp_path: Path) -> None:
    """Concurrent callers queue on the lock; each gets the answer to its own request."""

    async def scenario() -> list[str]:
        async with rig(tmp_path) as r:
            r.host.set_chaos(ChaosPlan(delay_s=0.02))
            answers = await asyncio.gather(
                *(
                    r.client.authorize(sale(a, seq=i), LOCAL_DATETIME)
                    for i, a in enumerate((1000, 1051, 1005, 2000), start=1)
                )
            )
            assert r.host.counts["connections"] == 1
            return [a.response_code for a in answers]

    assert asyncio.run(scenario()) == ["00", "51", "05", "00"]


def test_cancelled_request_leaves_no_half_read_stream(tmp_path: Path) -> None:
    """A caller giving up mid-request (a guard timer) must not leave the stream out of step."""

    async def scenario() -> tuple[str, int]:
        async with rig(tmp_path) as r:
            r.host.set_chaos(ChaosPlan(delay_s=0.2))
            pending = asyncio.create_task(r.client.authorize(sale(1051, seq=1), LOCAL_DATETIME))
            await asyncio.sleep(0.05)
            pending.cancel()
            with pytest.raises(asyncio.CancelledError):
                await pending
            r.host.set_chaos(None)
            answer = await r.client.authorize(sale(1250, seq=2), LOCAL_DATETIME)
            return answer.response_code, r.client.counts["connects"]

    assert asyncio.run(scenario()) == ("00", 2)


def test_useful_answers_are_told_to_on_answer_echoes_and_retries_are_not(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        async with rig(tmp_path) as r:
            heard: list[str] = []
            r.client.on_answer = lambda: heard.append("answer")
            await r.client.echo()
            await r.client.authorize(sale(1250, seq=1), LOCAL_DATETIME)  # approved
            await r.client.authorize(sale(1051, seq=2), LOCAL_DATETIME)  # declined 51: final
            r.host.set_chaos(ChaosPlan(retry=1.0))
            await r.client.authorize(sale(1250, seq=3), LOCAL_DATETIME)  # 91: not an answer
            return heard + [str(s) for s in r.signals]

    assert asyncio.run(scenario()) == ["answer", "answer", "RETRY"]


def test_a_new_connection_tries_the_hosts_in_order(tmp_path: Path) -> None:
    """Primary down: the sale goes to the secondary; back up: the next connection is the
    primary's again. Never both for one request."""

    async def scenario() -> tuple[list[int], list[int], int]:
        async with (
            AcquirerHost(tmp_path / "p", today_yymm=lambda: HOST_TODAY) as primary,
            AcquirerHost(tmp_path / "s", today_yymm=lambda: HOST_TODAY) as secondary,
        ):
            config = UpstreamConfig(
                hosts=(f"primary.test:{primary.port}", f"secondary.test:{secondary.port}")
            )
            resolver = SimResolver({"primary.test": "127.0.0.1", "secondary.test": "127.0.0.1"})
            client = UpstreamClient.from_config(config, TERMINAL, resolver)
            try:
                primary.set_mode("down")
                await client.authorize(sale(seq=1), LOCAL_DATETIME)
                primary.set_mode("up")
                await client.close()  # the next sale opens a new connection
                await client.authorize(sale(seq=2), LOCAL_DATETIME)
            finally:
                await client.close()
            stans = [[e["stan"] for e in host.ledger()] for host in (primary, secondary)]
            return stans[0], stans[1], client.counts["fallbacks"]

    on_primary, on_secondary, fallbacks = asyncio.run(scenario())
    assert (on_primary, on_secondary, fallbacks) == ([2], [1], 1)


def test_every_host_down_is_unreachable_with_the_primary_reason(tmp_path: Path) -> None:
    async def scenario() -> tuple[UnreachableError, list[LinkReason]]:
        async with rig(tmp_path) as r:
            r.host.set_mode("down")
            signals: list[LinkReason] = []
            client = UpstreamClient(
                "primary.test",
                r.host.port,
                r.resolver,
                TERMINAL,
                fallbacks=[(SIM_HOST, r.host.port)],
                on_signal=signals.append,
            )
            with pytest.raises(UnreachableError) as caught:
                await client.authorize(sale(), LOCAL_DATETIME)
            return caught.value, signals

    error, signals = asyncio.run(scenario())
    assert error.reason is LinkReason.DNS and signals == [LinkReason.DNS]  # primary.test unknown
    assert "primary.test" in str(error) and "refused" in str(error)


def test_an_0800_or_0500_takes_its_stan_only_when_it_goes_out(tmp_path: Path) -> None:
    """A STAN of the terminal's counter (the shell's StanSource) is spent on a message of no
    transaction only once the connection is ready: a probe that finds the host refusing takes
    none (while a link is down, the monitor probes every 0.5 s)."""
    taken: list[int] = []

    def stans() -> int:
        taken.append(len(taken) + 41)
        return taken[-1]

    async def scenario() -> list[int]:
        async with rig(tmp_path) as r:
            r.client.stans = stans
            r.host.set_mode("down")
            for _ in range(3):
                with pytest.raises(UnreachableError):
                    await r.client.echo(signal=False)
                with pytest.raises(UnreachableError):
                    await r.client.fetch_hotlist(0)
            assert taken == []
            r.host.set_mode("up")
            assert await r.client.echo() == "00"
            assert await r.client.fetch_hotlist(0) is None  # the sandbox keeps no hotlist
            return taken

    assert asyncio.run(scenario()) == [41, 42]  # one each, for the two that went out


def test_only_authorizations_and_echoes_are_slow_signals(tmp_path: Path) -> None:
    """A host may take its time over a day's totals (0500) or the hotlist (0800): a slow answer
    to them is no SLOW signal; the same delay on a sale is."""

    async def scenario() -> list[LinkReason]:
        async with rig(tmp_path) as r:
            r.client.slow_threshold_s = 0.02
            r.host.set_chaos(ChaosPlan(delay_s=0.1, mtis=frozenset({"0500", "0800", "0200"})))
            await r.client.reconcile(Batch(1, 1, 1), Reconciliation(), "EUR")
            assert await r.client.fetch_hotlist(0) is None  # the sandbox keeps no hotlist
            assert r.signals == []
            await r.client.authorize(sale(), LOCAL_DATETIME)
            return r.signals

    assert asyncio.run(scenario()) == [LinkReason.SLOW]
