"""The README and docs/bench.md show one table from one run of `make bench`, not an edited copy."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "bench"))

import benchlib  # noqa: E402

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOC = (ROOT / "docs" / "bench.md").read_text(encoding="utf-8")
TEMPLATE = benchlib.TEMPLATE.read_text(encoding="utf-8")


def run_suite() -> list[str]:
    import run  # tools/bench/run.py

    return list(run.SUITE)


def test_docs_bench_is_its_template_with_the_readme_table_in_it() -> None:
    block = benchlib.readme_block(README)
    before, after = TEMPLATE.split(benchlib.TABLE_MARK)
    assert DOC.startswith(before + block), "run `make bench`: docs/bench.md and README differ"
    assert DOC.endswith(after), "edit tools/bench/bench.md.in, then run `make bench`"
    notes = DOC[len(before + block) : len(DOC) - len(after)]
    assert notes == "" or notes.startswith("\n\nNotes of the same run:")


def test_the_table_names_its_date_machine_and_command_and_is_a_full_run() -> None:
    block = benchlib.readme_block(README)
    assert re.match(r"`python tools/bench/run\.py --write-docs[^`]*` printed:", block)
    header = re.search(r"^pitill bench: (.*)$", block, re.M)
    assert header is not None, block
    date, arch, cpu = header.group(1).split(" | ")[:3]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", date)
    assert arch in {"x86_64", "aarch64", "armv7l"} and re.search(r", \d+ cores$", cpu)
    assert "QUICK" not in block
    for key in sorted(run_suite()):
        assert re.search(rf"^{key}  ", block, re.M), f"{key} is missing: run `make bench`"


def test_write_docs_puts_one_run_in_both_files(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    figures = [
        benchlib.Figure("P1", "a fault -> OFFLINE", 0.7, "s", goal="max <= 2 s", meets=True),
        benchlib.Figure("P3", "a sale", 1.0, "fsync", shown="1 commit, 1 fsync", note="why"),
    ]
    benchlib.write_docs(figures, benchlib.Options(), "python tools/bench/run.py -x", tmp_path)
    readme = (tmp_path / "README.md").read_text()
    doc = (tmp_path / "docs" / "bench.md").read_text()
    block = benchlib.readme_block(readme)
    assert "P3  a sale" in block and "1 commit, 1 fsync" in block
    assert block in doc and "P3 a sale: why" in doc
    assert readme.replace(block, "") == README.replace(benchlib.readme_block(README), "")


def test_a_quick_run_gives_no_verdict() -> None:
    figure = benchlib.Figure("P2", "a key", 3.0, "ms", goal="<= 2 ms", meets=False)
    assert benchlib.table_only([figure], benchlib.Options()).splitlines()[-1].endswith("NO")
    quick = benchlib.table_only([figure], benchlib.Options(quick=True)).splitlines()
    assert "QUICK" in quick[1] and quick[-1].endswith("-")


@pytest.mark.parametrize("argv", [["--quick", "--write-docs"], ["--only", "P1", "--write-docs"]])
def test_only_a_full_run_may_write_the_docs(argv: list[str]) -> None:
    import run  # tools/bench/run.py

    with pytest.raises(SystemExit) as exited:
        run.main(argv)
    assert exited.value.code == 2
