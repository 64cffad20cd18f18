"""What a Chroma write costs per row, and what the cost depends on (chromadb alone, no Ollama).

The figures behind docs/performance.md's "why Chroma's writes cost what they do": a
``PersistentClient`` collection made as ``RagIndex`` makes it (cosine, ``sync_threshold`` 100,
256-d random vectors), 2,000 rows added per run, each variant in a fresh collection:

1. **Document text** — no document; 300 copies of one letter; 300 random ASCII letters; 300
   random CJK ideographs; 300 characters of the benchmark corpus (generated Japanese/Chinese
   prose). The cost depends on the content, not only the length (see 4: not SQLite's).
2. **Rows per ``add`` call** — 32, 64, 256 and 1,000 (corpus text).
3. **Settings that do not help** — ``sync_threshold`` 1,000 (Chroma's default) and the
   full-text index disabled through ``Schema`` (which only makes ``$contains`` filters fail).
4. **SQLite's share** — the SQL Chroma's local writer runs for the same rows (a log row, a
   record, its metadata and document entries, the FTS5 row), replayed with Python's
   ``sqlite3`` on an empty Chroma database's schema, one transaction per 256 rows: what the
   storage itself costs, the rest of a Chroma write being Chroma's own code.
5. **Metadata entries** — the metadata ``RagIndex.add_files`` writes for a ``.txt`` file (nine
   keys; the first chunk also has ``unit_hash`` and ``complete_hash``), and the same with
   ``unit_hash`` on every chunk (as before it moved to first chunks).

Each figure is the best of ``REPEATS`` runs, in milliseconds per row, with whether the call held
the GIL (a thread that counts while ``add`` runs counts once per call if it did).

Run: ``python -m benchmarks chroma_writes`` (about a minute on 2 cores);
``OLLAMA_RAG_BENCH_QUICK=1`` uses 200 rows and one run (smoke test; figures mean nothing).
"""

from __future__ import annotations

import os
import random
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._corpus import write_corpus
from ollama_rag.storage.chroma import COLLECTION_CONFIGURATION

QUICK_ENV = "OLLAMA_RAG_BENCH_QUICK"
DIMENSION = 256
CHARS = 300
SEED = 7


@dataclass(frozen=True)
class Variant:
    """One measured configuration."""

    label: str
    documents: str  # key of the document generator
    batch: int = 256
    configuration: dict[str, Any] | None = None  # None: RagIndex's; {} with schema set: Schema
    no_fts: bool = False
    metadata: str = "two"  # key of the metadata generator (see _metadatas)


VARIANTS = (
    Variant("no document", "none"),
    Variant("300 x one letter", "same"),
    Variant("random ASCII", "ascii"),
    Variant("random CJK", "cjk"),
    Variant("corpus text (CJK prose)", "corpus"),
    Variant("corpus text, 32 rows a call", "corpus", batch=32),
    Variant("corpus text, 64 rows a call", "corpus", batch=64),
    Variant("corpus text, 1000 rows a call", "corpus", batch=1000),
    Variant(
        "corpus text, sync_threshold 1000",
        "corpus",
        configuration={"hnsw": {"space": "cosine", "sync_threshold": 1000}},
    ),
    Variant("corpus text, FTS index disabled", "corpus", no_fts=True),
    Variant("corpus text, add_files metadata", "corpus", metadata="ours"),
    Variant("  ... with unit_hash on every chunk", "corpus", metadata="ours+unit_hash"),
)


def _documents(kind: str, rows: int, corpus_text: str) -> list[str] | None:
    rng = random.Random(SEED)
    makers: dict[str, Callable[[int], str]] = {
        "same": lambda _: "a" * CHARS,
        "ascii": lambda _: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(CHARS)),
        "cjk": lambda _: "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(CHARS)),
        "corpus": lambda i: corpus_text[(i * 270) % (len(corpus_text) - CHARS) :][:CHARS],
    }
    return None if kind == "none" else [makers[kind](i) for i in range(rows)]


def _metadatas(kind: str, rows: int, documents: list[str] | None) -> list[dict[str, Any]]:
    """Per row: two keys, or what add_files writes for .txt files of 20 chunks (see Variant)."""
    import hashlib

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    metadatas: list[dict[str, Any]] = []
    for i in range(rows):
        meta: dict[str, Any] = {"source": f"f{i // 20}.txt", "chunk_index": i % 20}
        if kind != "two":
            meta.update(
                file_type="txt",
                encoding="utf-8",
                file_size=14_000,
                root="/home/user/corpus",
                start_index=(i % 20) * 270,
                end_index=(i % 20) * 270 + CHARS,
                content_hash=digest(documents[i] if documents else str(i)),
            )
            if i % 20 == 0 or kind == "ours+unit_hash":
                meta["unit_hash"] = digest(f"f{i // 20}")
            if i % 20 == 0:
                meta["complete_hash"] = meta["unit_hash"]
        metadatas.append(meta)
    return metadatas


def _create(client: Any, name: str, variant: Variant) -> Any:
    if not variant.no_fts:
        return client.create_collection(
            name, configuration=variant.configuration or COLLECTION_CONFIGURATION
        )
    from chromadb import FtsIndexConfig, HnswIndexConfig, Schema, VectorIndexConfig

    hnsw = COLLECTION_CONFIGURATION["hnsw"]
    schema = Schema().create_index(
        config=VectorIndexConfig(
            space=hnsw["space"],
            embedding_function=None,
            hnsw=HnswIndexConfig(sync_threshold=hnsw["sync_threshold"]),
        )
    )
    schema.delete_index(config=FtsIndexConfig(), key="#document")
    return client.create_collection(name, schema=schema)


