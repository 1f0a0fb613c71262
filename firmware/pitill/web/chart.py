"""The state chart as SVG, laid out from the transition table (the same edges as `pitill diagram`).

Phases are placed in columns by their distance from BOOTING along the table's moves (phases no
move reaches, like STORAGE_FAULT which every phase enters through a shared row, go in the first
column). Each phase is a <g id="state-NAME" class="state">; each move a <path id="edge-FROM-TO"
class="edge">, so the page can mark the current phase and light the last move.
"""

from __future__ import annotations

from collections import deque
from html import escape

from pitill.core.diagram import edges
from pitill.core.state import Phase

NODE_W, NODE_H = 150, 34
COL_GAP, ROW_GAP = 70, 26
MARGIN = 20


def moves() -> dict[tuple[Phase, Phase], list[str]]:
    """(from, to) -> triggers, for moves between different phases (shared rows left out)."""
    merged: dict[tuple[Phase, Phase], list[str]] = {}
    for source, trigger, target in edges(shared=False):
        if source is not target:
            merged.setdefault((source, target), []).append(trigger)
    return merged


def ranks() -> dict[Phase, int]:
    """Each phase's column: its distance from BOOTING (unreached phases: column 0)."""
    found = {Phase.BOOTING: 0}
    queue = deque([Phase.BOOTING])
    pairs = sorted(moves(), key=lambda pair: list(Phase).index(pair[1]))
    while queue:
        phase = queue.popleft()
        for source, target in pairs:
            if source is phase and target not in found:
                found[target] = found[phase] + 1
                queue.append(target)
    return {phase: found.get(phase, 0) for phase in Phase}


def positions() -> dict[Phase, tuple[float, float]]:
    """The top-left corner of each phase's box."""
    columns: dict[int, list[Phase]] = {}
    for phase, rank in ranks().items():
        columns.setdefault(rank, []).append(phase)
    tallest = max(len(column) for column in columns.values())
    height = tallest * (NODE_H + ROW_GAP)
    placed: dict[Phase, tuple[float, float]] = {}
    for rank, column in columns.items():
        top = MARGIN + (height - len(column) * (NODE_H + ROW_GAP)) / 2
        for index, phase in enumerate(column):
            placed[phase] = (
                MARGIN + rank * (NODE_W + COL_GAP),
                top + index * (NODE_H + ROW_GAP),
            )
    return placed


def _path(start: tuple[float, float], end: tuple[float, float], back: bool) -> str:
    (x1, y1), (x2, y2) = start, end
    if not back:
        bend = (x2 - x1) / 2
        return (
            f"M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} "
            f"{x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        )
    # a move back (to IDLE or AMOUNT): a loop under the boxes, so it does not cross them
    dip = max(y1, y2) + NODE_H + 10
    return f"M{x1:.0f},{y1:.0f} C{x1:.0f},{dip:.0f} {x2:.0f},{dip:.0f} {x2:.0f},{y2:.0f}"


def svg() -> str:
    """The chart as one <svg> element (no scripts, no external references)."""
    placed = positions()
    rank = ranks()
    width = MARGIN * 2 + (max(rank.values()) + 1) * (NODE_W + COL_GAP) - COL_GAP
    height = MARGIN * 2 + max(y for _, y in placed.values()) + NODE_H + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        'role="img" aria-labelledby="chart-title" class="chart">',
        '<title id="chart-title">State chart of the terminal, from its transition table</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/>'
        "</marker></defs>",
        '<g class="edges">',
    ]
    for (source, target), triggers in moves().items():
        (sx, sy), (tx, ty) = placed[source], placed[target]
        back = rank[target] <= rank[source]
        if back:
            start, end = (sx + NODE_W / 2, sy + NODE_H), (tx + NODE_W / 2 + 12, ty + NODE_H)
        else:
            start, end = (sx + NODE_W, sy + NODE_H / 2), (tx, ty + NODE_H / 2)
        classes = "edge back" if back else "edge"
        parts.append(
            f'<path id="edge-{source.value}-{target.value}" class="{classes}" '
            f'data-from="{source.value}" data-to="{target.value}" '
            f'd="{_path(start, end, back)}" marker-end="url(#arrow)">'
            f"<title>{source.value} to {target.value}: {escape(', '.join(triggers))}</title></path>"
        )
    parts.append('</g><g class="states">')
    for phase, (x, y) in placed.items():
        parts.append(
            f'<g id="state-{phase.value}" class="state" data-state="{phase.value}">'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="8"/>'
            f'<text x="{x + NODE_W / 2:.0f}" y="{y + NODE_H / 2 + 5:.0f}" '
            f'text-anchor="middle">{phase.value}</text></g>'
        )
    parts.append(
        f'<text class="note" x="{MARGIN}" y="{height - 12:.0f}">STORAGE_FAULT: entered from any '
        "phase when a journal write fails</text>"
    )
    parts.append("</g></svg>")
    return "".join(parts)
