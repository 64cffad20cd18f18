"""Ingestion throughput and memory: ``RagIndex.add_files`` against LocalOllama servers.

Five benchmarks (the throughput issue's targets in brackets):

1. **Overhead** — ingest wall time / the embedding server's busy time, one server, 5 ms per
   input, one compute slot [<= 1.10].
2. **Scale-out** — the same ingest with 2 and 4 identical servers as hosts; speed-up =
   wall(1 host) / wall(N hosts) [>= 1.8x and >= 3.4x].
3. **Re-sync** of the unchanged corpus — ``sync()`` on the reopened index [0 embedding
   requests, <= 5% of the first ingest's wall time].
4. **LangChain** — the plain composition (``RecursiveCharacterTextSplitter`` with LangChain's
   defaults and the same chunk_size, ``OllamaEmbeddings``, one ``Chroma.add_texts``) on the
   same corpus and server [ratio reported, no target].
5. **Memory** — peak RSS of a fresh process ingesting 20 MB and 200 MB of generated CJK text
   with a zero-delay server [larger <= 1.5x smaller].

The corpus (``benchmarks/_corpus.py``) is generated per run, seeded: files of Japanese and
Chinese prose, distinct so that no chunk is shared. Every server is a LocalOllama in its own
process (``benchmarks/_servers.py``) serving a hash model, so its work does not compete with
the ingest for the GIL; busy time is the seconds its single compute slot was held (the delay
plus the hash model's real compute). Timings are the best of several runs (the least
disturbed by other processes); every run is printed too.

Run: ``python -m benchmarks ingest`` (about 10 minutes on 2 cores, 5 of them the 200 MB
memory run) or, small and quick (for the smoke test), ``OLLAMA_RAG_BENCH_QUICK=1 python -m
benchmarks ingest``. ``OLLAMA_RAG_BENCH_PARTS=throughput`` (benchmarks 1-4) or ``=memory``
(benchmark 5) or ``=bounds`` (diagnostics: the most hosts with servers that do not wait, which
measures the ingesting process's own time, and Chroma in server mode) runs one part.
``OLLAMA_RAG_BENCH_TRACEMALLOC=N`` also traces the smaller memory
run with tracemalloc and prints the N source lines whose allocations grew most.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._corpus import Corpus, write_corpus, write_corpus_bytes
from benchmarks._report import QUICK_ENV as QUICK_ENV  # re-exported: the smoke test sets it
from benchmarks._report import (
    machine,
    mode,
    quick_requested,
    seconds,
    select,
    summary,
    table,
    verdict,
)
from benchmarks._servers import ROOT, ServerProcess, running_servers
from ollama_rag import RagIndex
from ollama_rag.testing import chroma_server

TRACE_ENV = "OLLAMA_RAG_BENCH_TRACEMALLOC"
PARTS_ENV = "OLLAMA_RAG_BENCH_PARTS"
PARTS = ("throughput", "memory", "bounds")  # benchmarks 1-4, benchmark 5, diagnostics
MODEL = "bench-embed"
SEED = 7
# RagIndex's own defaults, read from its signature so that the figures follow them.
_RAG_PARAMETERS = inspect.signature(RagIndex).parameters
DEFAULT_BATCH_SIZE: int = _RAG_PARAMETERS["batch_size"].default
DEFAULT_CONCURRENCY: int = _RAG_PARAMETERS["concurrency"].default

TARGET_OVERHEAD = 1.10
TARGET_SPEEDUP = {2: 1.8, 4: 3.4}
TARGET_RESYNC_SHARE = 0.05
TARGET_MEMORY_RATIO = 1.5


@dataclass(frozen=True)
class Settings:
    """Every parameter of one benchmark run (printed with the figures)."""

    quick: bool
    files: int
    chars_per_file: int
    repeats: int
    # (batch_size, concurrency) pairs tried besides the defaults, one run per host count.
    tuning: tuple[tuple[int, int], ...]
    memory_bytes: tuple[int, int]
    memory_file_bytes: int
    langchain_matched_overlap: bool
    chunk_size: int = 300
    chunk_overlap: int = 30
    dimension: int = 256
    per_input: float = 0.005
    slots: int = 1
    hosts: tuple[int, ...] = (2, 4)
    memory_dimension: int = 32
    memory_chunk_size: int = 1000
    memory_chunk_overlap: int = 100


FULL = Settings(
    quick=False,
    files=100,
    chars_per_file=4700,
    repeats=3,
    tuning=((16, 2), (128, 2), (64, 1), (64, 4)),
    memory_bytes=(20_000_000, 200_000_000),
    memory_file_bytes=200_000,
    langchain_matched_overlap=True,
)
# Small enough for the smoke test (tests/test_benchmarks.py) to finish in well under 20 s.
QUICK = Settings(
    quick=True,
    files=4,
    chars_per_file=4700,
    repeats=1,
    tuning=(),
    memory_bytes=(50_000, 200_000),
    memory_file_bytes=50_000,
    langchain_matched_overlap=False,
    hosts=(2,),
)


def settings_for(quick: bool | None = None) -> Settings:
    """QUICK when asked, or when ``OLLAMA_RAG_BENCH_QUICK`` is set to anything but 0/empty."""
    return QUICK if quick_requested(quick) else FULL


def parts_for(parts: Sequence[str] | None = None) -> tuple[str, ...]:
    """The parts to run: ``parts``, else ``OLLAMA_RAG_BENCH_PARTS`` (comma-separated), else all."""
    return select(parts, PARTS, PARTS_ENV, "benchmark part")


# ---------------------------------------------------------------------------- printing


def megabytes(value: float) -> str:
    return f"{value / 1e6:,.1f} MB" if abs(value) >= 1e7 else f"{value / 1e6:,.2f} MB"


# ---------------------------------------------------------------------------- ingest runs


@dataclass
class Run:
    """One timed ``add_files`` of the whole corpus into a new index."""

    hosts: int
    batch_size: int
    concurrency: int
    wall: float
    busy: list[float]  # per server
    requests: int
    chunks_embedded: int
    chunks_skipped: int
    index_path: Path

    @property
    def overhead(self) -> float:
        """Wall time over the busiest server's busy time (1.0 = the server never idles)."""
        return self.wall / max(self.busy)


