"""``RagRetriever`` keeps LangChain's retriever contract, checked by LangChain's own tests too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from ollama_rag import ConfigError, RagIndex, RagRetriever
from ollama_rag.ollama import OllamaEmbedder
from ollama_rag.search import Searcher
from ollama_rag.testing import HashEmbeddingModel, LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

TEXTS = [
    "富士山は日本で一番高い山です。",
    "富士山の標高は3776メートルです。",
    "富士山は静岡県と山梨県にまたがる。",
    "琵琶湖は日本で一番大きな湖です。",
    "長江は中国で一番長い川です。",
]
_SHARED: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def texts_index() -> Iterator[RagIndex]:
    with (
        LocalOllama({"bge-m3": HashEmbeddingModel(dimension=64, seed=1)}) as server,
        RagIndex(model="bge-m3", base_url=server.url) as index,
    ):
        index.add_texts(TEXTS, metadatas=[{"n": i} for i in range(len(TEXTS))])
        _SHARED["index"] = index
        yield index
        _SHARED.clear()


class TestRagRetrieverStandard(RetrieversIntegrationTests):
    """LangChain's standard retriever tests (langchain-tests), unchanged."""

    @property
    def retriever_constructor(self) -> type[RagRetriever]:
        return RagRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"searcher": _SHARED["index"].searcher}

    @property
    def retriever_query_example(self) -> str:
        return "富士山の高さ"


def test_per_call_kwargs_apply_to_that_call_only(texts_index: RagIndex) -> None:
    retriever = texts_index.as_retriever(search_kwargs={"k": 3})
    assert len(retriever.invoke("富士山", k=1)) == 1
    assert len(retriever.invoke("富士山")) == 3  # the call's k did not stick
    only = retriever.invoke("富士山", filter={"n": 3})
    assert [d.metadata["n"] for d in only] == [3]


def test_k_at_construction_is_honoured(texts_index: RagIndex) -> None:
    assert len(texts_index.as_retriever(k=2).invoke("富士山")) == 2
    assert len(RagRetriever(index=texts_index, k=4).invoke("富士山")) == 4  # index= still works
    assert texts_index.as_retriever(search_kwargs={"k": 2}).k == 2
    with pytest.raises(ConfigError, match="disagree"):
        texts_index.as_retriever(k=2, search_kwargs={"k": 3})


def test_unknown_kwargs_are_refused_at_construction_and_per_call(texts_index: RagIndex) -> None:
    with pytest.raises(ConfigError, match="fetch_k"):
        texts_index.as_retriever(search_kwargs={"fetch_k": 10})
    retriever = texts_index.as_retriever()
    with pytest.raises(ConfigError, match="lambda_mult"):
        retriever.invoke("富士山", lambda_mult=0.3)
    mmr = texts_index.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 5})
    assert len(mmr.invoke("富士山", lambda_mult=0.1)) == 2


def test_ainvoke_is_natively_async(texts_index: RagIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """The query is embedded with the async client: the sync embedding path is never used.

    (The store is read in a worker thread, which keeps the loop free meanwhile; see
    tests/test_async.py.)
    """

    def no_sync(*_: object, **__: object) -> None:
        raise AssertionError("ainvoke used the synchronous embedding path")

    monkeypatch.setattr(OllamaEmbedder, "embed_query", no_sync)
    monkeypatch.setattr(OllamaEmbedder, "embed_queries", no_sync)

    async def run() -> list[list[Document]]:
        similarity = texts_index.as_retriever(search_kwargs={"k": 2})
        mmr = texts_index.as_retriever(search_type="mmr", search_kwargs={"k": 2})
        threshold = texts_index.as_retriever(
            search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99}
        )
        return list(
            await asyncio.gather(
                similarity.ainvoke("富士山"),
                similarity.ainvoke("長江", k=1),
                mmr.ainvoke("富士山"),
                threshold.ainvoke("富士山は日本で一番高い山です。"),
            )
        )

    similar, one, diverse, exact = asyncio.run(run())
    assert len(similar) == 2
    assert similar[0].metadata["source"].startswith("text:")
    assert [d.page_content for d in one] == ["長江は中国で一番長い川です。"]
    assert len(diverse) == 2
    assert [d.page_content for d in exact] == [TEXTS[0]]


def test_async_results_equal_sync_results(texts_index: RagIndex) -> None:
    retriever = texts_index.as_retriever(search_kwargs={"k": 3})
    sync = retriever.invoke("日本で一番")
    asynchronous = asyncio.run(retriever.ainvoke("日本で一番"))
    assert [d.id for d in sync] == [d.id for d in asynchronous]
    assert [d.metadata for d in sync] == [d.metadata for d in asynchronous]


def test_the_retriever_needs_no_index_only_a_searcher(texts_index: RagIndex) -> None:
    searcher = Searcher(texts_index.searcher.store, texts_index.embeddings)
    docs = RagRetriever(searcher=searcher, k=1).invoke("琵琶湖")
    assert docs[0].page_content == TEXTS[3]


def test_a_retriever_made_before_a_migration_searches_the_new_model(tmp_path: Path) -> None:
    models = {
        "a": HashEmbeddingModel(dimension=32, seed=1),
        "b": HashEmbeddingModel(dimension=48, seed=2),
    }
    with LocalOllama(models) as server, RagIndex(tmp_path, model="a", base_url=server.url) as index:
        index.add_texts(TEXTS)
        retriever = index.as_retriever(k=1)
        index.migrate("b", progress=False)
        server.reset_counters()
        assert retriever.invoke("富士山")
        assert server.request_count("b") == 1
        assert server.request_count("a") == 0
