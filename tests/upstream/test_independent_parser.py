"""pitill's bytes read by an ISO 8583 implementation pitill did not write: py8583.

py8583 (alxnik/py8583, a dev dependency) has its own ISO 8583:1987 ASCII field definitions and its
own bitmap and length-prefix code; it shares nothing with pyiso8583, the library pitill packs with.
Every message the terminal sends and every answer the sandbox gives are unpacked by it, field by
field, and its 1987 definitions are compared with the table in docs/iso8583.md.
"""

from __future__ import annotations

from typing import Any

import pytest
from py8583 import py8583spec
from py8583.py8583 import Iso8583
from test_fields import host_answer, sent_messages

from pitill.upstream import fields
from pitill.upstream import messages as m

SPEC_1987 = py8583spec.IsoSpec1987ASCII()
LENGTH_TYPES = {"fixed": "FIXED", "LLVAR": "LLVAR", "LLLVAR": "LLLVAR"}
# Where py8583's 1987 table says "an" and ours is stricter or wider, both standard readings:
# 48 and 45 (track 1: '^' and spaces) are ans (any printable) in ISO 8583:1987, 49 and 50 are a
# or n (we send the ISO 4217 number).
FORMAT_READINGS = {
    "45": {"an", "ans"},
    "48": {"an", "ans"},
    "49": {"an", "n"},
    "50": {"an", "n"},
}


def their_text(field: str, value: Any) -> str:
    """py8583 turns n fields into ints: back to the digits, zero-filled to a fixed length."""
    if isinstance(value, int):
        rule = fields.RULES[field]
        return f"{value:0{rule.max_len}d}" if rule.length == "fixed" else str(value)
    return str(value)


def unpack(raw: bytes) -> dict[str, str]:
    iso = Iso8583(IsoMsg=raw, IsoSpec=py8583spec.IsoSpec1987ASCII())
    present = [f for f in range(2, 129) if iso.FieldData(f) is not None]
    return {"t": iso.MTI(), **{str(f): their_text(str(f), iso.FieldData(f)) for f in present}}


@pytest.mark.parametrize("kind", sorted(sent_messages()))
def test_py8583_reads_what_the_terminal_sends(kind: str) -> None:
    message = sent_messages()[kind]
    assert unpack(m.encode(message)) == message


@pytest.mark.parametrize("kind", sorted(sent_messages()))
def test_py8583_reads_what_the_host_answers(kind: str) -> None:
    answer = host_answer(sent_messages()[kind])
    assert unpack(m.encode(answer)) == answer


def test_our_table_agrees_with_py8583s_1987_definitions() -> None:
    for rule in fields.FIELDS:
        n = int(rule.field)
        assert SPEC_1987.MaxLength(n) == rule.max_len, rule.field
        assert SPEC_1987.LengthType(n).name == LENGTH_TYPES[rule.length], rule.field
        readings = FORMAT_READINGS.get(rule.field, {rule.fmt})
        assert SPEC_1987.ContentType(n) in readings and rule.fmt in readings, rule.field
