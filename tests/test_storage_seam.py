"""The storage seam is real: a second store plugs in and every path works the same on it.

``MemoryStore`` (``tests/fake_store.py``) implements ``ChunkStore`` from its contract alone. The
same script of adds, changes, deletes, searches and a migration runs on it and on Chroma, and
the two must end with the same chunks, ids, metadata and search results.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_store import MemoryStore

from ollama_rag import RagIndex
from ollama_rag.errors import IndexClosedError, OllamaUnavailableError
from ollama_rag.storage import ChromaStore, ChunkStore
from ollama_rag.testing import LocalOllama

FILES = {
    "ja/fuji.md": "# 富士山\n\n富士山は日本で一番高い山で、標高は3776メートルです。"
    "静岡県と山梨県にまたがる。\n\n## 登山\n\n夏には多くの人が山頂を目指して登る。",
    "zh/tea.txt": "中国是茶的故乡。绿茶、红茶和乌龙茶都很有名。龙井茶产于杭州西湖一带。",
    "en/bike.txt": "The bicycle was invented in the nineteenth century. "
    "Pedals were added to the front wheel in the 1860s.",
}
QUERIES = ["日本で一番高い山は？", "杭州的茶", "Who invented the bicycle?"]


def write_corpus(folder: Path) -> Path:
    for name, text in FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def open_on(kind: str, tmp_path: Path, server: LocalOllama, **kwargs: Any) -> RagIndex:
    where: dict[str, Any] = (
        {"store": MemoryStore()} if kind == "fake" else {"path": tmp_path / "chroma"}
    )
    return RagIndex(**where, base_url=server.url, chunk_size=40, **kwargs)


def stored(store: ChunkStore) -> dict[str, tuple[str, dict[str, Any]]]:
    return {c.id: (c.text, c.metadata) for page in store.iter_chunks() for c in page}


def script(index: RagIndex, corpus: Path, server: LocalOllama) -> dict[str, Any]:
    """Every write and search path, with what each one reported."""
    out: dict[str, Any] = {}
    report = index.add_files(corpus, progress=False)
    out["added"] = (report.files_added, report.chunks_embedded)
    out["text_ids"] = index.add_texts(
        ["長江は中国で一番長い川です。", "黄河は二番目です。"],
        metadatas=[{"lang": "ja", "n": 1}, {"lang": "ja", "n": 2}],
    )
    server.reset_counters()
    again = index.add_files(corpus, progress=False)
    out["again"] = (again.files_unchanged, server.request_count("bge-m3"))
    (corpus / "zh/tea.txt").write_text(FILES["zh/tea.txt"] + "普洱茶产于云南。", encoding="utf-8")
    changed = index.add_files(corpus, progress=False)
    out["changed"] = (changed.files_updated, changed.chunks_skipped > 0)
    (corpus / "en/bike.txt").unlink()
    out["synced"] = index.sync(corpus, progress=False).files_deleted
    out["deleted"] = index.delete(ids=out["text_ids"][:1])
    out["search"] = [
        [(d.id, round(s, 4)) for d, s in index.search_with_scores(q, k=3)] for q in QUERIES
    ]
    out["filtered"] = [d.id for d in index.search("茶", k=5, filter={"source": "zh/tea.txt"})]
    out["contains"] = [
        d.metadata["source"] for d in index.search("山", k=5, where_document={"$contains": "登山"})
    ]
    out["mmr"] = [d.id for d in index.max_marginal_relevance_search("山", k=2, fetch_k=6)]
    retriever = index.as_retriever(
        search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.0, "k": 2}
    )
    out["retrieved"] = [d.id for d in retriever.invoke(QUERIES[0])]
    server.reset_counters()
    migrated = index.migrate("mxbai-embed-large", progress=False)
    out["migrated"] = (migrated.chunks_embedded, index.count(), index.model)
    out["after"] = [d.id for d in index.search(QUERIES[0], k=2)]
    out["requests_after"] = server.request_count("mxbai-embed-large") > 0
    return out


def test_the_same_script_gives_the_same_index_on_chroma_and_on_a_second_store(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    results = {}
    contents = {}
    for kind in ("chroma", "fake"):
        corpus = write_corpus(tmp_path / kind / "docs")
        with open_on(kind, tmp_path / kind, ollama, model="bge-m3") as index:
            results[kind] = script(index, corpus, ollama)
            contents[kind] = stored(index._store)
            vectors = {
                h.id: h.vector
                for h in index._store.query(
                    index.embeddings.embed_query("山"), 100, include_vectors=True
                )
            }
            contents[kind + "-vectors"] = vectors  # type: ignore[assignment]
    chroma, fake = results["chroma"], results["fake"]
    assert chroma["added"][0] == 3
    assert chroma["again"] == (3, 0)  # unchanged files cost no embedding request
    assert chroma["changed"] == (1, True)  # only the changed file, and its unchanged chunks kept
    assert chroma["synced"] == 1
    assert chroma["deleted"] == 1
    assert set(chroma["contains"]) == {"ja/fuji.md"}
    assert chroma["migrated"][2] == "mxbai-embed-large:latest"
    assert chroma["requests_after"]
    # The second store behaved exactly like Chroma at every step.
    for key in chroma:
        if key == "search":
            for ours, theirs in zip(chroma[key], fake[key], strict=True):
                assert [i for i, _ in ours] == [i for i, _ in theirs]
                np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-3)
        else:
            assert chroma[key] == fake[key], key
    assert contents["chroma"].keys() == contents["fake"].keys()
    for cid, (text, meta) in contents["chroma"].items():
        fake_text, fake_meta = contents["fake"][cid]
        assert text == fake_text
        assert {k: v for k, v in meta.items() if k != "root"} == {
            k: v for k, v in fake_meta.items() if k != "root"
        }
    chroma_vectors: Any = contents["chroma-vectors"]
    fake_vectors: Any = contents["fake-vectors"]
    for cid, vector in chroma_vectors.items():
        np.testing.assert_allclose(vector, fake_vectors[cid], atol=1e-5)


def test_ingest_and_migration_write_only_through_the_seam(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    store = MemoryStore()
    corpus = write_corpus(tmp_path / "docs")
    with RagIndex(store=store, model="bge-m3", base_url=ollama.url, chunk_size=40) as index:
        index.add_files(corpus, progress=False)
        writes = store.log.count("write")
        index.migrate("nomic-embed-text", progress=False)
        assert index.manifest.dimension == 768
        assert store.data.manifest == index.manifest
    assert writes >= 1
    assert {"side", "switch", "iter_chunks"} <= set(store.log)
    with pytest.raises(IndexClosedError):
        store.count()


def test_a_failed_migration_on_a_second_store_resumes(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    store = MemoryStore()
    texts = [
        f"第{i}章では地域の歴史と文化を説明する。暮らしは季節とともに変わった。" for i in range(12)
    ]
    with RagIndex(
        store=store, model="bge-m3", base_url=fresh_ollama.url, batch_size=4, retries=0
    ) as index:
        index.add_texts(texts)
        total = index.count()
        fresh_ollama.fail_next(2, status="drop")
        with pytest.raises(OllamaUnavailableError):
            index.migrate("mxbai-embed-large", progress=False)
        assert index.model == "bge-m3:latest"
        fresh_ollama.reset()
        report = index.migrate("mxbai-embed-large", progress=False)
        assert index.count() == total
    assert report.chunks_skipped > 0
    assert report.chunks_embedded + report.chunks_skipped == total


def test_a_second_store_runs_without_chromadb_ever_being_imported(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    script_text = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[2])
        from fake_store import MemoryStore
        from ollama_rag import RagIndex

        with RagIndex(store=MemoryStore(), model="bge-m3", base_url=sys.argv[1]) as index:
            index.add_texts(["富士山は日本で一番高い山です。"], source="fuji.txt")
            assert index.search("富士山", k=1)[0].metadata["source"] == "fuji.txt"
            index.migrate("mxbai-embed-large", progress=False)
            assert index.search("富士山", k=1)
        chroma = {"chromadb", "langchain_chroma"}
        print(sorted(m for m in sys.modules if m.split(".")[0] in chroma))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script_text, ollama.url, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_store_and_a_path_cannot_both_be_given(tmp_path: Path, ollama: LocalOllama) -> None:
    from ollama_rag import ConfigError

    with pytest.raises(ConfigError, match="store= alone"):
        RagIndex(tmp_path, store=MemoryStore(), model="bge-m3", base_url=ollama.url)


def test_chroma_store_is_the_default(tmp_path: Path, ollama: LocalOllama) -> None:
    with RagIndex(tmp_path, model="bge-m3", base_url=ollama.url) as index:
        assert isinstance(index._store.vectors, ChromaStore)
