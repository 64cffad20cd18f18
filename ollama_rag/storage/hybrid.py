"""A vector store and its lexical index, written in one step: :class:`HybridStore`.

``RagIndex`` wraps every store (Chroma, or one passed as ``store=``) in a ``HybridStore``. It
forwards each call to the vector store, and keeps a BM25 index
(:class:`~ollama_rag.lexical.index.LexicalIndex`) of the same chunks in step with it:

- **Writes** (add, replace, delete, and so sync, migration and repair, which write through the
  same calls) change the vectors and then the lexical index, inside the store's write gate.
  Before the vectors change, a fresh *write token* is stored with them; the lexical index
  records the token of the last change it applied.
- **Catching up**: when the tokens differ, or the two hold different numbers of chunks, the
  lexical index is brought in step from the stored ids and texts (no re-embedding): after a
  process was killed between the two writes, or when another client of a Chroma server wrote.
  This is checked when the index is opened, and on a Chroma server before every search.
- **One folder per collection**, named after the vector collection's id: a migration or
  repair builds the new collection's folder beside it and the switch takes it over, so the
  vectors and the lexical index of one collection are never mixed with another's.
- **Rebuilt, never wrong**: a folder written by another analyser, of another format, or that
  cannot be read is rebuilt from the stored text (an ``IndexRepairedWarning`` says so
  when it was unreadable).

Where the folder lives: ``<index directory>/lexical/<collection id>/`` for an index on
disk (a read-only open works on its private snapshot's copy); for a Chroma server, the
folder ``lexical_dir=`` names, by default ``$OLLAMA_RAG_CACHE/lexical`` (else
``~/.cache/ollama-rag/lexical``), where clients on one machine share it; in memory for an
in-memory index.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ollama_rag.errors import LEXICAL_REBUILT_MESSAGE, IndexRepairedWarning, RagIndexError
from ollama_rag.lexical.index import FORMAT, LexicalIndex
from ollama_rag.storage.base import (
    ChunkStore,
    CollectionSummary,
    Hit,
    SourceWrite,
    StoredChunk,
    StoredSource,
    Vector,
    Where,
    folder_size,
)
from ollama_rag.storage.lock import LEXICAL_DIR
from ollama_rag.storage.schema import SOURCE, Metadata

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore

    from ollama_rag.lexical.analysis import Analyzer
    from ollama_rag.manifest import IndexManifest
    from ollama_rag.storage.base import IndexWriter

__all__ = ["CACHE_ENV", "FILTER_FIRST", "LEXICAL_DIR", "HybridStore", "default_cache_dir"]

_R = TypeVar("_R")

CACHE_ENV = "OLLAMA_RAG_CACHE"
_CATCH_UP_BATCH = 500
# A filtered lexical search ranks this many candidates first, and 8 times more each round
# while fewer than k of them pass the filter.
_FIRST_CANDIDATES = 100
FILTER_FIRST = 20_000
"""A filter letting at most this many chunks through is applied before BM25 ranks."""
_OUT_OF_STEP = "out-of-step"
# What Tantivy raises for a folder it cannot read (garbage, truncated or missing files).
_UNREADABLE = (ValueError, OSError, json.JSONDecodeError)

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$OLLAMA_RAG_CACHE``, else ``$XDG_CACHE_HOME/ollama-rag``, else ``~/.cache/ollama-rag``."""
    if found := os.environ.get(CACHE_ENV):
        return Path(found).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ollama-rag"


