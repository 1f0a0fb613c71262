"""[upstream] bitmap and length_prefix: every combination carries a sale, an advice and a reversal
between the real client and the sandbox acquirer (and `pitill host serve`) set alike; the bytes
are what the setting says (py8583 reads the binary bitmap too); a host set otherwise is never
misread.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import subprocess
from pathlib import Path

import pytest
from py8583 import py8583spec
from py8583.py8583 import Iso8583
from py8583.py8583spec import DT
from test_fields import sent_messages
from test_independent_parser import their_text
from upstream_helpers import HOST_TODAY, TERMINAL, forward_item, sale

from host_messages import serving_hosts
from pitill.errors import ProtocolError
from pitill.records import ForwardKind
from pitill.sim.acquirer import LEDGER_NAME, AcquirerHost, read_ledger
from pitill.sim.resolver import SIM_HOST, SimResolver
from pitill.upstream import messages as m
from pitill.upstream.client import UpstreamClient
from pitill.upstream.failures import OutcomeUnknown
from pitill.upstream.framing import frame, read_frame
from pitill.upstream.wireformat import BITMAP_ENCODINGS, LENGTH_PREFIXES, WireFormat
from pitill_cli import PITILL

COMBINATIONS = [WireFormat(b, p) for b, p in itertools.product(BITMAP_ENCODINGS, LENGTH_PREFIXES)]
ECHO: m.Message = {"t": "0800", "7": "1130101500", "11": "000077", "70": "301"}


def ids(wire: WireFormat) -> str:
    return f"{wire.bitmap}-{wire.length_prefix}"


def their_reading(payload: bytes, wire: WireFormat) -> dict[str, str]:
    """py8583's reading of a message; its spec's data types are shared by every instance (a
    new one resets them), so the bitmap's is set on a fresh one right before it reads."""
    spec = py8583spec.IsoSpec1987ASCII()
    if wire.bitmap == "binary":
        spec.DataType(1, DT.BIN)  # field 1: py8583's name for the bitmaps' encoding
    iso = Iso8583(IsoMsg=payload, IsoSpec=spec)
    present = [f for f in range(2, 129) if iso.FieldData(f) is not None]
    return {"t": iso.MTI(), **{str(f): their_text(str(f), iso.FieldData(f)) for f in present}}


def client_for(port: int, wire: WireFormat, timeout_s: float = 2.0) -> UpstreamClient:
    return UpstreamClient(
        SIM_HOST,
        port,
        SimResolver(),
        TERMINAL,
        request_timeout_s=timeout_s,
        connect_timeout_s=1.0,
        wire=wire,
    )


@pytest.mark.parametrize("wire", COMBINATIONS, ids=ids)
def test_a_sale_an_advice_and_a_reversal_in_every_wire_format(
    tmp_path: Path, wire: WireFormat
) -> None:
    async def scenario() -> list[str]:
        async with AcquirerHost(tmp_path, today_yymm=lambda: HOST_TODAY, wire=wire) as host:
            client = client_for(host.port, wire)
            try:
                answer = await client.authorize(sale(1250, seq=1), "251128101500")
                advice = await client.send_advice(forward_item(seq=2))
                reversal = await client.send_reversal(forward_item(ForwardKind.REVERSAL, seq=1))
                echo = await client.echo()
            finally:
                await client.close()
            assert host.counts["format_errors"] == 0 and host.counts["garbage"] == 0
            return [answer.response_code, advice, reversal, echo]

    assert asyncio.run(scenario()) == ["00", "00", "00", "00"]