class Bench:
    """The servers, the corpus and a scratch directory shared by benchmarks 1-4."""

    def __init__(self, settings: Settings, servers: list[ServerProcess], work: Path) -> None:
        self.settings = settings
        self.servers = servers
        self.work = work
        self.corpus: Corpus = write_corpus(
            work / "corpus", files=settings.files, chars_per_file=settings.chars_per_file, seed=SEED
        )
        self._indexes = 0
        for server in servers:
            server.set_delay(per_input=settings.per_input, slots=settings.slots)

    def new_path(self, label: str) -> Path:
        self._indexes += 1
        return self.work / f"{label}-{self._indexes}"

    def reset(self, servers: Sequence[ServerProcess]) -> None:
        for server in servers:
            server.reset_counters()

    def ingest(
        self,
        hosts: int,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        concurrency: int = DEFAULT_CONCURRENCY,
        client: Any = None,
    ) -> Run:
        """One timed ``add_files`` into a new index (a new collection of ``client``, if given)."""
        s = self.settings
        servers = self.servers[:hosts]
        path = self.new_path("index")
        where: dict[str, Any] = {"path": path}
        if client is not None:
            where = {"client": client, "collection": path.name}
        with RagIndex(
            **where,
            model=MODEL,
            base_url=[server.url for server in servers],
            chunk_size=s.chunk_size,
            chunk_overlap=s.chunk_overlap,
            batch_size=batch_size,
            concurrency=concurrency,
        ) as index:
            self.reset(servers)
            began = time.perf_counter()
            report = index.add_files(self.corpus.directory, progress=False)
            wall = time.perf_counter() - began
        stats = [server.stats() for server in servers]
        return Run(
            hosts=hosts,
            batch_size=batch_size,
            concurrency=concurrency,
            wall=wall,
            busy=[st.busy_seconds for st in stats],
            requests=sum(st.requests for st in stats),
            chunks_embedded=report.chunks_embedded,
            chunks_skipped=report.chunks_skipped,
            index_path=path,
        )

    def best_of(self, hosts: int, repeats: int, **kwargs: Any) -> tuple[Run, list[Run]]:
        runs = [self.ingest(hosts, **kwargs) for _ in range(repeats)]
        return min(runs, key=lambda r: r.wall), runs


