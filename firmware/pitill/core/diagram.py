"""The state chart, generated from the transition table so it can never drift from the code."""

from __future__ import annotations

from pitill.core.machine import COMMON_ROWS, TABLE, targets
from pitill.core.state import Phase


def edges(*, shared: bool = True) -> list[tuple[Phase, str, Phase]]:
    """(from, trigger, to) for every move the table declares; shared=False leaves out the rows
    every phase has in common (COMMON_ROWS), which the chart draws once, as a note."""
    found = []
    for phase, rows in TABLE.items():
        for trigger, handler in rows.items():
            if not shared and COMMON_ROWS.get(trigger) is handler:
                continue
            for target in sorted(targets(handler)):
                found.append((phase, trigger.value, target))
    return found


def mermaid() -> str:
    """Mermaid stateDiagram-v2 text; triggers into the same target are merged on one arrow."""
    merged: dict[tuple[Phase, Phase], list[str]] = {}
    for source, trigger, target in edges(shared=False):
        if source is target:
            continue
        merged.setdefault((source, target), []).append(trigger)
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.BOOTING.value}"]
    for (source, target), triggers in merged.items():
        lines.append(f"    {source.value} --> {target.value}: {', '.join(triggers)}")
    lines.append(
        f"    note right of {Phase.STORAGE_FAULT.value}: from any phase when a journal write fails"
    )
    return "\n".join(lines)
