"""Field 54: the balance pitill host answers with, written and read in one place; field 3 of a
staffed terminal's messages."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st
from upstream_helpers import TERMINAL, forward_item

from pitill.core.types import TxnKind
from pitill.records import ForwardKind
from pitill.upstream import messages as m
from pitill.upstream.fields import problems


@given(st.integers(min_value=-(10**12) + 1, max_value=10**12 - 1))
def test_balance_round_trips(balance_minor: int) -> None:
    assert m.parse_balance(m.balance_amount(balance_minor, "978")) == balance_minor


@pytest.mark.parametrize("value", ["", "0001978C000000000100", "0002978X000000000100", "0002978"])
def test_a_field_54_without_a_readable_balance_is_none(value: str) -> None:
    assert m.parse_balance(value) is None


def test_the_answer_carries_the_balance_and_the_table_allows_it() -> None:
    response = {"t": "0210", "11": "000001", "39": "51", "54": m.balance_amount(-250, "978")}
    assert m.parse_answer(response).balance_minor == -250
    assert m.parse_answer(m.decode(m.encode(response))).balance_minor == -250
    assert not [p for p in problems(response) if "54" in p]
    assert m.parse_answer({"t": "0210", "11": "000001", "39": "00"}).balance_minor is None


def test_a_top_ups_reversal_carries_its_0200s_processing_code() -> None:
    item = forward_item(ForwardKind.REVERSAL)
    topup = dataclasses.replace(item, row=dataclasses.replace(item.row, kind=TxnKind.TOPUP))
    assert m.build_reversal(topup, TERMINAL)["3"] == "210000"
    assert m.build_reversal(item, TERMINAL)["3"] == "000000"