# ---------------------------------------------------------------------------- results


@dataclass
class Results:
    """The headline figures, for the smoke test and for anyone calling :func:`main`."""

    chunks: int = 0
    overhead: float = math.nan
    speedups: dict[int, float] = field(default_factory=dict)
    resync_requests: int = -1
    resync_share: float = math.nan
    langchain_ratio: float = math.nan
    memory_ratio: float = math.nan
    verdicts: dict[str, bool] = field(default_factory=dict)


def _describe(settings: Settings, corpus: Corpus, chunks: int) -> str:
    return (
        f"corpus: {corpus.files} files, {corpus.characters:,} characters "
        f"({corpus.bytes / 1e6:.2f} MB UTF-8), {chunks:,} chunks at chunk_size "
        f"{settings.chunk_size}, overlap {settings.chunk_overlap}; hash model "
        f"{settings.dimension}-d; server delay {settings.per_input * 1000:g} ms per input, "
        f"{settings.slots} slot; best of {settings.repeats} run(s)"
    )


def bench_overhead(bench: Bench, results: Results) -> Run:
    s = bench.settings
    best, runs = bench.best_of(1, s.repeats)
    results.chunks = best.chunks_embedded
    results.overhead = best.overhead
    ok = best.overhead <= TARGET_OVERHEAD
    results.verdicts["overhead"] = ok
    print("1. Overhead: ingest wall time / server busy time, 1 server")
    print(_describe(s, bench.corpus, best.chunks_embedded))
    print(f"RagIndex batch_size {DEFAULT_BATCH_SIZE}, concurrency {DEFAULT_CONCURRENCY} (defaults)")
    rows = [
        ["chunks embedded / reused", f"{best.chunks_embedded} / {best.chunks_skipped}", "", ""],
        ["embedding requests", str(best.requests), "", ""],
        ["ingest wall", seconds(best.wall), "", ""],
        ["server busy", seconds(best.busy[0]), "", ""],
        ["wall / busy", f"{best.overhead:.3f}", f"<= {TARGET_OVERHEAD:.2f}", verdict(ok)],
        ["all runs: wall / busy", " ".join(f"{r.overhead:.3f}" for r in runs), "", ""],
    ]
    print(table(["measure", "value", "target", "verdict"], rows))
    return best


def bench_scale_out(bench: Bench, results: Results, single: Run) -> None:
    s = bench.settings
    print(f"2. Scale-out: the same ingest over N identical servers (best of {s.repeats})")
    rows = [
        [
            "1",
            seconds(single.wall),
            seconds(max(single.busy)),
            f"{single.overhead:.2f}",
            "1.00x",
            "",
            "",
        ]
    ]
    for hosts in s.hosts:
        best, runs = bench.best_of(hosts, s.repeats)
        speedup = single.wall / best.wall
        results.speedups[hosts] = speedup
        target = TARGET_SPEEDUP.get(hosts, 0.0)
        ok = speedup >= target
        results.verdicts[f"scale-out x{hosts}"] = ok
        rows.append(
            [
                str(hosts),
                seconds(best.wall),
                seconds(max(best.busy)),
                f"{best.overhead:.2f}",
                f"{speedup:.2f}x",
                f">= {target:.1f}x",
                verdict(ok),
            ]
        )
        print(
            f"  {hosts} hosts, all runs: wall "
            + ", ".join(seconds(r.wall) for r in runs)
            + "; busy per server (best run) "
            + ", ".join(f"{b:.2f}" for b in best.busy)
        )
    headers = ["hosts", "wall", "max busy", "wall/busy", "speed-up", "target", "verdict"]
    print(table(headers, rows))


