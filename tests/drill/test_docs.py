"""docs/drill.md shows a run the drill wrote itself, and a fresh run of its command agrees with it.

The terminal and the host run at real speed, so the real-time figures and the split of sales
between online, offline and cash move from run to run; what is seeded may not drift: the
timeline and its segments, the speed and seed, the customers, and the verdict.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from pitill.drill.report import markdown_of, with_markdown
from pitill_cli import PITILL

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "drill.md").read_text(encoding="utf-8")


def deterministic(block: str) -> list[str]:
    """The lines of a drill's markdown block that a fixed seed fixes."""
    text = block.split("```\n", 1)[1]
    lines = text.splitlines()
    kept = [lines[0], re.sub(r" in [\d.]+ s real \(.*\); seed", "; seed", lines[1])]
    kept[1] = re.sub(r"; \d{4}-\d\d-\d\d$", "", kept[1])  # the date of the run
    kept += [line for line in lines if line.startswith("sales attempted")]
    start = next(i for i, line in enumerate(lines) if line.startswith("timeline "))
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        if not line.startswith(" "):
            kept.append(line[:42].rstrip())  # the segment: clock, label, duration
    kept += [line for line in lines if line.startswith(("PASS", "FAIL"))]
    return kept


def test_the_markers_take_a_block() -> None:
    assert with_markdown("", "x") == "<!-- drill:start -->\nx\n<!-- drill:end -->\n"
    doc = with_markdown("a\n<!-- drill:start -->\nold\n<!-- drill:end -->\nb\n", "new")
    assert doc == "a\n<!-- drill:start -->\nnew\n<!-- drill:end -->\nb\n"
    assert markdown_of(doc) == "new"


def test_docs_drill_is_what_its_command_writes_now(tmp_path: Path) -> None:
    block = markdown_of(DOC)
    found = re.match(r"`(pitill drill [^`]*)` on [^\n]*:\n", block)
    assert found is not None, "run: pitill drill --data-dir DIR --markdown docs/drill.md"
    argv = found.group(1).split()[1:]
    argv[argv.index("--data-dir") + 1] = str(tmp_path / "data")
    fresh = tmp_path / "drill.md"
    result = subprocess.run(
        [*PITILL, *argv, "--markdown", str(fresh)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert deterministic(markdown_of(fresh.read_text())) == deterministic(block), (
        "the drill drifted from docs/drill.md: run the command shown there with "
        "--markdown docs/drill.md"
    )
    assert deterministic(block)[-1].startswith("PASS: 0 lost, 0 duplicated, 0 phantom")
