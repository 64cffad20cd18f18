"""Repeated text: recall of unrelated passages with and without the graph's cap on copies.

Identical chunks have identical vectors, and thousands of them in Chroma's HNSW graph cut the
rest of the graph off (see ``GRAPH_COPIES`` in ``ollama_rag/storage/chroma.py``). This benchmark
adds each shape of repetition to an index of unrelated passages and measures:

- **recall@3 / recall@5** — the share of passages (queried by their first 40 characters) found
  among the top 3 / 5 of ``RagIndex.search``, against the same index without the repetition;
- **add** — seconds to add the repeated file (for the folder, to build the whole index);
- **filtered search** — p50 of ``search(k=5, filter=...)`` with a filter every copy passes
  (``{"source": "repeated.txt"}``; for the folder, ``{"chunk_index": 0}``: every header).

Each is measured **capped** (the library as it is: at most ``GRAPH_COPIES`` rows of a text in
the graph, the others in a companion collection) and **uncapped** (``GRAPH_COPIES`` raised out
of reach: every copy in the graph, the library before the cap).

Shapes: one file (``copies`` identical chunks) of one character repeated, of a divider line,
of a sentence, of a paragraph — added before the passages and after them (which of the two
hurts depends on where HNSW's entry point and upper layers end up); and a folder whose every
file is one passage between the same header and footer (two texts repeated once per passage).
Two index sizes: 30 passages (the issue's measurement) and 1,000. Passages are generated
Japanese prose (``benchmarks/_corpus.py``), one chunk each, embedded by a LocalOllama hash model
in its own process. Target: capped recall@3 and @5 within 0.005 of the index without
repetition, for every shape, order and size.

Run: ``python -m benchmarks duplicates`` (about 15 minutes on 2 cores, most of it adding the
copies uncapped) or, small and quick (smoke test), ``OLLAMA_RAG_BENCH_QUICK=1 python -m
benchmarks duplicates``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ollama_rag.storage.chroma as chroma
from benchmarks import _report as report
from benchmarks._corpus import Passage, passages
from benchmarks._servers import ServerProcess, running_servers
from ollama_rag import RagIndex

MODEL = "bench-embed"
SEED = 11
TOLERANCE = 0.005
K = 5
REPEATED = "repeated.txt"
HEADER = "Copyright (c) 2024 Example Corporation. Licensed under the Apache License, Version 2.0."
FOOTER = "―― 本資料の無断転載・複製を禁じます。お問い合わせは総務部文書管理課までご連絡ください。――"


@dataclass(frozen=True)
class Settings:
    """Every parameter of one run (printed with the figures)."""

    quick: bool
    indexes: tuple[int, ...]  # passages in each index measured
    copies: int
    queries: int  # at most, per index
    searches: int  # filtered searches timed per case
    orders: tuple[str, ...] = ("before", "after")  # the repeated file added before/after
    dimension: int = 1024
    chunk_size: int = 100
    passage_chars: tuple[int, int] = (80, 95)


# 30 passages: the measurement (0 of 30 found after one such file); 1,000: a larger
# index, where the copies hurt less but still do.
FULL = Settings(quick=False, indexes=(30, 1000), copies=3000, queries=250, searches=20)
# The smoke test checks that every case runs and is reported: small vectors will do.
QUICK = Settings(
    quick=True,
    indexes=(20,),
    copies=40,
    queries=10,
    searches=1,
    orders=("after",),
    dimension=64,
)


def settings_for(quick: bool | None = None) -> Settings:
    """QUICK when asked, or when ``OLLAMA_RAG_BENCH_QUICK`` is set to anything but 0/empty."""
    return QUICK if report.quick_requested(quick) else FULL


# One file of `copies` identical chunks of at most `size` characters, as users' files have them.
FILE_SHAPES: dict[str, Callable[[int, int], str]] = {
    "one character": lambda copies, size: "あ" * (size * copies),
    "divider line": lambda copies, size: ("=" * (size * 3 // 4) + "\n") * copies,
    "sentence": lambda copies, size: "同じ文がここで何度も繰り返されます。" * (size // 18 * copies),
    "paragraph": lambda copies, size: (
        ("この段落は文書の区切りごとに毎回同じ内容で現れます。" * (size // 26 * 3 // 4) + "\n\n")
        * copies
    ),
}
FOLDER = "header + footer in every file"


def cases(s: Settings) -> tuple[str, ...]:
    """What a run measures, in the order it prints them."""
    return ("none", *(f"{f}, {o}" for f in FILE_SHAPES for o in s.orders), FOLDER)


# ---------------------------------------------------------------------------- measuring


@dataclass
class Figures:
    """One case, one variant (capped or not)."""

    recall3: float
    recall5: float
    add_seconds: float
    filtered_ms: float | None
    rows: int


@dataclass
class Results:
    """The figures by (passages, case) and variant, for the smoke test and for callers."""

    capped: dict[tuple[int, str], Figures] = field(default_factory=dict)
    uncapped: dict[tuple[int, str], Figures] = field(default_factory=dict)
    verdicts: dict[str, bool] = field(default_factory=dict)


@contextmanager
def cap(on: bool) -> Iterator[None]:
    """The library as it is while ``on``; every copy in the graph (before the cap) otherwise."""
    saved = chroma.GRAPH_COPIES
    if not on:
        chroma.GRAPH_COPIES = 10**9
    try:
        yield
    finally:
        chroma.GRAPH_COPIES = saved


def write_files(folder: Path, items: list[Passage], *, boilerplate: bool) -> Path:
    """One file per passage (``p-NNNNN.txt``), between the header and footer if asked."""
    folder.mkdir(parents=True)
    for i, p in enumerate(items):
        text = f"{HEADER}\n\n{p.text}\n\n{FOOTER}\n" if boilerplate else p.text
        (folder / f"p-{i:05d}.txt").write_text(text, encoding="utf-8")
    return folder


def recall(index: RagIndex, queries: dict[str, str]) -> tuple[float, float]:
    """Recall@3 and @5 of the passages ``queries`` (source -> query) ask for."""
    at3 = at5 = 0
    for source, query in queries.items():
        found = [d.metadata["source"] for d in index.search(query, k=5)]
        at3 += source in found[:3]
        at5 += source in found
    return at3 / len(queries), at5 / len(queries)


def filtered_ms(index: RagIndex, query: str, where: dict[str, Any], searches: int) -> float:
    """p50 milliseconds of a filtered search whose filter passes every copy."""
    times = []
    for _ in range(searches):
        began = time.perf_counter()
        hits = index.search(query, k=K, filter=where)
        times.append(time.perf_counter() - began)
        assert len(hits) == K, f"a filtered search found {len(hits)} of the copies, not {K}"
    return statistics.median(times) * 1000


def measure_case(
    s: Settings,
    server: ServerProcess,
    path: Path,
    first: Path | None,
    then: Path | None,
    queries: dict[str, str],
    query: str,
    where: dict[str, Any],
) -> Figures:
    """Index ``first`` then ``then`` (files or folders) and measure; the timed add is the
    repeated file's (or, for the folder, the whole build)."""
    with RagIndex(
        path, model=MODEL, base_url=server.url, chunk_size=s.chunk_size, chunk_overlap=0
    ) as index:
        added = 0.0
        for paths in (first, then):
            if paths is None:
                continue
            began = time.perf_counter()
            index.add_files(paths, progress=False)
            if paths.name == REPEATED or then is None:
                added = time.perf_counter() - began
        return Figures(
            *recall(index, queries),
            added,
            filtered_ms(index, query, where, s.searches) if where else None,
            index.count(),
        )


