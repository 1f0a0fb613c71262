"""The forwarding window end to end: a real journal, the real UpstreamClient and Forwarder, the
sandbox host on 127.0.0.1 answering with a WAN's latency, and the host's ledger reconciled
against the journal after each fault (lost = duplicated = phantom = unsettled = 0)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from journal_helpers import offline_sale, online_sale

from pitill.config import TerminalConfig, UpstreamConfig
from pitill.core.types import TxnStatus
from pitill.journal.forwarder import Forwarder
from pitill.journal.store import Journal
from pitill.records import ForwardItem
from pitill.sim.acquirer import AcquirerHost, ChaosPlan
from pitill.sim.reconcile import reconcile
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream.client import UpstreamClient
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import build_advice, build_response, decode, encode

TERMINAL = TerminalConfig()
UPSTREAM = UpstreamConfig(
    forward_retry_s=0.01, forward_retry_max_s=0.05, forward_jitter_s=0.0, forward_window=16
)
SALES = 70  # more than two batches of a 16-window (32 each)
LIE_CODE = "08"  # an approval only the lying host's made-up answer carries
FINALS = {TxnStatus.FORWARDED, TxnStatus.DECLINED_AFTER, TxnStatus.REVERSED}


def fill(journal: Journal, reversals: int = 2) -> None:
    """`reversals` timed-out online sales (REVERSAL_PENDING) among SALES offline sales."""
    for seq in range(1, SALES + reversals + 1):
        if seq % 30 == 5 and reversals:
            reversals -= 1
            journal.record(online_sale(seq).with_status(TxnStatus.REVERSAL_PENDING))
        else:
            journal.record(offline_sale(seq, amount_minor=100 + seq))


class Recording:
    """The client as the forwarder's sender, noting the order sends start and finish in, and
    calling `on_start(n)` as the n-th send starts (to break the link mid-window)."""

    def __init__(self, client: UpstreamClient) -> None:
        self.client = client
        self.started: list[int] = []
        self.finished: list[int] = []
        self.on_start: Callable[[int], Awaitable[None] | None] = lambda n: None

    async def send_advice(self, item: ForwardItem) -> str:
        return await self._send(item, self.client.send_advice)

    async def send_reversal(self, item: ForwardItem) -> str:
        return await self._send(item, self.client.send_reversal)

    async def _send(self, item: ForwardItem, send: Callable[[ForwardItem], Awaitable[str]]) -> str:
        self.started.append(item.row.seq)
        hook = self.on_start(len(self.started))
        if hook is not None:
            await hook
        code = await send(item)
        self.finished.append(item.row.seq)
        return code


def client_for(port: int, request_timeout_s: float = 2.0) -> UpstreamClient:
    return UpstreamClient(
        SIM_HOST,
        port,
        SimResolver(),
        TERMINAL,
        request_timeout_s=request_timeout_s,
        connect_timeout_s=1.0,
    )


async def drain(journal: Journal, forwarder: Forwarder, what: str) -> None:
    """Run the forwarder until nothing is pending; bounded in turns, not timed."""
    forwarder.set_online(True)
    forwarder.start()
    for _ in range(3000):
        if journal.pending_count() == 0:
            break
        await asyncio.sleep(0.005)
    await forwarder.stop()
    assert journal.pending_count() == 0, f"never drained: {what}"


def assert_reconciled(journal: Journal, ledger: list[dict[str, object]]) -> None:
    check = reconcile(journal.rows(), ledger, TERMINAL.terminal_id, settled=True)
    assert check.counts() == {"lost": 0, "duplicated": 0, "phantom": 0, "unsettled": 0}, (
        check.problems()[:5]
    )
    for row in journal.rows():  # committed FORWARDED (or REVERSED) exactly once
        finals = [h for h in journal.history(row.seq) if h.status in FINALS]
        assert len(finals) == 1, (row.seq, finals)


def assert_reversals_first(ledger: list[dict[str, object]]) -> None:
    """The host received no advice before every reversal of the backlog."""
    mtis = [str(entry["mti"]) for entry in ledger]
    last_reversal = max(i for i, mti in enumerate(mtis) if mti.startswith("04"))
    first_advice = min(i for i, mti in enumerate(mtis) if mti.startswith("02"))
    assert last_reversal < first_advice, mtis[: last_reversal + 1]


def test_answers_out_of_order_are_each_matched_to_their_stan(
    journal: Journal, tmp_path: Path
) -> None:
    fill(journal)
    # Each answer 1..21 ms after its request: they overtake each other within a window.
    plan = ChaosPlan(latency_s=0.001, latency_jitter_s=0.02, seed=3)

    async def scenario() -> None:
        async with AcquirerHost(tmp_path / "host", chaos=plan) as host:
            client = client_for(host.port)
            sender = Recording(client)
            forwarder = Forwarder(journal, sender, UPSTREAM, rng=random.Random(1))
            await drain(journal, forwarder, "out-of-order answers")
            await client.close()
            ledger = host.ledger()
        assert forwarder.stats.max_in_flight == UPSTREAM.forward_window
        assert sender.finished != sender.started  # the host's answers really came out of order
        assert sorted(sender.finished) == sorted(sender.started) == [r.seq for r in journal.rows()]
        assert forwarder.stats.repeats == 0 and client.counts["other STAN"] == 0
        assert not any(entry["duplicate"] for entry in ledger)
        assert_reversals_first(ledger)
        assert_reconciled(journal, ledger)

    asyncio.run(scenario())


def test_a_lost_answer_mid_window_is_repeated_as_0221_never_lost_never_charged_twice(
    journal: Journal, tmp_path: Path
) -> None:
    fill(journal, reversals=0)
    # About one answer in 20 is processed and ledgered by the host, then never sent.
    plan = ChaosPlan(latency_s=0.005, drop_reply=0.05, seed=11)

    async def scenario() -> None:
        async with AcquirerHost(tmp_path / "host", chaos=plan) as host:
            client = client_for(host.port, request_timeout_s=0.3)
            forwarder = Forwarder(journal, client, UPSTREAM, rng=random.Random(1))
            await drain(journal, forwarder, "lost answers")
            await client.close()
            ledger = host.ledger()
            dropped = host.counts["dropped_replies"]
        assert dropped > 0
        repeats = [e for e in ledger if e["mti"] == "0221"]
        assert repeats and forwarder.stats.repeats == len(repeats)
        first_sent = {e["stan"] for e in ledger if e["mti"] == "0220"}
        assert {e["stan"] for e in repeats} <= first_sent  # a 0221 only repeats what went out
        assert any(e["duplicate"] for e in repeats)  # ...and the host absorbed what it held
        assert_reconciled(journal, ledger)

    asyncio.run(scenario())


def test_a_reset_mid_window_loses_nothing_and_charges_nothing_twice(
    journal: Journal, tmp_path: Path
) -> None:
    fill(journal)

    async def scenario() -> None:
        # 50 ms answers: killed 10 ms after the 40th send, the host has ledgered a window of
        # advices whose answers it never sends.
        plan = ChaosPlan(latency_s=0.05)
        async with AcquirerHost(tmp_path / "host", chaos=plan) as host:
            client = client_for(host.port)
            sender = Recording(client)

            async def kill_and_restart(n: int) -> None:
                if n == 40:  # every open connection aborted, answers unsent; back 0.1 s later
                    loop = asyncio.get_running_loop()
                    loop.call_later(0.01, host.set_mode, "down")
                    loop.call_later(0.1, host.set_mode, "up")

            sender.on_start = kill_and_restart
            forwarder = Forwarder(journal, sender, UPSTREAM, rng=random.Random(1))
            await drain(journal, forwarder, "a reset mid-window")
            await client.close()
            ledger = host.ledger()
        assert forwarder.stats.retries >= 1 and forwarder.stats.repeats >= 1
        assert any(e["duplicate"] for e in ledger)  # ledgered, answer lost in the reset, repeated
        assert_reversals_first(ledger)
        assert_reconciled(journal, ledger)

    asyncio.run(scenario())


async def _lying_relay(
    host: AcquirerHost, lie_for: ForwardItem, port_ready: asyncio.Future[int]
) -> None:
    """A host in front of the sandbox one (its real decisions and ledger) that lies: just before
    its 20th answer (a window is open by then) it sends a 0230 "08" for `lie_for`, a STAN not
    yet in flight, exact in every other field; the first request for that STAN it then
    swallows. A terminal taking the early "answer" would mark that sale FORWARDED while the
    host never got it (lost); one taking it for another request would journal its 08."""
    lie = frame(encode(build_response(build_advice(lie_for, TERMINAL), LIE_CODE)))
    answered = 0
    swallowed = False

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered, swallowed
        while (payload := await read_frame(reader)) is not None:
            message = decode(payload)
            if message["11"] == f"{lie_for.row.stan:06d}" and not swallowed:
                swallowed = True
                continue
            answer = host.process(message)
            assert answer is not None
            answered += 1
            writer.write((lie if answered == 20 else b"") + frame(encode(answer)))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port_ready.set_result(server.sockets[0].getsockname()[1])
    async with server:
        await asyncio.Event().wait()


def test_a_lying_answer_for_a_stan_not_in_flight_is_dropped(
    journal: Journal, tmp_path: Path
) -> None:
    fill(journal, reversals=0)
    last = journal.next_forward_items(SALES)[-1]
    last = dataclasses.replace(last, row=dataclasses.replace(last.row, attempts=1))  # as sent

    async def scenario() -> None:
        async with AcquirerHost(tmp_path / "host") as host:
            ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            relay = asyncio.create_task(_lying_relay(host, last, ready))
            client = client_for(await ready, request_timeout_s=0.3)
            forwarder = Forwarder(journal, client, UPSTREAM, rng=random.Random(1))
            await drain(journal, forwarder, "a lying host")
            await client.close()
            relay.cancel()
            ledger = host.ledger()
        assert client.counts["other STAN"] == 1  # the lie, read in a window and dropped
        assert not [row.seq for row in journal.rows() if row.response_code == LIE_CODE]
        assert [e["mti"] for e in ledger if e["stan"] == last.row.stan] == ["0221"]
        assert_reconciled(journal, ledger)

    asyncio.run(scenario())