def bench_tuning(bench: Bench) -> None:
    s = bench.settings
    if not s.tuning:
        return
    print(
        "1-2 with other batch_size/concurrency (public RagIndex arguments; one run each; "
        "speed-up against the same setting's 1-host run)"
    )
    rows = []
    for batch_size, concurrency in ((DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY), *s.tuning):
        one = bench.ingest(1, batch_size=batch_size, concurrency=concurrency)
        row = [f"{batch_size} / {concurrency}", seconds(one.wall), f"{one.overhead:.3f}"]
        for hosts in s.hosts:
            many = bench.ingest(hosts, batch_size=batch_size, concurrency=concurrency)
            row += [seconds(many.wall), f"{one.wall / many.wall:.2f}x"]
        rows.append(row)
    headers = ["batch / conc", "wall 1", "wall/busy"]
    for hosts in s.hosts:
        headers += [f"wall {hosts}", f"speed-up {hosts}"]
    print(table(headers, rows))


def bench_resync(bench: Bench, results: Results, first: Run) -> None:
    s = bench.settings
    server = bench.servers[0]
    walls = []
    requests = 0
    unchanged = 0
    with RagIndex(first.index_path, base_url=[server.url]) as index:  # reopened, as a later run
        for _ in range(s.repeats):
            server.reset_counters()
            began = time.perf_counter()
            report = index.sync(bench.corpus.directory, progress=False)
            walls.append(time.perf_counter() - began)
            requests += server.stats().requests + report.embedding_requests
            unchanged = report.files_unchanged
    best = min(walls)
    share = best / first.wall
    results.resync_requests = requests
    results.resync_share = share
    results.verdicts["re-sync requests"] = requests == 0
    results.verdicts["re-sync time"] = share <= TARGET_RESYNC_SHARE
    print(f"3. Re-sync: sync() of the unchanged corpus on the reopened index (best of {s.repeats})")
    rows = [
        ["files unchanged", f"{unchanged} / {bench.corpus.files}", "", ""],
        ["embedding requests (all runs)", str(requests), "0", verdict(requests == 0)],
        ["re-sync wall", seconds(best), "", ""],
        ["first ingest wall", seconds(first.wall), "", ""],
        [
            "re-sync / first ingest",
            f"{share:.2%}",
            f"<= {TARGET_RESYNC_SHARE:.0%}",
            verdict(share <= TARGET_RESYNC_SHARE),
        ],
    ]
    print(table(["measure", "value", "target", "verdict"], rows))


@dataclass
class LangChainRun:
    label: str
    chunks: int
    requests: int
    busy: float
    wall: float


def langchain_ingest(
    corpus: Path, persist: Path, url: str, chunk_size: int, chunk_overlap: int | None
) -> tuple[float, int]:
    """The plain composition: split every file, then one ``Chroma.add_texts``; (wall, chunks)."""
    from langchain_chroma import Chroma
    from langchain_ollama import OllamaEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = OllamaEmbeddings(model=MODEL, base_url=url)
    store = Chroma(
        collection_name="langchain", embedding_function=embeddings, persist_directory=str(persist)
    )
    if chunk_overlap is None:  # LangChain's defaults, chunk_size aside
        splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size)
    else:
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
    began = time.perf_counter()
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    for path in sorted(corpus.glob("*.txt")):
        for chunk in splitter.split_text(path.read_text(encoding="utf-8")):
            texts.append(chunk)
            metadatas.append({"source": path.name})
    store.add_texts(texts, metadatas=metadatas)
    wall = time.perf_counter() - began
    return wall, len(texts)


