"""The lexical index after a process died inside a Tantivy commit.

A commit writes its files (new segments, a segment's ``.<opstamp>.del``) and then swaps
``meta.json``; a kill between the two leaves files no commit refers to. The next process
catches up by replaying the same changes, reaches the same opstamp, and must be able to
commit them: the kill loop (``python -m benchmarks reliability`` on FAISS) met
``FileAlreadyExists("<segment>.270.del")`` on close before Tantivy's orphans were collected.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from ollama_rag import RagIndex
from ollama_rag.lexical.index import LexicalIndex
from ollama_rag.testing import LocalOllama


def _changes(n: int) -> list[tuple[str, str, list[str]]]:
    return [(f"c{i}", f"s{i % 7}.md", ["富士", "山", f"t{i}"]) for i in range(n)]


def test_a_commit_replayed_after_a_kill_mid_commit_succeeds(tmp_path: Path) -> None:
    folder = tmp_path / "lex"
    index = LexicalIndex(folder)
    index.apply(add=_changes(40), state={"token": "a"})
    index.close()
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    # The change the process was committing when it died: deletions (a .del file) and adds.
    index = LexicalIndex(folder)
    index.apply(add=_changes(60)[40:], delete=["c1", "c2", "c3"], state={"token": "b"})
    index.close()
    written = {p.name for p in folder.iterdir()} - set(before)
    assert any(name.endswith(".del") for name in written), written

    # As the kill left it: every file the commit wrote is there, but meta.json (and the state
    # recorded after the commit) are still the previous commit's.
    for name in ("meta.json", "ollama-rag-lexical.json"):
        (folder / name).write_bytes(before[name])
    again = LexicalIndex(folder)
    assert again.get("token") == "a"
    assert again.count() == 40
    again.apply(add=_changes(60)[40:], delete=["c1", "c2", "c3"], state={"token": "b"})
    again.close()  # raised FileAlreadyExists before

    reopened = LexicalIndex(folder)
    assert reopened.get("token") == "b"
    assert reopened.ids() == {f"c{i}" for i in range(60)} - {"c1", "c2", "c3"}
    assert [cid for cid, _ in reopened.search(["t50"], limit=5)] == ["c50"]  # replayed adds
    reopened.close()


def test_a_lexical_index_failing_to_close_still_releases_the_index(
    tmp_path: Path, ollama: LocalOllama, mocker: MockerFixture
) -> None:
    """A commit of the lexical index failing on close (which no longer happens for real) must
    not keep the vectors unsaved or either lock held: the next open catches the terms up."""
    db = tmp_path / "db"
    index = RagIndex(db, model="bge-m3", base_url=ollama.url)
    index.add_texts(["富士山は日本で一番高い山です。"], source="fuji.md")
    mocker.patch.object(LexicalIndex, "flush", side_effect=ValueError("Failed to open file"))
    with pytest.raises(ValueError, match="Failed to open file"):
        index.close()
    mocker.stopall()
    # Another process can write: the first released the directory's lock.
    code = (
        "import sys; from ollama_rag import RagIndex\n"
        "with RagIndex(sys.argv[1], base_url=sys.argv[2]) as index:\n"
        "    index.add_texts(['琵琶湖は日本で一番大きい湖です。'], source='biwa.md')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(db), ollama.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with RagIndex(db, base_url=ollama.url) as again:
        assert again.count() == 2
        assert again.search("富士山", k=1, mode="lexical")[0].metadata["source"] == "fuji.md"
