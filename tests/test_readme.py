"""The README tells the truth: its chart is generated, its commands exist, its scripts pass."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from pitill.cli import build_parser
from pitill.core.diagram import mermaid
from pitill_cli import PITILL

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


SCRIPT_VERBS = {"press", "swipe", "type-stripe", "tap", "upstream", "wait", "expect"}


def script_blocks(markdown: str) -> list[str]:
    """Every fenced block whose lines are all `pitill sim --script` commands (or comments)."""
    blocks = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", markdown, re.S | re.M):
        words = [line.split()[0] for line in block.splitlines() if line.split()]
        if words and all(w in SCRIPT_VERBS or w.startswith("#") for w in words):
            blocks.append(block)
    return blocks


def test_script_blocks_are_found() -> None:
    assert script_blocks("```\nmake sim\n```\n```\npress 1 OK\n# c\nwait 1\n```\n") == [
        "press 1 OK\n# c\nwait 1\n"
    ]
    assert len(script_blocks(README)) >= 1


@pytest.mark.parametrize("index", range(len(script_blocks(README))))
def test_every_script_in_the_readme_passes_as_written(index: int, tmp_path: Path) -> None:
    script = tmp_path / "readme.pitill"
    script.write_text(script_blocks(README)[index])
    result = subprocess.run(
        [*PITILL, "sim", "--script", str(script), "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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


def host_account_commands(text: str) -> list[list[str]]:
    """The `pitill host account`/`report` lines of a text, as argument lists (no `pitill`)."""
    lines = re.findall(r"^\s*pitill (host (?:account|report)\b.*)$", text, re.M)
    return [shlex.split(line) for line in lines]


@pytest.mark.parametrize("source", ["README", "pitill host --help"])
def test_the_documented_host_account_commands_run_as_written(source: str, tmp_path: Path) -> None:
    from pitill.host.cli import EXAMPLES

    commands = host_account_commands(README if source == "README" else EXAMPLES)
    assert len(commands) >= 3
    for argv in commands:  # in order, in a fresh directory (host-data is the default data dir)
        result = subprocess.run(
            [*PITILL, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"{shlex.join(argv)}: {result.stdout}{result.stderr}"
