"""Every ingestion entry point of ``RagIndex``, measured as ``bench_ingest`` measures add_files.

The entry points, each timed from the call to its return on a new index:

- ``add_texts`` — ``add_texts(texts, metadatas=[{"title": ..., "n": i}, ...])``: every text its
  own source, with metadata of its own;
- ``add_texts_source`` — ``add_texts(texts, source="one.txt")``: one big source;
- ``add_documents`` — ``add_documents([Document(..., metadata={"source": title, "n": i})])``:
  many sources with several documents each (the passages that share a title);
- ``add_files`` — ``add_files(folder)`` on a folder of one file per passage;
- ``sync`` — ``sync(folder)``, the first ingest of that folder through sync;
- ``migrate`` — an index built with model A (once a shape, servers without delay, and copied
  for each run; not timed), then ``index.migrate(B)`` against servers that serve B as well.

For each entry point and each shape of text: the **overhead** (wall time / the busiest server's
busy time, 1 host) [target <= 1.10] and the **speed-up** with 2 and 4 identical hosts
(wall(1 host) / wall(N hosts)) [>= 1.85x and >= 3.0x] — the targets of the issue "Every entry
point as fast as the best one". Servers as in ``bench_ingest``: LocalOllama in processes of
their own (``benchmarks/_servers.py``), a 256-d hash model, 4 ms per input, one compute slot.

Shapes (never one shape only), about 800 chunks each unless said: ``zh-small``, 800 generated
Chinese passages of 120-300 characters (the issue's own measurement); ``ja-jsquad``, the 717
real JSQuAD passages of 19-699 characters (skipped, and said so, without
``../shared/eval/jsquad/passages.jsonl``); ``ja-large``, 400 generated Japanese passages of
600-1,200 characters (4x longer: ~1,700 chunks, several a source); ``ingest-corpus``,
``bench_ingest``'s 100 Japanese and Chinese documents of ~4,700 characters at its 5 ms per input
(where ``add_files`` meets the targets, so every entry point must); and, only when named (it
takes almost as long as the other three together), ``zh-large``, 3,200 Chinese passages like
zh-small (4x as many: ~3,300 chunks). Generated text never repeats a chunk
(``benchmarks/_corpus.py``), and the tables show chunks stored against inputs embedded, so
reuse by content skips no work.

Only the public ``RagIndex`` API is used, so the benchmark runs unchanged on any version of the
library. Timings are the best of several runs (repeats interleaved over the host counts); every
run is printed.

Run: ``python -m benchmarks entrypoints`` (about 8.5 minutes on 2 cores; zh-large alone takes
7.5 more) or, tiny and quick (for the smoke test), ``OLLAMA_RAG_BENCH_QUICK=1 python -m
benchmarks entrypoints``. A subset: ``OLLAMA_RAG_BENCH_ENTRYPOINTS=add_texts,migrate`` and/or
``OLLAMA_RAG_BENCH_SHAPES=zh-small`` (comma-separated names as above; naming shapes runs exactly
those, zh-large included).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.documents import Document

from benchmarks import _report as report
from benchmarks._corpus import (
    JSQUAD_PASSAGES,
    Corpus,
    Passage,
    documents,
    jsquad_passages,
    passages,
    write_passages,
)
from benchmarks._servers import ServerProcess, running_servers
from ollama_rag import RagIndex

ENTRYPOINTS_ENV = "OLLAMA_RAG_BENCH_ENTRYPOINTS"
SHAPES_ENV = "OLLAMA_RAG_BENCH_SHAPES"
MODEL = "bench-embed"
OTHER_MODEL = "bench-embed-b"  # what migrate switches to (served by the same processes)
SEED = 11
INGEST_SEED = 7  # bench_ingest's corpus
JSQUAD = JSQUAD_PASSAGES  # the real passages of shape ja-jsquad (a test points it elsewhere)

TARGET_OVERHEAD = 1.10
TARGET_SPEEDUP = {2: 1.85, 4: 3.0}


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ShapeSpec:
    """One shape of input text: generated passages, or the real JSQuAD ones."""

    name: str
    language: str  # "zh" or "ja"
    count: int  # passages (JSQuAD: at most this many; 0 = all)
    chars: tuple[int, int] = (0, 0)  # generated passages' length range
    jsquad: bool = False
    ingest_corpus: bool = False  # bench_ingest's documents (count of chars[0] characters)
    per_input: float | None = None  # server delay, if not the settings' own
    default: bool = True  # run unless shapes are named (OLLAMA_RAG_BENCH_SHAPES)


@dataclass(frozen=True)
class Settings:
    """Every parameter of one run (printed with the figures)."""

    quick: bool
    shapes: tuple[ShapeSpec, ...]
    repeats: int
    hosts: tuple[int, ...] = (2, 4)
    chunk_size: int = 300
    chunk_overlap: int = 30
    dimension: int = 256
    per_input: float = 0.004
    slots: int = 1


FULL = Settings(
    quick=False,
    shapes=(
        ShapeSpec("zh-small", "zh", 800, (120, 300)),
        ShapeSpec("ja-jsquad", "ja", 0, jsquad=True),
        ShapeSpec("ja-large", "ja", 400, (600, 1200)),
        # bench_ingest's corpus and server delay, where add_files meets the targets: the
        # other entry points must do as well on the same text.
        ShapeSpec("ingest-corpus", "mixed", 100, (4700, 4700), ingest_corpus=True, per_input=0.005),
        # 4x zh-small: 7.5 more minutes, so only when named.
        ShapeSpec("zh-large", "zh", 3200, (120, 300), default=False),
    ),
    repeats=2,
)
# Small enough for the smoke test (tests/test_benchmarks.py) to finish in well under 30 s.
QUICK = Settings(
    quick=True,
    shapes=(
        ShapeSpec("zh-small", "zh", 12, (120, 300)),
        ShapeSpec("ja-jsquad", "ja", 12, jsquad=True),
    ),
    repeats=1,
    hosts=(2,),
)


def settings_for(quick: bool | None = None) -> Settings:
    """QUICK when asked, or when ``OLLAMA_RAG_BENCH_QUICK`` is set to anything but 0/empty."""
    return QUICK if report.quick_requested(quick) else FULL


# ---------------------------------------------------------------------------- shapes


@dataclass
class Shape:
    """One shape's passages in every form an entry point takes them."""

    spec: ShapeSpec
    items: list[Passage]
    corpus: Corpus  # one file per passage, for add_files and sync
    texts: list[str] = field(init=False)
    metadatas: list[dict[str, Any]] = field(init=False)
    documents: list[Document] = field(init=False)
    built: Path | None = field(init=False, default=None)  # an index of it, for migrate

    def __post_init__(self) -> None:
        self.texts = [p.text for p in self.items]
        self.metadatas = [{"title": p.title, "n": i} for i, p in enumerate(self.items)]
        self.documents = [
            Document(page_content=p.text, metadata={"source": p.title, "n": i})
            for i, p in enumerate(self.items)
        ]

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> str:
        s = self.spec
        what = (
            "real JSQuAD passages"
            if s.jsquad
            else "of bench_ingest's Japanese and Chinese documents"
            if s.ingest_corpus
            else f"generated {'Chinese' if s.language == 'zh' else 'Japanese'} passages"
        )
        sources = len({p.title for p in self.items})
        delay = f"; server delay {s.per_input * 1000:g} ms per input" if s.per_input else ""
        return (
            f"{s.name}: {len(self.items):,} {what}, {self.corpus.characters:,} characters "
            f"(mean {self.corpus.characters / max(1, len(self.items)):.0f} a passage), "
            f"{sources} titles (add_documents' sources){delay}"
        )