def bench_langchain(bench: Bench, results: Results, ours: Run) -> None:
    s = bench.settings
    server = bench.servers[0]
    variants: list[tuple[str, int | None]] = [
        (f"LangChain defaults (overlap {_langchain_default_overlap()})", None)
    ]
    if s.langchain_matched_overlap:
        variants.append((f"LangChain, overlap {s.chunk_overlap}", s.chunk_overlap))
    runs = [
        LangChainRun(
            "ollama-rag RagIndex.add_files",
            ours.chunks_embedded,
            ours.requests,
            ours.busy[0],
            ours.wall,
        )
    ]
    for label, overlap in variants:
        best: LangChainRun | None = None
        for _ in range(s.repeats):
            server.reset_counters()
            wall, chunks = langchain_ingest(
                bench.corpus.directory,
                bench.new_path("langchain"),
                server.url,
                s.chunk_size,
                overlap,
            )
            stats = server.stats()
            run = LangChainRun(label, chunks, stats.requests, stats.busy_seconds, wall)
            if best is None or run.wall < best.wall:
                best = run
        assert best is not None
        runs.append(best)
    results.langchain_ratio = runs[1].wall / ours.wall
    print(
        "4. Against the plain LangChain composition (RecursiveCharacterTextSplitter + "
        "OllamaEmbeddings + one Chroma.add_texts), same corpus, chunk_size and server "
        f"(best of {s.repeats})"
    )
    rows = [
        [
            r.label,
            f"{r.chunks:,}",
            str(r.requests),
            seconds(r.busy),
            seconds(r.wall),
            f"{r.wall / ours.wall:.2f}",
        ]
        for r in runs
    ]
    headers = ["pipeline", "chunks", "requests", "server busy", "wall", "wall / ollama-rag"]
    print(table(headers, rows))


def _langchain_default_overlap() -> int:
    from langchain_text_splitters import TextSplitter

    return int(inspect.signature(TextSplitter.__init__).parameters["chunk_overlap"].default)


# ---------------------------------------------------------------------------- memory


