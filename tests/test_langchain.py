"""The LangChain composition is real: the embeddings, a user's own embeddings, the vector store.

- ``index.embeddings`` is a ``langchain_ollama.OllamaEmbeddings`` any LangChain component takes;
- ``RagIndex(embeddings=OllamaEmbeddings(...))`` honours its model, URL, credentials, headers and
  options, and the model guard applies to it;
- ``index.vectorstore`` reads like LangChain's ``Chroma``, but its writes go through the index;
- search results show what a reader cites, not the index's bookkeeping.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_ollama import OllamaEmbeddings

from ollama_rag import ConfigError, EmbeddingModelMismatchError, RagIndex
from ollama_rag.storage.schema import HIDDEN_KEYS
from ollama_rag.testing import HashEmbeddingModel, LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

JA = "富士山は日本で一番高い山で、標高は3776メートルです。静岡県と山梨県にまたがる。"
LONG = "".join(f"第{i}節では、地域の歴史と文化について詳しく説明する。" for i in range(12))


@pytest.mark.filterwarnings("ignore:.*English-only")
def test_index_embeddings_is_a_langchain_ollama_embeddings(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with RagIndex(tmp_path, model="nomic-embed-text", base_url=ollama.url) as index:
        assert isinstance(index.embeddings, OllamaEmbeddings)
        index.add_texts([JA], source="fuji.txt")
        stored = index.vectorstore.get(include=["documents", "embeddings"])
        # The same object embeds for another LangChain component, with the index's prefixes.
        other = InMemoryVectorStore(embedding=index.embeddings)
        other.add_texts(stored["documents"])
        vector = other.store[next(iter(other.store))]["vector"]
        np.testing.assert_allclose(vector, stored["embeddings"][0], atol=1e-5)
        ollama.reset_counters()
        asyncio.run(index.embeddings.aembed_documents(["a", "b"]))
        assert ollama.received("nomic-embed-text") == ["search_document: a", "search_document: b"]


def test_a_users_own_ollama_embeddings_is_honoured(tmp_path: Path, ollama: LocalOllama) -> None:
    host = ollama.url.removeprefix("http://")
    mine = OllamaEmbeddings(
        model="bge-m3",
        base_url=f"http://rag:s3cret@{host}",
        client_kwargs={"headers": {"X-Team": "search"}, "timeout": 30},
        keep_alive=600,
    )
    ollama.reset_counters()
    with RagIndex(tmp_path, embeddings=mine) as index:
        assert index.model == "bge-m3:latest"
        index.add_texts([JA], source="fuji.txt")
        assert index.search("富士山", k=1)
        assert index.embeddings.keep_alive == 600
        assert "s3cret" not in repr(index.embeddings)  # credentials stay out of reprs and logs
    expected_auth = "Basic " + base64.b64encode(b"rag:s3cret").decode()
    for path in ("/api/tags", "/api/show", "/api/embed"):
        seen = ollama.request_headers(path)
        assert seen, path
        assert all(h.get("x-team") == "search" for h in seen), path
        assert all(h.get("authorization") == expected_auth for h in seen), path
    # Reopened with the user's embeddings of another model: the guard refuses it.
    other = OllamaEmbeddings(model="mxbai-embed-large", base_url=ollama.url)
    with pytest.raises(EmbeddingModelMismatchError, match="mxbai-embed-large"):
        RagIndex(tmp_path, embeddings=other)


def test_a_users_num_ctx_sizes_the_chunks_so_nothing_is_truncated(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    spec = ollama.spec("bge-m3")
    with RagIndex(
        tmp_path, embeddings=OllamaEmbeddings(model="bge-m3", base_url=ollama.url, num_ctx=40)
    ) as index:
        assert index.manifest.context_length == 40
        index.add_texts([LONG], source="long.txt")
        stored = index.vectorstore.get(include=["documents", "metadatas"])
    assert len(stored["documents"]) > 2
    assert all(spec.count_tokens(d) <= 40 for d in stored["documents"])
    for text, meta in zip(stored["documents"], stored["metadatas"], strict=True):
        assert LONG[meta["start_index"] : meta["end_index"]] == text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "nomic-embed-text"}, "disagree"),
        ({"base_url": "http://127.0.0.1:9"}, "base_url"),
        ({"keep_alive": "1h"}, "keep_alive"),
    ],
)
def test_arguments_that_contradict_the_users_embeddings_are_refused(
    tmp_path: Path, ollama: LocalOllama, kwargs: dict[str, object], match: str
) -> None:
    mine = OllamaEmbeddings(model="bge-m3", base_url=ollama.url, keep_alive=60)
    with pytest.raises(ConfigError, match=match):
        RagIndex(tmp_path, embeddings=mine, **kwargs)  # type: ignore[arg-type]


def test_embeddings_must_be_ollama_embeddings(tmp_path: Path) -> None:
    from langchain_core.embeddings import DeterministicFakeEmbedding

    with pytest.raises(ConfigError, match="OllamaEmbeddings"):
        RagIndex(tmp_path, embeddings=DeterministicFakeEmbedding(size=8))  # type: ignore[arg-type]


# ------------------------------------------------------------------ the vector store view


def test_vectorstore_writes_go_through_the_index(tmp_path: Path, ollama: LocalOllama) -> None:
    with RagIndex(tmp_path, model="bge-m3", base_url=ollama.url, chunk_size=40) as index:
        store = index.vectorstore
        ids = store.add_texts([LONG], metadatas=[{"source": "long.txt", "lang": "ja"}])
        assert len(ids) > 2  # chunked like index.add_texts
        stored = store.get(include=["metadatas"])
        firsts = [m for m in stored["metadatas"] if m["chunk_index"] == 0]
        assert [m["complete_hash"] for m in firsts] == [firsts[0]["unit_hash"]]  # marked
        ollama.reset_counters()
        assert store.add_texts([LONG], metadatas=[{"source": "long.txt", "lang": "ja"}]) == ids
        assert ollama.request_count("bge-m3") == 0  # nothing embedded twice
        more = store.add_documents([Document(page_content=JA, metadata={"source": "fuji"})])
        assert index.count() == len(ids) + len(more)
        asyncio.run(store.aadd_texts(["長江は長い。"], metadatas=[{"source": "river"}]))
        assert index.search("長江", k=1)[0].metadata["source"] == "river"
        store.delete(ids=more)
        assert index.count() == len(ids) + 1


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.add_texts(["x"], ids=["mine"]),
        lambda s: s.add_documents([Document(page_content="x", id="mine")]),
        lambda s: s.delete(where={"source": "long.txt"}),
        lambda s: s.update_document("a", Document(page_content="x")),
        lambda s: s.update_documents(["a"], [Document(page_content="x")]),
        lambda s: s.reset_collection(),
        lambda s: s.delete_collection(),
    ],
    ids=["ids", "doc-ids", "delete-where", "update", "updates", "reset", "delete-collection"],
)
def test_vectorstore_writes_that_bypass_the_index_are_refused(
    tmp_path: Path, ollama: LocalOllama, call: object
) -> None:
    with RagIndex(tmp_path, model="bge-m3", base_url=ollama.url) as index:
        index.add_texts([JA], source="fuji.txt")
        before = index.vectorstore.get(include=["documents", "metadatas"])
        with pytest.raises(ConfigError, match=r"index\.add_texts"):
            call(index.vectorstore)  # type: ignore[operator]
        assert index.vectorstore.get(include=["documents", "metadatas"]) == before
        assert index.count() == 1


# ------------------------------------------------------------------ what results show


def test_results_show_what_readers_cite_and_no_bookkeeping(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "fuji.md").write_text("# 富士山\n\n" + JA, encoding="utf-8")
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url, chunk_size=20) as index:
        index.add_files(folder, progress=False)
        index.add_texts([LONG], metadatas=[{"lang": "ja"}], source="long.txt")
        docs = index.search("富士山", k=20)
        rooted = index.search("富士山", k=20, include_root=True)
        mmr = index.max_marginal_relevance_search("富士山", k=3)
        retrieved = index.as_retriever(search_kwargs={"k": 5, "include_root": True}).invoke("山")
    for doc in [*docs, *mmr]:
        assert not HIDDEN_KEYS & doc.metadata.keys()
        assert "root" not in doc.metadata
        assert {"source", "chunk_index", "start_index", "end_index", "id", "score"} <= set(
            doc.metadata
        )
    files = [d for d in docs if d.metadata["source"] == "fuji.md"]
    assert files
    assert all(d.metadata["file_type"] == "md" and "title" in d.metadata for d in files)
    assert {d.metadata["root"] for d in rooted if d.metadata["source"] == "fuji.md"} == {
        folder.resolve().as_posix()
    }
    assert any("root" in d.metadata for d in retrieved)
    assert all(d.metadata.get("lang") == "ja" for d in docs if d.metadata["source"] == "long.txt")


def test_a_second_host_gets_the_same_headers(tmp_path: Path) -> None:
    models = {"bge-m3": HashEmbeddingModel(dimension=16, seed=1)}
    with LocalOllama(models) as one, LocalOllama(models) as two:
        mine = OllamaEmbeddings(
            model="bge-m3", base_url=one.url, client_kwargs={"headers": {"X-Team": "a"}}
        )
        with RagIndex(tmp_path, embeddings=mine, base_url=None, batch_size=2) as index:
            assert index.base_urls == (one.url,)
        with RagIndex(
            tmp_path / "two",
            embeddings=mine.model_copy(update={"base_url": None}),
            base_url=[one.url, two.url],
            batch_size=2,
        ) as index:
            index.add_texts([f"文{i}です。" for i in range(8)])
        for server in (one, two):
            seen = server.request_headers("/api/embed")
            assert seen
            assert all(h.get("x-team") == "a" for h in seen)


def test_pull_goes_through_the_users_client_too(tmp_path: Path) -> None:
    with LocalOllama({"bge-m3": HashEmbeddingModel(dimension=16, seed=1)}) as server:
        server.add_model("nomic-embed-text", HashEmbeddingModel(dimension=8), installed=False)
        mine = OllamaEmbeddings(
            model="nomic-embed-text",
            base_url=server.url,
            client_kwargs={"headers": {"X-Team": "search"}},
        )
        with RagIndex(tmp_path, embeddings=mine, pull=True) as index:
            assert index.manifest.dimension == 8
        pulls = server.request_headers("/api/pull")
        assert pulls
        assert all(h.get("x-team") == "search" for h in pulls)
