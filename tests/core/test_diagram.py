"""The generated state chart matches the transition table."""

from __future__ import annotations

from pitill.core.diagram import edges, mermaid
from pitill.core.machine import COMMON_ROWS, TABLE, targets
from pitill.core.state import Phase


def test_every_phase_is_reachable_in_the_chart() -> None:
    reached = {target for _, _, target in edges()} | {Phase.BOOTING}
    assert reached == set(Phase)


def test_chart_lists_every_declared_move_of_the_table() -> None:
    chart = mermaid()
    assert chart.startswith("stateDiagram-v2")
    for phase, rows in TABLE.items():
        for trigger, handler in rows.items():
            for target in targets(handler):
                if target is not phase and COMMON_ROWS.get(trigger) is not handler:
                    assert f"{phase.value} --> {target.value}:" in chart


def test_cash_path_is_in_the_chart() -> None:
    chart = mermaid()
    assert "AMOUNT --> CASH_ONLY: ok" in chart
    assert "CASH_ONLY --> TENDER: ok" in chart
    assert "TENDER --> CHANGE: ok" in chart


def test_shared_rows_are_one_note() -> None:
    chart = mermaid()
    assert "--> STORAGE_FAULT" not in chart
    assert "note right of STORAGE_FAULT" in chart
