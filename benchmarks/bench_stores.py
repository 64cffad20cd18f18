"""Chroma against FAISS (exact and HNSW): ingest time, query latency, disk size, recall@10.

For each size, an index of that many chunks (generated Japanese passages, one chunk each) is
built in each store: ``chroma``, ``faiss`` (``flat``, exact) and ``faiss-hnsw``. The embedding
server is a LocalOllama hash model in its own process with no delay, so the ingest time is the
library's and the store's, not a model's. Then:

- **ingest**: wall time of ``add_texts`` over the whole corpus, in batches of 1,000;
- **query p50/p95**: ``index.search(q, k=10, mode="dense")`` over the queries, interleaved
  between the stores so machine noise hits them alike;
- **disk**: the index directory's size after close;
- **recall@10**: the share of the exact top 10 (``faiss`` flat) that each store's top 10
  finds, over the same queries (the same model gives every store the same vectors).

Sizes: the issue asks for 100k and 1M chunks (``OLLAMA_RAG_BENCH_SIZES=100000,1000000``; 1M
chunks at 1,024-d is about 4 GB of vectors per store, so plan hours and tens of GB). The
default full run is 20k and 100k at 256-d. ``OLLAMA_RAG_BENCH_QUICK=1`` is a smoke test of
2,000 chunks. Run: ``python -m benchmarks stores``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import _report as report
from benchmarks._corpus import passages, queries
from benchmarks._servers import running_servers
from ollama_rag import RagIndex
from ollama_rag.storage.base import folder_size

MODEL = "bench-embed"
K = 10
BATCH = 1000
SIZES_ENV = "OLLAMA_RAG_BENCH_SIZES"
STORES: dict[str, dict[str, str]] = {
    "chroma": {"store": "chroma"},
    "faiss": {"store": "faiss", "faiss_index": "flat"},
    "faiss-hnsw": {"store": "faiss", "faiss_index": "hnsw"},
}


@dataclass(frozen=True)
class Settings:
    """Every parameter of one run (printed with the figures)."""

    quick: bool
    sizes: tuple[int, ...]
    dimension: int
    queries: int


FULL = Settings(quick=False, sizes=(20_000, 100_000), dimension=256, queries=200)
QUICK = Settings(quick=True, sizes=(2_000,), dimension=256, queries=20)


@dataclass
class Figures:
    """What one store measured at one size."""

    ingest: float = 0.0
    latencies: list[float] | None = None
    disk: int = 0
    recall: float = 0.0


def settings_for(quick: bool | None = None) -> Settings:
    """QUICK or FULL; ``$OLLAMA_RAG_BENCH_SIZES`` (comma-separated chunk counts) overrides sizes."""
    chosen = QUICK if report.quick_requested(quick) else FULL
    given = [int(s) for s in os.environ.get(SIZES_ENV, "").split(",") if s.strip()]
    if given:
        chosen = Settings(chosen.quick, tuple(given), chosen.dimension, chosen.queries)
    return chosen


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_size(size: int, s: Settings, url: str, work: Path) -> dict[str, Figures]:
    """Build one index per store with ``size`` chunks; time, measure and compare them."""
    texts = [p.text for p in passages(size, language="ja", chars=(120, 250))]
    asked = queries(s.queries, seed=7)
    figures = {name: Figures(latencies=[]) for name in STORES}
    indexes: dict[str, RagIndex] = {}
    try:
        for name, options in STORES.items():
            index = RagIndex(
                work / f"{name}-{size}", model=MODEL, base_url=url, chunk_size=300, **options
            )  # type: ignore[arg-type]
            started = time.perf_counter()
            for start in range(0, size, BATCH):
                part = texts[start : start + BATCH]
                metas = [{"source": f"p{start + i}"} for i in range(len(part))]
                index.add_texts(part, metas)
            figures[name].ingest = time.perf_counter() - started
            indexes[name] = index
        exact: list[set[str]] = []
        found: dict[str, list[set[str]]] = {name: [] for name in STORES}
        for number, query in enumerate(asked):
            names = list(STORES)
            names = names[number % len(names) :] + names[: number % len(names)]
            for name in names:
                started = time.perf_counter()
                hits = indexes[name].search(query, k=K, mode="dense")
                latencies = figures[name].latencies
                assert latencies is not None
                latencies.append(time.perf_counter() - started)
                found[name].append({str(h.id) for h in hits})
        exact = found["faiss"]
        for name in STORES:
            shared = sum(len(a & b) for a, b in zip(exact, found[name], strict=True))
            figures[name].recall = shared / max(1, sum(len(e) for e in exact))
    finally:
        for index in indexes.values():
            index.close()
    for name in STORES:
        figures[name].disk = folder_size(work / f"{name}-{size}")
    return figures


def main(quick: bool | None = None) -> dict[int, dict[str, Figures]]:
    """Run every size; print one table per size; return the figures."""
    s = settings_for(quick)
    print(f"bench_stores: {report.mode(s.quick)}; {report.machine()}")
    print(f"sizes {s.sizes}, {s.dimension}-d, {s.queries} queries, k={K}")
    results: dict[int, dict[str, Figures]] = {}
    with (
        running_servers(1, MODEL, dimension=s.dimension) as (server,),
        tempfile.TemporaryDirectory(prefix="bench-stores-") as folder,
    ):
        url = server.wait_ready()
        for size in s.sizes:
            figures = run_size(size, s, url, Path(folder))
            results[size] = figures
            rows = []
            for name, f in figures.items():
                lat = f.latencies or [0.0]
                rows.append(
                    [
                        name,
                        f"{f.ingest:.1f} s",
                        f"{size / max(f.ingest, 1e-9):,.0f}/s",
                        f"{statistics.median(lat) * 1000:.1f} ms",
                        f"{_percentile(lat, 0.95) * 1000:.1f} ms",
                        f"{f.disk / 1e6:,.1f} MB",
                        f"{f.recall:.3f}",
                    ]
                )
            headers = ["store", "ingest", "chunks", "query p50", "p95", "disk", "recall@10"]
            print(f"\n{size:,} chunks")
            print(report.table(headers, rows))
    return results


if __name__ == "__main__":
    main()