def load_shape(spec: ShapeSpec, work: Path) -> Shape | str:
    """The shape's passages (written out as files too), or why it is skipped."""
    if spec.jsquad:
        found = jsquad_passages(JSQUAD)
        if found is None:
            return f"no JSQuAD passages at {JSQUAD}"
        items = found[: spec.count] if spec.count else found
    elif spec.ingest_corpus:
        items = documents(spec.count, chars=spec.chars[0], seed=INGEST_SEED)
    else:
        items = passages(spec.count, language=spec.language, chars=spec.chars, seed=SEED)
    return Shape(spec, items, write_passages(work / f"files-{spec.name}", items))


# ---------------------------------------------------------------------------- entry points


def _add_texts(index: RagIndex, shape: Shape) -> None:
    index.add_texts(shape.texts, metadatas=shape.metadatas)


def _add_texts_source(index: RagIndex, shape: Shape) -> None:
    index.add_texts(shape.texts, source="one.txt")


def _add_documents(index: RagIndex, shape: Shape) -> None:
    index.add_documents(shape.documents)


def _add_files(index: RagIndex, shape: Shape) -> None:
    index.add_files(shape.corpus.directory, progress=False)


def _sync(index: RagIndex, shape: Shape) -> None:
    index.sync(shape.corpus.directory, progress=False)


