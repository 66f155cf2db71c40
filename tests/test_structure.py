"""Structure anyone can check: SQL only in the storage layer, imports one way, no circles."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from .conftest import REPO

KB = REPO / "kb"
STORAGE = KB / "storage"
SQL = re.compile(r"FROM documents|FROM chunks|executescript|CREATE TABLE|INSERT INTO|DELETE FROM|UPDATE \w+ SET")


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, anywhere in the file (functions and TYPE_CHECKING blocks too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_only_the_storage_layer_speaks_sql():
    offenders = []
    for name, path in _modules(KB).items():
        if path.is_relative_to(STORAGE):
            continue
        text = path.read_text(encoding="utf-8")
        if "import sqlite3" in text or SQL.search(text):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_indexer_never_imports_kb():
    for name, path in _modules(REPO / "indexer").items():
        assert not any(m == "kb" or m.startswith("kb.") for m in _imports(name, path)), name


def test_no_import_circle_among_kb_modules():
    modules = _modules(KB)
    graph = {name: {m for m in _imports(name, path) if m in modules and m != name} for name, path in modules.items()}
    # a package's __init__ re-exporting its own modules is not a circle of concepts
    graph = {name: {m for m in deps if not (name.startswith(m + ".") and modules[m].name == "__init__.py")}
             for name, deps in graph.items()}
    cycles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                cycles.append(trail[trail.index(dep):] + [dep] if dep in trail else [node, dep])
            elif dep not in state:
                visit(dep, trail + [dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_services_do_not_reach_back_into_the_facade():
    for module in ("annotations", "topics", "briefing"):
        path = KB / f"{module}.py"
        paths = [path] if path.exists() else list((KB / module).rglob("*.py"))
        for p in paths:
            name = ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            assert "kb.knowledge_base" not in _imports(name, p), p
            assert "self.kb" not in p.read_text(encoding="utf-8"), p
