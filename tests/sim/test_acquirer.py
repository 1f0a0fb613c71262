"""AcquirerHost on real loopback sockets: decisions, ledger and dedup, modes, chaos, CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from pitill.core.types import TxnKind, TxnStatus
from pitill.errors import ConfigError
from pitill.sim.acquirer import (
    LEDGER_NAME,
    AcquirerHost,
    ChaosPlan,
    decide_sale,
    net_charged_minor,
)
from pitill.sim.reconcile import JournalEntry, reconcile
from pitill.upstream.connect import close_stream
from pitill.upstream.exchange import mismatch
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.messages import Message, Request, decode, encode

TODAY = "2511"
# What an advice adds to a sale's fields: the terminal's offline approval code and response code.
OFFLINE_DECISION = {mti: {"38": "OF0001", "39": "Y3"} for mti in ("0220", "0221")}


def sale_request(
    stan: int = 1,
    amount_minor: int = 1250,
    pan: str = "4111111111111111",
    expiry: str = "3012",
    mti: str = "0200",
    when: str = "1128101500",  # MMDDhhmmss
) -> Message:
    """A financial request as it arrives on the wire (0200, or 0220/0221 with mti=)."""
    return {
        "t": mti,
        "2": pan,
        "3": "000000",
        "4": f"{amount_minor:012d}",
        "7": when,
        "11": f"{stan:06d}",
        "12": when[4:],
        "13": when[:4],
        "14": expiry,
        "22": "902",
        "41": "PITILL01",
        "42": "PITILLSHOP00001",
        "49": "978",
        **OFFLINE_DECISION.get(mti, {}),
        **({"35": f"{pan}={expiry}1010000"} if mti == "0200" else {}),  # the swipe's track 2
    }


def reversal_request(stan: int, amount_minor: int, mti: str = "0420") -> Message:
    request = {k: v for k, v in sale_request(stan, amount_minor).items() if k != "35"}
    request["t"] = mti  # with the sale's card (2, 14, 22), as the terminal sends it
    request["39"] = "68"  # reason: the 0200's answer came too late
    request["90"] = "0200" + f"{stan:06d}" + "1128101500" + "0" * 22
    return request


ECHO: Message = {"t": "0800", "7": "1128101500", "11": "000099", "70": "301"}


class Line:
    """One terminal connection to the host, speaking frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: AcquirerHost) -> Line:
        return cls(*await asyncio.open_connection("127.0.0.1", host.port))

    async def send(self, message: Message) -> None:
        self.writer.write(frame(encode(message)))
        await self.writer.drain()

    async def receive(self, timeout_s: float = 5.0) -> Message | None:
        """The next answer; None when the host closed; TimeoutError when it stays silent."""
        async with asyncio.timeout(timeout_s):
            payload = await read_frame(self.reader)
        return None if payload is None else decode(payload)

    async def ask(self, message: Message) -> Message:
        await self.send(message)
        answer = await self.receive()
        assert answer is not None
        return answer

    async def close(self) -> None:
        await close_stream(self.writer)


Body = Callable[[AcquirerHost, Line], Awaitable[Any]]


def with_host(tmp_path: Path, body: Body, **host_kwargs: Any) -> Any:
    async def scenario() -> Any:
        async with AcquirerHost(tmp_path, today_yymm=lambda: TODAY, **host_kwargs) as host:
            line = await Line.open(host)
            try:
                return await body(host, line)
            finally:
                await line.close()

    return asyncio.run(scenario())


# --- decisions ------------------------------------------------------------------------------


def _request(amount: int = 1250, pan: str = "4111111111111111", expiry: str = "3012") -> Request:
    return Request(
        "0200", 1, "1128101500", "1128101500", "PITILL01", "", amount, "978", pan, expiry
    )


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (_request(), "00"),
        (_request(1051), "51"),
        (_request(151), "51"),
        (_request(1005), "05"),
        (_request(5), "05"),
        (_request(1050), "00"),
        (_request(pan="4000000000000002"), "05"),
        (_request(pan="4111111111111112"), "14"),
        (_request(pan="4111"), "14"),
        (_request(expiry="2510"), "54"),
        (_request(expiry="2511"), "00"),  # valid through the end of its month
        (_request(expiry="2513"), "30"),
        (_request(0), "13"),
    ],
)
def test_decide_sale(request_: Request, code: str) -> None:
    assert decide_sale(request_, TODAY) == code


# --- answers and ledger ---------------------------------------------------------------------


