"""What a read-only open costs: the private snapshot every reading command takes.

``ollama-rag search``/``info``/``sources``/``export``/``eval`` open the index with
``read_only=True``, which copies the index directory between two of a writer's write calls
(``ollama_rag.storage.lock.snapshot``) and opens the copy, so they work while another process
indexes into it. The copy is paid on every command; this measures how much, against the index's
size, and against opening the directory itself (what a reader could do only when no other
process writes):

- **copy** — ``snapshot(directory)`` alone (then deleted);
- **read-only open** — ``RagIndex(db, read_only=True)`` + ``count()`` + ``close()``: the copy,
  opening Chroma and the lexical index on it, removing it;
- **read-write open** — ``RagIndex(db)`` + ``count()`` + ``close()`` on the directory itself
  (it asks Ollama about the model; a read-only open does not until a query is embedded);
- **CLI search** — the whole ``ollama-rag search QUERY --db DIR --mode lexical`` process (no
  Ollama call: start-up, imports, the snapshot, one BM25 query).

Indexes of generated Japanese and Chinese prose (``add_texts``, chunk size 300, 1024-d vectors
from a LocalOllama hash model in its own process, no delay) at several sizes; every timing is
the best of ``REPEATS`` runs, on a warm file cache.

Run: ``python -m benchmarks snapshot`` (about 16 minutes on 2 cores, 14 of them building the
indexes) or, small and quick (smoke test), ``OLLAMA_RAG_BENCH_QUICK=1 python -m benchmarks
snapshot``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks import _report as report
from benchmarks._corpus import documents
from benchmarks._servers import running_servers
from ollama_rag import RagIndex
from ollama_rag.storage.base import folder_size
from ollama_rag.storage.lock import snapshot

MODEL = "bench-embed"
DIMENSION = 1024
SEED = 11
REPEATS = 3
# Passages per index (each about 280 characters: 1.75 chunks on average at CHUNK_SIZE).
PASSAGES = (5_000, 30_000)
QUICK_PASSAGES = (300,)
CHUNK_SIZE = 300
BATCH = 500  # texts per add_texts call while building


@dataclass(frozen=True)
class Row:
    """The figures of one index size."""

    chunks: int
    megabytes: float
    copy: float
    read_only: float
    read_write: float
    cli: float


def best(run: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def build(db: Path, url: str, passages: int) -> int:
    """An index of ``passages`` passages of about 280 characters; returns its chunk count."""
    with RagIndex(db, model=MODEL, base_url=url, chunk_size=CHUNK_SIZE) as index:
        texts = [d.text for d in documents(passages, chars=280, seed=SEED)]
        for start in range(0, len(texts), BATCH):
            index.add_texts(texts[start : start + BATCH])
        return index.count()


def measure(db: Path, url: str, chunks: int, repeats: int = REPEATS) -> Row:
    def copy() -> None:
        shutil.rmtree(snapshot(db))

    def open_and_count(**kwargs: object) -> Callable[[], None]:
        def run() -> None:
            with RagIndex(db, base_url=url, **kwargs) as index:  # type: ignore[arg-type]
                index.count()

        return run

    command = [sys.executable, "-m", "ollama_rag", "search", "富士山", "--db", str(db)]

    def cli() -> None:
        subprocess.run([*command, "--mode", "lexical"], check=True, capture_output=True)

    return Row(
        chunks=chunks,
        megabytes=folder_size(db) / 1e6,
        copy=best(copy, repeats),
        read_only=best(open_and_count(read_only=True), repeats),
        read_write=best(open_and_count(), repeats),
        cli=best(cli, repeats),
    )


def main(quick: bool | None = None) -> list[Row]:
    """Build each index size, measure it, print the table."""
    quick = report.quick_requested(quick)
    print(f"mode: {report.mode(quick)}; {report.machine()}")
    rows = []
    with (
        running_servers(1, MODEL, dimension=DIMENSION, seed=SEED) as (server,),
        tempfile.TemporaryDirectory(prefix="ollama-rag-bench-snapshot-") as tmp,
    ):
        for size in QUICK_PASSAGES if quick else PASSAGES:
            db = Path(tmp) / f"db-{size}"
            started = time.perf_counter()
            chunks = build(db, server.url, size)
            print(f"built {chunks:,} chunks in {time.perf_counter() - started:.0f} s", flush=True)
            rows.append(measure(db, server.url, chunks, 1 if quick else REPEATS))
            shutil.rmtree(db)
    print()
    print(
        report.table(
            ["chunks", "on disk", "copy", "read-only open", "read-write open", "CLI search"],
            [
                [
                    f"{r.chunks:,}",
                    f"{r.megabytes:.0f} MB",
                    report.seconds(r.copy),
                    report.seconds(r.read_only),
                    report.seconds(r.read_write),
                    report.seconds(r.cli),
                ]
                for r in rows
            ],
        )
    )
    for r in rows:
        per_100 = r.copy / r.megabytes * 100 if r.megabytes else 0.0
        print(
            f"{r.chunks:,} chunks: the snapshot adds {r.read_only - r.read_write:+.2f} s to an "
            f"open ({per_100:.2f} s of copying per 100 MB)"
        )
    return rows


if __name__ == "__main__":
    main()
