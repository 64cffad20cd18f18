"""The ingestion pipeline: chunks in, vectors stored, nothing embedded twice, nothing half-done.

A *unit* is the new content of one source (a file, or the texts added under one ``source``).
Units stream through three steps, with embedding running in background threads so reading,
splitting and writing overlap with Ollama's work:

1. **prepare** — chunk ids from source + content; chunks already stored are not embedded again,
   and text already embedded under another source reuses its vector;
2. **embed** — the remaining chunks go out in batches (across units) to the host pool; a chunk
   Ollama reports as longer than the context is split further and its parts embedded instead;
3. **write** — once every chunk of a unit has its vector, the unit is written: new rows, then
   metadata updates, then the source's stale chunks are deleted, and last the unit is marked
   complete (``complete_hash`` on its first chunk). An interrupted run leaves sources either
   complete or unmarked; running it again finishes the unmarked ones without re-embedding what
   was written.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ollama_rag.batching import BatchFeed
from ollama_rag.errors import ContextLengthExceededError

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

    from ollama_rag.ollama import OllamaEmbedder
    from ollama_rag.splitting import CJKTextSplitter

__all__ = ["IngestReport", "Piece", "Pipeline", "Unit", "embed_pieces", "sha256", "stored_sources"]

Metadata = dict[str, Any]
Vector = np.ndarray[Any, np.dtype[np.float32]]
# Keys the pipeline owns on every chunk.
COMPLETE_KEY = "complete_hash"
UNIT_HASH_KEY = "unit_hash"  # on the first chunk only
# Finished sources wait at most this long to be written together (a crash loses no more).
FLUSH_SECONDS = 0.5
# Rows per add/upsert call. Chroma's local bindings hold the GIL for a whole call (about 1 ms a
# row), so while one runs the embedding threads cannot hand results back or send the next
# request; short calls keep every host fed. Larger calls save little: the cost is per row.
UPSERT_ROWS = 256
# A group of finished sources is written once it has this many rows (or FLUSH_SECONDS passed),
# or, when the reading thread would otherwise wait for answers, once it has IDLE_FLUSH_ROWS.
# Smaller groups cost more per row (about 1.3 ms at 64 rows, 1.0 ms at 256 on CJK text).
FLUSH_ROWS = 256
IDLE_FLUSH_ROWS = 64
# Chunks of new sources looked up in Chroma together (see Pipeline.run).
PREPARE_CHUNKS = 256
# Each thread's first batch is this much smaller than batch_size: the first sources finish,
# and writing them starts, a quarter of a batch's time into the run instead of a whole one.
FIRST_BATCH_DIVISOR = 4
# Below this many characters a chunk that still exceeds the context is refused, not split.
MIN_SPLIT_CHARS = 8


def sha256(text: str) -> str:
    """Hex SHA-256 of a string's UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Piece:
    """A chunk of a source's text before it is stored.

    Attributes:
        text: The chunk text.
        start: Offset of the chunk in its source text.
        end: ``start + len(text)``.
        metadata: Metadata specific to this chunk (e.g. its heading or page).
    """

    text: str
    start: int
    end: int
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Unit:
    """The new content of one source.

    Attributes:
        source: The source name.
        unit_hash: Hash of the whole content; equal hashes mean nothing changed.
        pieces: The chunks, in order.
        metadata: Metadata copied onto every chunk.
        status: ``"added"`` or ``"updated"`` (for the report).
        replace: The content replaces the source's stored chunks (stale ones are deleted and
            the source marked complete); False only adds to them.
    """

    source: str
    unit_hash: str
    pieces: list[Piece]
    metadata: Metadata = field(default_factory=dict)
    status: str = "added"
    replace: bool = True
    # Filled by the pipeline: per piece, its final (piece, vector or None if stored) rows.
    resolved: list[list[tuple[Piece, Vector | None]] | None] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)  # per piece, its content hash
    stored: dict[str, Metadata] = field(default_factory=dict)
    remaining: int = 0


