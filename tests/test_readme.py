"""The README tells the truth: its state chart is the generated one, its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from pitill.cli import build_parser
from pitill.core.diagram import mermaid

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert "make sim" in first_block and "make test" in first_block


def test_readme_state_chart_is_the_generated_one() -> None:
    block = re.search(r"<!-- diagram:start -->\n```mermaid\n(.*?)\n```", README, re.S)
    assert block is not None
    assert block.group(1).strip() == mermaid().strip(), "run: pitill diagram, paste into README"


def test_every_pitill_command_in_the_readme_exists() -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    code = "\n".join(README.split("```")[1::2])  # only what is inside code blocks
    used = set(re.findall(r"^\s*pitill ([a-z]+)(?=\s|$)", code, re.M))  # not "pitill bench:"
    assert used <= commands, used - commands


def test_readme_pictures_exist() -> None:
    for path in re.findall(r"\]\(((?:docs|hw)/[^)]+\.(?:png|gif))\)", README):
        assert (ROOT / path).exists(), path