def memory_run(
    server: ServerProcess,
    settings: Settings,
    corpus: Corpus,
    index: Path,
    *,
    trace: int = 0,
) -> dict[str, Any]:
    """Ingest ``corpus`` in a fresh ``benchmarks._ingest_child`` process; returns its figures."""
    job = {
        "index": str(index),
        "model": MODEL,
        "urls": [server.url],
        "chunk_size": settings.memory_chunk_size,
        "chunk_overlap": settings.memory_chunk_overlap,
        "corpus": str(corpus.directory),
        "tracemalloc": trace,
    }
    server.reset_counters()
    with subprocess.Popen(
        [sys.executable, "-m", "benchmarks._ingest_child", json.dumps(job)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    ) as child:
        while child.poll() is None:
            time.sleep(0.5)
            server.drain()  # so the server does not hoard the texts it was sent
        assert child.stdout is not None
        output = child.stdout.read()
    if child.returncode != 0:
        msg = f"memory run failed (status {child.returncode}); output: {output[-2000:]}"
        raise RuntimeError(msg)
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["server"] = server.stats()
    return result


def bench_memory(settings: Settings, work: Path, results: Results) -> None:
    s = settings
    trace = int(os.environ.get(TRACE_ENV, "0") or 0)
    with running_servers(1, MODEL, dimension=s.memory_dimension, seed=SEED) as (server,):
        server.set_delay()  # no delay: memory, not speed
        figures = []
        for size in s.memory_bytes:
            corpus = write_corpus_bytes(
                work / f"memory-{size}",
                total_bytes=size,
                bytes_per_file=s.memory_file_bytes,
                seed=SEED + 1,
            )
            figures.append((corpus, memory_run(server, s, corpus, work / f"memory-index-{size}")))
        traced = None
        if trace:
            corpus = figures[0][0]
            traced = memory_run(server, s, corpus, work / "memory-index-traced", trace=trace)
    (small_corpus, small), (_, large) = figures
    ratio = large["peak_rss"] / small["peak_rss"]
    results.memory_ratio = ratio
    ok = ratio <= TARGET_MEMORY_RATIO
    results.verdicts["memory"] = ok
    print(
        "5. Memory: peak RSS (VmHWM) of a fresh process running add_files; server in "
        f"another process, no delay; hash model {s.memory_dimension}-d, chunk_size "
        f"{s.memory_chunk_size}, overlap {s.memory_chunk_overlap}; files of "
        f"~{s.memory_file_bytes / 1e3:g} kB"
    )
    rows = []
    for corpus, r in figures:
        rows.append(
            [
                megabytes(corpus.bytes),
                str(corpus.files),
                f"{r['chunks']:,}",
                seconds(r["seconds"]),
                seconds(r["server"].busy_seconds),
                megabytes(r["rss_open"]),
                megabytes(r["peak_rss"]),
                megabytes(r["peak_rss"] - r["rss_open"]),
            ]
        )
    headers = [
        "corpus",
        "files",
        "chunks",
        "wall",
        "server busy",
        "RSS open",
        "peak RSS",
        "peak - open",
    ]
    print(table(headers, rows))
    print(
        table(
            ["measure", "value", "target", "verdict"],
            [
                [
                    "peak RSS large / small",
                    f"{ratio:.2f}",
                    f"<= {TARGET_MEMORY_RATIO:.1f}",
                    verdict(ok),
                ]
            ],
        )
    )
    for corpus, r in figures:
        samples = r["samples"]
        if not samples:
            continue
        step = max(1, len(samples) // 8)
        trail = ", ".join(f"{t:.0f}s {rss / 1e6:.0f}" for t, rss in samples[::step])
        print(f"  RSS (MB) during the {megabytes(corpus.bytes)} run, by time: {trail}")
    if traced is not None:
        print(
            f"  tracemalloc on the {megabytes(small_corpus.bytes)} run (Python allocations "
            f"only; traced peak {megabytes(traced['traced_peak'])}), largest growths:"
        )
        for g in traced["growth"]:
            print(f"    {g['size_diff'] / 1e6:+9.2f} MB {g['count']:+9d} blocks  {g['where']}")


# ---------------------------------------------------------------------------- bounds


def bench_bounds(bench: Bench) -> None:
    """Where the scale-out stops: the ingesting process's own time, and Chroma as a server.

    No targets: these explain benchmark 2. With no delay the servers answer as fast as they can
    compute, so the wall time is what the ingesting process itself needs; in server mode Chroma's
    write cost is paid by the ``chroma run`` process instead.
    """
    s = bench.settings
    hosts = max(s.hosts)
    print(f"Bounds of the scale-out (diagnostics; best of {s.repeats})")
    for server in bench.servers:
        server.set_delay(slots=s.slots)
    fast, fast_runs = bench.best_of(hosts, s.repeats)
    for server in bench.servers:
        server.set_delay(per_input=s.per_input, slots=s.slots)
    rows = [
        [
            f"embedded Chroma, {hosts} servers, no delay",
            seconds(fast.wall),
            seconds(max(fast.busy)),
            " ".join(seconds(r.wall) for r in fast_runs),
        ]
    ]
    if s.quick:  # starting `chroma run` costs the smoke test more than the rest of this part
        print(table(["configuration", "wall", "max busy", "all runs"], rows))
        return
    import chromadb

    with chroma_server(bench.work / "chroma-server") as port:
        client = chromadb.HttpClient(host="127.0.0.1", port=port)
        for n in (1, hosts):
            best, runs = bench.best_of(n, s.repeats, client=client)
            rows.append(
                [
                    f"Chroma server mode, {n} server(s), {s.per_input * 1000:g} ms per input",
                    seconds(best.wall),
                    seconds(max(best.busy)),
                    " ".join(seconds(r.wall) for r in runs),
                ]
            )
    print(table(["configuration", "wall", "max busy", "all runs"], rows))


# ---------------------------------------------------------------------------- main


def main(quick: bool | None = None, parts: Sequence[str] | None = None) -> Results:
    s = settings_for(quick)
    chosen = parts_for(parts)
    results = Results()
    print(f"mode: {mode(s.quick)}; parts: {', '.join(chosen)}; {machine()}")
    with tempfile.TemporaryDirectory(prefix="ollama-rag-bench-") as tmp:
        work = Path(tmp)
        if "throughput" in chosen:
            count = max((1, *s.hosts))
            with running_servers(count, MODEL, dimension=s.dimension, seed=SEED) as servers:
                bench = Bench(s, servers, work)
                single = bench_overhead(bench, results)
                print()
                bench_scale_out(bench, results, single)
                bench_tuning(bench)
                print()
                bench_resync(bench, results, single)
                print()
                bench_langchain(bench, results, single)
            print()
        if "memory" in chosen:
            bench_memory(s, work, results)
        if "bounds" in chosen:
            print()
            count = max((1, *s.hosts))
            with running_servers(count, MODEL, dimension=s.dimension, seed=SEED) as servers:
                bench_bounds(Bench(s, servers, work / "bounds"))
    print()
    print(summary(results.verdicts))
    return results


if __name__ == "__main__":
    main()
