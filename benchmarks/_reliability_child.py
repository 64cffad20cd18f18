"""What the reliability benchmark's processes do: write (and be killed), verify, inspect.

``benchmarks/bench_reliability.py`` runs each function here in a process of its own, forked from
a server process that has already imported ``ollama_rag`` and the store's library (chromadb or
faiss; multiprocessing's ``forkserver``): a new interpreter costs 3-8 s of imports on the
benchmark machine, which would be most of a trial. Each process still opens its index itself,
with no client inherited, and reports through a ``multiprocessing`` pipe (the writer says
``ready`` just before its first write, which starts the parent's kill clock).

An index's state is compared as a *dump*: per source, the completion marker of its first chunk
(``None`` when unmarked) and the set of its chunk ids. The checks go through the index
(``RagIndex`` and its ``vectorstore``, the same calls on either store) except for the rows
actually stored, which are read from the store's own SQLite file, read-only: Chroma's
``chroma.sqlite3`` or the FAISS docstore ``faiss.sqlite3``. On FAISS the verifier also reads the
FAISS file's stamp before opening (how the kill left it: in step with the docstore, behind,
missing or unreadable), checks that the FAISS index searches use holds exactly the docstore's
rows with their stored vectors, and that the file is in step again once the index is closed.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ollama_rag import RagIndex
    from ollama_rag.storage.kinds import StoreKind

__all__ = [
    "ENTRY_POINTS",
    "Dump",
    "Expected",
    "Inspection",
    "Job",
    "TextCall",
    "Verification",
    "faiss_file_state",
    "inspect",
    "stored_rows",
    "verify",
    "write",
]

ENTRY_POINTS = ("add_texts", "add_files", "sync", "delete")
COLLECTION = "default"
PROBE = "検証用の一文：この文は書き込みの確認にだけ使われ、すぐに削除されます。"
PROBE_SOURCE = "probe.md"
# Per source: (completion marker or None, chunk ids).
Dump = dict[str, tuple[str | None, frozenset[str]]]


@dataclass(frozen=True)
class TextCall:
    """One ``add_texts`` call: each text its own source (``source`` None), or all one source."""

    texts: tuple[str, ...]
    source: str | None = None


@dataclass(frozen=True)
class Job:
    """One entry point run on one index, with the settings every open uses."""

    entry: str  # one of ENTRY_POINTS
    index: str
    model: str
    url: str
    chunk_size: int
    chunk_overlap: int
    store: StoreKind = "chroma"  # a FAISS index is of the default type, flat
    calls: tuple[TextCall, ...] = ()  # add_texts
    folder: str = ""  # add_files, sync
    deletes: tuple[str, ...] = ()  # delete: sources, one call each
    dump: bool = False  # after the run, reopen the index and send its dump


@dataclass(frozen=True)
class Expected:
    """What a verified index may hold.

    Attributes:
        allowed: Per source, per marker, the chunk ids a source with that marker must have
            (the states before and after an uninterrupted run).
        final: The dump an uninterrupted run leaves.
    """

    allowed: dict[str, dict[str, frozenset[str]]]
    final: Dump


@dataclass
class Verification:
    """What the verifier found (``problems`` empty and ``error`` None: the trial passed)."""

    repairs: list[str] = field(default_factory=list)  # IndexRepairedWarning texts
    kept: int = 0  # vectors recovered by the repair
    embedded: int = 0  # chunks the repair embedded again
    rows: int = 0  # rows after the kill (after any repair)
    marked: int = 0  # sources with a completion marker after the kill
    top1: int = 0
    searched: int = 0
    faiss_file: str | None = None  # FAISS: the file as the kill left it (faiss_file_state)
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class Inspection:
    """One damaged copy opened (damage matrix)."""

    repairs: list[str] = field(default_factory=list)
    kept: int | None = None
    embedded: int | None = None
    count: int = 0
    lost: int = 0  # ids of the undamaged index missing afterwards
    extra: int = 0  # ids afterwards that the undamaged index did not have
    top1: int = 0
    searched: int = 0
    writable: bool = False
    error: str | None = None


def _open(job: Job) -> RagIndex:
    import threading

    from tqdm import tqdm

    from ollama_rag import RagIndex

    # tqdm's default lock holds a multiprocessing semaphore, which a killed writer leaves
    # behind (the resource tracker then warns about it at exit); a thread lock does here.
    tqdm.set_lock(threading.RLock())

    return RagIndex(
        job.index,
        model=job.model,
        base_url=job.url,
        chunk_size=job.chunk_size,
        chunk_overlap=job.chunk_overlap,
        store=job.store,
    )


def run_entry(index: RagIndex, job: Job) -> None:
    """The job's writes, in the order of the job."""
    if job.entry == "add_texts":
        for call in job.calls:
            if call.source is None:
                index.add_texts(list(call.texts), metadatas=[{"kind": "passage"}] * len(call.texts))
            else:
                index.add_texts(list(call.texts), source=call.source)
    elif job.entry == "add_files":
        index.add_files(job.folder, progress=False)
    elif job.entry == "sync":
        index.sync(job.folder, progress=False)
    elif job.entry == "delete":
        for source in job.deletes:
            index.delete(source=source)
    else:
        msg = f"unknown entry point {job.entry!r}"
        raise ValueError(msg)


