"""The async API: the sync path's results and guarantees, without blocking the event loop.

``aadd_*`` run the sync pipeline in a worker thread with its HTTP hop on the loop's async
clients, so these tests compare with the sync path rather than restate it, and check what is
the async path's own: the loop keeps turning, cancellation is real and leaves a consistent
index, and waiting writers and searches take turns.
"""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import ollama as ollama_client
import pytest
from fake_store import MemoryStore
from langchain_core.documents import Document

from ollama_rag import ConfigError, IndexClosedError, RagIndex
from ollama_rag.fusion import Calibration
from ollama_rag.testing import HashEmbeddingModel, LocalOllama, loop_stalls

pytestmark = pytest.mark.usefixtures("store_kind")

MODEL = HashEmbeddingModel(dimension=64, seed=5)
SMALL_CONTEXT = HashEmbeddingModel(dimension=64, context_length=48, seed=5)
TEXTS = [
    "富士山は日本で一番高い山です。",
    "富士山の標高は3776メートルです。",
    "琵琶湖は日本で一番大きな湖です。",
    "長江は中国で一番長い川です。",
    "The Shinano is the longest river in Japan.",
]


def story(i: int) -> str:
    return "".join(f"第{i}巻第{j}節では、地域の歴史と文化について説明する。" for j in range(6))


@pytest.fixture
def server(fresh_ollama: LocalOllama) -> LocalOllama:
    """A server of the test's own with a small model (Chroma writes 64-d rows quickly)."""
    fresh_ollama.add_model("m", MODEL)
    return fresh_ollama


def complete_sources(index: RagIndex) -> set[str]:
    firsts = index.vectorstore.get(where={"chunk_index": 0}, include=["metadatas"])
    return {str(m["source"]) for m in firsts["metadatas"] if "complete_hash" in m}


def stored(index: RagIndex) -> dict[str, tuple[str, dict[str, Any]]]:
    rows = index.vectorstore.get(include=["documents", "metadatas"])
    return {
        i: (doc, dict(meta))
        for i, doc, meta in zip(rows["ids"], rows["documents"], rows["metadatas"], strict=True)
    }


def assert_lexical_in_step(index: RagIndex) -> None:
    assert index._store.lexical_ids() == set(stored(index))


# ---------------------------------------------------------------------- the sync path's results

# (method, args, kwargs): run as index.<method> and as index.a<method>.
OPERATIONS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("add_texts", ([story(i) for i in range(8)],), {"metadatas": [{"n": i} for i in range(8)]}),
    ("add_texts", (TEXTS,), {"source": "notes"}),
    ("add_texts", (TEXTS[:2],), {"source": "notes"}),  # replaces the source's chunks
    ("add_documents", ([Document("第1頁です。", metadata={"source": "pdf", "page": 1})],), {}),
    (
        "add_documents",
        ([Document("第2頁です。", metadata={"source": "pdf", "page": 2})],),
        {"replace": False},  # adds to the source
    ),
    ("add_texts", ([story(i) for i in range(8)],), {"metadatas": [{"n": i} for i in range(8)]}),
]


