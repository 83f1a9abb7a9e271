"""Layers point one way: core <- memory <- tools <- agent <- workflows <- server <- simulations and CLI.

Imports are read from the source (module level, inside functions, and module names written in strings
such as `importlib.import_module("firebreak.server.app")` or a monkeypatch target), so a cycle cannot hide in a
function body. The check fails on any import from a higher layer and on any cycle between packages.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AREAS = ("tools", "memory", "agent", "workflows", "server", "simulations")  # folders, imported as firebreak.X
PACKAGES = ("firebreak", *AREAS)
# Command-line adapters (the CLI root and each area's `cli`/`*_cli` module) sit at the top with simulations.
TOP_MODULES = {"firebreak.cli", "firebreak.simulations.demo"}  # the CLI root and the `demo` command


def is_cli(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module in TOP_MODULES or last == "cli" or last.endswith("_cli")
LAYER = {"firebreak": 0, "memory": 1, "tools": 2, "agent": 3, "workflows": 4, "server": 5, "simulations": 6}
STRING_MODULE = re.compile(r"^firebreak(\.[a-z_][a-z0-9_]*)+$")


def area(module: str) -> str:
    """`firebreak.agent.x` -> `agent`; any other `firebreak.x` is the core."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in AREAS else "firebreak"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts if parts[0] == "firebreak" else ["firebreak", *parts])


def source_files() -> list[Path]:
    files: list[Path] = []
    for pkg in PACKAGES:
        base = ROOT / pkg
        if base.is_dir():
            files += [p for p in base.rglob("*.py") if "migrations" not in p.parts]
    return files


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    this = module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = this.split(".")[: -node.level] if path.name != "__init__.py" else this.split(".")
                if node.level > 1 and path.name == "__init__.py":
                    base = this.split(".")[: -(node.level - 1)]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and STRING_MODULE.match(node.value):
            found.add(node.value)
    return {f for f in found if f.split(".")[0] in PACKAGES}


def layer_of(module: str) -> int:
    if is_cli(module):
        return max(LAYER.values())
    return LAYER[area(module)]


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in source_files():
        src = module_name(path)
        for target in imports_of(path):
            graph[src].add(target)
    return graph


def upward_imports() -> list[str]:
    bad = []
    for src, targets in edges().items():
        for t in sorted(targets):
            if layer_of(t) > layer_of(src):
                bad.append(f"{src} -> {t}")
    return sorted(bad)


def package_cycles() -> list[list[str]]:
    """Strongly connected groups of packages (counting every import found), larger than one package."""
    graph: dict[str, set[str]] = defaultdict(set)
    for src, targets in edges().items():
        a = "cli" if is_cli(src) else area(src)
        for t in targets:
            b = "cli" if is_cli(t) else area(t)
            if a != b:
                graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in list(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_checker_sees_function_level_and_string_imports(tmp_path: Path) -> None:
    f = ROOT / "tools" / "_arch_probe_tmp.py"
    f.write_text('def f():\n    from firebreak.server import app\n    return "firebreak.agent.investigator"\n')
    try:
        assert imports_of(f) == {"firebreak.server", "firebreak.agent.investigator"}
        assert any(s.startswith("firebreak.tools._arch_probe_tmp -> ") for s in upward_imports())
    finally:
        f.unlink()


def test_areas_are_imported_only_under_the_firebreak_namespace() -> None:
    """`tools`, `server`... are generic names other distributions use; the code asks for `firebreak.tools`."""
    bare = sorted(f"{module_name(p)} -> {m}" for p in source_files() for m in imports_of(p) if m.split(".")[0] in AREAS)
    assert bare == []


def test_no_import_from_a_higher_layer() -> None:
    assert upward_imports() == []


def test_no_cycle_between_packages() -> None:
    assert package_cycles() == []


if __name__ == "__main__":
    for line in upward_imports():
        print(line)
    print("cycles:", package_cycles())