@dataclass
class IngestReport:
    """What one ``add_files``/``sync`` call did.

    Attributes:
        files_added: Sources new to the index.
        files_updated: Sources whose content changed and was replaced.
        files_unchanged: Sources skipped because their content is already indexed.
        files_deleted: Sources removed because their file disappeared (``delete_missing``).
        files_failed: Files that could not be read or decoded (see ``failed``).
        chunks_embedded: Chunks sent to Ollama.
        chunks_skipped: Chunks already stored, or whose vector was reused.
        embedding_requests: ``/api/embed`` requests made (including retries).
        seconds: Wall time.
        skipped: ``(source, reason)`` for files not indexed on purpose (binary, empty, unknown).
        failed: ``(source, reason)`` for files that could not be read.
    """

    files_added: int = 0
    files_updated: int = 0
    files_unchanged: int = 0
    files_deleted: int = 0
    files_failed: int = 0
    chunks_embedded: int = 0
    chunks_skipped: int = 0
    embedding_requests: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        line = (
            f"{self.files_added} added, {self.files_updated} updated, "
            f"{self.files_unchanged} unchanged, {self.files_deleted} deleted, "
            f"{self.files_failed} failed, {len(self.skipped)} skipped; "
            f"{self.chunks_embedded} chunks embedded, {self.chunks_skipped} reused; "
            f"{self.embedding_requests} requests in {self.seconds:.1f} s"
        )
        problems = [f"  failed  {s}: {r}" for s, r in self.failed]
        problems += [f"  skipped {s}: {r}" for s, r in self.skipped]
        return "\n".join([line, *problems])

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td>{html.escape(kind)}</td><td>{html.escape(s)}</td>"
            f"<td>{html.escape(r)}</td></tr>"
            for kind, items in (("failed", self.failed), ("skipped", self.skipped))
            for s, r in items
        )
        table = f"<table>{rows}</table>" if rows else ""
        first = html.escape(str(self).splitlines()[0])
        return f"<p><b>IngestReport</b>: {first}</p>{table}"


@dataclass
class StoredSource:
    """What the index holds about one source: completion markers and the folders it came from."""

    hashes: set[str] = field(default_factory=set)
    roots: set[str] = field(default_factory=set)


def first_chunks_of(sources: list[str]) -> dict[str, Any]:
    """A ``where`` filter for the first chunks (``chunk_index`` 0) of ``sources``."""
    return {"$and": [{"source": {"$in": sources}}, {"chunk_index": 0}]}


def stored_sources(
    collection: Collection, sources: list[str], batch: int
) -> dict[str, StoredSource]:
    """Completion markers and roots stored for each of ``sources`` (from their first chunks)."""
    found: dict[str, StoredSource] = {}
    for start in range(0, len(sources), batch):
        where = first_chunks_of(sources[start : start + batch])
        got = collection.get(where=cast(Any, where), include=cast(Any, ["metadatas"]))
        for meta in got["metadatas"] or []:
            if not meta:
                continue
            entry = found.setdefault(str(meta["source"]), StoredSource())
            if COMPLETE_KEY in meta:
                entry.hashes.add(str(meta[COMPLETE_KEY]))
            if "root" in meta:
                entry.roots.add(str(meta["root"]))
    return found


def embed_pieces(
    embedder: OllamaEmbedder,
    splitter_factory: Callable[[int], CJKTextSplitter],
    pieces: list[Piece],
) -> list[list[tuple[Piece, Vector]]]:
    """Embed pieces; one list of (piece, vector) rows per input piece.

    A batch Ollama refuses as over-long is bisected to find the culprit, which is split in half
    at its best boundary and its parts embedded instead (recursively), so no text is cut.

    Raises:
        ContextLengthExceededError: A piece of a few characters still exceeds the context.
    """
    try:
        vectors = embedder.embed_texts([p.text for p in pieces])
    except ContextLengthExceededError:
        if len(pieces) > 1:
            mid = len(pieces) // 2
            return embed_pieces(embedder, splitter_factory, pieces[:mid]) + embed_pieces(
                embedder, splitter_factory, pieces[mid:]
            )
        return [_split_and_embed(embedder, splitter_factory, pieces[0])]
    return [
        [(piece, np.asarray(vector, dtype=np.float32))]
        for piece, vector in zip(pieces, vectors, strict=True)
    ]