@pytest.mark.parametrize("scenario", ["plain", "retries", "over-long", "two hosts"])
def test_async_writes_store_what_sync_writes_store(
    tmp_path: Path, scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = SMALL_CONTEXT if scenario == "over-long" else MODEL
    with ExitStack() as stack:
        servers = [
            stack.enter_context(LocalOllama({"m": spec}))
            for _ in range(2 if scenario == "two hosts" else 1)
        ]
        options: dict[str, Any] = {
            "model": "m",
            "base_url": [s.url for s in servers],
            "chunk_size": 300 if scenario == "over-long" else 40,
            "batch_size": 4,
            "retry_backoff": 0.01,
        }
        sync = stack.enter_context(RagIndex(tmp_path / "sync", **options))
        asyn = stack.enter_context(RagIndex(tmp_path / "async", **options))

        def run(index: RagIndex, asynchronous: bool) -> list[tuple[list[str], int]]:
            """Each operation's ids and the embedding requests it made."""
            done = []
            for n, (name, args, kwargs) in enumerate(OPERATIONS):
                for s in servers:
                    s.reset_counters()
                    if scenario == "retries" and n == 0:
                        s.fail_next(2, status=500)  # retried, on a free host
                if asynchronous:
                    ids = asyncio.run(getattr(index, "a" + name)(*args, **kwargs))
                else:
                    ids = getattr(index, name)(*args, **kwargs)
                assert all(s.pending_failures == 0 for s in servers)
                done.append((ids, sum(s.request_count("m") for s in servers)))
            return done

        expected = run(sync, asynchronous=False)

        def no_sync_request(*_: object, **__: object) -> None:
            raise AssertionError("an async write embedded with the sync client")

        monkeypatch.setattr(ollama_client.Client, "embed", no_sync_request)
        got = run(asyn, asynchronous=True)
        assert [ids for ids, _ in got] == [ids for ids, _ in expected]
        assert got[-1][1] == expected[-1][1] == 0  # nothing embedded twice
        assert stored(asyn) == stored(sync)
        # Calibrated after the writes alike (the figures depend on the order rows went in).
        calibrated = [Calibration.from_text(i.manifest.fusion) for i in (sync, asyn)]
        assert None not in calibrated
        assert len({(c.queries, c.chunks) for c in calibrated if c is not None}) == 1
        assert_lexical_in_step(asyn)
        if scenario == "over-long":
            assert any("split_of" in meta for _, meta in stored(asyn).values())
        if scenario == "two hosts":
            servers[0].reset_counters()
            servers[1].reset_counters()
            asyncio.run(asyn.aadd_texts([story(i) for i in range(20, 30)]))
            assert all(s.request_count("m") > 0 for s in servers)


async def test_bad_arguments_and_closed_indexes_are_refused_as_in_sync(
    tmp_path: Path, server: LocalOllama
) -> None:
    index = RagIndex(tmp_path, model="m", base_url=server.url)
    with pytest.raises(ConfigError, match="wrap a single text"):
        await index.aadd_texts("一つの文字列")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a langchain Document"):
        await index.aadd_documents(["text"])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="mode="):
        await index.asearch("富士山", mode="fuzzy")  # type: ignore[typeddict-item]
    with pytest.raises(TypeError, match="fetch_k"):
        await index.asearch("富士山", fetch_k=3)  # type: ignore[call-arg]
    index.close()
    with pytest.raises(IndexClosedError):
        await index.aadd_texts(["富士山"])
    with pytest.raises(IndexClosedError):
        await index.asearch("富士山")


# ---------------------------------------------------------------------- the loop keeps turning


async def test_the_loop_keeps_turning_while_aadd_texts_embeds(
    tmp_path: Path, server: LocalOllama
) -> None:
    server.set_delay(per_request=0.05, slots=4)
    texts = [story(i) for i in range(40)]
    # The in-memory store: an embedded Chroma holds the GIL for a whole write (up to ~1 s on a
    # loaded machine, measured by benchmarks/bench_async.py), which no thread can hide; this
    # test is about the embedding requests, which must never hold the loop.
    with RagIndex(
        model="m", base_url=server.url, chunk_size=40, batch_size=8, store=MemoryStore()
    ) as index:
        run = await loop_stalls(index.aadd_texts(texts))
        assert len(run.result) == index.count() > 200
    assert run.seconds > 0.5  # long enough for the stall to mean something
    assert run.longest < run.seconds / 5, f"stalled {run.longest:.3f} s of {run.seconds:.3f} s"
    assert server.peak_concurrency == 2  # concurrency=2 per host, as in the sync path


async def test_the_loop_keeps_turning_while_searches_wait_for_ollama(
    tmp_path: Path, server: LocalOllama
) -> None:
    with RagIndex(tmp_path, model="m", base_url=server.url) as index:
        index.add_texts(TEXTS)
        server.set_delay(per_request=1.0, slots=8)
        retriever = index.as_retriever(k=2)
        mmr = index.as_retriever(search_type="mmr", k=2)
        searches = asyncio.gather(
            index.asearch("富士山", k=2),
            index.asearch_with_scores("琵琶湖", mode="dense"),
            index.amax_marginal_relevance_search("川", k=2, fetch_k=4, mode="lexical"),
            retriever.ainvoke("長江"),
            mmr.ainvoke("富士山"),
        )
        run = await loop_stalls(searches)
    assert all(run.result)
    # Half a request: an embedding that blocked the loop would stall it for a whole one.
    assert run.longest < 0.5, f"the loop stalled {run.longest:.3f} s"
    assert run.seconds < 3 * 1.0  # five requests of 1 s each, in flight together


