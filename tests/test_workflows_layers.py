"""Layers around the durable workflows: tools <- agent <- workflows <- server, no import going up.

Counts module-level and function-level imports and module names written in strings (importlib)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HIGHER = {
    "tools/executors.py": ("agent", "workflows", "server", "simulations"),
    "agent/investigator.py": ("workflows", "server", "simulations"),
    "agent/worker.py": ("workflows", "server", "simulations"),
    "agent/notify.py": ("workflows", "server", "simulations"),
    "agent/transcripts.py": ("workflows", "server", "simulations"),
    **{str(p.relative_to(REPO)): ("server", "simulations") for p in (REPO / "workflows").glob("*.py")},
}


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.isidentifier() is False:
            head = node.value.split(".")[0]
            if "." in node.value and " " not in node.value and head in {"agent", "workflows", "server", "tools"}:
                names.add(node.value)
    return names


@pytest.mark.parametrize("module", sorted(HIGHER))
def test_no_import_from_a_higher_layer(module: str) -> None:
    bad = sorted(n for n in imported(REPO / module) if n.split(".")[0] in HIGHER[module])
    assert bad == [], f"{module} imports {bad} from a higher layer"


def test_the_checker_sees_function_level_and_string_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from server.app import create_app\n    import importlib\n"
                     "    importlib.import_module('server.slack')\n")
    assert {"server.app", "server.slack"} <= imported(probe)
