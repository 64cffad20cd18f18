"""The BM25 index of the lexical side: Tantivy over analysed terms, one folder per collection.

Each chunk's text is turned into terms by an :class:`~ollama_rag.lexical.analysis.Analyzer`
(character bigrams and unigrams for CJK by default); the terms, joined by spaces, are indexed
by `Tantivy <https://github.com/quickwit-oss/tantivy>`_ with its whitespace tokenizer, so it
indexes exactly the analyser's terms, and ranked by its BM25 (k1 = 1.2, b = 0.75), whose
block-max WAND finds the top hits without scoring every chunk that shares a common term.

Why Tantivy and not SQLite FTS5 (measured, docs/performance.md): FTS5's ``bm25()`` scores every
row matching any query term, and CJK queries share bigrams with most chunks, so a query took
68 ms at 20,000 chunks (338 ms with unigrams) and seconds at 100,000; Tantivy answers in a few
milliseconds and its files are a third of the size.

The text itself is not stored; only each chunk's id (to map hits back) and source. Changes are
made durable by Tantivy commits, which are atomic: a process killed at any instant leaves the
folder as it was at its last commit. A small JSON file beside it records what
:class:`~ollama_rag.storage.hybrid.HybridStore` needs to keep the index in step with the
vectors (the write token, the analyser, the collection id), replaced atomically after each
commit.

A commit costs 40-100 ms (Tantivy syncs its files), far more than indexing a few hundred
chunks, so an index that may keep its writer (one process writes it: ``hold_writer=True``)
commits when ``COMMIT_EVERY`` changes are pending, before anything reads it, and on
:meth:`LexicalIndex.close` — not after every write. Changes not yet committed when a process
dies are simply missing, and the write token recorded with the last commit says so: the next
open catches them up from the stored text.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import tantivy

__all__ = ["FORMAT", "LexicalIndex"]

FORMAT = 2
"""The layout of the folder; a folder of another format is rebuilt."""

STATE_FILE = "ollama-rag-lexical.json"
# Tantivy's minimum is 15 MB per writer thread; one thread writes (commits are per change).
_WRITER_HEAP = 32 * 1024 * 1024
# How long to wait for another process's writer (clients of one server sharing a cache).
_LOCK_WAIT = 30.0
COMMIT_EVERY = 20_000
"""Pending changes that make a held writer commit without waiting for a read or close."""
_SET = 1000  # ids per term-set query


# Per folder, the index object of this process holding its writer: Tantivy allows one writer
# per folder, so another object on the same folder (a migration resumed after a failure, with
# a new side store) takes it over, after the holder commits what it has.
_holders: dict[str, weakref.ref[LexicalIndex]] = {}
_holders_lock = threading.Lock()


def _schema() -> Any:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("terms", stored=False, tokenizer_name="whitespace", index_option="freq")
    builder.add_text_field("id", stored=True, tokenizer_name="raw")
    builder.add_text_field("source", stored=False, tokenizer_name="raw")
    return builder.build()


class LexicalIndex:
    """One collection's BM25 index in a folder (or in memory).

    Args:
        folder: The index folder (created if missing), or None for an in-memory index.
        hold_writer: Keep one writer open and commit in batches (see the module docstring);
            only for an index no other process writes.

    Attributes:
        folder: The folder, or None.
    """

    def __init__(self, folder: str | os.PathLike[str] | None, *, hold_writer: bool = False) -> None:
        self.folder = None if folder is None else str(folder)
        self._schema = _schema()
        self._lock = threading.RLock()
        self._state: dict[str, str] = {}
        self._hold = hold_writer
        self._held: Any = None  # the open writer, while holding one
        # Uncommitted changes: chunk id -> added (True) or deleted (False), by source too.
        self._pending: dict[str, bool] = {}
        self._pending_sources: dict[str, set[str]] = {}
        self._pending_state: dict[str, str | None] = {}
        if self.folder is None:
            self._index = tantivy.Index(self._schema)
        else:
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            if tantivy.Index.exists(self.folder):
                self._index = tantivy.Index.open(self.folder)
            else:
                self._index = tantivy.Index(self._schema, path=self.folder)
            state = Path(self.folder, STATE_FILE)
            if state.exists():
                self._state = dict(json.loads(state.read_text(encoding="utf-8")))
        self._index.reload()

    # ------------------------------------------------------------------ state

    def get(self, key: str) -> str | None:
        """A recorded value (``format``, ``analyzer``, ``uid``, ``token``), or None.

        Values given with changes not yet committed count: they are this process's view.
        """
        with self._lock:
            if key in self._pending_state:
                return self._pending_state[key]
            return self._state.get(key)

    def record(self, **values: str | None) -> None:
        """Record values (None removes one); the file is replaced atomically."""
        with self._lock:
            state = {**self._state, **{k: v for k, v in values.items() if v is not None}}
            for key, value in values.items():
                if value is None:
                    state.pop(key, None)
            if self.folder is not None:
                fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".state-")
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(state, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, os.path.join(self.folder, STATE_FILE))
            self._state = state

    def _searcher(self) -> Any:
        self.flush()  # a read sees every change made before it
        self._index.reload()  # and what another writer (process) committed
        return self._index.searcher()

    def flush(self) -> None:
        """Commit pending changes, then record the state given with them."""
        with self._lock:
            if self._held is None and not self._pending_state:
                return
            if self._held is not None and self._pending:
                self._held.commit()
                self._index.reload()
            self._pending.clear()
            self._pending_sources.clear()
            if self._pending_state:
                state, self._pending_state = self._pending_state, {}
                self.record(**state)

    def count(self) -> int:
        """The number of indexed chunks."""
        with self._lock:
            return int(self._searcher().num_docs)

    def ids(self) -> set[str]:
        """Every indexed chunk id."""
        with self._lock:
            searcher = self._searcher()
            total = int(searcher.num_docs)
            if not total:
                return set()
            hits = searcher.search(tantivy.Query.all_query(), total, count=False).hits
            return {searcher.doc(address)["id"][0] for _, address in hits}

    def ids_of(self, sources: Sequence[str]) -> set[str]:
        """The indexed chunk ids of ``sources`` (uncommitted changes included, no commit)."""
        found: set[str] = set()
        with self._lock:
            self._index.reload()
            searcher = self._index.searcher()
            for source in sources:
                found.update(self._pending_sources.get(source, ()))
            for start in range(0, len(sources), _SET):
                query = tantivy.Query.term_set_query(
                    self._schema, "source", list(sources[start : start + _SET])
                )
                hits = searcher.search(query, max(1, int(searcher.num_docs)), count=False).hits
                found.update(searcher.doc(address)["id"][0] for _, address in hits)
            return {cid for cid in found if self._pending.get(cid, True)}

    def _present(self, searcher: Any, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), _SET):
            part = list(ids[start : start + _SET])
            query = tantivy.Query.term_set_query(self._schema, "id", part)
            hits = searcher.search(query, len(part), count=False).hits
            found.update(searcher.doc(address)["id"][0] for _, address in hits)
        return found

    # ------------------------------------------------------------------ writing

    def _new_writer(self) -> Any:
        """A writer (Tantivy allows one per folder, across processes): waits for another's."""
        if self.folder is not None:
            with _holders_lock:
                found = _holders.get(self.folder)
                holder = found() if found is not None else None
                if self._hold:
                    _holders[self.folder] = weakref.ref(self)
            if holder is not None and holder is not self:
                holder.release()
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                writer = self._index.writer(_WRITER_HEAP, 1)
                break
            except ValueError as err:
                if "lock" not in str(err).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        # A process killed during a commit leaves the files it had written (a segment's
        # ".<opstamp>.del") while meta.json still names the last commit. Catching up replays
        # the same number of operations, reaches the same opstamp, and the commit then fails
        # to create a file that exists. Tantivy registers every file it writes before writing
        # it, so its collection deletes exactly those no commit refers to.
        writer.garbage_collect_files()
        return writer

    def apply(
        self,
        *,
        add: Iterable[tuple[str, str, Sequence[str]]] = (),
        delete: Iterable[str] = (),
        state: dict[str, str | None] | None = None,
    ) -> None:
        """Delete and add chunks in one commit, then record ``state``.

        Args:
            add: ``(chunk id, source, terms)``; a chunk already indexed is left as it is
                (an id names one text, so its terms cannot have changed).
            delete: Chunk ids; ids not indexed are ignored.
            state: Values to record once the change is committed (the write token).
        """
        adding = list(add)
        gone = list(delete)
        with self._lock:
            if adding or gone:
                self._index.reload()
                committed = self._present(self._index.searcher(), [c for c, _, _ in adding])
                writer = self._held if self._held is not None else self._new_writer()
                try:
                    for cid in gone:
                        writer.delete_documents_by_term("id", cid)
                        self._pending[cid] = False
                    for cid, source, terms in adding:
                        pending = self._pending.get(cid)
                        if pending is True or (cid in committed and pending is None):
                            continue  # indexed already: an id names one text
                        writer.add_document(
                            tantivy.Document(id=cid, source=source, terms=" ".join(terms))
                        )
                        self._pending[cid] = True
                        self._pending_sources.setdefault(source, set()).add(cid)
                except BaseException:
                    writer.rollback()
                    self._pending.clear()
                    self._pending_sources.clear()
                    raise
                if not self._hold:
                    writer.commit()
                    writer.wait_merging_threads()
                    del writer  # drops the folder's writer lock
                    self._index.reload()
                    self._pending.clear()
                    self._pending_sources.clear()
                elif self._held is None:
                    self._held = writer
            if state:
                self._pending_state.update(state)
            if not self._hold or len(self._pending) >= COMMIT_EVERY:
                self.flush()

    # ------------------------------------------------------------------ search

    def _query(self, terms: Sequence[str]) -> Any | None:
        unique = list(dict.fromkeys(t for t in terms if t))
        if not unique:
            return None
        return tantivy.Query.boolean_query(
            [
                (tantivy.Occur.Should, tantivy.Query.term_query(self._schema, "terms", t))
                for t in unique
            ]
        )

    def search(
        self, terms: Sequence[str], *, limit: int | None, among: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """Chunk ids ranked by BM25 for any of ``terms``, best first, with their scores.

        Args:
            terms: The query's terms (repeats are ignored).
            limit: At most this many; None for every chunk holding a term.
            among: Rank only these chunks (those a filter lets through).

        Returns:
            ``(chunk id, BM25 score)`` pairs; higher scores are better.
        """
        query = self._query(terms)
        if query is None or (among is not None and not among):
            return []
        if among is not None:
            # The id clause only selects: it adds a constant 0 to the BM25 score.
            only = tantivy.Query.const_score_query(
                tantivy.Query.term_set_query(self._schema, "id", list(among)), 0.0
            )
            query = tantivy.Query.boolean_query(
                [(tantivy.Occur.Must, query), (tantivy.Occur.Must, only)]
            )
        with self._lock:
            searcher = self._searcher()
            total = int(searcher.num_docs)
            if not total:
                return []
            hits = searcher.search(query, min(limit or total, total), count=False).hits
            return [(searcher.doc(address)["id"][0], float(score)) for score, address in hits]

    def scores(self, terms: Sequence[str], ids: Sequence[str]) -> dict[str, float]:
        """BM25 scores of the chunks ``ids`` that hold any of ``terms``."""
        query = self._query(terms)
        if query is None or not ids:
            return {}
        found: dict[str, float] = {}
        with self._lock:
            searcher = self._searcher()
            for start in range(0, len(ids), _SET):
                part = list(ids[start : start + _SET])
                # The id clause only selects: it adds a constant 0 to the BM25 score.
                among = tantivy.Query.const_score_query(
                    tantivy.Query.term_set_query(self._schema, "id", part), 0.0
                )
                both = tantivy.Query.boolean_query(
                    [(tantivy.Occur.Must, query), (tantivy.Occur.Must, among)]
                )
                hits = searcher.search(both, len(part), count=False).hits
                found.update(
                    (searcher.doc(address)["id"][0], float(score)) for score, address in hits
                )
        return found

    # ------------------------------------------------------------------ lifecycle

    def release(self) -> None:
        """Commit what is pending and let go of the writer (taken again when needed).

        The writer (and with it the folder's lock) is let go even if the commit fails: what
        it held is not recorded as committed, so the next open catches it up.
        """
        with self._lock:
            held = self._held
            try:
                self.flush()
                if held is not None:
                    held.wait_merging_threads()
            finally:
                # Dropping the last reference closes the writer; a traceback kept by the
                # caller must not hold this frame's.
                self._held = held = None

    def close(self) -> None:
        """Commit what is pending and let go of the writer. Safe to call twice."""
        self.release()

    def remove(self) -> None:
        """Drop pending changes and remove the folder (the index is rebuilt elsewhere)."""
        with self._lock:
            if self._held is not None:
                self._held.rollback()
                self._held = None
            self._pending.clear()
            self._pending_sources.clear()
            self._pending_state.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