def test_a_message_that_breaks_docs_iso8583_is_a_format_error(tmp_path: Path) -> None:
    """The sandbox checks docs/iso8583.md, so a field regression fails the simulator's sales."""
    advice = sale_request(3, 700, mti="0220")
    broken = [
        {k: v for k, v in advice.items() if k != "38"},  # no offline approval code
        {**advice, "39": "Y-"},  # field 39 is an
        {k: v for k, v in sale_request(4, 700).items() if k != "22"},  # no POS entry mode
        {k: v for k, v in reversal_request(1, 1250).items() if k != "39"},  # no reason
        {**sale_request(5, 700), "90": "0" * 42},  # field 90 only in a reversal
    ]

    async def body(host: AcquirerHost, line: Line) -> list[Message]:
        return [await line.ask(message) for message in broken]

    answers = with_host(tmp_path, body)
    assert [answer["39"] for answer in answers] == ["30"] * len(broken)
    assert AcquirerHost(tmp_path).ledger() == []  # nothing was processed


def test_a_reversal_finds_its_sale_by_utc_field_7(tmp_path: Path) -> None:
    """Field 7 is UTC, fields 12/13 local: field 90 names the sale by its field 7."""
    sale = {**sale_request(6, 1250), "7": "1128181500"}  # 10:15 local in Los Angeles
    reversal = {**reversal_request(6, 1250), "90": "0200000006" + "1128181500" + "0" * 22}

    async def body(host: AcquirerHost, line: Line) -> list[Message]:
        return [await line.ask(sale), await line.ask(reversal)]

    assert [answer["39"] for answer in with_host(tmp_path, body)] == ["00", "00"]
    entries = AcquirerHost(tmp_path).ledger()
    assert entries[-1]["reversed"] is True
    assert net_charged_minor(entries) == 0