def _migrate(index: RagIndex, shape: Shape) -> None:
    index.migrate(OTHER_MODEL, progress=False)


@dataclass(frozen=True)
class EntryPoint:
    name: str  # as in OLLAMA_RAG_BENCH_ENTRYPOINTS
    label: str  # as printed
    call: Callable[[RagIndex, Shape], None]  # timed
    # Runs on a copy of an index already holding the shape (built with model A, not timed).
    prebuilt: bool = False


ENTRY_POINTS = (
    EntryPoint("add_texts", "add_texts(metadatas)", _add_texts),
    EntryPoint("add_texts_source", "add_texts(source=)", _add_texts_source),
    EntryPoint("add_documents", "add_documents", _add_documents),
    EntryPoint("add_files", "add_files(folder)", _add_files),
    EntryPoint("sync", "sync(folder)", _sync),
    EntryPoint("migrate", "migrate(B)", _migrate, prebuilt=True),
)
ENTRY_POINT_NAMES = tuple(e.name for e in ENTRY_POINTS)


# ---------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One timed entry point call on a new index."""

    hosts: int
    wall: float
    busy: list[float]  # per server
    requests: int
    inputs: int  # texts the servers embedded
    chunks: int  # index.count() afterwards

    @property
    def overhead(self) -> float:
        """Wall time over the busiest server's busy time (1.0 = the server never idles)."""
        return self.wall / max(self.busy)


@dataclass
class Figure:
    """One entry point on one shape: every run, by host count."""

    entry: EntryPoint
    shape: str
    runs: dict[int, list[Run]] = field(default_factory=dict)

    def best(self, hosts: int) -> Run:
        return min(self.runs[hosts], key=lambda r: r.wall)

    @property
    def overhead(self) -> float:
        return self.best(1).overhead

    def speedup(self, hosts: int) -> float:
        return self.best(1).wall / self.best(hosts).wall