def _rows(index: RagIndex) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    vectorstore: Any = index.vectorstore  # langchain_chroma.Chroma, or a view with its get()
    got = vectorstore.get(include=["documents", "metadatas"])
    metadatas = [dict(m or {}) for m in got["metadatas"] or []]
    return list(got["ids"]), [d or "" for d in got["documents"] or []], metadatas


def dump_of(ids: list[str], metadatas: list[dict[str, Any]]) -> Dump:
    from ollama_rag.storage.schema import CHUNK_INDEX, COMPLETE, SOURCE

    markers: dict[str, str | None] = {}
    chunks: dict[str, set[str]] = {}
    for cid, meta in zip(ids, metadatas, strict=True):
        source = str(meta.get(SOURCE))
        chunks.setdefault(source, set()).add(cid)
        markers.setdefault(source, None)
        if meta.get(CHUNK_INDEX) == 0 and COMPLETE in meta:
            markers[source] = str(meta[COMPLETE])
    return {s: (markers[s], frozenset(c)) for s, c in chunks.items()}


def write(job: Job, conn: Connection) -> None:
    """Open, say ``ready``, run the job, close, say ``done`` (and send a dump when asked)."""
    try:
        index = _open(job)
        conn.send(("ready", None))
        began = time.perf_counter()
        try:
            run_entry(index, job)
        finally:
            index.close()
        conn.send(("done", time.perf_counter() - began))
        if job.dump:
            with _open(job) as index:
                ids, _, metadatas = _rows(index)
            conn.send(("dump", dump_of(ids, metadatas)))
    except Exception:
        conn.send(("error", traceback.format_exc()))


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def sqlite_rows(directory: str | Path, collection: str = COLLECTION) -> int:
    """Rows of ``collection`` in Chroma's SQLite metadata segment, read without chromadb."""
    with contextlib.closing(_read_only(Path(directory) / "chroma.sqlite3")) as db:
        row = db.execute(
            "SELECT count(*) FROM embeddings e JOIN segments s ON e.segment_id = s.id "
            "JOIN collections c ON s.collection = c.id "
            "WHERE c.name = ? AND s.scope = 'METADATA'",
            (collection,),
        ).fetchone()
    return int(row[0])


def docstore_rows(directory: str | Path, collection: str = COLLECTION) -> dict[int, bytes]:
    """FAISS id -> vector bytes of every row of ``collection`` in the FAISS docstore."""
    from ollama_rag.storage.docstore import DOCSTORE_FILE

    with contextlib.closing(_read_only(Path(directory) / DOCSTORE_FILE)) as db:
        found = db.execute(
            "SELECT c.fid, c.vector FROM chunks c JOIN collections k ON c.uid = k.uid "
            "WHERE k.name = ? AND k.role = 'current'",
            (collection,),
        ).fetchall()
    return {int(fid): bytes(vector) for fid, vector in found}


def stored_rows(directory: str | Path, store: str, collection: str = COLLECTION) -> int:
    """Rows of ``collection`` in the store's own SQLite file (Chroma's or the FAISS docstore)."""
    if store == "faiss":
        return len(docstore_rows(directory, collection))
    return sqlite_rows(directory, collection)


def faiss_file_state(directory: str | Path, collection: str = COLLECTION) -> str:
    """How the FAISS file of ``collection`` stands against its docstore, read without faiss.

    ``"in step"`` (its stamp is the docstore's), ``"behind"`` (an older stamp: caught up on
    open), ``"missing"`` (rebuilt on open) or ``"unreadable"`` (not a FAISS file of ours:
    rebuilt on open, with a warning). Only the header is read; a damaged body shows on open.
    """
    from ollama_rag.storage.docstore import DOCSTORE_FILE
    from ollama_rag.storage.faiss import _HEADER, _MAGIC, FAISS_DIR

    with contextlib.closing(_read_only(Path(directory) / DOCSTORE_FILE)) as db:
        found = db.execute(
            "SELECT uid, stamp FROM collections WHERE name = ? AND role = 'current'",
            (collection,),
        ).fetchone()
    if found is None:
        return "missing"
    uid, stamp = found
    file = Path(directory) / FAISS_DIR / f"{uid}.faiss"
    if not file.is_file():
        return "missing"
    with file.open("rb") as handle:
        header = handle.read(_HEADER.size)
    if len(header) < _HEADER.size or _HEADER.unpack(header)[0] != _MAGIC:
        return "unreadable"
    return "in step" if _HEADER.unpack(header)[1].decode("ascii") == stamp else "behind"


