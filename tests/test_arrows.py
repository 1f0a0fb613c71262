"""The package graph: no module of firmware/pitill imports across an arrow DESIGN.md forbids.

Every import statement of every module counts (top level, inside functions, under
TYPE_CHECKING, relative or absolute), read with ast, nothing imported. A room is the first name
under pitill/ (core, card, upstream, journal, drivers, sim, host, web...; app, config for the
modules app.py and config.py). The second test follows imports through any module (a room may
reach a forbidden one through a third), naming the path.
"""

from __future__ import annotations

import ast
import functools
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "firmware" / "pitill"

# DESIGN.md, "Arrows that must never exist": room -> rooms it must never import.
FORBIDDEN: dict[str, frozenset[str]] = {
    "core": frozenset({"drivers", "journal", "upstream", "app", "sim", "host", "web", "config"}),
    "card": frozenset({"drivers", "journal", "upstream", "app", "sim", "host", "web"}),
    "drivers": frozenset({"journal", "sim", "host"}),
    "app": frozenset({"sim"}),
    "upstream": frozenset({"journal"}),
    "config": frozenset({"drivers"}),
    "host": frozenset({"app", "drivers", "sim"}),
}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(path: Path, package_dir: Path = PACKAGE) -> Iterator[tuple[str, int]]:
    """(imported pitill module, line) for every import statement in the file."""
    module = module_name(path, package_dir)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # "from pitill.upstream import messages" imports pitill.upstream.messages
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "pitill" or name.startswith("pitill."):
                yield name, node.lineno


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, package): path for path in sorted(package.rglob("*.py"))}


@functools.cache
def graph() -> dict[str, set[str]]:
    """module -> the pitill modules it imports (names that are not modules are dropped)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for module, path in known.items():
        edges[module] = {name for name, _ in imports_of(path) if name in known}
    return edges


@functools.cache
def direct_violations(package: Path = PACKAGE) -> list[str]:
    """One line per forbidden import: "file:line: room -> room (module)"."""
    found = []
    for module, path in modules(package).items():
        for name, line in imports_of(path, package):
            if room(name) in FORBIDDEN.get(room(module), frozenset()):
                where = path.relative_to(package.parent)
                found.append(f"{where}:{line}: {room(module)} -> {room(name)} ({name})")
    return sorted(set(found))


def direct_violations_between(a: str, b: str) -> list[str]:
    """Imports from room a into room b or back."""
    found = []
    for module, path in modules().items():
        for name, line in imports_of(path):
            if {room(module), room(name)} == {a, b}:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}")
    return found


@functools.cache
def transitive_violations() -> list[str]:
    """One line per module that reaches a forbidden room through others: "a -> b -> c"."""
    edges = graph()
    found = []
    for start in edges:
        banned = FORBIDDEN.get(room(start), frozenset())
        if not banned:
            continue
        paths = {start: [start]}
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for there in sorted(edges.get(here, ())):
                if there in paths:
                    continue
                paths[there] = [*paths[here], there]
                if room(there) in banned:
                    found.append(f"{room(start)} -> {room(there)}: " + " -> ".join(paths[there]))
                    continue
                queue.append(there)
    return found


ARROWS = [(src, dst) for src, banned in FORBIDDEN.items() for dst in sorted(banned)]


def arrow_cases() -> list[object]:
    return [pytest.param(src, dst, id=f"{src}->{dst}") for src, dst in ARROWS]


def test_the_walk_sees_every_room() -> None:
    rooms = {room(module) for module in modules()}
    assert {"core", "card", "upstream", "journal", "drivers", "sim", "app", "config"} <= rooms
    assert len(graph()["pitill.upstream.client"]) >= 5  # imports are really read


def test_shared_records_are_a_leaf() -> None:
    """pitill/records.py sits below journal/ and upstream/: it may import only core/ and card/."""
    rooms = {room(name) for name, _ in imports_of(PACKAGE / "records.py")}
    assert rooms <= {"core", "card"}


def test_journal_and_upstream_do_not_import_each_other() -> None:
    """Not only upstream -> journal (forbidden): the forwarder in journal/ needs no upstream."""
    assert direct_violations_between("journal", "upstream") == []


@pytest.mark.parametrize(("src", "dst"), arrow_cases())
def test_no_module_imports_across_a_forbidden_arrow(src: str, dst: str) -> None:
    assert [v for v in direct_violations() if f": {src} -> {dst} (" in v] == []


@pytest.mark.parametrize(("src", "dst"), arrow_cases())
def test_no_room_reaches_a_forbidden_room_through_another(src: str, dst: str) -> None:
    assert [v for v in transitive_violations() if v.startswith(f"{src} -> {dst}: ")] == []


@pytest.mark.parametrize(
    ("source", "importer", "line"),
    [
        ("from pitill.journal.model import JournalRow\n", "upstream/x.py", "upstream -> journal"),
        ("from ..journal import store\n", "upstream/x.py", "upstream -> journal"),
        ("def f():\n    import pitill.sim.world\n", "core/x.py", "core -> sim"),
        ("from pitill import config\n", "core/x.py", "core -> config"),
    ],
)
def test_the_check_catches_every_form_of_import(
    tmp_path: Path, source: str, importer: str, line: str
) -> None:
    fake = tmp_path / "pitill"
    (fake / importer).parent.mkdir(parents=True)
    (fake / importer).write_text(source, encoding="utf-8")
    assert [v for v in direct_violations(fake) if line in v]
