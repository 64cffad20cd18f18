"""The README's and docs' Python examples run as written, against a real LocalOllama.

Blocks of one file share a namespace and run in order, in a temporary working directory, with
``OLLAMA_HOST`` pointing at the test server (which serves bge-m3, mxbai-embed-large and
nomic-embed-text stand-ins, and qwen2.5, an ``ExtractiveChatModel``). A block preceded by
``<!-- docs-test: skip (reason) -->`` is not run; the reason must say which test covers it
instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ollama_rag import RagIndex
from ollama_rag.testing import LocalOllama

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?P<skip><!-- docs-test: skip[^>]*-->\n)?```python\n(?P<code>.*?)```", re.S)


def python_blocks(path: Path) -> list[str]:
    return [m["code"] for m in BLOCK.finditer(path.read_text(encoding="utf-8")) if not m["skip"]]


def test_every_skipped_block_names_the_test_that_covers_it() -> None:
    for path in DOCS:
        for reason in re.findall(r"<!-- docs-test: skip([^>]*)-->", path.read_text("utf-8")):
            assert "tests/" in reason, f"{path.name}: skip without a covering test: {reason}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_doc_examples_run(
    path: Path, ollama: LocalOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(path)
    if path.name in ("README.md", "getting-started.md", "concepts.md", "errors.md"):
        assert blocks, f"{path.name} should have runnable examples"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLLAMA_HOST", ollama.url)
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    try:
        for n, code in enumerate(blocks):
            try:
                exec(compile(code, f"{path.name}[block {n}]", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{path.name} block {n} failed: {err!r}\n{code}") from err
    finally:
        for value in namespace.values():
            if isinstance(value, RagIndex):
                value.close()
