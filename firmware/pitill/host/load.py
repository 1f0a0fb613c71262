"""`pitill host load`: many terminals in one process against a running `pitill host serve`.

Each simulated terminal holds one TCP connection and speaks the real protocol (the messages a
pitill terminal sends, framed as on the wire). Three phases:

1. steady: every terminal sells online (0200), one sale in flight each, for `sales` sales;
   reported: sales per second over all terminals and the p50/p99 time to each answer;
2. the outage: each terminal approves `advices` sales offline (nothing reaches the host);
3. the heal: every terminal forwards its backlog (0220, up to `window` in flight, answers
   matched by STAN, the window sized by the forwarder's own rule: WindowSize), all starting at
   once, or each after the terminal's own heal wait (heal_delay_s: uniform in [0, jitter_s], as
   upstream.forward_jitter_s); a share of the advices is sent twice (0221, after the first
   pass), as after a lost answer. Reported: the time from the heal until the last advice is
   acknowledged, and the p50/p99 time an advice waited for its answer (what a stampede costs:
   the host's queue).

Then the host's own books are checked: each sale and each advice charged exactly once (the
movements per terminal and STAN), none lost, none twice.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from pitill.config import UpstreamConfig
from pitill.host.cards import parse_card
from pitill.host.store import HostStore
from pitill.journal.forwarder import WindowSize, heal_delay_s
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import Message, decode, encode

REPEAT_SHARE = 0.05  # advices sent again as 0221 after the first answer
AMOUNT_MINOR = 100


def load_pan(index: int) -> str:
    """A Luhn-valid 16-digit PAN of the load's cards (prefix 628 as a closed-loop BIN)."""
    body = f"628{index:012d}"
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit * 2 > 9 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


@dataclass
class LoadResult:
    terminals: int
    sales: int
    advices: int
    jitter_s: float
    sale_latencies_s: list[float] = field(default_factory=list)
    advice_latencies_s: list[float] = field(default_factory=list)  # each advice's round trip
    steady_s: float = 0.0
    heal_s: float = 0.0
    answered: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # (terminal id, movement kind) -> the STANs the host answered 00: what must be charged
    approved: dict[tuple[str, str], set[int]] = field(default_factory=dict)

    @property
    def sales_per_s(self) -> float:
        return len(self.sale_latencies_s) / self.steady_s if self.steady_s else 0.0

    def percentile_s(self, share: float, latencies_s: list[float] | None = None) -> float:
        ordered = sorted(self.sale_latencies_s if latencies_s is None else latencies_s)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

    def summary(self) -> dict[str, Any]:
        return {
            "terminals": self.terminals,
            "sales": len(self.sale_latencies_s),
            "sales_per_s": round(self.sales_per_s, 1),
            "p50_ms": round(1000 * statistics.median(self.sale_latencies_s), 2)
            if self.sale_latencies_s
            else None,
            "p99_ms": round(1000 * self.percentile_s(0.99), 2),
            "advices": self.terminals * self.advices,
            "jitter_s": self.jitter_s,
            "heal_settled_s": round(self.heal_s, 3),
            "advice_p50_ms": round(1000 * self.percentile_s(0.5, self.advice_latencies_s), 2),
            "advice_p99_ms": round(1000 * self.percentile_s(0.99, self.advice_latencies_s), 2),
            "answered": self.answered,
            "problems": self.problems[:20],
        }


def _message(mti: str, terminal_id: str, stan: int, pan: str, day: str) -> Message:
    when = f"{day}{stan // 3600 % 24:02d}{stan // 60 % 60:02d}{stan % 60:02d}"
    return {
        "t": mti,
        "2": pan,
        "3": "000000",
        "4": f"{AMOUNT_MINOR:012d}",
        "7": when,
        "11": f"{stan % 1_000_000:06d}",
        "12": when[4:],
        "13": when[:4],
        "14": "3012",
        "22": "902",
        "41": terminal_id,
        "42": "PITILLSHOP00001",
        "49": "978",
    }


