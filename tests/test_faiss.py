"""What is particular to the FAISS store: its file as a cache of the docstore, kills, HNSW.

Everything an index does is tested on both stores by the suites that use ``store_kind``; here
are the FAISS file's own failure modes (damaged, stale, a process killed while writing it or
the docstore) and the approximate index type.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ollama_rag import ConfigError, IndexRepairedWarning, MissingExtraError, RagIndex
from ollama_rag.storage.docstore import DOCSTORE_FILE
from ollama_rag.storage.faiss import FAISS_DIR, FaissStore
from ollama_rag.testing import LocalOllama

pytest.importorskip("faiss")

TEXTS = [f"第{i}章。富士山は日本で一番高い山で、標高は{3000 + i}メートルです。" for i in range(12)]


def build(db: Path, ollama: LocalOllama, **options: object) -> None:
    with RagIndex(db, model="bge-m3", base_url=ollama.url, store="faiss", **options) as index:
        for i, text in enumerate(TEXTS):
            index.add_texts([text], source=f"doc{i}.md")


def faiss_file(db: Path) -> Path:
    (file,) = (db / FAISS_DIR).glob("*.faiss")
    return file


def assert_in_step(index: RagIndex) -> None:
    """Every stored chunk is found first by its own vector: FAISS and the rows agree."""
    store = index._store.vectors
    chunks = list(index.iter_chunks(vectors=True))
    assert len(chunks) == index.count()
    for chunk in chunks:
        assert chunk.vector is not None
        (hit,) = store.query(chunk.vector, 1)
        assert hit.id == chunk.id or hit.text == chunk.text  # equal texts share a vector


# ---------------------------------------------------------------- the file is a cache


@pytest.mark.reliability
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_a_damaged_faiss_file_is_rebuilt_from_the_docstore(
    tmp_path: Path, ollama: LocalOllama, damage: str
) -> None:
    db = tmp_path / "db"
    build(db, ollama)
    file = faiss_file(db)
    data = file.read_bytes()
    damaged = {"garbage": os.urandom(len(data)), "truncated": data[:-100], "empty": b""}
    file.write_bytes(damaged[damage])
    ollama.reset_counters()
    with pytest.warns(IndexRepairedWarning, match="rebuilt from the vectors in its docstore"):
        index = RagIndex(db, base_url=ollama.url)
    with index:
        assert index.count() == len(TEXTS)
        assert_in_step(index)
        assert index.search("富士山 3005メートル", k=1)[0].metadata["source"] == "doc5.md"
    assert ollama.request_count("bge-m3") == 1  # the query: nothing embedded again


@pytest.mark.reliability
def test_a_stale_or_missing_faiss_file_is_caught_up_quietly(
    tmp_path: Path,
    ollama: LocalOllama,
    recwarn: pytest.WarningsRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "db"
    build(db, ollama)
    stale = faiss_file(db).read_bytes()
    with RagIndex(db, base_url=ollama.url) as index:
        index.delete(source="doc0.md")
        index.add_texts(["新しい章。琵琶湖は日本で一番大きい湖です。"], source="new.md")
    faiss_file(db).write_bytes(stale)  # as if the save after these writes never happened
    caught_up: list[str] = []
    real = FaissStore._catch_up
    monkeypatch.setattr(
        FaissStore, "_catch_up", lambda self, uid, *a: caught_up.append(uid) or real(self, uid, *a)
    )
    with RagIndex(db, base_url=ollama.url) as index:
        assert len(caught_up) == 1  # the file was brought in step, not rebuilt
        assert_in_step(index)
        assert "doc0.md" not in {s.source for s in index.sources()}
        assert index.search("琵琶湖", k=1)[0].metadata["source"] == "new.md"
    faiss_file(db).unlink()
    with RagIndex(db, base_url=ollama.url) as index:
        assert_in_step(index)
    assert not [w for w in recwarn if issubclass(w.category, IndexRepairedWarning)]


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from ollama_rag import RagIndex
    db, url, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with RagIndex(db, base_url=url, batch_size=2) as index:
        for i in range(start, start + 400):
            index.add_texts([f"第{i}節。長い取り込みの途中で殺される文章です。"], source=f"s{i}.md")
            if i % 7 == 0:
                index.delete(source=f"s{i - 3}.md")
            print(i, flush=True)
    """
)


