"""The ingestion pipeline: units in, rows committed, nothing embedded twice, nothing half-done.

Every entry point (``add_texts``, ``add_documents``, ``add_files``, ``sync``, ``migrate``) streams
its :class:`~ollama_rag.ingest.units.Unit` s through one :class:`Pipeline` into a
:class:`~ollama_rag.storage.base.ChunkStore`. Units flow through three steps, with embedding in
background threads so reading, splitting and writing overlap with Ollama's work:

1. **prepare** — chunk ids from source + content; chunks already stored are not embedded again,
   and text already embedded under another source reuses its vector;
2. **embed** — the remaining chunks go out in batches (across units) to the host pool; a chunk
   Ollama reports as longer than the context is split further and its parts embedded instead;
3. **write** — once every chunk of a unit has its vector, the unit is committed through
   :meth:`ChunkStore.write <ollama_rag.storage.base.ChunkStore.write>`, several units per call,
   with its completion marker as the commit point. A long source does not wait for its last
   chunk: its embedded chunks are written FLUSH_ROWS at a time (unmarked), so writing overlaps
   with embedding, and its last write commits it. An interrupted run leaves sources either
   complete or unmarked; running it again finishes the unmarked ones without re-embedding what
   was written.

When a batch fails for good (after its retries), no new units are read, the batches already
queued are still tried once each, every unit they complete is written, and then the error is
raised: work that succeeded is kept, and a re-run resumes from there. An interrupt (Ctrl-C)
cancels what is queued at once and keeps only what is finished.

The async entry points (``aadd_*``) run this same pipeline in a worker thread; only the HTTP hop
of the embedding threads differs (``via``: :class:`~ollama_rag.ollama.LoopClients` sends each
request through the event loop's async client). Cancelling the awaiting task fails the requests
in flight and every later one at once, so a cancelled run ends as a failed batch does.
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ollama_rag.batching import BatchFeed
from ollama_rag.errors import ContextLengthExceededError
from ollama_rag.ingest.report import IngestReport
from ollama_rag.ingest.units import Piece, Unit
from ollama_rag.storage.base import ChunkRow, ChunkStore, SourceWrite, Vector
from ollama_rag.storage.schema import (
    CHUNK_INDEX,
    CHUNK_PART,
    COMPLETE,
    CONTENT_HASH,
    END,
    SOURCE,
    SPLIT_OF,
    START,
    UNIT_HASH,
    Metadata,
    chunk_id,
    part_id,
    sha256,
)

if TYPE_CHECKING:
    from ollama_rag.ollama import LoopClients, OllamaEmbedder
    from ollama_rag.splitting import CJKTextSplitter

__all__ = ["Pipeline", "embed_pieces"]

# Finished sources wait at most this long to be written together (a crash loses no more).
FLUSH_SECONDS = 0.5
# A group of finished sources is written once it has this many rows (or FLUSH_SECONDS passed),
# or, when the reading thread would otherwise wait for answers, once it has IDLE_FLUSH_ROWS.
# Smaller groups cost more per row (about 1.3 ms at 64 rows, 1.0 ms at 256 on CJK text).
FLUSH_ROWS = 256
IDLE_FLUSH_ROWS = 64
# Chunks of new sources looked up in the store together (see Pipeline.run).
PREPARE_CHUNKS = 256
# Each thread's first batch is this much smaller than batch_size: the first sources finish,
# and writing them starts, a quarter of a batch's time into the run instead of a whole one.
FIRST_BATCH_DIVISOR = 4
# Below this many characters a chunk that still exceeds the context is refused, not split.
MIN_SPLIT_CHARS = 8

_Rows = list[tuple[Piece, Vector | None]]  # per piece: its final (piece, vector) rows


def embed_pieces(
    embedder: OllamaEmbedder,
    splitter_factory: Callable[[int], CJKTextSplitter],
    pieces: list[Piece],
    *,
    via: LoopClients | None = None,
) -> list[list[tuple[Piece, Vector]]]:
    """Embed pieces; one list of (piece, vector) rows per input piece.

    A batch Ollama refuses as over-long is bisected to find the culprit, which is split in half
    at its best boundary and its parts embedded instead (recursively), so no text is cut.
    ``via`` sends the requests through an event loop's async clients.

    Raises:
        ContextLengthExceededError: A piece of a few characters still exceeds the context.
    """
    try:
        vectors = embedder.embed_texts([p.text for p in pieces], via=via)
    except ContextLengthExceededError:
        if len(pieces) > 1:
            mid = len(pieces) // 2
            return embed_pieces(embedder, splitter_factory, pieces[:mid], via=via) + embed_pieces(
                embedder, splitter_factory, pieces[mid:], via=via
            )
        return [_split_and_embed(embedder, splitter_factory, pieces[0], via)]
    return [
        [(piece, np.asarray(vector, dtype=np.float32))]
        for piece, vector in zip(pieces, vectors, strict=True)
    ]


def _split_and_embed(
    embedder: OllamaEmbedder,
    splitter_factory: Callable[[int], CJKTextSplitter],
    piece: Piece,
    via: LoopClients | None,
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
    rows = embed_pieces(embedder, splitter_factory, parts, via=via)
    return [row for part_rows in rows for row in part_rows]


@dataclass(eq=False)
class _Job:
    """A unit on its way through the pipeline."""

    unit: Unit
    ids: list[str]
    hashes: list[str]  # per piece, its content hash
    resolved: list[_Rows | None]
    stored: dict[str, Metadata] = field(default_factory=dict)
    existed: bool = False
    remaining: int = 0
    # A long source's rows are written as its first chunks are embedded (see take_rows).
    written: list[ChunkRow] = field(default_factory=list)
    next_piece: int = 0
    unmarked: bool = False

    @classmethod
    def of(cls, unit: Unit) -> _Job:
        if unit.copy:
            ids = [str(p.id) for p in unit.pieces]
            hashes = [str(p.metadata.get(CONTENT_HASH) or sha256(p.text)) for p in unit.pieces]
        else:
            hashes = [sha256(piece.text) for piece in unit.pieces]
            seen: Counter[str] = Counter()
            ids = []
            for content_hash in hashes:
                seen[content_hash] += 1
                ids.append(chunk_id(unit.source, content_hash, seen[content_hash]))
        return cls(unit, ids, hashes, [None] * len(unit.pieces))

    def ready_pieces(self) -> int:
        """How many pieces, from the next one to write, are resolved in a row."""
        end = self.next_piece
        while end < len(self.resolved) and self.resolved[end] is not None:
            end += 1
        return end - self.next_piece

    def take_rows(self, pieces: int) -> list[ChunkRow]:
        """The rows of the next ``pieces`` pieces (all resolved), in order."""
        unit = self.unit
        rows: list[ChunkRow] = []
        end = self.next_piece + pieces
        for i in range(self.next_piece, end):
            cid, whole, content_hash, resolved = (
                self.ids[i],
                unit.pieces[i],
                self.hashes[i],
                self.resolved[i],
            )
            assert resolved is not None, "rows are taken only from resolved pieces"
            for k, (piece, vector) in enumerate(resolved):
                meta: Metadata = (
                    dict(whole.metadata) if unit.copy else {**unit.metadata, **piece.metadata}
                )
                row_id = cid
                if len(resolved) > 1:  # parts of a chunk split for being over-long
                    row_id = part_id(cid, k)
                    meta.update({SPLIT_OF: cid, CHUNK_PART: k})
                    if k:  # the source's bookkeeping stays on the first part only
                        meta.pop(UNIT_HASH, None)
                        meta.pop(COMPLETE, None)
                if not unit.copy or len(resolved) > 1:
                    meta.update(
                        {
                            START: piece.start,
                            END: piece.end,
                            # Hashed once in _Job.of, unless this is a part of the chunk.
                            CONTENT_HASH: content_hash if piece is whole else sha256(piece.text),
                        }
                    )
                if not unit.copy:
                    index = len(self.written) + len(rows)
                    meta.update({SOURCE: unit.source, CHUNK_INDEX: index})
                    if index == 0:
                        # The source's hash is the source's, not the chunk's: it lives with the
                        # completion marker on the first chunk (nothing reads it elsewhere).
                        meta[UNIT_HASH] = unit.unit_hash
                rows.append(ChunkRow(row_id, piece.text, meta, vector, self.stored.get(row_id)))
        self.next_piece = end
        return rows

    def write(self, *, final: bool) -> SourceWrite:
        """The next write of this unit: its newly resolved rows, and on the last one the commit.

        The commit lists every row, those written earlier without their vectors (they are
        stored), so the store keeps them and deletes only what the source no longer has.
        """
        rows = self.take_rows(
            len(self.resolved) - self.next_piece if final else self.ready_pieces()
        )
        unit = self.unit
        unmark = unit.replace and self.existed and not self.unmarked
        self.unmarked = self.unmarked or unmark
        # Every id of a copied or already stored source was looked up in _prepare.
        checked = unit.copy or self.existed
        if not final:
            self.written.extend(rows)
            return SourceWrite(unit.source, rows, marker=None, unmark=unmark, checked=checked)
        earlier = [ChunkRow(r.id, r.text, r.metadata, None, r.metadata) for r in self.written]
        self.written = [*earlier, *rows]
        marker = unit.unit_hash if unit.replace else None
        return SourceWrite(unit.source, self.written, marker, unmark=unmark, checked=checked)


# One answer from an embedding thread: its batch, and per chunk its rows, or the error raised.
_Result = tuple[list[tuple[_Job, int]], list[list[tuple[Piece, Vector]]] | BaseException]


class Pipeline:
    """Runs units through prepare → embed → write (see the module docstring).

    Args:
        store: Where the rows go.
        embedder: Embeds document texts (prefix, dimension check, host pool).
        splitter_factory: Makes a splitter for a chunk size, to split over-long chunks.
        on_chunks: Called with the number of chunks embedded, for progress bars.
        report: The report to add to (a new one by default).
        collect_ids: Keep each source's chunk ids in :attr:`ids` (off for large file jobs, so
            memory does not grow with the corpus).
        via: Send the embedding requests through an event loop's async clients (the async
            write path, which runs this pipeline in a worker thread; see
            :class:`~ollama_rag.ollama.LoopClients`).
    """

    def __init__(
        self,
        *,
        store: ChunkStore,
        embedder: OllamaEmbedder,
        splitter_factory: Callable[[int], CJKTextSplitter],
        on_chunks: Callable[[int], None] | None = None,
        report: IngestReport | None = None,
        collect_ids: bool = True,
        via: LoopClients | None = None,
    ) -> None:
        self.store = store
        self.via = via
        self.embedder = embedder
        self.splitter_factory = splitter_factory
        self.on_chunks = on_chunks
        self.report = report if report is not None else IngestReport()
        self.ids: dict[str, list[str]] = {}
        self.collect_ids = collect_ids
        self.units_written = 0
        # Writes waiting for the next flush, each with its unit when it commits one.
        self._ready: list[tuple[SourceWrite, _Job | None]] = []
        # Units with some chunks embedded and some not (their embedded ones may be written).
        self._growing: set[_Job] = set()
        self._ready_rows = 0
        # As if a flush were due: the first finished units are written as soon as the reader
        # waits, so a run killed early has kept them; later ones are written in groups.
        self._last_flush = time.monotonic() - FLUSH_SECONDS
        pool = embedder.pool
        self._feed: BatchFeed[tuple[_Job, int]] = BatchFeed(
            batch_size=embedder.batch_size,
            workers=pool.workers,
            first=max(1, embedder.batch_size // FIRST_BATCH_DIVISOR),
        )
        self._results: queue.SimpleQueue[_Result] = queue.SimpleQueue()
        self._outstanding = 0  # chunks put in the feed whose result has not been collected
        self._failure: BaseException | None = None  # the first batch that failed for good
        # Chunks read ahead of the embedding threads: enough to keep every host busy, few
        # enough to bound memory, and a reserve to spread evenly over the hosts at the end.
        self._read_ahead = 2 * pool.workers * embedder.batch_size

    # ---------------------------------------------------------------- driving

    def run(self, units: Iterable[Unit]) -> IngestReport:
        """Ingest every unit (see the module docstring for what happens on errors)."""
        started = time.perf_counter()
        pool = self.embedder.pool
        requests_before = pool.requests
        pool.resume()
        try:
            # One loop per request slot (hosts x concurrency): each takes its next batch as
            # soon as its last answer is in, without waiting for this thread.
            for _ in range(pool.workers):
                pool.executor.submit(self._work)
            group: list[_Job] = []
            group_chunks = 0
            for unit in units:
                if self._failure is not None or (self.via is not None and self.via.cancelled):
                    break  # a cancelled async write reads no further, even with nothing to embed
                group.append(_Job.of(unit))
                group_chunks += len(unit.pieces)
                # Sources are looked up in the store a group at a time (a few calls per group,
                # not four per source); while the hosts run short, a group is one batch.
                short = len(self._feed) < self.embedder.batch_size
                if group_chunks >= (self.embedder.batch_size if short else PREPARE_CHUNKS):
                    self._prepare(group)
                    group, group_chunks = [], 0
                self._collect(block=False)
                while len(self._feed) >= self._read_ahead and self._failure is None:
                    self._collect(block=True)
            if group and self._failure is None:
                self._prepare(group)
            self._feed.close()
            while self._outstanding:
                self._collect(block=True)
            self._flush_writes()
            if self._failure is not None:
                raise self._failure
        except BaseException:
            # Stop the work still queued or retrying, so Ctrl-C returns promptly, but keep the
            # sources already finished: writing them is a few quick calls.
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

    def _prepare(self, jobs: list[_Job]) -> None:
        """Resolve what each unit's chunks need (nothing, a reused vector, or embedding)."""
        # A source without a first chunk has no chunks at all, and ids are derived from the
        # source: only the sources found need their chunks looked up. Copied chunks keep their
        # ids, so those are always looked up (a resumed copy finds what it wrote).
        sources = list(dict.fromkeys(j.unit.source for j in jobs if not j.unit.copy))
        present = set(self.store.stored_sources(sources)) if sources else set()
        for job in jobs:
            job.existed = job.unit.source in present and not job.unit.copy
        lookup = [j for j in jobs if j.existed or j.unit.copy]
        stored = self.store.stored_metadata([cid for job in lookup for cid in job.ids])
        wanted: dict[str, tuple[_Job, Piece]] = {}
        for job in lookup:
            job.stored = {cid: stored[cid] for cid in job.ids if cid in stored}
            wanted.update(
                (cid, (job, piece))
                for cid, piece in zip(job.ids, job.unit.pieces, strict=True)
                if cid not in job.stored
            )
        parts = self._stored_parts(wanted)
        known = self.store.vectors_for(
            sorted(
                {
                    content_hash
                    for job in jobs
                    for cid, content_hash, piece in zip(
                        job.ids, job.hashes, job.unit.pieces, strict=True
                    )
                    if cid not in job.stored and cid not in parts and piece.vector is None
                }
            )
        )
        for job in jobs:
            for i, (piece, cid) in enumerate(zip(job.unit.pieces, job.ids, strict=True)):
                if cid in job.stored:
                    job.resolved[i] = [(piece, None)]
                elif cid in parts:
                    job.resolved[i] = [(part, None) for part in parts[cid]]
                elif piece.vector is not None:
                    job.resolved[i] = [(piece, piece.vector)]
                elif (vector := known.get(job.hashes[i])) is not None:
                    job.resolved[i] = [(piece, vector)]
            todo = [i for i, r in enumerate(job.resolved) if r is None]
            self.report.chunks_skipped += len(job.unit.pieces) - len(todo)
            job.remaining = len(todo)
            if not todo:
                self._write(job)
                continue
            for i in todo:
                self._feed.put((job, i))
            self._outstanding += len(todo)

    def _stored_parts(self, wanted: dict[str, tuple[_Job, Piece]]) -> dict[str, list[Piece]]:
        """Chunks stored as parts (split for being over-long), by the id of the whole chunk.

        Each part found is also recorded in its job's ``stored`` (its metadata may change).
        """
        if not wanted:
            return {}
        found: dict[str, list[tuple[int, Piece]]] = {}
        for part in self.store.stored_parts(list(wanted)):
            whole = str(part.metadata[SPLIT_OF])
            job, piece = wanted[whole]
            job.stored[part.id] = part.metadata
            start = int(part.metadata[START])
            found.setdefault(whole, []).append(
                (
                    int(part.metadata[CHUNK_PART]),
                    Piece(part.text, start, start + len(part.text), piece.metadata),
                )
            )
        return {cid: [p for _, p in sorted(parts)] for cid, parts in found.items()}

    def _collect(self, *, block: bool) -> None:
        """Take in the answers that have arrived (waiting for one if ``block``).

        While waiting, the reader writes what is ready instead (long sources' embedded chunks
        included): a group of IDLE_FLUSH_ROWS rows at once, and anything finished once it has
        waited FLUSH_SECONDS, so finished work is never held back for long behind a slow
        request.
        """
        timeout: float | None = None
        if block and self._results.empty():
            # Long sources' embedded chunks count as ready too.
            for job in [j for j in self._growing if j.ready_pieces() >= IDLE_FLUSH_ROWS]:
                self._queue(job.write(final=False), None)
        if block and self._ready and self._results.empty():
            due = self._last_flush + FLUSH_SECONDS - time.monotonic()
            if self._ready_rows >= IDLE_FLUSH_ROWS or due <= 0:
                self._flush_writes()
            else:
                timeout = due
        try:
            result = self._results.get(block=block, timeout=timeout)
        except queue.Empty:
            if block:
                self._flush_writes()  # waited FLUSH_SECONDS with rows ready
            return
        while True:
            batch, rows_or_error = result
            self._outstanding -= len(batch)
            if isinstance(rows_or_error, BaseException):
                if not isinstance(rows_or_error, Exception):
                    raise rows_or_error  # a worker interrupted: stop at once
                if self._failure is None:
                    self._failure = rows_or_error  # raised once the queued work is done
                    self.embedder.pool.fail_fast()
            else:
                for (job, i), rows in zip(batch, rows_or_error, strict=True):
                    job.resolved[i] = list(rows)
                    job.remaining -= 1
                    if job.remaining == 0:
                        self._growing.discard(job)
                        self._write(job)
                        continue
                    # A long source: write what is embedded so far, so that writing overlaps
                    # with embedding the rest instead of all coming after the last answer.
                    self._growing.add(job)
                    if job.ready_pieces() >= FLUSH_ROWS:
                        self._queue(job.write(final=False), None)
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
                    self.embedder,
                    self.splitter_factory,
                    [job.unit.pieces[i] for job, i in batch],
                    via=self.via,
                )
            except BaseException as err:  # handed to the reading thread, which raises it
                rows = err
            self._results.put((batch, rows))

    # ---------------------------------------------------------------- writing

    def _write(self, job: _Job) -> None:
        """Queue a resolved unit; units are written in groups (see :meth:`_flush_writes`)."""
        self._queue(job.write(final=True), job)

    def _queue(self, write: SourceWrite, finished: _Job | None) -> None:
        self._ready.append((write, finished))
        # Rows that cost a store call: new ones, and stored ones whose metadata changed.
        work = sum(r.vector is not None or r.stored != r.metadata for r in write.rows)
        self._ready_rows += max(work, 1)
        waited = time.monotonic() - self._last_flush
        if self._ready_rows >= FLUSH_ROWS or waited >= FLUSH_SECONDS:
            self._flush_writes()

    def _flush_writes(self) -> None:
        """Write the queued rows with one store call (the store's cost is per call)."""
        group, self._ready, self._ready_rows = self._ready, [], 0
        self._last_flush = time.monotonic()
        if not group:
            return
        self.store.write([write for write, _ in group])
        for write, job in group:
            if job is None:  # a long source's first rows; it is counted when committed
                continue
            if self.collect_ids:
                self.ids[write.source] = [r.id for r in write.rows]
            self.units_written += 1
            if job.unit.copy:
                continue
            if job.existed:
                self.report.files_updated += 1
            else:
                self.report.files_added += 1