class HybridStore(ChunkStore):
    """A vector store with a BM25 index kept in step (see the module docstring).

    Args:
        vectors: The vector store it wraps (and closes).
        lexical_dir: The folder for the lexical indexes instead of the default.
    """

    def __init__(self, vectors: ChunkStore, *, lexical_dir: str | os.PathLike[str] | None = None):
        super().__init__(location=vectors.location, path=vectors.path)
        self.vectors = vectors
        self._lexical_dir = None if lexical_dir is None else Path(lexical_dir).expanduser()
        self._analyzer: Analyzer | None = None
        self._lexical: LexicalIndex | None = None
        self._token = _OUT_OF_STEP  # what the change being written records
        # Held across a write and across catching up, so that neither interleaves the other.
        self._step = threading.RLock()

    # ------------------------------------------------------------------ the lexical index

    @property
    def analyzer(self) -> Analyzer | None:
        """The analyser the lexical index uses."""
        return self._analyzer

    def use_analyzer(self, analyzer: Analyzer) -> None:
        """Index with ``analyzer`` from now on (before :meth:`open_lexical`, or a repair)."""
        self._analyzer = analyzer

    @property
    def lexical_folder(self) -> Path | None:
        """The lexical index's folder for the current collection (None: in memory, or none)."""
        uid = self.vectors.uid
        if uid is None:
            return None
        if self._lexical_dir is not None:
            folder: Path | None = self._lexical_dir
        elif (files := self.vectors.files) is not None:
            folder = Path(files) / LEXICAL_DIR
        elif self.vectors.shared:
            folder = default_cache_dir() / LEXICAL_DIR
        else:
            folder = None
        return None if folder is None else folder / uid

    def open_lexical(self) -> None:
        """Open the collection's lexical index, rebuilding or catching it up as needed."""
        analyzer = self._need_analyzer()
        uid = self.vectors.uid
        if uid is None:
            return
        with self._step:
            if self._lexical is not None:
                self._lexical.close()
                self._lexical = None
            file = self.lexical_folder
            state = {"format": str(FORMAT), "uid": uid, "analyzer": analyzer.identity}
            lexical = self._open_file(file)
            if lexical is not None and any(lexical.get(k) != v for k, v in state.items()):
                if lexical.count() or lexical.get("analyzer") is not None:
                    log.info("rebuilding the lexical index %s for %s", file, analyzer.identity)
                    lexical.remove()
                    lexical = LexicalIndex(file, hold_writer=not self.vectors.shared)
                lexical.record(**state)
            if lexical is None:  # unreadable: rebuilt from the stored text
                lexical = LexicalIndex(file, hold_writer=not self.vectors.shared)
                lexical.record(**state)
            self._lexical = lexical
            if not self._in_step():
                self._catch_up()

    def _open_file(self, file: Path | None) -> LexicalIndex | None:
        """The index in ``file``, or None (and the folder removed) when it cannot be read."""
        try:
            lexical = LexicalIndex(file, hold_writer=not self.vectors.shared)
            lexical.count()
        except _UNREADABLE as err:
            if file is None:
                raise
            self._unreadable(file, err)
            return None
        return lexical

    def _unreadable(self, file: Path, err: Exception) -> None:
        """Remove a lexical index folder that cannot be read, saying it is rebuilt."""
        if self._lexical is not None:
            with contextlib.suppress(Exception):
                self._lexical.close()
            self._lexical = None
        shutil.rmtree(file, ignore_errors=True)
        warnings.warn(
            LEXICAL_REBUILT_MESSAGE.format(where=self.location, file=file, error=err),
            IndexRepairedWarning,
            stacklevel=5,
        )

    def _need_analyzer(self) -> Analyzer:
        if self._analyzer is None:
            msg = f"The lexical index of {self.location} has no analyser set"
            raise RagIndexError(msg, path=self.path)
        return self._analyzer

    def _need_lexical(self) -> LexicalIndex:
        if self._lexical is None:
            self.open_lexical()
        if self._lexical is None:
            msg = f"No index at {self.location} yet"
            raise RagIndexError(msg, path=self.path)
        return self._lexical

    def _in_step(self) -> bool:
        lexical = self._need_lexical()
        return (
            lexical.get("token") == self.vectors.write_token()
            and lexical.count() == self.vectors.count()
        )

    def _catch_up(self) -> None:
        """Bring the lexical index in step with the stored chunks (texts read, not embedded)."""
        lexical = self._need_lexical()
        analyzer = self._need_analyzer()
        with self._step:
            token = self.vectors.write_token()
            stored: list[str] = []
            for page in self.vectors.iter_ids():
                stored.extend(page)
            have = lexical.ids()
            known = set(stored)
            missing = [i for i in stored if i not in have]
            if missing:
                log.info("indexing %d chunks of %s for lexical search", len(missing), self.location)
            for start in range(0, len(missing), _CATCH_UP_BATCH):
                chunks = self.vectors.fetch(missing[start : start + _CATCH_UP_BATCH])
                lexical.apply(add=[_entry(analyzer, c.id, c.text, c.metadata) for c in chunks])
            lexical.apply(delete=[i for i in have if i not in known], state={"token": token})

    def check_step(self) -> None:
        """Open the lexical index if need be; on a Chroma server, catch up with other clients."""
        with self._step:
            if self._lexical is None:
                self.open_lexical()
            elif self.vectors.shared and not self._in_step():
                self._catch_up()

    def lexical_query(
        self,
        query: str,
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        """The ``k`` best rows by BM25 that pass the filters (see the class docstring)."""
        terms = self._query_terms(query)
        args = (where, where_document, include_vectors)
        return self._lexical_query(terms, k, *args)

    def _query_terms(self, query: str) -> list[str]:
        """The query's terms, once the store is checked open and the index in step."""
        self.check_open()
        self.check_step()
        return self._need_analyzer().query_terms(query)

    def _reading(self, read: Callable[[], _R]) -> _R:
        """``read`` the lexical index; a folder found unreadable is rebuilt and read again.

        ``read`` calls the lexical index only: a ``ValueError`` from the vector store (such as
        Chroma refusing a filter) must not pass for a damaged lexical index and have it rebuilt.
        """
        try:
            return read()
        except _UNREADABLE as err:
            if self.lexical_folder is None:
                raise
            self._unreadable(self.lexical_folder, err)
            self.open_lexical()
            return read()

    def _lexical_query(
        self,
        terms: list[str],
        k: int,
        where: Where | None,
        where_document: Where | None,
        include_vectors: bool,
    ) -> list[Hit]:
        ranked = self._rank(terms, k, where, where_document)
        chunks = self.vectors.fetch(
            [cid for cid, _ in ranked],
            where=where,
            where_document=where_document,
            include_vectors=include_vectors,
        )
        scores = dict(ranked)
        return [Hit(c.id, c.text, c.metadata, scores[c.id], c.vector) for c in chunks[:k]]

    def _rank(
        self, terms: list[str], k: int, where: Where | None, where_document: Where | None
    ) -> list[tuple[str, float]]:
        """The ``k`` best ids by BM25 that pass the filters.

        A filter that lets at most ``FILTER_FIRST`` chunks through is applied first (the
        vector store lists them, BM25 ranks only those): exact, however selective. A wider
        one is checked on the ranked candidates, a growing page at a time, until ``k`` pass.
        """
        if not (where or where_document):
            return self._search(terms, k)
        among = self.vectors.ids_where(where, where_document, limit=FILTER_FIRST)
        if among is not None:
            return self._search(terms, k, among)
        limit = max(_FIRST_CANDIDATES, 4 * k)
        while True:
            ranked = self._search(terms, limit)
            passing = {
                c.id
                for c in self.vectors.fetch(
                    [cid for cid, _ in ranked], where=where, where_document=where_document
                )
            }
            # More than FILTER_FIRST chunks pass, so a few pages find k of them.
            if len(passing) >= k or len(ranked) < limit:
                return [(cid, score) for cid, score in ranked if cid in passing][:k]
            limit *= 8

    def lexical_rank(
        self,
        query: str,
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
    ) -> list[tuple[str, float]]:
        """The ids of the ``k`` best rows by BM25 that pass the filters, with their scores."""
        terms = self._query_terms(query)
        return self._rank(terms, k, where, where_document)

    def _search(
        self, terms: list[str], limit: int, among: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """The lexical index's best ``limit`` ids for ``terms`` (rebuilt first if unreadable)."""
        return self._reading(lambda: self._need_lexical().search(terms, limit=limit, among=among))

    def ids_where(
        self, where: Where | None, where_document: Where | None, *, limit: int
    ) -> list[str] | None:
        """The vector store's ids passing the filters."""
        return self.vectors.ids_where(where, where_document, limit=limit)

    def lexical_ids(self) -> set[str]:
        """The chunk ids the lexical index holds (to check it against the vectors)."""
        return self._need_lexical().ids()

    def lexical_scores(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """BM25 scores of ``query`` for ``ids`` (0 where no term matches)."""
        if not ids:
            return {}
        found = self._need_lexical().scores(self._need_analyzer().query_terms(query), ids)
        return {i: found.get(i, 0.0) for i in ids}

    # ------------------------------------------------------------------ writing

    def write(self, group: Sequence[SourceWrite]) -> None:
        """Write the vectors, then the same rows' terms (see the module docstring)."""
        if not group:
            return
        analyzer = self._need_analyzer()
        add = [
            _entry(analyzer, row.id, row.text, row.metadata, source=w.source)
            for w in group
            for row in w.rows
            if row.vector is not None
        ]
        replaced = [w.source for w in group if w.marker is not None]
        keep = {row.id for w in group for row in w.rows}
        with self._changing() as lexical:
            stale = lexical.ids_of(replaced) - keep if replaced else set()
            self.vectors.write(group)
            self._applied(lexical, add=add, delete=stale)

    def delete_ids(self, ids: Sequence[str]) -> int:
        """Delete rows by id from the vectors, then from the lexical index."""
        with self._changing() as lexical:
            deleted = self.vectors.delete_ids(ids)
            self._applied(lexical, delete=ids)
        return deleted

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete every row of ``sources`` from the vectors, then from the lexical index."""
        with self._changing() as lexical:
            gone = lexical.ids_of(sources)
            deleted = self.vectors.delete_sources(sources)
            self._applied(lexical, delete=gone)
        return deleted

    @contextlib.contextmanager
    def _changing(self) -> Iterator[LexicalIndex]:
        """Hold the gate; store a new write token before the vectors change."""
        lexical = self._need_lexical()
        with self._step, self.vectors.writing():
            previous, token = self.vectors.new_write_token()
            # Out of step already (another client wrote): applying this change is not enough.
            self._token = token if previous == lexical.get("token") else _OUT_OF_STEP
            yield lexical

    def _applied(
        self,
        lexical: LexicalIndex,
        *,
        add: Sequence[tuple[str, str, Sequence[str]]] = (),
        delete: Sequence[str] | set[str] = (),
    ) -> None:
        lexical.apply(add=add, delete=list(delete), state={"token": self._token})

    # ------------------------------------------------------------------ migration and repair

    def side(self, manifest: IndexManifest, *, version: str) -> ChunkStore:
        """The vector store's side store, with a lexical index of its own (same analyser)."""
        side = HybridStore(self.vectors.side(manifest, version=version))
        side._lexical_dir = self._lexical_dir
        side._analyzer = self._need_analyzer()
        side.open_lexical()  # a resumed side store catches up with what it holds
        return side

    def switch(self, side: ChunkStore) -> None:
        """Switch the vectors, then take over the side store's lexical index."""
        if not isinstance(side, HybridStore):
            msg = f"Cannot switch {self.location} to {side.location}: not its side store"
            raise RagIndexError(msg, path=self.path)
        if side._lexical is not None:
            side._lexical.flush()  # durable before the vectors switch to the side's
        with self._step, self.vectors.writing():
            self.vectors.switch(side.vectors)
            old, self._lexical, side._lexical = self._lexical, side._lexical, None
            if old is not None:
                old.remove()
        side.close()

    def recover(self) -> None:
        """Finish an interrupted switch of the vector store."""
        self.vectors.recover()

    def damage(self) -> str | None:
        """What is broken in the vector store's files (the lexical index is rebuilt on open)."""
        return self.vectors.damage()

    def salvage(self, *, batch: int = 1000) -> Iterator[list[StoredChunk]]:
        """What the vector store can still read."""
        return self.vectors.salvage(batch=batch)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the lexical index and the vector store. Safe to call twice."""
        if not self._closed:
            super().close()
            try:
                if self._lexical is not None:
                    self._lexical.close()
            finally:
                # Whatever the lexical index raised, the vectors are saved and the lock
                # released; the lexical index is caught up from them on the next open.
                self.vectors.close()

    def check_open(self) -> None:
        """Refuse a closed store, or one used in a fork()ed child (see ``ChunkStore``)."""
        super().check_open()
        self.vectors.check_open()

    def doing(self, what: str) -> AbstractContextManager[None]:
        """What the vector store's lock records."""
        return self.vectors.doing(what)

    # ------------------------------------------------------------------ forwarded as they are

    @property
    def uid(self) -> str | None:
        """The vector collection's id."""
        return self.vectors.uid

    @property
    def files(self) -> str | None:
        """The vector store's directory."""
        return self.vectors.files

    @property
    def shared(self) -> bool:
        """Whether other clients may write the vector store."""
        return self.vectors.shared

    def writing(self) -> AbstractContextManager[None]:
        """The vector store's write gate."""
        return self.vectors.writing()

    def write_token(self) -> str | None:
        """The vector store's write token."""
        return self.vectors.write_token()

    def new_write_token(self) -> tuple[str | None, str]:
        """A new write token in the vector store."""
        return self.vectors.new_write_token()

    def read_manifest(self) -> IndexManifest | None:
        """The vector store's manifest."""
        return self.vectors.read_manifest()

    def create(self, manifest: IndexManifest) -> IndexManifest:
        """Create the vector store's collection (the lexical index opens afterwards)."""
        return self.vectors.create(manifest)

    def write_manifest(self, manifest: IndexManifest) -> None:
        """Replace the manifest."""
        self.vectors.write_manifest(manifest)

    def count(self) -> int:
        """The number of stored rows."""
        return self.vectors.count()

    def iter_chunks(self, *, batch: int = 1000) -> Iterator[list[StoredChunk]]:
        """Every stored chunk."""
        return self.vectors.iter_chunks(batch=batch)

    def iter_ids(self, *, batch: int = 10_000) -> Iterator[list[str]]:
        """Every stored id."""
        return self.vectors.iter_ids(batch=batch)

    def iter_metadatas(self, *, batch: int = 10_000) -> Iterator[list[Metadata]]:
        """Every row's metadata."""
        return self.vectors.iter_metadatas(batch=batch)

    def collections(self) -> list[CollectionSummary]:
        """The vector store's indexes."""
        return self.vectors.collections()

    def disk_usage(self) -> dict[str, int]:
        """The vector store's parts, and the lexical index's folder when it is on disk."""
        usage = self.vectors.disk_usage()
        folder = self.lexical_folder
        if folder is not None and self._lexical is not None and folder.is_dir():
            usage["lexical"] = folder_size(folder)
        return usage

    def fetch(
        self,
        ids: Sequence[str],
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[StoredChunk]:
        """Stored chunks by id."""
        return self.vectors.fetch(
            ids, where=where, where_document=where_document, include_vectors=include_vectors
        )

    def query(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        """The vector store's nearest rows."""
        return self.vectors.query(
            vector, k, where=where, where_document=where_document, include_vectors=include_vectors
        )

    def dense_rank(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
    ) -> list[tuple[str, float]]:
        """The vector store's nearest ids."""
        return self.vectors.dense_rank(vector, k, where=where, where_document=where_document)

    def stored_sources(self, sources: Sequence[str]) -> dict[str, StoredSource]:
        """Markers and roots of stored sources."""
        return self.vectors.stored_sources(sources)

    def stored_metadata(self, ids: Sequence[str]) -> dict[str, Metadata]:
        """Metadata of stored ids."""
        return self.vectors.stored_metadata(ids)

    def stored_parts(self, wholes: Sequence[str]) -> list[StoredChunk]:
        """Stored parts of over-long chunks."""
        return self.vectors.stored_parts(wholes)

    def vectors_for(self, content_hashes: Sequence[str]) -> dict[str, Vector]:
        """Stored vectors by content hash."""
        return self.vectors.vectors_for(content_hashes)

    def sources_under(self, root: str) -> set[str]:
        """Sources added from a folder."""
        return self.vectors.sources_under(root)

    def vectorstore(self, embeddings: Embeddings, writer: IndexWriter) -> VectorStore:
        """The vector store's LangChain view (writes go through ``writer``)."""
        return self.vectors.vectorstore(embeddings, writer)


def _entry(
    analyzer: Analyzer, cid: str, text: str, metadata: Metadata, *, source: str | None = None
) -> tuple[str, str, list[str]]:
    found: Any = source if source is not None else metadata.get(SOURCE, "")
    return cid, str(found), analyzer.terms(text)