@pytest.mark.reliability
@pytest.mark.slow
@pytest.mark.parametrize("after_lines", [1, 5, 23, 60])
def test_kill_9_while_writing_leaves_a_consistent_index(
    tmp_path: Path, fresh_ollama: LocalOllama, after_lines: int
) -> None:
    """A writer killed at different instants: the rows and FAISS agree, every source is whole."""
    db = tmp_path / "db"
    build(db, fresh_ollama)
    fresh_ollama.set_delay(per_request=0.002)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(db), fresh_ollama.url, "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    for _ in range(after_lines):
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
    time.sleep(0.003 * after_lines)  # land at varying points within the next write
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    assert child.returncode == -9
    fresh_ollama.set_delay(per_request=0.0)
    with RagIndex(db, base_url=fresh_ollama.url) as index:
        assert_in_step(index)
        sources = index.sources()
        assert all(s.complete for s in sources)  # one text per source: written whole or not
        assert len(sources) >= len(TEXTS) + after_lines - after_lines // 7 - 1
        index.add_texts(["再開後の文章です。"], source="after.md")  # writable again
        assert index.search("再開後", k=1)[0].metadata["source"] == "after.md"


KILLED_SAVER = textwrap.dedent(
    """
    import os, signal, sys
    from ollama_rag import RagIndex
    from ollama_rag.storage import faiss as faiss_store

    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(".faiss"):
            os.kill(os.getpid(), signal.SIGKILL)  # the temporary file is written, not renamed
        real_replace(source, target)

    faiss_store.os.replace = replace
    with RagIndex(sys.argv[1], base_url=sys.argv[2]) as index:
        index.add_texts(["保存の途中で殺される文章です。"], source="late.md")
    """
)


