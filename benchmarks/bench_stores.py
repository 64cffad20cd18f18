"""Chroma against FAISS (exact and HNSW): ingest time, query latency, disk size, recall@10.

Two parts, each comparing the same three stores on the same corpus in one run: ``chroma``,
``faiss`` (``flat``, exact) and ``faiss-hnsw``. The corpus is generated Japanese passages of
120-250 characters, one chunk each; vectors come from a LocalOllama hash model, so every store
is given the same vectors and the same queries.

**Through the library** (``sizes``): what a user's ``add_texts`` and ``search`` cost. The
embedding server is the hash model in its own process with no delay, so the time is the
library's (splitting, bookkeeping, the lexical index) and the store's, not a model's.

- **ingest**: wall time of ``add_texts`` over the whole corpus, in calls of 1,000 texts;
- **query p50/p95**: ``index.search(q, k=10, mode="dense")`` (the query embedded by the
  server).

**The store alone** (``store_sizes``): the store's own cost at sizes where embedding a corpus
through HTTP would dwarf it (a million chunks). The vectors are computed once, in process, by
the same hash model, and written through the storage seam (``ChunkStore.write``) as the
ingestion pipeline writes them: 256 rows a call, each row a source committed with its
completion marker; the lexical index is not part of it.

- **ingest**: wall time of those writes (the vectors already computed);
- **query p50/p95**: ``store.query(vector, k=10)`` with the query's vector computed, as
  ``search`` calls it once the query is embedded.

In both parts, **filtered p50** is the same queries restricted to 20 of the sources
(``{"source": {"$in": [...]}}``, as an app searching chosen documents filters). The store-alone
part also times 20 queries under filters of different reach: one source, 20 sources, about
half the rows, every row, and a word in the text (``where_document``).

In both parts, **disk** is the index directory's size after close, and **recall@10** the share
of the exact top 10 that a store's top 10 finds, over the same queries: through the library
the exact top 10 is ``faiss`` flat's; for the store alone it is computed with numpy (cosine
over every vector, which is what flat returns), so any of the stores can run without the
others. The
stores are measured one after another (each built, queried, closed and deleted before the
next, so a million-chunk run holds one store at a time); the load average is printed with
each, since the machine's other work moves the figures.

Hash-model vectors of unrelated texts are close to random, the hardest case for an approximate
(HNSW) index: real text embeddings cluster, and approximate recall on them is usually higher.

Sizes: ``OLLAMA_RAG_BENCH_SIZES`` and ``OLLAMA_RAG_BENCH_STORE_SIZES`` (comma-separated chunk
counts, ``0`` to skip a part) override the defaults, through the library 20k and the store
alone 100k and 1M, all at 256-d; ``OLLAMA_RAG_BENCH_STORE_DIMENSION`` sets the second part's
dimension (1024 is bge-m3's: 1M such vectors are 4 GB per store, and Chroma writes them at
~200 rows/s on two cores, so plan hours). The full run takes about two hours on two cores.
``OLLAMA_RAG_BENCH_STORES`` (comma-separated names, e.g. ``faiss-hnsw,chroma``) limits the
store-alone part to those stores: run them in separate processes to use more cores (each
process computes the same vectors). ``OLLAMA_RAG_BENCH_QUICK=1`` is a smoke test of 2,000
chunks in each part.
Run: ``python -m benchmarks stores``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks import _report as report
from benchmarks._corpus import passages, queries
from benchmarks._servers import running_servers
from ollama_rag import RagIndex
from ollama_rag.manifest import new_manifest
from ollama_rag.ollama import ModelInfo
from ollama_rag.storage.base import ChunkRow, ChunkStore, SourceWrite, folder_size
from ollama_rag.storage.kinds import StoreKind, open_store
from ollama_rag.storage.schema import (
    CHUNK_INDEX,
    CONTENT_HASH,
    END,
    SOURCE,
    START,
    UNIT_HASH,
    chunk_id,
    sha256,
)
from ollama_rag.testing import HashEmbeddingModel

MODEL = "bench-embed"
SEED = 1  # the benchmark servers' seed: in-process vectors equal the server's
K = 10
BATCH = 1000  # texts per add_texts call
ROWS = 256  # rows per store write, as the ingestion pipeline writes them
SIZES_ENV = "OLLAMA_RAG_BENCH_SIZES"
STORE_SIZES_ENV = "OLLAMA_RAG_BENCH_STORE_SIZES"
STORE_DIMENSION_ENV = "OLLAMA_RAG_BENCH_STORE_DIMENSION"
STORES_ENV = "OLLAMA_RAG_BENCH_STORES"
# name: (store kind, FAISS index type)
# name: (store kind, FAISS index type). Exact search first: the others' recall is against it.
STORES: dict[str, tuple[StoreKind, Literal["flat", "hnsw"] | None]] = {
    "faiss": ("faiss", "flat"),
    "faiss-hnsw": ("faiss", "hnsw"),
    "chroma": ("chroma", None),
}
EXACT = "faiss"


@dataclass(frozen=True)
class Settings:
    """Every parameter of one run (printed with the figures)."""

    quick: bool
    sizes: tuple[int, ...]  # through the library
    store_sizes: tuple[int, ...]  # the store alone
    dimension: int  # through the library
    store_dimension: int  # the store alone
    queries: int


FULL = Settings(
    quick=False,
    sizes=(20_000,),
    store_sizes=(100_000, 1_000_000),
    dimension=256,
    store_dimension=256,
    queries=200,
)
QUICK = Settings(
    quick=True, sizes=(2_000,), store_sizes=(2_000,), dimension=256, store_dimension=256, queries=20
)


@dataclass
class Figures:
    """What one store measured at one size."""

    ingest: float = 0.0
    latencies: list[float] = field(default_factory=list)
    filtered: list[float] = field(default_factory=list)
    shapes: dict[str, float] = field(default_factory=dict)  # filter shape -> p50 (store alone)
    disk: int = 0
    recall: float = 0.0


def _sizes(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    given = os.environ.get(name)
    if given is None:
        return default
    return tuple(n for n in (int(s) for s in given.split(",") if s.strip()) if n > 0)


def settings_for(quick: bool | None = None) -> Settings:
    """QUICK or FULL, with the sizes and dimension the environment overrides (see above)."""
    chosen = QUICK if report.quick_requested(quick) else FULL
    return Settings(
        chosen.quick,
        _sizes(SIZES_ENV, chosen.sizes),
        _sizes(STORE_SIZES_ENV, chosen.store_sizes),
        chosen.dimension,
        int(os.environ.get(STORE_DIMENSION_ENV) or chosen.store_dimension),
        chosen.queries,
    )


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _texts(size: int) -> list[str]:
    return [p.text for p in passages(size, language="ja", chars=(120, 250))]


def _among(size: int) -> dict[str, Any]:
    """The filter of the filtered queries: 20 sources spread over the corpus."""
    return {SOURCE: {"$in": [f"p{i}" for i in range(0, size, max(1, size // 20))][:20]}}


SHAPE_QUERIES = 20
"""Queries timed per filter shape (the store-alone part)."""


def _shapes(size: int) -> dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """Filters of different reach, as ``(where, where_document)``: one source, 20, about half
    the rows (the longer passages), every row, and a word in the text."""
    return {
        "1 source": ({SOURCE: f"p{size // 2}"}, None),
        "20 sources": (_among(size), None),
        "about half": ({END: {"$gte": 185}}, None),  # passages are 120-250 characters
        "every row": ({CHUNK_INDEX: 0}, None),
        "text has 東京": (None, {"$contains": "東京"}),
    }


def _store_shapes(store: ChunkStore, size: int, asked: Sequence[Any]) -> dict[str, float]:
    """p50 of ``store.query`` under each filter shape."""
    p50 = {}
    for label, (where, document) in _shapes(size).items():

        def search(vector: Any, where: Any = where, document: Any = document) -> object:
            return store.query(vector.tolist(), K, where=where, where_document=document)

        p50[label] = statistics.median(_timed(search, asked[:SHAPE_QUERIES]))
    return p50


def _timed(search: Callable[[Any], object], asked: Sequence[Any]) -> list[float]:
    latencies = []
    for query in asked:
        started = time.perf_counter()
        search(query)
        latencies.append(time.perf_counter() - started)
    return latencies


def _measure(
    search: Callable[[Any], list[str]], asked: Sequence[Any], exact: list[set[str]] | None
) -> tuple[list[float], list[set[str]], float]:
    """Time ``search`` on every query; its top ids; its recall against ``exact`` (1.0 if None)."""
    latencies: list[float] = []
    found: list[set[str]] = []
    for query in asked:
        started = time.perf_counter()
        ids = search(query)
        latencies.append(time.perf_counter() - started)
        found.append(set(ids))
    truth = exact if exact is not None else found
    shared = sum(len(a & b) for a, b in zip(truth, found, strict=True))
    return latencies, found, shared / max(1, sum(len(t) for t in truth))


def library_size(size: int, s: Settings, url: str, work: Path) -> dict[str, Figures]:
    """Per store: an index of ``size`` texts by ``add_texts``, then ``search`` timed."""
    texts = _texts(size)
    asked = queries(s.queries, seed=7)
    figures: dict[str, Figures] = {}
    exact: list[set[str]] | None = None
    for name, (kind, vector_index) in STORES.items():
        f = figures[name] = Figures()
        where = work / f"{name}-{size}"
        with RagIndex(
            where,
            model=MODEL,
            base_url=url,
            chunk_size=300,
            store=kind,
            faiss_index=vector_index,
        ) as index:
            started = time.perf_counter()
            for start in range(0, size, BATCH):
                part = texts[start : start + BATCH]
                metas = [{"source": f"p{start + i}"} for i in range(len(part))]
                index.add_texts(part, metas)
            f.ingest = time.perf_counter() - started
            _progress(name, size, f.ingest)
            f.latencies, found, f.recall = _measure(partial(_index_ids, index), asked, exact)
            f.filtered = _timed(partial(_index_ids, index, where=_among(size)), asked)
        exact = found if name == EXACT else exact
        f.disk = folder_size(where)
        shutil.rmtree(where)
        _measured(name, size, f)
    return figures


def _index_ids(index: RagIndex, query: str, where: dict[str, Any] | None = None) -> list[str]:
    return [str(hit.id) for hit in index.search(query, k=K, mode="dense", filter=where)]


def _store_ids(store: ChunkStore, vector: Any, where: dict[str, Any] | None = None) -> list[str]:
    return [hit.id for hit in store.query(vector.tolist(), K, where=where)]


def _progress(name: str, size: int, seconds: float) -> None:
    print(f"  {name}: {size:,} chunks in {seconds:.1f} s; {report.load_average()}", flush=True)


def _vectors(texts: Sequence[str], dimension: int, where: Path) -> np.ndarray[Any, Any]:
    """The hash model's vectors for ``texts``, computed once into a file (memory-mapped)."""
    model = HashEmbeddingModel(dimension=dimension, seed=SEED)
    out = np.lib.format.open_memmap(
        where, mode="w+", dtype=np.float32, shape=(len(texts), dimension)
    )
    for start in range(0, len(texts), 10_000):
        out[start : start + 10_000] = model.embed(texts[start : start + 10_000])
    out.flush()
    return out


