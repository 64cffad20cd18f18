"""The package's shape: no import cycles, no self-imports, one home for chromadb.

Imports are read from the source (every ``import`` anywhere in a module: at the top, inside
functions and under ``TYPE_CHECKING``), because a cycle hidden in a function or a type hint is
still two modules that cannot be understood, tested or replaced apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import ollama_rag

PACKAGE = Path(ollama_rag.__file__).parent
ROOT = "ollama_rag"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path) -> Iterator[tuple[str, int]]:
    """Every module ``path`` imports (absolute names), with the line of the import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                yield (child if child in MODULES else node.module), node.lineno


def package_of(name: str) -> str:
    return name if (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists() else ""


def internal_edges() -> dict[str, set[str]]:
    """Module -> the package modules it makes Python import.

    Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` (unless the importer is inside
    ``a.b``, which is then being imported already); the root package is left out, being the
    facade that imports everything.
    """
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for target, _ in imports_of(path):
            if target != ROOT and not target.startswith(ROOT + "."):
                continue
            graph[name].add(target)
            parts = target.split(".")
            for depth in range(2, len(parts)):
                parent = ".".join(parts[:depth])
                if package_of(parent) and not name.startswith(parent + ".") and name != parent:
                    graph[name].add(parent)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == ROOT:
                continue  # reported by the self-import test
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(internal_edges())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_imports_in_functions_and_type_checking_blocks_count(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ollama_rag.index import RagIndex\n"
        "def f():\n"
        "    from ollama_rag import loading\n",
        encoding="utf-8",
    )
    found = {name for name, _ in imports_of(source)}
    assert {"ollama_rag.index", "ollama_rag.loading"} <= found


def test_no_module_imports_the_package_root() -> None:
    offenders = [
        f"{name} (line {line})"
        for name, path in MODULES.items()
        if name != ROOT
        for target, line in imports_of(path)
        if target == ROOT
    ]
    assert offenders == []


@pytest.mark.parametrize("library", ["chromadb", "langchain_chroma"])
def test_only_the_storage_module_imports_chroma(library: str) -> None:
    importers = sorted(
        name
        for name, path in MODULES.items()
        for target, _ in imports_of(path)
        if target == library or target.startswith(library + ".")
    )
    assert set(importers) == {"ollama_rag.storage.chroma"}


def test_only_the_search_module_turns_queries_into_documents() -> None:
    # Store queries are made by the search module; everything else searches through it.
    callers = sorted(
        name
        for name, path in MODULES.items()
        if name
        not in {
            "ollama_rag.search",
            "ollama_rag.storage.base",
            "ollama_rag.storage.chroma",
            "ollama_rag.storage.faiss",
            "ollama_rag.storage.hybrid",
            "ollama_rag.storage.view",
        }
        and (
            ".query(" in path.read_text(encoding="utf-8")
            or ".aquery(" in path.read_text(encoding="utf-8")
        )
    )
    assert callers == []