def measure(
    s: Settings,
    server: ServerProcess,
    work: Path,
    items: list[Passage],
    queries: dict[str, str],
    results: Results,
) -> None:
    """Every case on an index of ``items``, capped and uncapped, into ``results``."""
    n = len(items)
    plain = write_files(work / "passages", items, boilerplate=False)
    folder = write_files(work / "boilerplate", items, boilerplate=True)
    results.capped[n, "none"] = results.uncapped[n, "none"] = measure_case(
        s, server, work / "none", plain, None, queries, "", {}
    )
    runs = 0
    for capped in (False, True):
        figures = results.capped if capped else results.uncapped
        with cap(capped):
            for shape, make in FILE_SHAPES.items():
                text = make(s.copies, s.chunk_size)
                repeated = work / shape.replace(" ", "-") / REPEATED
                repeated.parent.mkdir(exist_ok=True)
                repeated.write_text(text, encoding="utf-8")
                chunk = text[: s.chunk_size].rstrip("\n")
                for order in s.orders:
                    first, then = (repeated, plain) if order == "before" else (plain, repeated)
                    runs += 1
                    figures[n, f"{shape}, {order}"] = measure_case(
                        s,
                        server,
                        work / f"run-{runs}",
                        first,
                        then,
                        queries,
                        chunk,
                        {"source": REPEATED},
                    )
            figures[n, FOLDER] = measure_case(
                s,
                server,
                work / f"run-{runs + 1}",
                folder,
                None,
                queries,
                HEADER,
                {"chunk_index": 0},
            )
            runs += 1