def _split_and_embed(
    embedder: OllamaEmbedder, splitter_factory: Callable[[int], CJKTextSplitter], piece: Piece
) -> list[tuple[Piece, Vector]]:
    if len(piece.text) <= MIN_SPLIT_CHARS:
        msg = (
            f"A {len(piece.text)}-character chunk at offset {piece.start} is longer than the "
            f'context of "{embedder.model}" even after splitting; the model\'s context is too '
            "small for this text: use a model with a longer context"
        )
        raise ContextLengthExceededError(msg, model=embedder.model)
    splitter = splitter_factory(max(len(piece.text) // 2, MIN_SPLIT_CHARS))
    parts = [
        Piece(text, piece.start + offset, piece.start + offset + len(text), piece.metadata)
        for offset, text in splitter.split_text_with_offsets(piece.text)
    ]
    rows = embed_pieces(embedder, splitter_factory, parts)
    return [row for part_rows in rows for row in part_rows]


@dataclass(frozen=True)
class _Row:
    id: str
    piece: Piece
    vector: Vector | None  # None: already stored, only its metadata may change
    metadata: Metadata


# One answer from an embedding thread: its batch, and per chunk its rows, or the error raised.
_Result = tuple[list[tuple[Unit, int]], list[list[tuple[Piece, Vector]]] | BaseException]


class Pipeline:
    """Runs units through prepare → embed → write (see the module docstring).

    Args:
        collection: The Chroma collection.
        embedder: Embeds document texts (prefix, dimension check, host pool).
        splitter_factory: Makes a splitter for a chunk size, to split over-long chunks.
        write_batch: Rows per Chroma call.
        on_chunks: Called with the number of chunks resolved, for progress bars.
        report: The report to add to (a new one by default).
        collect_ids: Keep each source's chunk ids in :attr:`ids` (off for large file jobs, so
            memory does not grow with the corpus).
    """

    def __init__(
        self,
        *,
        collection: Collection,
        embedder: OllamaEmbedder,
        splitter_factory: Callable[[int], CJKTextSplitter],
        write_batch: int,
        on_chunks: Callable[[int], None] | None = None,
        report: IngestReport | None = None,
        collect_ids: bool = True,
    ) -> None:
        self.collection = collection
        self.embedder = embedder
        self.splitter_factory = splitter_factory
        self.write_batch = write_batch
        self.on_chunks = on_chunks
        self.report = report if report is not None else IngestReport()
        self.ids: dict[str, list[str]] = {}
        self.collect_ids = collect_ids
        self.units_written = 0
        self._ready: list[tuple[Unit, list[_Row]]] = []
        self._ready_rows = 0
        self._last_flush = time.monotonic()
        pool = embedder.pool
        self._feed: BatchFeed[tuple[Unit, int]] = BatchFeed(
            batch_size=embedder.batch_size,
            workers=pool.workers,
            first=max(1, embedder.batch_size // FIRST_BATCH_DIVISOR),
        )
        self._results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self._outstanding = 0  # chunks put in the feed whose result has not been collected
        # Chunks read ahead of the embedding threads: enough to keep every host busy, few
        # enough to bound memory, and a reserve to spread evenly over the hosts at the end.
        self._read_ahead = 2 * pool.workers * embedder.batch_size

    # ---------------------------------------------------------------- driving

    def run(self, units: Iterable[Unit]) -> IngestReport:
        """Ingest every unit; on any error, cancel what is queued and re-raise."""
        started = time.perf_counter()
        pool = self.embedder.pool
        requests_before = pool.requests
        pool.resume()
        try:
            # One loop per request slot (hosts x concurrency): each takes its next batch as
            # soon as its last answer is in, without waiting for this thread.
            for _ in range(pool.workers):
                pool.executor.submit(self._work)
            group: list[Unit] = []
            group_chunks = 0
            for unit in units:
                group.append(unit)
                group_chunks += len(unit.pieces)
                # Sources are looked up in Chroma a group at a time (a few calls per group, not
                # four per source); while the hosts run short, a group is one batch.
                short = len(self._feed) < self.embedder.batch_size
                if group_chunks >= (self.embedder.batch_size if short else PREPARE_CHUNKS):
                    self._prepare(group)
                    group, group_chunks = [], 0
                self._collect(block=False)
                while len(self._feed) >= self._read_ahead:
                    self._collect(block=True)
            if group:
                self._prepare(group)
            self._feed.close()
            while self._outstanding:
                self._collect(block=True)
            self._flush_writes()
        except BaseException:
            # Stop the work still queued or retrying, so Ctrl-C returns promptly, but keep the
            # sources already finished: writing them is a few quick Chroma calls.
            pool.cancel()
            self._feed.abort()
            with contextlib.suppress(Exception):
                self._flush_writes()
            raise
        finally:
            self._feed.abort()  # the loops end once their current request is answered
            self.report.embedding_requests += pool.requests - requests_before
            self.report.seconds += time.perf_counter() - started
        return self.report

    def _prepare(self, units: list[Unit]) -> None:
        """Resolve what each unit's chunks need (nothing, a reused vector, or embedding)."""
        for unit in units:
            seen: Counter[str] = Counter()
            unit.hashes = [sha256(piece.text) for piece in unit.pieces]
            ids = []
            for content_hash in unit.hashes:
                seen[content_hash] += 1
                ids.append(sha256(f"{unit.source}\x1f{content_hash}\x1f{seen[content_hash]}")[:32])
            unit.ids = ids
            unit.resolved = [None] * len(unit.pieces)
        # A source without a first chunk has no chunks at all (see _sources_present), and ids
        # are derived from the source: only the sources found need their chunks looked up.
        present = self._sources_present(list(dict.fromkeys(u.source for u in units)))
        stored = self._stored_metadata(
            [cid for unit in units if unit.source in present for cid in unit.ids]
        )
        for unit in units:
            unit.stored = {cid: stored[cid] for cid in unit.ids if cid in stored}
            if unit.source in present:
                unit.status = "updated"
        parts = self._stored_parts(
            [
                (unit, cid)
                for unit in units
                if unit.source in present
                for cid in unit.ids
                if cid not in unit.stored
            ]
        )
        known = self._known_vectors(
            {
                content_hash
                for unit in units
                for cid, content_hash in zip(unit.ids, unit.hashes, strict=True)
                if cid not in unit.stored and cid not in parts
            }
        )
        for unit in units:
            for i, (piece, cid) in enumerate(zip(unit.pieces, unit.ids, strict=True)):
                if cid in unit.stored:
                    unit.resolved[i] = [(piece, None)]
                elif cid in parts:
                    unit.resolved[i] = [(part, None) for part in parts[cid]]
                elif (vector := known.get(unit.hashes[i])) is not None:
                    unit.resolved[i] = [(piece, vector)]
            todo = [i for i, r in enumerate(unit.resolved) if r is None]
            self.report.chunks_skipped += len(unit.pieces) - len(todo)
            unit.remaining = len(todo)
            if not todo:
                self._write(unit)
                continue
            for i in todo:
                self._feed.put((unit, i))
            self._outstanding += len(todo)

    def _collect(self, *, block: bool) -> None:
        """Take in the answers that have arrived (waiting for one if ``block``)."""
        if block and self._ready_rows >= IDLE_FLUSH_ROWS and self._results.empty():
            # Nothing to take in yet: write what is ready instead of waiting. Writing starts
            # as soon as the first sources are done, and little is left to write at the end.
            self._flush_writes()
        try:
            result = self._results.get(block=block)
        except queue.Empty:
            return
        while True:
            batch, rows_or_error = result
            if isinstance(rows_or_error, BaseException):
                raise rows_or_error  # the worker's error, with its traceback
            self._outstanding -= len(batch)
            for (unit, i), rows in zip(batch, rows_or_error, strict=True):
                unit.resolved[i] = [(piece, vector) for piece, vector in rows]
                unit.remaining -= 1
                if unit.remaining == 0:
                    self._write(unit)
            self.report.chunks_embedded += sum(len(rows) for rows in rows_or_error)
            if self.on_chunks is not None:
                self.on_chunks(len(batch))
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return

    # ---------------------------------------------------------------- embedding (worker threads)

    def _work(self) -> None:
        """Embed batches from the feed until it is closed and empty (or aborted)."""
        while (batch := self._feed.take()) is not None:
            try:
                rows: list[list[tuple[Piece, Vector]]] | BaseException = embed_pieces(
                    self.embedder, self.splitter_factory, [unit.pieces[i] for unit, i in batch]
                )
            except BaseException as err:  # handed to the reading thread, which raises it
                rows = err
            self._results.put((batch, rows))

    # ---------------------------------------------------------------- reading and writing Chroma

    def _stored_metadata(self, ids: list[str]) -> dict[str, Metadata]:
        stored: dict[str, Metadata] = {}
        for start in range(0, len(ids), self.write_batch):
            got = self.collection.get(
                ids=ids[start : start + self.write_batch], include=cast(Any, ["metadatas"])
            )
            for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                stored[cid] = dict(meta or {})
        return stored

    def _sources_present(self, sources: list[str]) -> set[str]:
        """Which of ``sources`` have chunks stored.

        Only first chunks are read (one row per source, as for the completion markers): every
        write puts a source's chunk 0 first, so a source with any chunk has one. (Should one be
        missing, e.g. deleted by id, its other chunks are embedded again and overwritten: the
        writes look their ids up, so nothing is duplicated.)
        """
        present: set[str] = set()
        for start in range(0, len(sources), self.write_batch):
            where = first_chunks_of(sources[start : start + self.write_batch])
            got = self.collection.get(where=cast(Any, where), include=cast(Any, ["metadatas"]))
            present.update(str(meta["source"]) for meta in got["metadatas"] or [] if meta)
        return present

    def _stored_parts(self, wanted: list[tuple[Unit, str]]) -> dict[str, list[Piece]]:
        """Chunks stored as parts (split for being over-long), by the id of the whole chunk.

        Each part found is also recorded in its unit's ``stored`` (its metadata may change).
        """
        unit_of = {cid: unit for unit, cid in wanted}
        ids = list(unit_of)
        found: dict[str, list[tuple[int, Piece]]] = {}
        for start in range(0, len(ids), self.write_batch):
            where = {"split_of": {"$in": ids[start : start + self.write_batch]}}
            got = self.collection.get(
                where=cast(Any, where), include=cast(Any, ["metadatas", "documents"])
            )
            for cid, text, raw in zip(
                got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
            ):
                meta: Metadata = dict(raw or {})
                whole = str(meta["split_of"])
                unit_of[whole].stored[cid] = meta
                piece = Piece(text or "", int(meta["start_index"]), int(meta["end_index"]))
                found.setdefault(whole, []).append((int(meta["chunk_part"]), piece))
        return {cid: [p for _, p in sorted(parts)] for cid, parts in found.items()}

    def _known_vectors(self, hashes: set[str]) -> dict[str, Vector]:
        """Vectors already stored for the same text (a renamed or copied source).

        Ids are looked up first and one vector fetched per text, so text repeated in many
        sources (a licence header) costs one vector, not one per copy.
        """
        ordered = sorted(hashes)
        one_id: dict[str, str] = {}
        for start in range(0, len(ordered), self.write_batch):
            where = {"content_hash": {"$in": ordered[start : start + self.write_batch]}}
            got = self.collection.get(where=cast(Any, where), include=cast(Any, ["metadatas"]))
            for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                if meta is not None:
                    one_id.setdefault(str(meta["content_hash"]), cid)
        known: dict[str, Vector] = {}
        by_id = {cid: h for h, cid in one_id.items()}
        wanted = list(by_id)
        for start in range(0, len(wanted), self.write_batch):
            got = self.collection.get(
                ids=wanted[start : start + self.write_batch], include=cast(Any, ["embeddings"])
            )
            # Chroma returns a numpy array here, whose truth value is ambiguous.
            vectors = got["embeddings"] if got["embeddings"] is not None else []
            for cid, vector in zip(got["ids"], vectors, strict=True):
                known[by_id[cid]] = np.asarray(vector, dtype=np.float32)
        return known

    def _write(self, unit: Unit) -> None:
        """Queue a resolved unit; units are written in groups (see :meth:`_flush_writes`)."""
        rows: list[_Row] = []
        for cid, whole, content_hash, resolved in zip(
            unit.ids, unit.pieces, unit.hashes, unit.resolved, strict=True
        ):
            assert resolved is not None, "a unit is written only when every chunk is resolved"
            for k, (piece, vector) in enumerate(resolved):
                meta: Metadata = {**unit.metadata, **piece.metadata}
                row_id = cid
                if len(resolved) > 1:  # parts of a chunk split for being over-long
                    row_id = sha256(f"{cid}\x1f{k}")[:32]
                    meta.update(split_of=cid, chunk_part=k)
                meta.update(
                    source=unit.source,
                    chunk_index=len(rows),
                    start_index=piece.start,
                    end_index=piece.end,
                    # Hashed once in _prepare, unless this is a part of the chunk.
                    content_hash=content_hash if piece is whole else sha256(piece.text),
                )
                if not rows:
                    # The source's hash is the source's, not the chunk's: it lives with the
                    # completion marker on the first chunk (nothing reads it elsewhere).
                    meta[UNIT_HASH_KEY] = unit.unit_hash
                rows.append(_Row(row_id, piece, vector, meta))
        self._ready.append((unit, rows))
        self._ready_rows += max(len(rows), 1)
        waited = time.monotonic() - self._last_flush
        if self._ready_rows >= FLUSH_ROWS or waited >= FLUSH_SECONDS:
            self._flush_writes()

    def _flush_writes(self) -> None:
        """Write the queued units with a handful of Chroma calls, in crash-safe order.

        Chroma's cost is per call (and grows with the rows written since its index was last
        saved), so many small files written one by one are slow. The order per group keeps the
        per-source guarantee: markers of rewritten sources are cleared first, then come new
        rows, metadata updates and stale deletions, and the completion markers come last.
        """
        group, self._ready, self._ready_rows = self._ready, [], 0
        self._last_flush = time.monotonic()
        if not group:
            return
        replacing = [u.source for u, _ in group if u.replace]
        self._unmark([u.source for u, _ in group if u.replace and u.status == "updated"])
        keep = {r.id for _, rows in group for r in rows}
        # Looked up before anything is written (the writes add only kept rows, so the answer is
        # the same after them): with nothing stale, new sources can carry their own markers.
        present = set(self._ids_of(replacing))
        stale = [i for i in present if i not in keep]
        marked = self._upsert(group, present=present, fold_markers=not stale)
        self._update_metadata(group)
        for start in range(0, len(stale), self.write_batch):
            self.collection.delete(ids=stale[start : start + self.write_batch])
        markers = [
            (rows[0].id, u.unit_hash)
            for u, rows in group
            if u.replace and rows and rows[0].id not in marked
        ]
        for start in range(0, len(markers), self.write_batch):
            part = markers[start : start + self.write_batch]
            self.collection.update(
                ids=[m[0] for m in part], metadatas=[{COMPLETE_KEY: m[1]} for m in part]
            )
        for unit, rows in group:
            if self.collect_ids:
                self.ids[unit.source] = [r.id for r in rows]
            self.units_written += 1
            if unit.status == "updated":
                self.report.files_updated += 1
            else:
                self.report.files_added += 1

    def _ids_of(self, sources: list[str]) -> list[str]:
        ids: list[str] = []
        for start in range(0, len(sources), self.write_batch):
            where = {"source": {"$in": sources[start : start + self.write_batch]}}
            ids.extend(self.collection.get(where=cast(Any, where), include=[])["ids"])
        return ids

    def _unmark(self, sources: list[str]) -> None:
        """Clear the completion markers of sources about to be rewritten.

        Otherwise a crash mid-rewrite would leave an old marker in place (Chroma merges
        metadata), and the half-written source would pass for the old, complete one.
        """
        for start in range(0, len(sources), self.write_batch):
            where = first_chunks_of(sources[start : start + self.write_batch])
            firsts = self.collection.get(where=cast(Any, where), include=[])["ids"]
            if firsts:
                self.collection.update(ids=firsts, metadatas=[{COMPLETE_KEY: None}] * len(firsts))

    def _upsert(
        self, group: list[tuple[Unit, list[_Row]]], *, present: set[str], fold_markers: bool
    ) -> set[str]:
        """Store the rows that have vectors, in calls of at most ``UPSERT_ROWS`` rows.

        Calls are cut between sources where possible. A new source whose rows all go into one
        ``add`` call gets its completion marker in that same call (when ``fold_markers``):
        Chroma appends a call's rows to its log in one SQL statement, so the rows and the
        marker land together or not at all, and the separate marker update is saved.

        Almost every row is new, and Chroma's ``add`` costs about 12% less than ``upsert``; but
        ``add`` silently keeps a row whose id exists, so the few that do (the same text added
        twice to one source in one run) go through ``upsert``.

        Args:
            group: The units and their rows.
            present: Every id stored for the group's replacing sources (an id is derived from
                its source, so only the other units' rows need looking up).
            fold_markers: Whether new sources may carry their markers (nothing is stale).

        Returns:
            The ids of the first chunks whose marker was written here.
        """
        limit = min(UPSERT_ROWS, self.write_batch)
        # Per call: (unit, its rows in this call, whether they are all of the unit's rows).
        calls: list[list[tuple[Unit, list[_Row], bool]]] = [[]]
        size = 0
        for unit, all_rows in group:
            rows = [r for r in all_rows if r.vector is not None]
            whole = len(rows) == len(all_rows) <= limit
            for start in range(0, len(rows), limit):
                part = rows[start : start + limit]
                if size + len(part) > limit and size:
                    calls.append([])
                    size = 0
                calls[-1].append((unit, part, whole))
                size += len(part)
        marked: set[str] = set()
        for call in calls:
            if not call:  # a group with no new rows
                continue
            existing = {r.id for u, rows, _ in call if u.replace for r in rows if r.id in present}
            if others := [r.id for u, rows, _ in call if not u.replace for r in rows]:
                existing.update(self.collection.get(ids=others, include=[])["ids"])
            new: list[_Row] = []
            for unit, rows, whole in call:
                fresh = [r for r in rows if r.id not in existing]
                if (
                    fold_markers
                    and whole
                    and unit.replace
                    and unit.status == "added"
                    and len(fresh) == len(rows)
                ):
                    first = fresh[0]
                    meta = {**first.metadata, COMPLETE_KEY: unit.unit_hash}
                    fresh[0] = _Row(first.id, first.piece, first.vector, meta)
                    marked.add(first.id)
                new.extend(fresh)
            upserts = [r for _, rows, _ in call for r in rows if r.id in existing]
            for write, chosen in (
                (self.collection.add, new),
                (self.collection.upsert, upserts),
            ):
                if chosen:
                    write(
                        ids=[r.id for r in chosen],
                        embeddings=cast(Any, np.stack([cast(Vector, r.vector) for r in chosen])),
                        documents=[r.piece.text for r in chosen],
                        metadatas=cast(Any, [r.metadata for r in chosen]),
                    )
        return marked

    def _update_metadata(self, group: list[tuple[Unit, list[_Row]]]) -> None:
        """Rewrite metadata that changed (e.g. a chunk moved), dropping keys no longer set."""
        changes: list[tuple[str, Metadata]] = []
        for unit, rows in group:
            for row in rows:
                if row.vector is not None:
                    continue
                stored = unit.stored.get(row.id, {})
                old = {k: v for k, v in stored.items() if k != COMPLETE_KEY}
                if old != row.metadata:
                    changes.append((row.id, {**dict.fromkeys(old), **row.metadata}))
        for start in range(0, len(changes), self.write_batch):
            part = changes[start : start + self.write_batch]
            self.collection.update(
                ids=[c[0] for c in part], metadatas=cast(Any, [c[1] for c in part])
            )
