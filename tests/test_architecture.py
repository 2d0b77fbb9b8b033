"""The import directions of docs/architecture.md hold: every import of every module, at any level, is allowed
by the table there, and no modules import each other around a circle."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rs_image", "rs_video")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: Dict[str, Path] = {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path) -> Iterator[Tuple[str, int]]:
    """(imported module of ours, line) for every import statement and importlib.import_module literal."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: List[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the module pkg.sub when there is one
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            targets = [node.args[0].value]
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                while target not in MODULES and "." in target:
                    target = target.rpartition(".")[0]
                yield target, node.lineno


def _allowed() -> Dict[str, Set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("## Allowed imports", 1)[1].split("\n## ", 1)[0]
    rooms: Dict[str, Set[str]] = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rooms[cells[0].strip("`")] = set(re.findall(r"`([\w.]+)`", cells[1]))
    return rooms


ALLOWED = _allowed()


def _room(module: str) -> str:
    """The longest room of the table that holds ``module``."""
    candidates = [r for r in ALLOWED if module == r or module.startswith(r + ".")]
    assert candidates, f"{module} is in no room of docs/architecture.md"
    return max(candidates, key=len)


def test_the_table_covers_every_package_and_module():
    assert {"rs_image", "rs_image.engine", "rs_video", "rs_video.data", "rs_video.task", "rs_video.inference"} <= set(ALLOWED)
    for module in MODULES:
        _room(module)


def test_every_import_follows_the_allowed_directions():
    wrong = []
    for name, path in MODULES.items():
        room = _room(name)
        for target, line in _imports(name, path):
            target_room = _room(target)
            if target_room != room and target_room not in ALLOWED[room]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {name} ({room}) imports {target} ({target_room})")
    assert not wrong, "imports against docs/architecture.md:\n" + "\n".join(wrong)


def test_no_import_circles():
    graph = {name: {t for t, _ in _imports(name, path) if t != name} for name, path in MODULES.items()}
    # A package imports its own submodules to re-export them; only a cycle through other modules is a circle.
    for name in graph:
        graph[name] = {t for t in graph[name] if not t.startswith(name + ".")}
    state: Dict[str, int] = {}
    stack: List[str] = []
    circles: List[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(circles)


@pytest.mark.parametrize("statement, forbidden", [
    ("import rs_image, rs_image.engine, rs_image.report", ("rs_video",)),
    ("import rs_video.data, rs_image.data", ("rs_image.engine", "rs_image.recipe", "fvcore", "rs_video.task")),
])
@pytest.mark.slow
def test_importing_loads_no_module_of_a_higher_room(statement, forbidden):
    code = f"import sys; {statement}; print(sorted(m for m in sys.modules if m.startswith({forbidden!r})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]", done.stdout