def print_figures(s: Settings, results: Results, n: int) -> None:
    base = results.capped[n, "none"]
    rows = []
    for case in cases(s):
        capped, raw = results.capped[n, case], results.uncapped[n, case]
        ok = (
            capped.recall3 >= base.recall3 - TOLERANCE
            and capped.recall5 >= base.recall5 - TOLERANCE
        )
        if case != "none":
            results.verdicts[f"recall kept: {n} passages, {case}"] = ok
        filtered = (
            f"{raw.filtered_ms:.1f} / {capped.filtered_ms:.1f}"
            if raw.filtered_ms is not None and capped.filtered_ms is not None
            else ""
        )
        rows.append(
            [
                case,
                f"{capped.rows:,}",
                f"{raw.recall3:.3f}",
                f"{capped.recall3:.3f}",
                f"{raw.recall5:.3f}",
                f"{capped.recall5:.3f}",
                "" if case == "none" else f"{raw.add_seconds:.1f} / {capped.add_seconds:.1f}",
                filtered,
                "" if case == "none" else report.verdict(ok),
            ]
        )
    headers = [
        "case (repeated file added before/after)",
        "rows",
        "r@3 uncapped",
        "r@3 capped",
        "r@5 uncapped",
        "r@5 capped",
        "add s, uncapped / capped",
        "filtered ms, uncapped / capped",
        "verdict",
    ]
    print(report.table(headers, rows), flush=True)


def main(quick: bool | None = None) -> Results:
    s = settings_for(quick)
    print(f"mode: {report.mode(s.quick)}; {report.machine()}")
    low, high = s.passage_chars
    print(
        f"indexes of {' and '.join(f'{n:,}' for n in s.indexes)} passages of Japanese prose "
        f"({low}-{high} characters, one chunk each), up to {s.queries} of them queried by "
        f"their first 40 characters; {s.copies:,} copies in each repeated file; chunk_size "
        f"{s.chunk_size}; hash model, {s.dimension}-d; GRAPH_COPIES {chroma.GRAPH_COPIES}; "
        f"target: capped recall within {TOLERANCE} of 'none'",
        flush=True,
    )
    results = Results()
    with running_servers(1, MODEL, dimension=s.dimension, seed=SEED) as (server,):
        for n in s.indexes:
            items = passages(n, language="ja", chars=s.passage_chars, seed=SEED)
            step = max(1, n // s.queries)
            queries = {f"p-{i:05d}.txt": items[i].text[:40] for i in range(0, n, step)}
            with tempfile.TemporaryDirectory(prefix="ollama-rag-bench-duplicates-") as tmp:
                measure(s, server, Path(tmp), items, queries, results)
            print(f"\n{n:,} passages, {len(queries)} queries:")
            print_figures(s, results, n)
    print()
    print(report.summary(results.verdicts))
    return results


if __name__ == "__main__":
    main()