def _writes(texts: Sequence[str], vectors: np.ndarray[Any, Any], start: int) -> list[SourceWrite]:
    """Rows ``start`` to ``start + ROWS``, each a one-chunk source, as ``add_texts`` writes them."""
    group = []
    for i in range(start, min(start + ROWS, len(texts))):
        text, source = texts[i], f"p{i}"
        digest = sha256(text)
        meta = {
            SOURCE: source,
            CHUNK_INDEX: 0,
            START: 0,
            END: len(text),
            CONTENT_HASH: digest,
            UNIT_HASH: digest,
        }
        row = ChunkRow(chunk_id(source, digest, 0), text, meta, vectors[i].tolist())
        group.append(SourceWrite(source, [row], marker=digest, checked=True))
    return group


def _chosen_stores() -> list[str]:
    """The stores the store-alone part runs: ``$OLLAMA_RAG_BENCH_STORES``, else all of them."""
    given = [n.strip() for n in os.environ.get(STORES_ENV, "").split(",") if n.strip()]
    unknown = [n for n in given if n not in STORES]
    if unknown:
        msg = f"{STORES_ENV}: unknown store(s) {unknown}; choose among {list(STORES)}"
        raise SystemExit(msg)
    return given or list(STORES)


def _exact(
    texts: Sequence[str], vectors: np.ndarray[Any, Any], asked: Sequence[Any]
) -> list[set[str]]:
    """Each query's exact top ``K`` ids by cosine (what ``flat`` returns), read in blocks."""
    q = np.asarray(asked, dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    best: list[list[tuple[float, int]]] = [[] for _ in q]
    for start in range(0, len(texts), 50_000):
        block = np.asarray(vectors[start : start + 50_000], dtype=np.float32)
        scores = q @ (block / np.linalg.norm(block, axis=1, keepdims=True)).T
        for i, row in enumerate(scores):
            top = np.argpartition(-row, min(K, len(row) - 1))[:K]
            best[i].extend((float(row[j]), start + int(j)) for j in top)
    return [
        {chunk_id(f"p{j}", sha256(texts[j]), 0) for _, j in sorted(found, reverse=True)[:K]}
        for found in best
    ]


def store_size(size: int, s: Settings, work: Path) -> dict[str, Figures]:
    """Per store: ``size`` precomputed rows written through the seam, then queries timed."""
    texts = _texts(size)
    vectors = _vectors(texts, s.store_dimension, work / f"vectors-{size}.npy")
    model = HashEmbeddingModel(dimension=s.store_dimension, seed=SEED)
    asked = list(model.embed(queries(s.queries, seed=7)))
    exact = _exact(texts, vectors, asked)
    info = ModelInfo(
        name=MODEL,
        digest=sha256(f"{MODEL}:{s.store_dimension}"),
        dimension=s.store_dimension,
        context_length=8192,
        trained_context_length=8192,
        architecture="bert",
    )
    figures: dict[str, Figures] = {}
    for name in _chosen_stores():
        kind, vector_index = STORES[name]
        f = figures[name] = Figures()
        where = work / f"store-{name}-{size}"
        store = open_store(kind, where, collection="default", faiss_index=vector_index)
        try:
            store.create(new_manifest(info, chunk_size=300))
            started = time.perf_counter()
            with store.writing():
                for start in range(0, size, ROWS):
                    store.write(_writes(texts, vectors, start))
            f.ingest = time.perf_counter() - started
            _progress(name, size, f.ingest)
            assert store.count() == size, f"{name} holds {store.count()} rows, not {size}"
            f.latencies, _, f.recall = _measure(partial(_store_ids, store), asked, exact)
            f.filtered = _timed(partial(_store_ids, store, where=_among(size)), asked)
            f.shapes = _store_shapes(store, size, asked)
        finally:
            store.close()
        f.disk = folder_size(where)
        shutil.rmtree(where)
        _measured(name, size, f)
    (work / f"vectors-{size}.npy").unlink()
    return figures


def _cells(name: str, size: int, f: Figures) -> list[str]:
    lat = f.latencies or [0.0]
    return [
        name,
        f"{f.ingest:.1f} s",
        f"{size / max(f.ingest, 1e-9):,.0f}/s",
        f"{statistics.median(lat) * 1000:.1f} ms",
        f"{_percentile(lat, 0.95) * 1000:.1f} ms",
        f"{statistics.median(f.filtered or [0.0]) * 1000:.1f} ms",
        f"{f.disk / 1e6:,.1f} MB",
        f"{f.recall:.3f}",
    ]


def _measured(name: str, size: int, f: Figures) -> None:
    """One store's figures as soon as they are in (a long run stopped early keeps them)."""
    shapes = "".join(f"; {label} {p50 * 1000:.1f} ms" for label, p50 in f.shapes.items())
    print(f"  {' | '.join(_cells(name, size, f))}{shapes}; {report.load_average()}", flush=True)


def _print(title: str, size: int, figures: dict[str, Figures]) -> None:
    rows = [_cells(name, size, f) for name, f in figures.items()]
    headers = ["store", "ingest", "chunks", "query p50", "p95", "filtered p50", "disk", "recall@10"]
    print(f"\n{title}, {size:,} chunks")
    print(report.table(headers, rows), flush=True)
    shaped = {name: f.shapes for name, f in figures.items() if f.shapes}
    if shaped:
        labels = list(next(iter(shaped.values())))
        cells = [[n, *(f"{p[label] * 1000:.1f} ms" for label in labels)] for n, p in shaped.items()]
        print(f"query p50 by filter ({SHAPE_QUERIES} queries each)")
        print(report.table(["store", *labels], cells), flush=True)


def main(quick: bool | None = None) -> dict[str, dict[int, dict[str, Figures]]]:
    """Run both parts at every size; print one table per size; return the figures by part."""
    s = settings_for(quick)
    print(f"bench_stores: {report.mode(s.quick)}; {report.machine()}")
    print(
        f"through the library: sizes {s.sizes} at {s.dimension}-d; the store alone: sizes "
        f"{s.store_sizes} at {s.store_dimension}-d; {s.queries} queries, k={K}",
        flush=True,
    )
    results: dict[str, dict[int, dict[str, Figures]]] = {"library": {}, "store": {}}
    with tempfile.TemporaryDirectory(prefix="bench-stores-") as folder:
        if s.sizes:
            with running_servers(1, MODEL, dimension=s.dimension, seed=SEED) as (server,):
                url = server.wait_ready()
                for size in s.sizes:
                    results["library"][size] = library_size(size, s, url, Path(folder))
                    _print(
                        "Through the library (add_texts, search)", size, results["library"][size]
                    )
        for size in s.store_sizes:
            results["store"][size] = store_size(size, s, Path(folder))
            _print("The store alone (ChunkStore.write, query)", size, results["store"][size])
    return results


if __name__ == "__main__":
    main()