class _Terminal:
    def __init__(self, index: int, host: str, port: int, cards: int) -> None:
        self.terminal_id = f"LOAD{index:04d}"
        self.pan = load_pan(index % cards)
        self.host, self.port = host, port
        self.stan = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def ask(self, message: Message) -> Message:
        assert self.reader is not None and self.writer is not None
        self.writer.write(frame(encode(message)))
        await self.writer.drain()
        data = await read_frame(self.reader)
        if data is None:
            raise ConnectionError("the host closed the connection")
        return decode(data)

    async def ask_window(self, messages: list[Message], window: int) -> list[tuple[Message, float]]:
        """Each message's answer and round trip, up to `window` in flight as the terminal's
        forwarder sizes it (WindowSize), answers matched by STAN (distinct in `messages`), in
        whatever order the host gives them."""
        assert self.reader is not None and self.writer is not None
        reader, writer = self.reader, self.writer
        loop = asyncio.get_running_loop()
        answers: dict[str, asyncio.Future[Message]] = {
            m["11"]: loop.create_future() for m in messages
        }

        async def read() -> None:
            try:
                for _ in messages:
                    data = await read_frame(reader)
                    if data is None:
                        raise ConnectionError("the host closed the connection")
                    answer = decode(data)
                    waiting = answers.get(answer.get("11", ""))
                    if waiting is None or waiting.done():
                        raise ConnectionError(f"an answer to no advice in flight: {answer}")
                    waiting.set_result(answer)
            except Exception as exc:  # every advice still waiting fails with it
                for waiting in answers.values():
                    if not waiting.done():
                        waiting.set_exception(exc)

        size = WindowSize(window, UpstreamConfig.slow_threshold_s)  # the terminal's own rule
        queue = iter(messages)
        in_flight: dict[asyncio.Future[Message], float] = {}
        done: list[tuple[Message, float]] = []
        reading = asyncio.ensure_future(read())
        try:
            while True:
                while len(in_flight) < size.size and (message := next(queue, None)) is not None:
                    writer.write(frame(encode(message)))
                    in_flight[answers[message["11"]]] = time.perf_counter()
                await writer.drain()
                if not in_flight:
                    return done
                answered, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for future in answered:
                    sent_at, now = in_flight.pop(future), time.perf_counter()
                    done.append((future.result(), now - sent_at))
                    size.answered(sent_at, now)
        finally:
            reading.cancel()

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def prepare_accounts(store: HostStore, cards: int, balance_minor: int) -> None:
    """The load's cards, each with a balance that every sale of the run fits in."""
    for index in range(cards):
        card = parse_card(load_pan(index))
        if store.account(card) is None:
            store.add_account(card, balance_minor)


async def run_load(
    host: str,
    port: int,
    *,
    terminals: int,
    sales: int,
    advices: int,
    jitter_s: float,
    cards: int,
    seed: int = 1,
    day: str = "1130",
    window: int = UpstreamConfig.forward_window,
) -> LoadResult:
    rng = random.Random(seed)
    result = LoadResult(terminals, sales, advices, jitter_s)
    fleet = [_Terminal(i, host, port, cards) for i in range(terminals)]
    await asyncio.gather(*(t.connect() for t in fleet))
    answered: dict[str, int] = {}

    def count(answer: Message) -> None:
        answered[answer.get("39", "??")] = answered.get(answer.get("39", "??"), 0) + 1

    def took(terminal: _Terminal, kind: str, stan: int, answer: Message) -> None:
        count(answer)
        if answer.get("39") == "00":
            result.approved.setdefault((terminal.terminal_id, kind), set()).add(stan)

    async def sell(terminal: _Terminal) -> None:
        for _ in range(sales):
            terminal.stan += 1
            started = time.perf_counter()
            answer = await terminal.ask(
                _message("0200", terminal.terminal_id, terminal.stan, terminal.pan, day)
            )
            result.sale_latencies_s.append(time.perf_counter() - started)
            took(terminal, "sale", terminal.stan, answer)

    began = time.perf_counter()
    await asyncio.gather(*(sell(t) for t in fleet))
    result.steady_s = time.perf_counter() - began

    backlog = {t.terminal_id: [t.stan + 1 + n for n in range(advices)] for t in fleet}

    async def forward(terminal: _Terminal) -> None:
        if (wait_s := heal_delay_s(rng, jitter_s)) > 0:
            await asyncio.sleep(wait_s)
        first = [
            _message("0220", terminal.terminal_id, stan, terminal.pan, day)
            for stan in backlog[terminal.terminal_id]
        ]
        # Some answers were "lost": those advices go again as repeats once the first pass ended.
        again = [dict(advice, t="0221") for advice in first if rng.random() < REPEAT_SHARE]
        for advices_now in (first, again):
            for answer, round_trip_s in await terminal.ask_window(advices_now, window):
                result.advice_latencies_s.append(round_trip_s)
                took(terminal, "offline_sale", int(answer["11"]), answer)

    healed = time.perf_counter()
    await asyncio.gather(*(forward(t) for t in fleet))
    result.heal_s = time.perf_counter() - healed
    await asyncio.gather(*(t.close() for t in fleet))
    result.answered = answered
    return result


def check_books(store: HostStore, result: LoadResult) -> list[str]:
    """Against the host's own tables: every sale and advice the host approved is charged
    exactly once, and nothing it did not approve is charged."""
    problems = []
    charged: dict[tuple[str, str], list[int]] = {}
    for terminal_id, kind, stan in store.execute(
        "SELECT terminal_id, kind, stan FROM movements WHERE terminal_id LIKE 'LOAD%'"
    ):
        charged.setdefault((terminal_id, kind), []).append(int(stan))
    for key in sorted(set(charged) | set(result.approved)):
        stans, wanted = charged.get(key, []), result.approved.get(key, set())
        twice = len(stans) - len(set(stans))
        if twice:
            problems.append(f"{key[0]}: {twice} {key[1]}(s) charged twice")
        if lost := wanted - set(stans):
            problems.append(f"{key[0]}: {len(lost)} approved {key[1]}(s) not charged")
        if phantom := set(stans) - wanted:
            problems.append(f"{key[0]}: {len(phantom)} {key[1]}(s) charged, never approved")
    return problems
