"""The lexical index at scale: build time, disk size and query latency up to 1 million chunks.

The issue asks for build and query figures at 1M chunks on this 2-core machine. The
lexical index is built here on its own (``LexicalIndex``, the engine behind ``mode="lexical"``
and the BM25 side of hybrid search), from generated Japanese and Chinese passages of 250-450
characters (``benchmarks/_corpus.py``; half each language), analysed with the default
``cjk-bigram`` analyser in batches of ``BATCH`` chunks, one commit per batch, as a catch-up or
a large ``add_files`` writes it. Reported:

- **build**: seconds analysing (Python) and seconds indexing (Tantivy), chunks per second;
- **disk**: the index folder's size;
- **query p50/p95** for ``k = 50`` (what a hybrid search asks for) over generated queries of
  3-100 characters, after warm-up; and the same when 1,000 candidates are ranked (what a
  filtered search asks for first).

Passages are generated in a child-free loop (``_corpus.passages`` is deterministic), so the
figures are about the index alone; the vector side of 1M chunks is Chroma's and is measured by
the other benchmarks. Run: ``python -m benchmarks lexical`` (1M chunks; about 25 minutes and
~3 GB of temporary disk on 2 cores) or ``OLLAMA_RAG_BENCH_QUICK=1`` (20,000 chunks).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import _report as report
from benchmarks._corpus import passages, queries
from ollama_rag.lexical.analysis import get_analyzer
from ollama_rag.lexical.index import LexicalIndex

FULL_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (20_000,)
BATCH = 5_000
QUERIES = 300
WARM_UP = 30
SEED = 9
SIZES_ENV = "OLLAMA_RAG_BENCH_LEXICAL_SIZES"


@dataclass
class Figures:
    """One size's figures."""

    chunks: int
    analyse_seconds: float
    index_seconds: float
    disk_mb: float
    p50: dict[int, float] = field(default_factory=dict)
    p95: dict[int, float] = field(default_factory=dict)


@dataclass
class Results:
    """Figures per size (for the smoke test and callers)."""

    figures: dict[int, Figures] = field(default_factory=dict)


def _folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def build(folder: Path, size: int) -> Figures:
    analyzer = get_analyzer()
    index = LexicalIndex(folder)
    analysed = indexed = 0.0
    for start in range(0, size, BATCH):
        count = min(BATCH, size - start)
        half = count // 2
        items = [
            *passages(half, language="ja", chars=(250, 450), seed=SEED + start),
            *passages(count - half, language="zh", chars=(250, 450), seed=SEED + start),
        ]
        began = time.perf_counter()
        rows = [
            (f"c{start + i}", f"s{(start + i) % 100}", analyzer.terms(p.text))
            for i, p in enumerate(items)
        ]
        middle = time.perf_counter()
        index.apply(add=rows)
        indexed += time.perf_counter() - middle
        analysed += middle - began
    return Figures(size, analysed, indexed, _folder_mb(folder))


def measure(folder: Path, figures: Figures) -> None:
    analyzer = get_analyzer()
    index = LexicalIndex(folder)
    texts = queries(WARM_UP + QUERIES, seed=SEED)
    for text in texts[:WARM_UP]:
        index.search(analyzer.query_terms(text), limit=50)
    for limit in (50, 1000):
        times = []
        for text in texts[WARM_UP:]:
            terms = analyzer.query_terms(text)
            began = time.perf_counter_ns()
            index.search(terms, limit=limit)
            times.append((time.perf_counter_ns() - began) / 1e6)
        times.sort()
        figures.p50[limit] = statistics.median(times)
        figures.p95[limit] = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def main(quick: bool | None = None) -> Results:
    quick = report.quick_requested(quick)
    sizes: tuple[int, ...] = QUICK_SIZES if quick else FULL_SIZES
    if given := os.environ.get(SIZES_ENV):
        sizes = tuple(int(s) for s in given.split(","))
    print(f"mode: {report.mode(quick)}; {report.machine()}")
    print(
        f"generated ja/zh passages of 250-450 characters, cjk-bigram analyser, batches of "
        f"{BATCH:,}; {QUERIES} queries after {WARM_UP} warm-up ones"
    )
    results = Results()
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="ollama-rag-bench-lexical-") as tmp:
            folder = Path(tmp) / "lexical"
            figures = build(folder, size)
            measure(folder, figures)
        results.figures[size] = figures
        total = figures.analyse_seconds + figures.index_seconds
        rows.append(
            [
                f"{size:,}",
                f"{report.seconds(total)} ({size / total:,.0f}/s)",
                report.seconds(figures.analyse_seconds),
                report.seconds(figures.index_seconds),
                f"{figures.disk_mb:,.0f} MB",
                f"{figures.p50[50]:.2f} / {figures.p95[50]:.2f} ms",
                f"{figures.p50[1000]:.2f} / {figures.p95[1000]:.2f} ms",
            ]
        )
        print(f"{size:,} chunks done; load average {report.load_average()}", flush=True)
    print(
        report.table(
            [
                "chunks",
                "build",
                "analysing",
                "indexing",
                "disk",
                "query p50 / p95 (k=50)",
                "p50 / p95 (1,000 ranked)",
            ],
            rows,
        )
    )
    print("summary: figures only (no target in the issue besides reporting them)")
    return results


if __name__ == "__main__":
    main()