def measure(variant: Variant, rows: int, corpus_text: str, work: Path) -> tuple[float, bool]:
    """Milliseconds per row for one run of ``variant``, and whether ``add`` held the GIL."""
    import chromadb

    documents = _documents(variant.documents, rows, corpus_text)
    vectors = np.random.default_rng(SEED).standard_normal((rows, DIMENSION)).astype(np.float32)
    metadatas = _metadatas(variant.metadata, rows, documents)
    client = chromadb.PersistentClient(str(Path(tempfile.mkdtemp(dir=work)) / "db"))
    collection = _create(client, "bench", variant)
    ticks, stop = [0], threading.Event()

    def count() -> None:
        while not stop.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    calls = 0
    began = time.perf_counter()
    for start in range(0, rows, variant.batch):
        end = min(rows, start + variant.batch)
        collection.add(
            ids=[f"id{i}" for i in range(start, end)],
            embeddings=vectors[start:end],
            documents=None if documents is None else documents[start:end],
            metadatas=metadatas[start:end],
        )
        calls += 1
    seconds = time.perf_counter() - began
    stop.set()
    counter.join()
    # A free GIL lets the counter tick about once a millisecond; a held one, once per call.
    return seconds / rows * 1000, ticks[0] <= 2 * calls + 2


SQLITE_LABEL = "corpus text, same SQL in sqlite3"


def measure_sqlite(rows: int, corpus_text: str, work: Path) -> float:
    """Milliseconds per row for Chroma's SQL for ``rows`` corpus rows, run by Python's sqlite3."""
    import json
    import shutil
    import sqlite3

    import chromadb

    empty = Path(tempfile.mkdtemp(dir=work))
    chromadb.PersistentClient(str(empty)).create_collection(
        "bench", configuration=COLLECTION_CONFIGURATION
    )
    database = Path(tempfile.mkdtemp(dir=work)) / "chroma.sqlite3"
    shutil.copy(empty / "chroma.sqlite3", database)
    documents = _documents("corpus", rows, corpus_text) or []
    metadatas = _metadatas("two", rows, documents)
    vectors = np.random.default_rng(SEED).standard_normal((rows, DIMENSION)).astype(np.float32)
    connection = sqlite3.connect(database, isolation_level=None)
    began = time.perf_counter()
    for start in range(0, rows, 256):
        connection.execute("BEGIN")
        for i in range(start, min(rows, start + 256)):
            metadata = metadatas[i]
            logged = {**metadata, "chroma:document": documents[i]}
            connection.execute(
                "INSERT INTO embeddings_queue (operation, topic, id, vector, encoding, metadata)"
                " VALUES (0, 'bench', ?, ?, 'FLOAT32', ?)",
                (f"id{i}", vectors[i].tobytes(), json.dumps(logged, ensure_ascii=False)),
            )
            row = connection.execute(
                "INSERT INTO embeddings (segment_id, embedding_id, seq_id) VALUES ('s', ?, ?)"
                " RETURNING id",
                (f"id{i}", i + 1),
            ).fetchone()[0]
            connection.executemany(
                "INSERT INTO embedding_metadata (id, key, string_value, int_value)"
                " VALUES (?, ?, ?, ?)",
                [
                    (row, "source", metadata["source"], None),
                    (row, "chunk_index", None, metadata["chunk_index"]),
                    (row, "chroma:document", documents[i], None),
                ],
            )
            connection.execute(
                "INSERT INTO embedding_fulltext_search (rowid, string_value) VALUES (?, ?)",
                (row, documents[i]),
            )
        connection.execute("COMMIT")
    seconds = time.perf_counter() - began
    connection.close()
    return seconds / rows * 1000


def main(quick: bool | None = None) -> dict[str, float]:
    if quick is None:
        quick = os.environ.get(QUICK_ENV, "") not in ("", "0")
    rows, repeats = (200, 1) if quick else (2000, 3)
    print(
        f"mode: {'QUICK (smoke test; figures not meaningful)' if quick else 'full'}; "
        f"{rows} rows a run, {DIMENSION}-d vectors, {CHARS}-character documents, "
        f"best of {repeats}"
    )
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ollama-rag-bench-chroma-") as tmp:
        work = Path(tmp)
        corpus = write_corpus(work / "corpus", files=20, chars_per_file=23_500, seed=SEED)
        paths = sorted(corpus.directory.glob("*.txt"))
        corpus_text = "".join(p.read_text(encoding="utf-8") for p in paths)
        print(f"{'variant':<36} {'ms / row':>9}  {'held the GIL':>12}")
        for variant in VARIANTS:
            runs = [measure(variant, rows, corpus_text, work) for _ in range(repeats)]
            best = min(ms for ms, _ in runs)
            results[variant.label] = best
            held = "yes" if all(h for _, h in runs) else "no"
            print(f"{variant.label:<36} {best:>9.2f}  {held:>12}", flush=True)
        best = min(measure_sqlite(rows, corpus_text, work) for _ in range(repeats))
        results[SQLITE_LABEL] = best
        print(f"{SQLITE_LABEL:<36} {best:>9.2f}  {'n/a':>12}", flush=True)
    return results


if __name__ == "__main__":
    main()
