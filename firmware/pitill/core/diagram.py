"""The state chart, generated from the transition table so it can never drift from the code."""

from __future__ import annotations

from pitill.core.machine import TABLE, targets
from pitill.core.state import Phase


def edges() -> list[tuple[Phase, str, Phase]]:
    """(from, trigger, to) for every move between two different phases the table declares."""
    found = []
    for phase, rows in TABLE.items():
        for trigger, handler in rows.items():
            for target in sorted(targets(handler)):
                if target is not phase or trigger.value == "digit":
                    found.append((phase, trigger.value, target))
    return found


def mermaid() -> str:
    """Mermaid stateDiagram-v2 text; triggers into the same target are merged on one arrow."""
    merged: dict[tuple[Phase, Phase], list[str]] = {}
    for source, trigger, target in edges():
        if source is target:
            continue
        merged.setdefault((source, target), []).append(trigger)
    lines = ["stateDiagram-v2", f"    [*] --> {Phase.BOOTING.value}"]
    for (source, target), triggers in merged.items():
        lines.append(f"    {source.value} --> {target.value}: {', '.join(triggers)}")
    return "\n".join(lines)