def _self_queries(
    index: RagIndex, ids: list[str], texts: list[str], picked: list[int], k: int
) -> tuple[int, list[str]]:
    """Search each picked chunk's own text: (top-1 hits, problems of chunks not in the top k)."""
    top1 = 0
    problems: list[str] = []
    for i in picked:
        found = [str(d.metadata.get("id")) for d in index.search(texts[i], k=k)]
        if len(set(found)) != len(found):
            problems.append(f"search returned an id twice: {found}")
        if found and found[0] == ids[i]:
            top1 += 1
        elif ids[i] not in found:
            problems.append(f"chunk {ids[i]} not in the top {k} for its own text")
    return top1, problems


def _check_lexical(index: Any, ids: list[str], problems: list[str], when: str) -> None:
    """The lexical index holds exactly the stored chunks (it is caught up on open)."""
    lexical = index.searcher.store.lexical_ids()
    stored = set(ids)
    if lexical != stored:
        problems.append(
            f"{when}: the lexical index holds {len(lexical)} chunks, the vectors {len(stored)} "
            f"({len(stored - lexical)} missing, {len(lexical - stored)} extra)"
        )


def _check_faiss(
    index: Any, directory: str, rng: random.Random, sample: int, problems: list[str], when: str
) -> None:
    """The FAISS index searches use holds exactly the docstore's rows, with their vectors."""
    import numpy as np

    # The in-memory FAISS index of the collection (loaded, caught up or rebuilt on open).
    vectors = index.searcher.store.vectors._vectors()
    rows = docstore_rows(directory)
    live = vectors.live()
    if live != set(rows):
        problems.append(
            f"{when}: the FAISS index holds {len(live)} vectors, the docstore {len(rows)} rows "
            f"({len(set(rows) - live)} missing, {len(live - set(rows))} extra)"
        )
    wrong = 0
    for fid in rng.sample(sorted(live & set(rows)), min(sample, len(live & set(rows)))):
        stored = np.frombuffer(rows[fid], dtype=np.float32)
        norm = float(np.linalg.norm(stored)) or 1.0
        if not np.allclose(vectors.index.reconstruct(fid), stored / norm, atol=1e-5):
            wrong += 1
    if wrong:
        problems.append(f"{when}: {wrong} sampled FAISS vectors differ from the docstore's")


def _check_dump(dump: Dump, expected: Expected, problems: list[str], when: str) -> None:
    for source, (marker, chunks) in sorted(dump.items()):
        if marker is None:
            continue  # unmarked: half-written, finished by the next run
        allowed = expected.allowed.get(source, {}).get(marker)
        if allowed is None:
            problems.append(f"{when}: source {source!r} has an unknown marker {marker[:12]}")
        elif chunks != allowed:
            problems.append(
                f"{when}: marked source {source!r} has {len(chunks)} chunks, "
                f"{len(chunks - allowed)} unexpected and {len(allowed - chunks)} missing "
                f"of {len(allowed)}"
            )


def _open_noting_repairs(job: Any, result: Verification | Inspection) -> Any:
    """Open the job's index, noting in ``result`` what a repair on open said and did."""
    from ollama_rag import IndexRepairedWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = _open(job)
    result.repairs = [
        str(w.message) for w in caught if issubclass(w.category, IndexRepairedWarning)
    ]
    if index.last_repair is not None:
        result.kept = index.last_repair.chunks_skipped
        result.embedded = index.last_repair.chunks_embedded
    return index


