"""The client's window (upstream/window.py) against a real AcquirerHost on loopback: many advices
on one connection, one signal per failed window, a sale served between windows."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from upstream_helpers import LOCAL_DATETIME, eventually, forward_item, rig, sale

from pitill.sim.acquirer import ChaosPlan
from pitill.upstream.failures import LinkReason, OutcomeUnknown


def test_a_window_of_advices_shares_one_connection_and_each_gets_its_answer(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            # Answers 1..31 ms late, in whatever order the draws give.
            r.host.set_chaos(ChaosPlan(latency_s=0.001, latency_jitter_s=0.03, seed=2))
            items = [forward_item(seq=seq, amount_minor=100 + seq) for seq in range(1, 17)]
            codes = await asyncio.gather(*(r.client.send_advice(item) for item in items))
            assert codes == ["00"] * 16
            assert r.client.counts["connects"] == 1
            ledger = r.host.ledger()
            assert sorted(e["stan"] for e in ledger) == list(range(1, 17))
            assert r.client.counts["other STAN"] == 0  # every answer found its own request

    asyncio.run(scenario())


def test_a_stan_twice_in_flight_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            r.host.set_chaos(ChaosPlan(latency_s=0.05))
            first = asyncio.ensure_future(r.client.send_advice(forward_item(seq=3)))
            await asyncio.sleep(0.01)
            with pytest.raises(ValueError, match="STAN 000003 is already in flight"):
                await r.client.send_advice(forward_item(seq=3, attempts=1))
            assert await first == "00"

    asyncio.run(scenario())


def test_a_window_that_times_out_fails_all_in_it_with_one_signal(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path, request_timeout_s=0.2) as r:
            r.host.set_mode("blackhole")  # reads every advice, answers none
            items = [forward_item(seq=seq) for seq in range(1, 9)]
            results = await asyncio.gather(
                *(r.client.send_advice(item) for item in items), return_exceptions=True
            )
            assert all(isinstance(result, OutcomeUnknown) for result in results), results
            assert r.signals == [LinkReason.TIMEOUT]  # one window, one signal to the monitor
            r.host.set_mode("up")
            assert await r.client.send_advice(forward_item(seq=9)) == "00"
            assert r.client.counts["connects"] == 2  # the failed window's connection was dropped

    asyncio.run(scenario())


def test_a_window_answered_91_is_one_retry_signal(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            r.host.set_chaos(ChaosPlan(retry=1.0, latency_s=0.01))
            items = [forward_item(seq=seq) for seq in range(1, 9)]
            codes = await asyncio.gather(*(r.client.send_advice(item) for item in items))
            assert codes == ["91"] * 8
            assert r.signals == [LinkReason.RETRY]

    asyncio.run(scenario())


def test_a_sale_waiting_for_the_connection_goes_between_two_windows(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with rig(tmp_path) as r:
            # Answers late enough that the first window is surely still in flight when the sale
            # queues (the waits below are on conditions; this only keeps them meaningful).
            r.host.set_chaos(ChaosPlan(latency_s=0.2))
            order: list[str] = []

            async def advice(seq: int) -> None:
                await r.client.send_advice(forward_item(seq=seq))
                order.append(f"advice {seq}")

            async def online_sale() -> None:
                await r.client.authorize(sale(seq=50), LOCAL_DATETIME)
                order.append("sale")

            window = r.client._window  # what is in flight, for the waits only
            first = [asyncio.ensure_future(advice(seq)) for seq in range(1, 5)]
            # The first window is in flight (connected and sent; a sale queued while it still
            # connects goes ahead of it, which is not this test).
            assert await eventually(lambda: window.in_flight == 4), window.in_flight
            waiting = asyncio.ensure_future(online_sale())
            assert await eventually(lambda: r.client._queued == 1)  # the sale waits
            assert window.in_flight == 4  # ...for the first window, still in flight
            second = [asyncio.ensure_future(advice(seq)) for seq in range(5, 9)]
            await asyncio.gather(*first, waiting, *second)
            # The sale did not wait for the second window: it went as soon as the first ended.
            assert order.index("sale") == 4, order
            assert r.client.counts["connects"] == 1

    asyncio.run(scenario())
