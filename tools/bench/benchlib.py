"""Shared by the benchmark suite (tools/bench/run.py): a measured figure, the machine it ran on,
the one table, and loading the stand-alone bench tools beside this directory (bench_journal.py,
bench_drivers.py) so their measuring code is reused, not copied.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

TOOLS_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Options:
    quick: bool = False  # smaller runs: a smoke test of the suite, not figures to quote
    idle_s: float = 60.0  # P5's idle window
    seed: int = 1
    work_dir: Path = Path("/tmp")  # journals go here: measure on the medium you care about
    netns_faults: tuple[str, ...] = ()  # P1: only these netns faults (none of the rest); () all


@dataclass(frozen=True)
class Figure:
    """One line of the table: a value, and where the issue names one, its baseline and goal."""

    key: str  # P1..P6
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    goal: str = ""
    meets: bool | None = None  # None: no goal for this figure
    note: str = ""  # printed under the table
    shown: str = ""  # the value column's text, when one number does not say it

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline


def load_tool(name: str) -> ModuleType:
    """tools/<name>.py as a module (they are scripts, not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TOOLS_DIR / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {TOOLS_DIR / name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def filesystem_of(path: Path) -> str:
    """The type of the filesystem holding `path` (ext4, tmpfs...), from /proc/mounts."""
    best, kind = "", "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) >= 3 and resolved.startswith(fields[1]) and len(fields[1]) > len(best):
            best, kind = fields[1], fields[2]
    return kind


def machine(options: Options) -> str:
    """The date and the machine: `uname -m`, CPU model, cores, memory, OS, Python, work dir."""
    memory = _memory_gib()
    parts = [
        datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        platform.machine(),
        f"{_cpu_model()}, {os.cpu_count()} cores",
        f"{memory:.1f} GiB" if memory else "",
        f"{platform.system()} {platform.release()}",
        f"Python {platform.python_version()}",
        f"work dir {options.work_dir} ({filesystem_of(options.work_dir)})",
        f"load {os.getloadavg()[0]:.1f}",  # the 1-minute load average: how busy the machine was
    ]
    return " | ".join(p for p in parts if p)


def _value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.3f} ms"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:,.{0 if value >= 100 else 2}f} {unit}".strip()


def format_table(figures: list[Figure], options: Options) -> str:
    """The table and its notes, as printed."""
    notes = format_notes(figures)
    return table_only(figures, options) + ("\n\nnotes:\n" + notes if notes else "")


def table_only(figures: list[Figure], options: Options) -> str:
    header = ("", "figure", "value", "baseline (same run)", "ratio", "goal", "meets")
    rows = [header]
    for f in figures:
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        base = f"{f.baseline_name} {_value(f.baseline, f.unit)}" if f.baseline is not None else ""
        # A quick run checks that the code runs; its small samples judge nothing.
        meets = "-" if f.meets is None or options.quick else ("yes" if f.meets else "NO")
        shown = f.shown or _value(f.value, f.unit)
        rows.append((f.key, f.name, shown, base, ratio, f.goal or "-", meets))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [f"pitill bench: {machine(options)}"]
    if options.quick:
        lines.append("QUICK run: small samples, no verdicts: checks that the suite runs")
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_notes(figures: list[Figure]) -> str:
    return "\n".join(f"  {f.key} {f.name}: {f.note}" for f in figures if f.note)


# --- the docs: docs/bench.md from its template, and the README's copy of the same table ---------

REPO = TOOLS_DIR.parent
TEMPLATE = Path(__file__).resolve().parent / "bench.md.in"
TABLE_MARK = "<!-- bench:table -->"
README_START, README_END = "<!-- bench:start -->", "<!-- bench:end -->"


def table_block(figures: list[Figure], options: Options, command: str) -> str:
    """What the README shows: the command and the one table of one run (date and machine in it)."""
    return f"`{command}` printed:\n\n```\n{table_only(figures, options)}\n```"


def bench_doc(block: str, notes: str, template: str) -> str:
    notes_md = f"\n\nNotes of the same run:\n\n```\n{notes}\n```" if notes else ""
    return template.replace(TABLE_MARK, block + notes_md)


def readme_with(readme: str, block: str) -> str:
    """README with the text between its bench markers replaced by `block`."""
    start, end = readme.index(README_START), readme.index(README_END)
    return readme[: start + len(README_START)] + "\n" + block + "\n" + readme[end:]


def readme_block(readme: str) -> str:
    start, end = readme.index(README_START), readme.index(README_END)
    return readme[start + len(README_START) : end].strip("\n")


def write_docs(figures: list[Figure], options: Options, command: str, repo: Path = REPO) -> None:
    """docs/bench.md and the README's bench section, both from this one run."""
    block = table_block(figures, options, command)
    doc = bench_doc(block, format_notes(figures), TEMPLATE.read_text(encoding="utf-8"))
    (repo / "docs" / "bench.md").write_text(doc, encoding="utf-8")
    readme = repo / "README.md"
    readme.write_text(readme_with(readme.read_text(encoding="utf-8"), block), encoding="utf-8")