async def test_many_concurrent_async_searches_return_what_sync_search_returns(
    tmp_path: Path, server: LocalOllama
) -> None:
    queries = ["富士山", "日本で一番", "長江", "river", "第3巻", "文化", "湖"]
    with RagIndex(tmp_path, model="m", base_url=server.url, chunk_size=40) as index:
        texts = [story(i) for i in range(10)] + TEXTS
        index.add_texts(texts, metadatas=[{"n": i % 3} for i in range(len(texts))])
        calls: list[tuple[str, str, dict[str, Any]]] = [
            (kind, q, {"k": 3, **options})
            for q in queries
            for kind, options in [
                ("search_with_scores", {}),
                ("search_with_scores", {"mode": "dense"}),
                ("search_with_scores", {"mode": "lexical", "filter": {"n": {"$ne": 1}}}),
                ("search", {"where_document": {"$contains": "の"}}),
                ("max_marginal_relevance_search", {"fetch_k": 6, "lambda_mult": 0.3}),
            ]
        ]
        expected = [getattr(index, kind)(q, **kw) for kind, q, kw in calls]
        got = await asyncio.gather(*(getattr(index, "a" + kind)(q, **kw) for kind, q, kw in calls))
    assert got == expected


# ---------------------------------------------------------------------- cancellation and turns


async def test_a_cancelled_aadd_texts_keeps_whole_sources_and_a_rerun_resumes(
    tmp_path: Path, server: LocalOllama
) -> None:
    texts = [story(i) for i in range(16)]
    server.set_delay(per_request=1.5)
    with RagIndex(tmp_path, model="m", base_url=server.url, chunk_size=40, batch_size=4) as index:
        metadatas = [{"n": i} for i in range(len(texts))]
        task = asyncio.create_task(index.aadd_texts(texts, metadatas))
        while not complete_sources(index):
            await asyncio.sleep(0.02)
        cancelled_at = time.perf_counter()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        took = time.perf_counter() - cancelled_at
        requests = server.request_count("m")
        await asyncio.sleep(1.6)
        assert server.request_count("m") == requests  # nothing is left running

        kept = complete_sources(index)
        rows = stored(index)
        assert 0 < len(kept) < len(texts)
        for n in {meta["n"] for _, meta in rows.values()}:  # each text whole and marked
            chunks = [(doc, meta["source"]) for doc, meta in rows.values() if meta["n"] == n]
            assert sorted(doc for doc, _ in chunks) == sorted(index.splitter.split_text(texts[n]))
            assert {source for _, source in chunks} <= kept
        assert_lexical_in_step(index)

        server.set_delay(per_request=0.0)
        server.reset_counters()
        ids = await index.aadd_texts(texts, metadatas)
        calibration = Calibration.from_text(index.manifest.fusion)
        queries = calibration.queries if calibration is not None else 0
        embedded = len(server.received("m")) - queries
        assert embedded == index.count() - len(rows)  # only what was not stored
        assert complete_sources(index) == {m["source"] for _, m in stored(index).values()}
        assert len(complete_sources(index)) == len(texts)
        assert ids == index.add_texts(texts, metadatas)
        assert_lexical_in_step(index)
    assert took < 1.5  # less than one request: the one in flight was abandoned


async def test_writers_take_turns_and_a_waiting_one_can_be_cancelled(
    tmp_path: Path, server: LocalOllama
) -> None:
    server.set_delay(per_request=0.2)
    with RagIndex(tmp_path, model="m", base_url=server.url, chunk_size=40, batch_size=4) as index:
        first = asyncio.create_task(index.aadd_texts([story(i) for i in range(6)]))
        while not server.request_count("m"):
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(index.aadd_texts(["待っている文章。"], source="waiting"))
        await asyncio.sleep(0.1)
        cancelled_at = time.perf_counter()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert time.perf_counter() - cancelled_at < 1.0  # the lock is polled every 50 ms
        assert not first.done()
        server.set_delay(per_request=0.0)

        # An async writer, another async writer and a sync writer in a thread, all at once.
        third = [Document(story(i), metadata={"source": f"doc{i}"}) for i in range(10, 14)]
        sync_done = threading.Event()

        def sync_writer() -> list[str]:
            try:
                return index.add_texts([story(i) for i in range(20, 24)], source="sync")
            finally:
                sync_done.set()

        results = await asyncio.gather(
            first,
            index.aadd_documents(third),
            asyncio.to_thread(sync_writer),
        )
        assert all(results)
        sources = complete_sources(index)
    assert "waiting" not in sources
    assert {"doc10", "doc13", "sync"} <= sources
    assert len(sources) == 6 + 4 + 1