@pytest.mark.parametrize("wire", COMBINATIONS, ids=ids)
def test_the_bytes_are_what_the_setting_says(wire: WireFormat) -> None:
    framed = frame(m.encode(ECHO, wire), wire=wire)
    prefix, payload = framed[: wire.prefix_size], framed[wire.prefix_size :]
    expected_prefix = {
        "2-byte-binary": struct.pack(">H", len(payload)),
        "4-digit-ascii": f"{len(payload):04d}".encode(),
        "4-byte-binary": struct.pack(">I", len(payload)),
    }[wire.length_prefix]
    assert prefix == expected_prefix
    assert payload[:4] == b"0800"
    # 0800 with fields 7, 11 and 70: the secondary bitmap is there (bit 1)
    primary = bytes.fromhex("8220000000000000")
    bitmap = payload[4:20] if wire.bitmap == "ascii" else payload[4:12]
    assert bitmap == (primary.hex().upper().encode() if wire.bitmap == "ascii" else primary)
    # py8583, with its own bitmap code, reads it when told the bitmap's data type
    assert their_reading(payload, wire) == ECHO


@pytest.mark.parametrize("wire", [w for w in COMBINATIONS if w.bitmap == "binary"], ids=ids)
def test_py8583_reads_every_sent_message_with_a_binary_bitmap(wire: WireFormat) -> None:
    for kind, message in sent_messages().items():
        assert their_reading(m.encode(message, wire), wire) == message, kind


def test_a_4_digit_ascii_prefix_that_is_not_digits_is_a_protocol_error() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"\x00\x2a0800")
        reader.feed_eof()
        await read_frame(reader, wire=WireFormat(length_prefix="4-digit-ascii"))

    with pytest.raises(ProtocolError, match="not 4 ASCII digits"):
        asyncio.run(scenario())


def test_a_host_set_to_another_format_is_never_misread(tmp_path: Path) -> None:
    """The terminal's 2-byte prefix read as 4 ASCII digits by the host: no answer, the sale's
    outcome is unknown (it gets reversed), nothing is charged."""

    async def scenario() -> int:
        host_wire = WireFormat("binary", "4-digit-ascii")
        async with AcquirerHost(tmp_path, today_yymm=lambda: HOST_TODAY, wire=host_wire) as host:
            client = client_for(host.port, WireFormat(), timeout_s=0.5)
            try:
                with pytest.raises(OutcomeUnknown):
                    await client.authorize(sale(1250, seq=1), "251128101500")
            finally:
                await client.close()
            return len(host.ledger())

    assert asyncio.run(scenario()) == 0


@pytest.mark.parametrize(
    "wire", [WireFormat("binary", "4-digit-ascii"), WireFormat("ascii", "4-byte-binary")], ids=ids
)
def test_pitill_host_serve_takes_the_same_options(tmp_path: Path, wire: WireFormat) -> None:
    args = ("--data-dir", str(tmp_path), "--bitmap", wire.bitmap)
    with serving_hosts(*args, "--length-prefix", wire.length_prefix) as (port,):

        async def scenario() -> str:
            client = UpstreamClient(
                "127.0.0.1", port, SimResolver(), TERMINAL, request_timeout_s=5.0, wire=wire
            )
            try:
                return await client.echo()
            finally:
                await client.close()

        assert asyncio.run(scenario()) == "00"


def test_pitill_sim_runs_its_sandbox_in_the_configs_wire_format(tmp_path: Path) -> None:
    """No --upstream: the simulator's own sandbox host speaks what [upstream] asks for."""
    config = tmp_path / "wire.toml"
    config.write_text(
        '[upstream]\nbitmap = "binary"\nlength_prefix = "4-byte-binary"\n', encoding="utf-8"
    )
    script = tmp_path / "sale.pitill"
    script.write_text(
        'expect link online\npress 1 2 5 0 OK\nswipe approved\nexpect screen "APPROVED"\n',
        encoding="utf-8",
    )
    result = subprocess.run(
        [*PITILL, "sim", "--config", str(config), "--script", str(script),
         "--data-dir", str(tmp_path / "data"), "--expect-timeout", "10"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ledger = read_ledger(tmp_path / "data" / LEDGER_NAME)
    assert [(e["mti"], e["response_code"]) for e in ledger] == [("0200", "00")]