class Bench:
    """The servers and a scratch directory; runs one entry point on a new index."""

    def __init__(self, settings: Settings, servers: list[ServerProcess], work: Path) -> None:
        self.settings = settings
        self.servers = servers
        self.work = work
        self._indexes = 0
        self.per_input = settings.per_input
        self.delay(True)

    def delay(self, on: bool, servers: Sequence[ServerProcess] | None = None) -> None:
        s = self.settings
        for server in self.servers if servers is None else servers:
            server.set_delay(per_input=self.per_input if on else 0.0, slots=s.slots)

    def use(self, shape: Shape) -> None:
        """Serve ``shape`` with its own delay per input (or the settings')."""
        self.per_input = shape.spec.per_input or self.settings.per_input
        self.delay(True)

    def _open(self, path: Path, servers: Sequence[ServerProcess]) -> RagIndex:
        s = self.settings
        return RagIndex(
            path,
            model=MODEL,
            base_url=[server.url for server in servers],
            chunk_size=s.chunk_size,
            chunk_overlap=s.chunk_overlap,
        )

    def built(self, shape: Shape) -> Path:
        """An index of ``shape`` with model A (``add_documents``, no delay), built once a shape."""
        if shape.built is None:
            shape.built = self.work / f"built-{shape.name}-{id(shape)}"
            self.delay(False, self.servers[:1])
            try:
                with self._open(shape.built, self.servers[:1]) as index:
                    index.add_documents(shape.documents)
            finally:
                self.delay(True, self.servers[:1])
        return shape.built

    def run(self, entry: EntryPoint, shape: Shape, hosts: int) -> Run:
        servers = self.servers[:hosts]
        self._indexes += 1
        path = self.work / f"index-{self._indexes}"
        if entry.prebuilt:  # a copy of the closed index: as good as building it again
            shutil.copytree(self.built(shape), path)
        with self._open(path, servers) as index:
            for server in servers:
                server.reset_counters()
            began = time.perf_counter()
            entry.call(index, shape)
            wall = time.perf_counter() - began
            chunks = index.count()
        stats = [server.stats() for server in servers]
        shutil.rmtree(path, ignore_errors=True)
        return Run(
            hosts=hosts,
            wall=wall,
            busy=[st.busy_seconds for st in stats],
            requests=sum(st.requests for st in stats),
            inputs=sum(st.inputs for st in stats),
            chunks=chunks,
        )

    def measure(self, entry: EntryPoint, shape: Shape) -> Figure:
        """Best of ``repeats`` at 1 host and at each host count, the repeats interleaved."""
        figure = Figure(entry, shape.name)
        for _ in range(self.settings.repeats):
            for hosts in (1, *self.settings.hosts):
                figure.runs.setdefault(hosts, []).append(self.run(entry, shape, hosts))
        return figure

    def warm_up(self, entries: Sequence[EntryPoint], shape: Shape) -> float:
        """Each entry point once on a few passages, servers without delay (imports, caches)."""
        items = shape.items[:4]
        tiny = Shape(shape.spec, items, write_passages(self.work / "warm-up", items))
        began = time.perf_counter()
        self.delay(False)
        try:
            for entry in entries:
                self.run(entry, tiny, 1)
        finally:
            self.delay(True)
        return time.perf_counter() - began


# ---------------------------------------------------------------------------- results


@dataclass
class Results:
    """The figures, for the smoke test and for anyone calling :func:`main`."""

    figures: list[Figure] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # shape -> why
    verdicts: dict[str, bool] = field(default_factory=dict)

    @property
    def entry_points(self) -> set[str]:
        return {f.entry.name for f in self.figures}


def _runs_line(figure: Figure) -> str:
    parts = []
    for hosts, runs in figure.runs.items():
        walls = " ".join(f"{r.wall:.2f}" for r in runs)
        busy = " ".join(f"{b:.2f}" for b in figure.best(hosts).busy)
        parts.append(f"{hosts} host{'s' if hosts > 1 else ''} wall {walls} s (busy {busy})")
    return f"  {figure.entry.label}: " + "; ".join(parts)


def shape_table(figures: Sequence[Figure], results: Results) -> str:
    """Rows per entry point: 1 host (overhead), then each host count (speed-up)."""
    rows = []
    for figure in figures:
        for hosts in figure.runs:
            best = figure.best(hosts)
            first = hosts == 1
            value = best.overhead if first else figure.speedup(hosts)
            target = TARGET_OVERHEAD if first else TARGET_SPEEDUP.get(hosts, 0.0)
            ok = value <= target if first else value >= target
            measure = "overhead" if first else f"x{hosts}"
            results.verdicts[f"{figure.entry.name} {figure.shape} {measure}"] = ok
            rows.append(
                [
                    figure.entry.label if first else "",
                    str(hosts),
                    f"{best.chunks:,}",
                    f"{best.inputs:,}",
                    str(best.requests),
                    report.seconds(best.wall),
                    report.seconds(max(best.busy)),
                    f"{best.overhead:.3f}",
                    "" if first else f"{value:.2f}x",
                    f"<= {target:.2f}" if first else f">= {target:.2f}x",
                    report.verdict(ok),
                ]
            )
    headers = [
        "entry point",
        "hosts",
        "chunks",
        "embedded",
        "requests",
        "wall",
        "max busy",
        "wall/busy",
        "speed-up",
        "target",
        "verdict",
    ]
    return report.table(headers, rows)