def verify(job: Job, expected: Expected, sample: int, seed: int, conn: Connection) -> None:
    """Open the index a kill left, check it, run the job again, check the result; send it."""

    result = Verification()
    began = time.perf_counter()
    problems = result.problems
    faiss = job.store == "faiss"
    rng = random.Random(seed)
    try:
        if faiss:
            result.faiss_file = faiss_file_state(job.index)
        index = _open_noting_repairs(job, result)
        with index:
            # After the kill (and any repair): counts agree, ids are unique, marked sources whole.
            count = index.count()
            stored = stored_rows(job.index, job.store)
            if count != stored:
                file = "faiss.sqlite3" if faiss else "chroma.sqlite3"
                problems.append(f"count() is {count}, {file} holds {stored} rows")
            ids, texts, metadatas = _rows(index)
            result.rows = len(ids)
            if len(ids) != count:
                problems.append(f"get() returned {len(ids)} rows, count() {count}")
            twice = [cid for cid, n in Counter(ids).items() if n > 1]
            if twice:
                problems.append(f"{len(twice)} ids stored twice, e.g. {twice[0]}")
            dump = dump_of(ids, metadatas)
            result.marked = sum(1 for marker, _ in dump.values() if marker is not None)
            _check_dump(dump, expected, problems, "after the kill")
            if faiss:
                _check_faiss(index, job.index, rng, sample, problems, "after the kill")
            _check_lexical(index, ids, problems, "after the kill")
            # Every chunk has a vector: a search as wide as the index returns every id once.
            if ids:
                vector = index.embeddings.embed_query(texts[0])
                wide = index.vectorstore.similarity_search_by_vector(vector, k=len(ids))
                found = [str(d.id) for d in wide]
                if sorted(found) != sorted(ids):
                    problems.append(
                        f"a search for all {len(ids)} rows returned {len(found)} "
                        f"({len(set(ids) - set(found))} rows without a vector)"
                    )
            # Every sampled chunk is found by its own text.
            picked = (
                list(range(len(ids))) if len(ids) <= sample else rng.sample(range(len(ids)), sample)
            )
            top1, missed = _self_queries(index, ids, texts, picked, k=3)
            result.top1, result.searched = top1, len(picked)
            problems.extend(missed[:3])
            if len(missed) > 3:
                problems.append(f"... and {len(missed) - 3} more chunks not found")
            # The same run again completes the work and leaves exactly the uninterrupted result.
            run_entry(index, job)
            ids, texts, metadatas = _rows(index)
            after = dump_of(ids, metadatas)
            if index.count() != len(ids) or len(ids) != sum(len(c) for _, c in after.values()):
                problems.append(f"after the re-run: count() {index.count()}, {len(ids)} rows")
            if after != expected.final:
                wrong = sorted(
                    s
                    for s in set(after) | set(expected.final)
                    if after.get(s) != expected.final.get(s)
                )
                problems.append(
                    f"after the re-run: {len(wrong)} sources differ from an uninterrupted run, "
                    f"e.g. {wrong[0]!r}: {_describe(after.get(wrong[0]))} instead of "
                    f"{_describe(expected.final.get(wrong[0]))}"
                )
            if faiss:
                _check_faiss(index, job.index, rng, sample, problems, "after the re-run")
            _check_lexical(index, ids, problems, "after the re-run")
            picked = rng.sample(range(len(ids)), min(len(ids), max(1, sample // 5)))
            _, missed = _self_queries(index, ids, texts, picked, k=3)
            problems.extend(f"after the re-run: {m}" for m in missed[:3])
            # Still writable and searchable: a probe goes in, is found first, and goes out.
            before = index.count()
            index.add_texts([PROBE], source=PROBE_SOURCE)
            hits = index.search(PROBE, k=1)
            if not hits or hits[0].metadata.get("source") != PROBE_SOURCE:
                problems.append("a probe text just added is not found first by its own text")
            index.delete(source=PROBE_SOURCE)
            if index.count() != before:
                problems.append(f"count() is {index.count()} after the probe, not {before}")
        # Closed: the FAISS file was saved, in step with the docstore.
        if faiss and (state := faiss_file_state(job.index)) != "in step":
            problems.append(f"after close, the FAISS file is {state}, not in step")
    except Exception:
        result.error = traceback.format_exc()
    result.seconds = time.perf_counter() - began
    conn.send(result)


def _describe(entry: tuple[str | None, frozenset[str]] | None) -> str:
    if entry is None:
        return "absent"
    marker, chunks = entry
    return f"{len(chunks)} chunks, {'marked' if marker else 'unmarked'}"


def inspect(job: Job, before: frozenset[str], sample: int, seed: int, conn: Connection) -> None:
    """Open a damaged copy: what the repair did, what is left, whether it searches and writes."""

    result = Inspection()
    try:
        index = _open_noting_repairs(job, result)
        with index:
            result.count = index.count()
            ids, texts, _ = _rows(index)
            result.lost = len(before - set(ids))
            result.extra = len(set(ids) - before)
            picked = random.Random(seed).sample(range(len(ids)), min(sample, len(ids)))
            result.top1, _ = _self_queries(index, ids, texts, picked, k=3)
            result.searched = len(picked)
            index.add_texts([PROBE], source=PROBE_SOURCE)
            hits = index.search(PROBE, k=1)
            result.writable = (
                index.count() == result.count + 1
                and bool(hits)
                and hits[0].metadata.get("source") == PROBE_SOURCE
            )
    except Exception:
        result.error = traceback.format_exc()
    conn.send(result)
