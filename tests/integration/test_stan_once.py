"""No STAN is used twice for different messages of a terminal (issue 11): a whole shop day
(echoes, the hotlist's 0800, online sales, a refund, a balance inquiry, a void's reversal, an
outage's offline advices, a sale that meets a silent host, the end of day) run by `pitill sim
--upstream` against a `pitill acquirer` process, every frame the terminal sends captured on the
TCP line between them and decoded here.

The rule (docs/iso8583.md, field 11): each 0200, 0220, 0800 and 0500 takes a new STAN; the
only messages that share one are a repeat and its first send (0221 = its 0220 but for the MTI,
0421 = its 0420) and a reversal and what it reverses (an 0420's STAN is its field 90's).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from pathlib import Path

from fast_config import write_config
from pitill.upstream.messages import Message, decode
from pitill_cli import PITILL

ECHO_S = 0.3  # echoes every 0.3 s of silence: many of them, between all the sales
SUPERVISOR = "press FN 2 5 8 0 OK\nexpect state MENU\n"
DAY = f"""expect link online
wait 1
press 1 2 0 0 OK
swipe approved
expect screen "APPROVED"
press OK
press FN
expect screen "NEW PIN"
press 2 5 8 0 OK 2 5 8 0 OK
expect state MENU
press 4
expect state REFUND_PICK
press OK
press 5 0 0 OK
expect state REFUND_CARD
swipe approved
expect state REFUNDED
press OK
{SUPERVISOR}press 8
expect state BALANCE_CARD
swipe approved
expect state BALANCE_SHOWN
press OK
wait 0.5
press 9 0 0 OK
swipe approved
expect screen "APPROVED"
press OK
{SUPERVISOR}press 3
expect screen "EUR 9.00"
press OK
expect screen "Reversal to host"
press OK
upstream down
expect link offline
press 8 0 0 OK
swipe approved
expect screen "OFFLINE - queued"
press OK
press 7 0 0 OK
swipe approved
expect screen "OFFLINE - queued"
press OK
upstream up
expect link online
expect pending 0
upstream blackhole
press 4 0 0 OK
swipe approved
expect screen "OFFLINE - queued"
press OK
upstream up
expect link online
expect pending 0
wait 1
{SUPERVISOR}press 5
expect screen "END OF DAY?"
press OK
expect screen "Host agrees"
press OK
press OK
press OK
wait 1
"""


class Capture:
    """A relay on 127.0.0.1 to the host: every frame the terminal sends, decoded (2-byte
    length prefix, the default wire), in the order sent."""

    def __init__(self, host_port: int) -> None:
        self.host_port = host_port
        self.sent: list[Message] = []
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> asyncio.Server:
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = int(server.sockets[0].getsockname()[1])
        return server

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            host_reader, host_writer = await asyncio.open_connection("127.0.0.1", self.host_port)
        except OSError:
            writer.close()
            return
        back = asyncio.ensure_future(self._pipe(host_reader, writer))
        self._tasks.add(back)
        try:
            while True:
                head = await reader.readexactly(2)
                payload = await reader.readexactly(int.from_bytes(head, "big"))
                self.sent.append(decode(payload))
                host_writer.write(head + payload)
                await host_writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            host_writer.close()
            writer.close()
            back.cancel()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


async def shop_day(tmp_path: Path, script: str) -> tuple[list[Message], str]:
    acquirer = await asyncio.create_subprocess_exec(
        *PITILL, "acquirer", "--data-dir", str(tmp_path / "acquirer"), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert acquirer.stdout is not None
        line = (await asyncio.wait_for(acquirer.stdout.readline(), 60)).decode()
        assert "listening on" in line, line  # "acquirer listening on 127.0.0.1:PORT mode up"
        capture = Capture(int(line.split()[3].rsplit(":", 1)[1]))
        server = await capture.start()
        write_config(tmp_path / "fast.toml", echo_interval_s=ECHO_S)
        (tmp_path / "day.pitill").write_text(script, encoding="utf-8")
        sim = await asyncio.create_subprocess_exec(
            *PITILL, "sim", "--config", str(tmp_path / "fast.toml"), "--upstream",
            f"127.0.0.1:{capture.port}", "--script", str(tmp_path / "day.pitill"),
            "--data-dir", str(tmp_path / "terminal"), "--expect-timeout", "10",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(sim.communicate(), 240)
        assert sim.returncode == 0, out.decode()
        server.close()
        return capture.sent, out.decode()
    finally:
        acquirer.terminate()
        await acquirer.wait()


def stan_problems(sent: list[Message]) -> list[str]:
    """Where two different messages share a STAN: a message that takes a new one (0200, 0220,
    0800, 0500) next to another, a repeat that differs from its first send, a reversal whose
    field 90 names another STAN or another kind of message than the one it shares it with."""
    by_stan: dict[str, list[Message]] = defaultdict(list)
    for message in sent:
        by_stan[message["11"]].append(message)
    problems = []
    for stan, messages in sorted(by_stan.items()):
        firsts = {_content(m) for m in messages if m["t"] in ("0200", "0220", "0800", "0500")}
        repeats = [m for m in messages if m["t"] == "0221"]
        reversals = {_content(m) for m in messages if m["t"] in ("0420", "0421")}
        kinds = sorted(m["t"] for m in messages)
        if len(firsts) > 1:
            problems.append(f"STAN {stan}: {len(firsts)} different messages take it: {kinds}")
        for repeat in repeats:
            if _content(repeat) not in {_content(m) for m in messages if m["t"] == "0220"}:
                problems.append(f"STAN {stan}: an 0221 that repeats no 0220 of it: {kinds}")
        if len(reversals) > 1:
            problems.append(f"STAN {stan}: {len(reversals)} different reversals: {kinds}")
        for reversal in (m for m in messages if m["t"] in ("0420", "0421")):
            original_mti, original_stan = reversal["90"][:4], reversal["90"][4:10]
            if original_stan != stan:
                problems.append(f"STAN {stan}: a reversal of STAN {original_stan}")
            others = {m["t"] for m in messages if m["t"] in ("0200", "0220", "0800", "0500")}
            if others - {original_mti}:
                problems.append(f"STAN {stan}: a reversal of an {original_mti} beside {kinds}")
    return problems


def _content(message: Message) -> tuple[tuple[str, str], ...]:
    """A message but for its MTI's last digit (a repeat's 1): what makes it the same one."""
    return tuple(sorted((k, v[:3] if k == "t" else v) for k, v in message.items()))


def test_a_shop_day_never_gives_one_stan_to_two_messages(tmp_path: Path) -> None:
    sent, out = asyncio.run(shop_day(tmp_path, DAY))
    kinds = {(m["t"], m.get("70", m.get("3", ""))) for m in sent}
    # Every kind of message the terminal originates went out at least once.
    assert {
        ("0800", "301"),  # echo
        ("0800", "890"),  # the hotlist's request
        ("0200", "000000"),  # sale
        ("0200", "200000"),  # refund
        ("0200", "310000"),  # balance inquiry
        ("0220", "000000"),  # offline sale's advice
        ("0420", "000000"),  # the void's reversal
        ("0500", ""),  # end of day
    } <= kinds, kinds
    echoes = [m for m in sent if m["t"] == "0800" and m["70"] == "301"]
    assert len(echoes) >= 5, len(echoes)  # between the sales, not only at start
    assert stan_problems(sent) == [], out