def matrix(results: Results) -> str:
    """Entry points x shapes: overhead / speed-up per host count, ``*`` marking a miss."""
    shapes = list(dict.fromkeys(f.shape for f in results.figures))
    cells: dict[str, dict[str, str]] = {}
    for figure in results.figures:
        marks = []
        for hosts in figure.runs:
            measure = "overhead" if hosts == 1 else f"x{hosts}"
            ok = results.verdicts[f"{figure.entry.name} {figure.shape} {measure}"]
            value = figure.overhead if hosts == 1 else figure.speedup(hosts)
            unit = "" if hosts == 1 else "x"
            marks.append(f"{value:.2f}{unit}{'' if ok else '*'}")
        cells.setdefault(figure.entry.label, {})[figure.shape] = " ".join(marks)
    rows = [[label, *(row.get(s, "-") for s in shapes)] for label, row in cells.items()]
    return report.table(["entry point", *shapes], rows)


# ---------------------------------------------------------------------------- main


def main(
    quick: bool | None = None,
    entry_points: Sequence[str] | None = None,
    shapes: Sequence[str] | None = None,
) -> Results:
    s = settings_for(quick)
    chosen = report.select(entry_points, ENTRY_POINT_NAMES, ENTRYPOINTS_ENV, "entry point")
    entries = [e for e in ENTRY_POINTS if e.name in chosen]
    picked = report.select(shapes, [x.name for x in s.shapes], SHAPES_ENV, "shape")
    named = shapes is not None or bool(os.environ.get(SHAPES_ENV, "").strip())
    specs = [x for x in s.shapes if x.name in picked and (named or x.default)]
    optional = [x.name for x in s.shapes if x.name in picked and x not in specs]
    results = Results()
    print(
        f"mode: {report.mode(s.quick)}; entry points: {', '.join(chosen)}; "
        f"shapes: {', '.join(x.name for x in specs)}; {report.machine()}"
    )
    print(
        f"hash model {s.dimension}-d; server delay {s.per_input * 1000:g} ms per input, "
        f"{s.slots} slot; chunk_size {s.chunk_size}, overlap {s.chunk_overlap}; RagIndex's "
        f"default batch_size and concurrency; hosts 1, {', '.join(map(str, s.hosts))}; best of "
        f"{s.repeats} run(s); targets: wall/busy <= {TARGET_OVERHEAD:.2f} with 1 host, speed-up "
        + ", ".join(f">= {TARGET_SPEEDUP[h]:.2f}x with {h}" for h in s.hosts if h in TARGET_SPEEDUP)
    )
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ollama-rag-bench-entry-") as tmp:
        work = Path(tmp)
        loaded: list[Shape] = []
        for spec in specs:
            shape = load_shape(spec, work)
            if isinstance(shape, str):
                results.skipped[spec.name] = shape
                print(f"{spec.name}: skipped ({shape})")
            else:
                loaded.append(shape)
                print(shape.describe())
        count = max((1, *s.hosts))
        with running_servers(
            count, MODEL, dimension=s.dimension, seed=SEED, second_model=OTHER_MODEL
        ) as servers:
            bench = Bench(s, servers, work)
            if loaded and not s.quick:
                print(f"warm-up (untimed): {bench.warm_up(entries, loaded[0]):.1f} s")
            for shape in loaded:
                bench.use(shape)
                print()
                print(f"{shape.describe()}; load average {report.load_average()}", flush=True)
                figures = []
                for entry in entries:
                    figure = bench.measure(entry, shape)
                    figures.append(figure)
                    print(_runs_line(figure), flush=True)
                results.figures.extend(figures)
                print(shape_table(figures, results), flush=True)
    if results.figures:
        print()
        print(
            "overhead (1 host) and speed-up per host count, entry point x shape (* = target missed)"
        )
        print(matrix(results))
    for name, why in results.skipped.items():
        print(f"skipped shape {name}: {why}")
    for name in optional:
        print(f"not run unless named: shape {name} ({SHAPES_ENV}={name})")
    print()
    took = time.perf_counter() - began
    print(f"{report.summary(results.verdicts, most=12)}; the benchmark took {took:.0f} s")
    return results


if __name__ == "__main__":
    main()