@pytest.mark.reliability
def test_kill_9_while_saving_the_faiss_file_keeps_the_committed_rows(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    db = tmp_path / "db"
    build(db, ollama)
    before = faiss_file(db).read_bytes()
    child = subprocess.run(
        [sys.executable, "-c", KILLED_SAVER, str(db), ollama.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    assert faiss_file(db).read_bytes() == before  # the old file, whole
    with RagIndex(db, base_url=ollama.url) as index:
        assert index.count() == len(TEXTS) + 1  # the committed write is kept
        assert_in_step(index)
        assert index.search("保存の途中", k=1)[0].metadata["source"] == "late.md"
    assert not list((db / FAISS_DIR).glob("*.tmp"))  # the leftover was cleaned up


def test_the_docstore_holds_every_vector(tmp_path: Path, ollama: LocalOllama) -> None:
    db = tmp_path / "db"
    build(db, ollama)
    with sqlite3.connect(db / DOCSTORE_FILE) as conn:
        (rows, width) = conn.execute("SELECT COUNT(*), MAX(LENGTH(vector)) FROM chunks").fetchone()
    assert (rows, width) == (len(TEXTS), 1024 * 4)


# ---------------------------------------------------------------- choosing and recording


def test_store_and_index_type_are_recorded_and_kept(tmp_path: Path, ollama: LocalOllama) -> None:
    db = tmp_path / "db"
    build(db, ollama, faiss_index="hnsw")
    with RagIndex(db, base_url=ollama.url) as index:
        assert (index.manifest.store, index.manifest.vector_index) == ("faiss", "hnsw")
        assert isinstance(index._store.vectors, FaissStore)
        assert ("store", "faiss (hnsw)") in index.manifest.rows()
    with pytest.raises(ConfigError, match="is a FAISS 'hnsw' index"):
        RagIndex(db, base_url=ollama.url, faiss_index="flat")
    with pytest.raises(ConfigError, match="is a faiss index, not a chroma one"):
        RagIndex(db, base_url=ollama.url, store="chroma")
    with pytest.raises(ConfigError, match="faiss_index= applies to FAISS"):
        RagIndex(tmp_path / "other", model="bge-m3", base_url=ollama.url, faiss_index="hnsw")


def test_without_faiss_installed_the_error_is_the_pip_line(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'ollama-rag\[faiss\]'") as err:
        RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url, store="faiss")
    assert err.value.extra == "faiss"
    assert not (tmp_path / "db").exists()  # nothing created


def test_an_in_memory_faiss_index(ollama: LocalOllama) -> None:
    with RagIndex(model="bge-m3", base_url=ollama.url, store="faiss") as index:
        index.add_texts(TEXTS[:3], source="a.md")
        assert index.count() == 3
        assert index.search("富士山", k=1)


# ---------------------------------------------------------------- HNSW


def test_hnsw_recall_against_exact_and_deleted_rows_never_returned() -> None:
    """On random unit vectors (harder than text), HNSW's top 10 is nearly the exact one."""
    from ollama_rag.manifest import IndexManifest
    from ollama_rag.storage.base import ChunkRow, SourceWrite

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 64)).astype(np.float32)
    stores = {}
    for kind in ("flat", "hnsw"):
        store = FaissStore.open(index=kind)
        store.create(IndexManifest("m", "sha256:x", 64, 512, 100, 10))
        rows = [
            ChunkRow(f"id{i}", f"text {i}", {"source": f"s{i % 50}", "chunk_index": i}, v)
            for i, v in enumerate(vectors)
        ]
        store.write([SourceWrite("all", rows, marker=None)])
        stores[kind] = store
    queries = rng.standard_normal((50, 64)).astype(np.float32)
    found = 0
    for query in queries:
        exact = {h.id for h in stores["flat"].query(query, 10)}
        found += len(exact & {h.id for h in stores["hnsw"].query(query, 10)})
    assert found / (10 * len(queries)) >= 0.95
    # HNSW cannot remove: deleted rows are left out of its searches, then the graph rebuilt.
    hnsw = stores["hnsw"]
    hnsw.delete_sources([f"s{i}" for i in range(10)])
    for query in queries[:10]:
        assert all(int(h.metadata["source"][1:]) >= 10 for h in hnsw.query(query, 20))
    hnsw.delete_sources([f"s{i}" for i in range(10, 20)])  # over a quarter dead: rebuilt
    assert len(hnsw._vectors().dead) == 0
    assert int(hnsw._vectors().index.ntotal) == hnsw.count() == 1800
    for store in stores.values():
        store.close()


def test_hnsw_holds_one_graph_entry_per_text_and_finds_every_copy() -> None:
    """Thousands of identical vectors would cut an HNSW graph apart: copies stay out of it."""
    from ollama_rag.manifest import IndexManifest
    from ollama_rag.storage.base import ChunkRow, SourceWrite

    rng = np.random.default_rng(1)
    others = rng.standard_normal((1000, 32)).astype(np.float32)
    same = rng.standard_normal(32).astype(np.float32)
    store = FaissStore.open(index="hnsw")
    store.create(IndexManifest("m", "sha256:x", 32, 512, 100, 10))
    for start in range(0, 1000, 100):  # interleaved, the worst case for a graph
        rows = [
            ChunkRow(f"o{i}", f"t{i}", {"source": "o", "content_hash": f"h{i}"}, others[i])
            for i in range(start, start + 100)
        ]
        copies = [
            ChunkRow(f"s{i}", "same", {"source": "s", "chunk_index": i, "content_hash": "x"}, same)
            for i in range(start * 3, (start + 100) * 3)
        ]
        store.write([SourceWrite("o", rows, marker=None), SourceWrite("s", copies, marker=None)])
    try:
        assert int(store._vectors().index.ntotal) == 1001  # 1,000 texts and one for 3,000 copies
        found = sum(store.query(v, 1)[0].id == f"o{i}" for i, v in enumerate(others))
        assert found == 1000
        hits = store.query(same, 5, where={"chunk_index": {"$gte": 2995}})
        assert sorted(h.metadata["chunk_index"] for h in hits) == [2995, 2996, 2997, 2998, 2999]
        assert all(h.score == pytest.approx(1.0) for h in hits)
        store.delete_ids([f"s{i}" for i in range(2990)])  # the graph entry's row among them
        assert [h.id for h in store.query(same, 20) if h.text == "same"] == [
            f"s{i}" for i in range(2990, 3000)
        ]
        store.delete_sources(["s"])
        assert all(h.text != "same" for h in store.query(same, 5))
    finally:
        store.close()
