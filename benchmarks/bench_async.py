"""How long the async API keeps the event loop from running, and why.

``RagIndex.aadd_texts`` runs the ingestion pipeline (splitting, lookups, store writes) in a
worker thread and embeds through the loop's async Ollama client; ``asearch`` embeds through
it too and reads the store on the loop (in a thread for a Chroma server). What is left is what
no thread can hide: a call that holds the GIL. chromadb's Rust bindings hold it for a whole
call (see docs/performance.md), so an embedded Chroma's write pauses every thread, the loop's
included, for as long as it takes.

``ollama_rag.testing.loop_stalls`` runs a ticker coroutine that sleeps 5 ms at a time beside
the measured work; a *stall* is a gap between two ticks beyond those 5 ms (time the loop could
not run). Reported per case: the longest
stall, the 99th percentile, the total time, and for writes the longest store write call
(``HybridStore.write``: the Chroma write plus the lexical index's).

Cases, against a LocalOllama hash model in a process of its own (``benchmarks/_servers.py``,
so its work does not compete for this process's GIL), 1024-d vectors (bge-m3's), generated
Japanese/Chinese prose split at 300 characters:

- ``aadd_texts``, embedded Chroma (``path=``) and a ``chroma run`` server (``client=``);
- the embedded case with Chroma calls of at most 64 rows instead of 256 (what smaller calls
  would buy: ``ollama_rag.storage.chroma.UPSERT_ROWS``, patched for this case only);
- the sync ``add_texts`` called on the loop (what an async app had before), for contrast;
- 20 ``asearch`` calls (hybrid), one at a time and all at once, on both stores; on the
  embedded one also with its reads on the loop (the rule before: a thread only for a server).

Run: ``python -m benchmarks async`` (about 3 minutes on 2 cores); ``OLLAMA_RAG_BENCH_QUICK=1``
for a smoke run (figures mean nothing).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from benchmarks import _report as report
from benchmarks._corpus import documents, queries
from benchmarks._servers import running_servers
from ollama_rag import RagIndex
from ollama_rag.storage import chroma
from ollama_rag.storage.base import ChunkStore
from ollama_rag.testing import LoopStalls, chroma_server, loop_stalls

T = TypeVar("T")


@contextmanager
def timed_writes(index: RagIndex) -> Iterator[list[float]]:
    """The duration of every store write call made while the block runs."""
    store = index._store  # the one object every write goes through
    real = store.write
    durations: list[float] = []

    def write(group: Any) -> None:
        start = time.perf_counter()
        real(group)
        durations.append(time.perf_counter() - start)

    store.write = write  # type: ignore[method-assign]
    try:
        yield durations
    finally:
        store.write = real  # type: ignore[method-assign]


def row(label: str, run: LoopStalls[Any], writes: list[float] | None) -> list[str]:
    stalls = run.stalls
    p99 = statistics.quantiles(stalls, n=100)[98] if len(stalls) >= 2 else run.longest
    return [
        label,
        f"{1000 * run.longest:.0f}",
        f"{1000 * p99:.0f}",
        f"{run.seconds:.1f}",
        f"{1000 * max(writes):.0f}" if writes else "-",
    ]


@contextmanager
def reads_on_the_loop() -> Iterator[None]:
    """The rule before: an in-process store's reads run on the loop, not in a thread."""
    real = ChunkStore.off_loop

    async def inline(self: ChunkStore, call: Callable[[], T]) -> T:
        return call()

    ChunkStore.off_loop = inline  # type: ignore[method-assign]
    try:
        yield
    finally:
        ChunkStore.off_loop = real  # type: ignore[method-assign]


def main(quick: bool | None = None) -> list[list[str]]:
    quick = report.quick_requested(quick)
    print(f"mode: {report.mode(quick)}; {report.machine()}")
    docs, more, dimension = (12, 4, 256) if quick else (150, 50, 1024)
    texts = [p.text for p in documents(docs, chars=3000, seed=1)]
    extra = [p.text for p in documents(more, chars=3000, seed=2)]
    asked = queries(20, seed=3)
    rows: list[list[str]] = []

    def add(label: str, index: RagIndex, work: Callable[[], Awaitable[list[str]]]) -> None:
        with timed_writes(index) as writes:
            run = asyncio.run(loop_stalls(work()))
        rows.append(row(f"{label}, {len(run.result)} chunks", run, writes))

    def search(label: str, index: RagIndex) -> None:
        async def one_by_one() -> None:
            for q in asked:
                await index.asearch(q, k=4)

        async def together() -> None:
            await asyncio.gather(*(index.asearch(q, k=4) for q in asked))

        for how, work in (("one at a time", one_by_one), ("concurrent", together)):
            run = asyncio.run(loop_stalls(work()))
            rows.append(row(f"{label}: {len(asked)} asearch {how}", run, None))

    with (
        running_servers(1, "m", dimension=dimension) as (server,),
        tempfile.TemporaryDirectory() as tmp,
    ):
        options: dict[str, Any] = {"model": "m", "base_url": server.url, "chunk_size": 300}
        with RagIndex(Path(tmp) / "embedded", **options) as index:
            add("embedded: aadd_texts", index, lambda: index.aadd_texts(texts))
            search("embedded", index)
            with reads_on_the_loop():
                search("embedded, reads on the loop", index)

            async def blocking() -> list[str]:
                return index.add_texts(extra)

            add("embedded: add_texts on the loop", index, blocking)
        saved = chroma.UPSERT_ROWS
        chroma.UPSERT_ROWS = 64
        try:
            with RagIndex(Path(tmp) / "small-calls", **options) as index:
                add("embedded, 64-row calls: aadd_texts", index, lambda: index.aadd_texts(texts))
        finally:
            chroma.UPSERT_ROWS = saved
        import chromadb

        with chroma_server(Path(tmp) / "server") as port:
            client = chromadb.HttpClient(host="127.0.0.1", port=port)
            with RagIndex(client=client, **options) as index:
                add("chroma run: aadd_texts", index, lambda: index.aadd_texts(texts))
                search("chroma run", index)
    print(report.table(["case", "longest stall ms", "p99 ms", "total s", "longest write ms"], rows))
    return rows


if __name__ == "__main__":
    main()