def test_answers_and_ledger(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> list[Message]:
        return [
            await line.ask(ECHO),
            await line.ask(sale_request(1, 1250)),
            await line.ask(sale_request(2, 1051)),
            await line.ask(sale_request(3, 700, mti="0220")),
            await line.ask(reversal_request(1, 1250)),
        ]

    echo, approved, declined, advice, reversal = with_host(tmp_path, body)
    assert (echo["t"], echo["39"]) == ("0810", "00")
    assert (approved["t"], approved["39"], len(approved["38"])) == ("0210", "00", 6)
    assert "2" not in approved  # the PAN never comes back
    assert (declined["39"], "38" in declined) == ("51", False)
    assert (advice["t"], advice["39"]) == ("0230", "00")
    assert (reversal["t"], reversal["39"]) == ("0430", "00")

    # As real hosts do, every answer echoes what the terminal matches it by: STAN, terminal id,
    # amount and transmission time (so an answer can be told from another request's).
    for request, answer in zip(
        (ECHO, sale_request(1, 1250), sale_request(3, 700, mti="0220"), reversal_request(1, 1250)),
        (echo, approved, advice, reversal),
        strict=True,
    ):
        for key in ("4", "7", "11", "41"):
            assert answer.get(key) == request.get(key), (request["t"], key)
        assert mismatch(request, answer) is None

    lines = (tmp_path / LEDGER_NAME).read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert [e["mti"] for e in entries] == ["0200", "0200", "0220", "0420"]  # no echo
    first = entries[0]
    assert {k: first[k] for k in ("stan", "terminal_id", "amount_minor", "currency")} == {
        "stan": 1,
        "terminal_id": "PITILL01",
        "amount_minor": 1250,
        "currency": "978",
    }
    assert [e["response_code"] for e in entries] == ["00", "51", "00", "00"]
    assert not any(e["duplicate"] for e in entries)
    assert entries[3]["reversed"] is True
    assert net_charged_minor(entries) == 700  # the sale was reversed, the advice stands


def test_duplicates_are_answered_alike_and_charged_once(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> list[Message]:
        return [
            await line.ask(sale_request(1, 1250)),
            await line.ask(sale_request(1, 1250)),
            await line.ask(sale_request(4, 800, mti="0220")),
            await line.ask(sale_request(4, 800, mti="0221")),
            await line.ask(sale_request(4, 800, mti="0221")),
            await line.ask(sale_request(1, 1250, when="1129101500")),  # another day: new
        ]

    answers = with_host(tmp_path, body)
    assert answers[0]["38"] == answers[1]["38"] and answers[0]["37"] == answers[1]["37"]
    assert answers[5]["37"] != answers[0]["37"]
    entries = AcquirerHost(tmp_path).ledger()
    assert [e["duplicate"] for e in entries] == [False, True, False, True, True, False]
    assert net_charged_minor(entries) == 1250 + 800 + 1250


def test_restarted_host_still_dedups(tmp_path: Path) -> None:
    async def first(host: AcquirerHost, line: Line) -> Message:
        await line.ask(sale_request(9, 4000, mti="0220"))
        return await line.ask(sale_request(10, 1500))

    async def second(host: AcquirerHost, line: Line) -> list[Message]:
        return [
            await line.ask(sale_request(9, 4000, mti="0221")),
            await line.ask(sale_request(10, 1500)),
            await line.ask(sale_request(11, 1500)),
        ]

    before = with_host(tmp_path, first)
    after = with_host(tmp_path, second)
    assert after[1]["38"] == before["38"]  # the first answer, remembered across the restart
    assert after[2]["37"] > before["37"]  # and new references carry on from the old ones
    entries = AcquirerHost(tmp_path).ledger()
    assert [e["duplicate"] for e in entries] == [False, False, True, True, False]
    assert net_charged_minor(entries) == 4000 + 1500 + 1500


def test_torn_last_line_is_dropped_on_start(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> Message:
        return await line.ask(sale_request(1))

    with_host(tmp_path, body)
    ledger = tmp_path / LEDGER_NAME
    with ledger.open("a") as f:
        f.write('{"mti": "0200", "st')  # a crash in the middle of a write
    with_host(tmp_path, body)
    lines = ledger.read_text().splitlines()
    assert len(lines) == 2 and all(json.loads(line) for line in lines)
    assert json.loads(lines[1])["duplicate"] is True


def test_advice_policy_can_decline(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> Message:
        return await line.ask(sale_request(3, 1051, mti="0220"))

    answer = with_host(tmp_path, body, advice_policy=decide_sale)
    assert answer["39"] == "51"
    assert net_charged_minor(AcquirerHost(tmp_path).ledger()) == 0


def test_garbage_and_unknown_messages(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> tuple[Message, Message]:
        line.writer.write(frame(b"garbage"))
        await line.send({"t": "0100", "11": "000001"})
        incomplete = await line.ask({"t": "0200", "11": "000002", "7": "1128101500"})
        return incomplete, await line.ask(ECHO)  # still talking

    incomplete, echo = with_host(tmp_path, body)
    assert (incomplete["t"], incomplete["39"]) == ("0210", "30")
    assert echo["39"] == "00"


# --- modes ----------------------------------------------------------------------------------


def test_down_refuses_and_drops(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> None:
        await line.ask(ECHO)
        host.set_mode("down")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", host.port)
        with contextlib.suppress(ConnectionResetError):  # dropped: EOF or reset
            assert await line.receive() is None
        host.set_mode("up")
        again = await Line.open(host)
        assert (await again.ask(ECHO))["39"] == "00"
        await again.close()

    with_host(tmp_path, body)


def test_blackhole_reads_and_never_answers(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> None:
        await line.ask(ECHO)
        host.set_mode("blackhole")
        fresh = await Line.open(host)  # still accepts
        for silent in (line, fresh):
            await silent.send(sale_request(1))
            with pytest.raises(TimeoutError):
                await silent.receive(timeout_s=0.1)
        host.set_mode("up")
        assert (await fresh.ask(ECHO))["39"] == "00"
        await fresh.close()

    with_host(tmp_path, body)
    assert AcquirerHost(tmp_path).ledger() == []


def test_unknown_mode() -> None:
    async def scenario() -> None:
        AcquirerHost(Path("unused")).set_mode("sideways")

    with pytest.raises(ConfigError, match="sideways"):
        asyncio.run(scenario())


# --- chaos ----------------------------------------------------------------------------------


def test_chaos_drop_request_and_reply(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> list[dict[str, Any]]:
        host.set_chaos(ChaosPlan(drop_request=1.0))
        await line.send(sale_request(1))
        with pytest.raises(TimeoutError):
            await line.receive(timeout_s=0.1)
        assert host.ledger() == []  # never processed
        host.set_chaos(ChaosPlan(drop_reply=1.0))
        await line.send(sale_request(2))
        with pytest.raises(TimeoutError):
            await line.receive(timeout_s=0.1)
        assert (await line.ask(ECHO))["39"] == "00"  # echoes are spared by default
        return host.ledger()

    entries = with_host(tmp_path, body)
    assert [(e["stan"], e["response_code"]) for e in entries] == [(2, "00")]  # processed


def test_chaos_duplicate_reply_and_retry(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> list[Message | None]:
        host.set_chaos(ChaosPlan(duplicate_reply=1.0))
        answers = [await line.ask(sale_request(1)), await line.receive()]
        host.set_chaos(ChaosPlan(retry=1.0, retry_code="96"))
        answers.append(await line.ask(sale_request(2, mti="0220")))
        host.set_chaos(None)
        answers.append(await line.ask(sale_request(2, mti="0221")))
        return answers

    first, copy, retried, resent = with_host(tmp_path, body)
    assert copy == first
    assert (retried["39"], resent["39"]) == ("96", "00")
    entries = AcquirerHost(tmp_path).ledger()
    # A 96 did not process the advice: the repeat is the first real one, not a duplicate.
    assert [(e["response_code"], e["duplicate"]) for e in entries] == [
        ("00", False),
        ("96", False),
        ("00", False),
    ]


def test_chaos_delay_then_blackhole_stays_silent(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> None:
        host.set_chaos(ChaosPlan(delay_s=0.1))
        await line.send(sale_request(1))
        host.set_mode("blackhole")
        with pytest.raises(TimeoutError):
            await line.receive(timeout_s=0.3)

    with_host(tmp_path, body)


def test_chaos_is_repeatable_by_seed() -> None:
    from pitill.sim.acquirer.chaos import _Chaos

    def draws(seed: int) -> list[bool]:
        chaos = _Chaos(ChaosPlan(drop_reply=0.5, seed=seed))
        return [chaos.hits(0.5, "0200") for _ in range(40)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)
    assert 0 < sum(draws(1)) < 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop_reply": 1.5}, "drop_reply"),
        ({"delay_s": -1.0}, "delay_s"),
        ({"retry_code": "05"}, "retry_code"),
        ({"mtis": frozenset({"0100"})}, "mtis"),
    ],
)
def test_chaos_plan_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ChaosPlan(**kwargs)


@pytest.mark.parametrize("code", ["19", "68", "90", "91", "96"])
def test_chaos_retries_with_any_retry_code_of_the_table(code: str) -> None:
    assert ChaosPlan(retry=1.0, retry_code=code).retry_code == code


def test_net_charge_reads_answers_with_the_response_table() -> None:
    def entry(mti: str, code: str, amount_minor: int) -> dict[str, Any]:
        return {"mti": mti, "response_code": code, "amount_minor": amount_minor, "duplicate": False}

    entries = [entry("0200", "08", 100), entry("0220", "94", 20), entry("0200", "68", 5)]
    assert net_charged_minor(entries) == 120


# --- as its own process ---------------------------------------------------------------------


def test_cli_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pitill.sim.acquirer", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and "--data-dir" in done.stdout and "--port" in done.stdout


def test_cli_runs_answers_and_switches_modes(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pitill.sim.acquirer", "--data-dir", str(tmp_path)]
    with subprocess.Popen(
        [*command, "--port", "0", "--today", TODAY, "--stdin-control"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        try:
            banner = process.stdout.readline()
            assert banner.startswith("acquirer listening on 127.0.0.1:")
            port = int(banner.split()[3].rsplit(":", 1)[1])

            async def talk() -> str:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(frame(encode(sale_request(1, 1051))))
                payload = await asyncio.wait_for(read_frame(reader), 10)
                await close_stream(writer)
                return decode(payload or b"")["39"]

            assert asyncio.run(talk()) == "51"
            process.stdin.write("counts\n")  # what a bench in another process reads
            process.stdin.flush()
            said = process.stdout.readline()
            assert said.startswith("acquirer counts {"), said
            counts = json.loads(said.removeprefix("acquirer counts "))
            assert counts["connections"] == 1 and counts["financial"] == 1, counts
            process.stdin.write("down\n")
            process.stdin.flush()
            assert process.stdout.readline().strip() == "acquirer mode down"

            async def refused() -> None:
                await asyncio.open_connection("127.0.0.1", port)

            with pytest.raises(ConnectionRefusedError):
                asyncio.run(refused())
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert process.returncode == 0
    assert [e["response_code"] for e in AcquirerHost(tmp_path).ledger()] == ["51"]


# --- end of day -----------------------------------------------------------------------------


def test_end_of_day_is_checked_against_the_ledger(tmp_path: Path) -> None:
    """0500: debits are the sales and advices it took and the sales voided (reason 17, also a
    debit reversal); a sale reversed for a lost answer (68) counts nowhere; 0510 says 00 or 95
    and carries the host's own figures either way."""
    from pitill.config import TerminalConfig
    from pitill.core.settlement import Reconciliation
    from pitill.upstream import messages as m

    held = Reconciliation(
        debits=3, debits_minor=1250 + 300 + 700, debit_reversals=1, debit_reversals_minor=300
    )

    def end_of_day(totals: Reconciliation) -> Message:
        batch = m.Batch(1, 1, 5)  # the 0500's own STAN (6) follows the day's
        return m.build_reconciliation(batch, totals, "EUR", 6, "1128235959", TerminalConfig())

    async def body(host: AcquirerHost, line: Line) -> list[Message]:
        return [
            await line.ask(sale_request(1, 1250)),
            await line.ask(sale_request(2, 300)),
            await line.ask({**reversal_request(2, 300), "39": "17"}),
            await line.ask(sale_request(3, 400)),
            await line.ask(reversal_request(3, 400)),  # 68
            await line.ask(sale_request(4, 700, mti="0220")),
            await line.ask(sale_request(6, 900)),  # outside the day's STANs
            await line.ask(end_of_day(held)),
            await line.ask(end_of_day(Reconciliation(debits=3, debits_minor=2250))),
        ]

    answers = with_host(tmp_path, body)
    agreed, disagreed = answers[-2:]
    assert (agreed["t"], agreed["39"], disagreed["39"]) == ("0510", "00", "95")
    assert m.reconciliation_of(agreed) == m.reconciliation_of(disagreed) == held
    assert [e["mti"] for e in AcquirerHost(tmp_path).ledger()].count("0500") == 0


# --- refunds (processing code 20) and the reversal of an advised offline sale ---


def refund_request(stan: int, amount_minor: int, mti: str = "0200") -> Message:
    return {**sale_request(stan, amount_minor, mti=mti), "3": "200000"}


def test_refunds_count_negative_once_and_their_reversal_gives_them_back(tmp_path: Path) -> None:
    async def body(host: AcquirerHost, line: Line) -> list[Message]:
        return [
            await line.ask(sale_request(1, 1250)),
            await line.ask(refund_request(2, 500)),
            await line.ask(refund_request(2, 500)),  # the same refund again: no second credit
            await line.ask(refund_request(3, 300, mti="0220")),  # an offline refund's advice
            await line.ask(refund_request(3, 300, mti="0221")),
            await line.ask(refund_request(4, 200)),
            await line.ask({**reversal_request(4, 200), "3": "200000"}),  # timed out: undone
        ]

    answers = with_host(tmp_path, body)
    assert [a["39"] for a in answers] == ["00"] * 7
    assert all(a["3"] == "200000" for a in answers[1:])  # the host echoes the processing code
    entries = AcquirerHost(tmp_path).ledger()
    assert [e["processing_code"] for e in entries][:2] == ["000000", "200000"]
    assert net_charged_minor(entries) == 1250 - 500 - 300


def test_reconciliation_expects_a_refund_negative_and_a_voided_advice_at_zero(
    tmp_path: Path,
) -> None:
    advice_reversal = {
        **reversal_request(5, 800),
        "39": "17",
        "90": "0220" + "000005" + "1128101500" + "0" * 22,
    }

    async def body(host: AcquirerHost, line: Line) -> list[Message]:
        return [
            await line.ask(sale_request(1, 1250)),
            await line.ask(refund_request(2, 500)),
            await line.ask(sale_request(5, 800, mti="0220")),
            await line.ask(advice_reversal),
            await line.ask({**advice_reversal, "t": "0421"}),  # a repeat: given back once
        ]

    with_host(tmp_path, body)
    entries = AcquirerHost(tmp_path).ledger()
    assert entries[3]["reversed"] is True and entries[3]["original"].startswith("0220:")
    assert net_charged_minor(entries) == 1250 - 500

    def row(seq: int, kind: TxnKind, amount: int, status: TxnStatus) -> JournalEntry:
        return JournalEntry(seq, kind.value, amount, status.value, seq, "26" + "1128101500")

    rows = [
        row(1, TxnKind.CARD, 1250, TxnStatus.APPROVED),
        row(2, TxnKind.REFUND, 500, TxnStatus.APPROVED),
        row(5, TxnKind.CARD, 800, TxnStatus.REVERSED),
        row(6, TxnKind.REFUND, 300, TxnStatus.COMPLETED),  # cash: never at the host
    ]
    check = reconcile(rows, entries, "PITILL01", settled=True)
    assert check.problems() == []
    assert (check.refund_rows, check.journal_refunded_minor) == (2, 500)
    # A refund the journal says was given but the host never credited is lost; one the host
    # credited twice as much as given is caught too.
    missing = reconcile([*rows, row(7, TxnKind.REFUND, 100, TxnStatus.FORWARDED)], entries,
                        "PITILL01", settled=True)  # fmt: skip
    assert len(missing.lost) == 1
    short = [row(1, TxnKind.CARD, 1250, TxnStatus.APPROVED), row(2, TxnKind.REFUND, 400,
             TxnStatus.APPROVED)]  # fmt: skip
    assert reconcile(short, entries[:2], "PITILL01", settled=True).duplicated
