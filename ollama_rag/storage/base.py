"""The storage seam: :class:`ChunkStore`, the one interface every vector store implements.

Ingestion, migration, deletion, crash recovery and search reach stored chunks only through a
``ChunkStore``; nothing else in the package talks to a vector database. A second store (FAISS
with a SQLite docstore), or a lexical index kept in step with the vectors, is one more
implementation of these calls, and ``RagIndex``, ingestion, migration and search do not change.

What a store promises:

- **Writes commit per source.** :meth:`ChunkStore.write` takes sources' rows
  (:class:`SourceWrite`). A write with a completion ``marker`` commits its source: its rows
  are the source's whole content, rows stored for it before and not among them are deleted,
  and the marker is set on its first chunk (``chunk_index`` 0) as the very last step. A source
  being rewritten first loses its old marker (``unmark``). So a crash at any instant leaves a
  source either marked and complete, or unmarked (and written again by the next run). Without a
  marker the rows are only added: a long source's chunks are written as they are embedded,
  and committed by its last write.
- **Rows without a vector are already stored**: only their metadata is brought up to date.
- **Lookups are by meaning**, not by query language: which sources are stored and complete,
  which of these ids exist, which parts a split chunk has, which vector a text already has.
- **Search filters** use Chroma's ``where``/``where_document`` syntax, the one users already
  pass (see :mod:`ollama_rag.storage.filters` for an implementation in Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeVar

import numpy as np

from ollama_rag.errors import (
    INDEX_CLOSED_MESSAGE,
    INDEX_FORKED_MESSAGE,
    ConfigError,
    IndexClosedError,
    IndexForkedError,
    index_not_found,
)
from ollama_rag.storage.filters import matches, matches_document
from ollama_rag.storage.schema import CHUNK_INDEX, COMPLETE, SOURCE, UNIT_HASH, Metadata

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore

    from ollama_rag.manifest import IndexManifest

__all__ = [
    "ChunkRow",
    "ChunkStore",
    "CollectionSummary",
    "Hit",
    "IndexWriter",
    "SourceSummary",
    "SourceWrite",
    "StoredChunk",
    "StoredSource",
    "Vector",
    "Where",
    "check_collection_name",
    "folder_size",
    "index_directory",
]

_T = TypeVar("_T")


def folder_size(path: str | os.PathLike[str]) -> int:
    """Bytes in the files under ``path`` (or of the file itself); 0 if it does not exist."""
    root = os.fspath(path)
    if os.path.isfile(root):
        return os.path.getsize(root)
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while we walk
                total += os.path.getsize(os.path.join(folder, name))
    return total


# Chroma's rule for collection names, kept by every store so an index can move between them.
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]$")


def check_collection_name(name: str) -> None:
    """Refuse a collection name Chroma would refuse (every store keeps the same rule).

    Raises:
        ConfigError: The name is not 3-512 characters of ``[A-Za-z0-9._-]`` starting and ending
            with a letter or digit.
    """
    if not _COLLECTION_NAME.match(name):
        msg = (
            f"Invalid collection name {name!r}: use 3-500 characters from "
            "[A-Za-z0-9._-], starting and ending with a letter or digit"
        )
        raise ConfigError(msg)


def index_directory(
    path: str | os.PathLike[str], *, marker: str, collection: str, read_only: bool, create: bool
) -> Path:
    """The resolved index directory ``path``, checked before anything is written to it.

    Args:
        path: The directory asked for.
        marker: The file whose presence means the directory holds an index of this store.
        collection: The collection asked for (for the message).
        read_only: Whether the index is opened read-only (which never creates one).
        create: Whether an index may be created.

    Raises:
        ConfigError: ``path`` is a file.
        IndexNotFoundError: Nothing to open (no ``marker``) and nothing may be created; the
            disk is left as it is.
    """
    directory = Path(path).expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        msg = f"Index path {directory} is a file; pass a directory (it is created if missing)"
        raise ConfigError(msg)
    if (read_only or not create) and not (directory / marker).is_file():
        where = f"{directory} (collection {collection!r})"
        raise index_not_found(
            where, path=str(directory), collection=collection, read_only=read_only
        )
    return directory


Vector: TypeAlias = np.ndarray[Any, np.dtype[np.float32]]
Where: TypeAlias = Mapping[str, Any]


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as stored: id, text, metadata (schema keys included) and, if asked, its vector."""

    id: str
    text: str
    metadata: Metadata
    vector: Vector | None = None


@dataclass(frozen=True)
class Hit:
    """A search result: a stored chunk and its cosine similarity to the query (1 = same)."""

    id: str
    text: str
    metadata: Metadata
    score: float
    vector: Vector | None = None


@dataclass(frozen=True)
class SourceSummary:
    """One source as an index holds it.

    Attributes:
        source: The source name (a file's path relative to the folder it was added from).
        chunks: Rows stored for it (an over-long chunk's parts count one each).
        complete: Whether its completion marker is set; False for a source an interrupted
            run left half-written, which the next run of the same ingestion finishes.
    """

    source: str
    chunks: int
    complete: bool


@dataclass(frozen=True)
class CollectionSummary:
    """One index (collection) in the same directory or on the same server as a store.

    Attributes:
        name: The collection name.
        manifest: Its manifest, or None when ollama-rag did not create it.
        chunks: Its rows.
    """

    name: str
    manifest: IndexManifest | None
    chunks: int


@dataclass
class StoredSource:
    """What a store holds about one source (read from its first chunks).

    Attributes:
        markers: Completion markers (a complete source has exactly one).
        roots: Folders the source was added from (files only).
    """

    markers: set[str] = field(default_factory=set)
    roots: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ChunkRow:
    """One row to write.

    Attributes:
        id: The chunk id (see :mod:`ollama_rag.storage.schema`).
        text: The chunk text.
        metadata: Everything to store with it, except the completion marker.
        vector: Its vector; None when the row is stored already (only metadata may change).
        stored: The metadata stored now, for rows without a vector.
    """

    id: str
    text: str
    metadata: Metadata
    vector: Vector | None
    stored: Metadata | None = None


@dataclass(frozen=True)
class SourceWrite:
    """Rows of one source, ready to write.

    A source is written in one ``SourceWrite``, or a long one in several as its chunks are
    embedded: the first clears the completion marker of a source being rewritten (``unmark``),
    and the last commits it (``marker``), listing every row of the new content (rows written
    earlier without a vector).

    Attributes:
        source: The source name.
        rows: Its rows, first chunk first.
        marker: Commit: the rows are the source's whole content now, so any other stored row of
            it is deleted, and this completion marker is set on its first chunk last. None: the
            rows are only added.
        unmark: Clear the source's completion marker before anything else is written.
        checked: The writer looked every row up: none with a vector is stored yet (the store
            need not look again before adding them).
    """

    source: str
    rows: list[ChunkRow]
    marker: str | None
    unmark: bool = False
    checked: bool = False


class IndexWriter(Protocol):
    """What a LangChain vector store view hands its writes to: the index, with its bookkeeping.

    ``RagIndex`` is one; declared here so stores need not import it.
    """

    def add_texts(
        self, texts: Sequence[str], metadatas: Sequence[Mapping[str, Any]] | None = None
    ) -> list[str]:
        """Split, embed and store texts; returns the ids of their chunks."""
        ...

    def delete(self, ids: Sequence[str] | None = None, *, source: str | None = None) -> int:
        """Delete chunks by id or source; returns how many there were."""
        ...


class ChunkStore(ABC):
    """One index's chunks: text, metadata, vectors, completion markers and the manifest.

    Args:
        location: Where the index lives, for messages (``./db (collection 'default')``).
        path: Its directory, or None (in memory, or on a server).
    """

    def __init__(self, *, location: str, path: str | None) -> None:
        self.location = location
        self.path = path
        self._closed = False
        self._pid = os.getpid()

    # ------------------------------------------------------------------ lifecycle

    def check_open(self) -> None:
        """Refuse use after :meth:`close`, and in a ``fork()`` of the process that opened it.

        A forked child inherits the store's clients and the embedder's thread pools, but not
        their threads: its first call would wait forever.

        Raises:
            IndexClosedError: The store is closed.
            IndexForkedError: This process is a fork of the one that opened the store.
        """
        if self._closed:
            msg = INDEX_CLOSED_MESSAGE.format(where=self.location)
            raise IndexClosedError(msg, path=self.path)
        if (pid := os.getpid()) != self._pid:
            msg = INDEX_FORKED_MESSAGE.format(where=self.location, parent=self._pid, child=pid)
            raise IndexForkedError(msg, path=self.path)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Release what the store holds (clients, locks). Safe to call twice."""
        self._closed = True

    # ------------------------------------------------------------------ identity and change

    @property
    def uid(self) -> str | None:
        """A stable id of the stored collection, or None before :meth:`create`.

        It changes when a migration or a repair switches to a side store, so an index kept
        beside the vectors (the lexical one) knows which vectors it belongs to.
        """
        return None

    @property
    def files(self) -> str | None:
        """The directory holding the store's files (a read-only snapshot's copy), or None."""
        return self.path

    @property
    def shared(self) -> bool:
        """Whether other clients may write the same rows (a Chroma server).

        What is kept in step with the rows is then checked before each search, not only when
        the store is opened.
        """
        return False

    def writing(self) -> AbstractContextManager[None]:
        """Hold the store's write gate around a block of writes (several calls as one step)."""
        return contextlib.nullcontext()

    def write_token(self) -> str | None:
        """A value that changes with every write to the store (None: never written).

        What is kept in step with the rows (the lexical index) records the token it has seen,
        and is caught up when the store's token differs: after a crash between the two
        writes, or when another client wrote.
        """
        return None

    def new_write_token(self) -> tuple[str | None, str]:
        """Record a fresh write token, before a write; returns the previous one and the new one."""
        msg = f"The store at {self.location} keeps no write token"
        raise NotImplementedError(msg)

    # ------------------------------------------------------------------ manifest

    @abstractmethod
    def read_manifest(self) -> IndexManifest | None:
        """The stored manifest, or None when there is no index here yet.

        Raises:
            RagIndexError: Something is stored here that is not an ollama-rag index.
        """

    @abstractmethod
    def create(self, manifest: IndexManifest) -> IndexManifest:
        """Create the index with ``manifest``.

        Returns:
            The manifest now stored: ``manifest``, or the one another client stored first.
        """

    @abstractmethod
    def write_manifest(self, manifest: IndexManifest) -> None:
        """Replace the stored manifest (e.g. a new ``updated_at``)."""

    # ------------------------------------------------------------------ reading and search

    @abstractmethod
    def count(self) -> int:
        """The number of stored rows."""

    @abstractmethod
    def iter_chunks(self, *, batch: int = 1000) -> Iterator[list[StoredChunk]]:
        """Every stored chunk (text and metadata), in pages of at most ``batch``."""

    @abstractmethod
    def query(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        """The ``k`` rows most similar to ``vector`` that pass the filters, best first."""

    def dense_rank(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
    ) -> list[tuple[str, float]]:
        """The ids of the ``k`` rows nearest to ``vector`` that pass the filters, with cosines.

        What a hybrid search fuses: ids only, so that just the rows it keeps are read. Stores
        that can rank without reading rows override it.
        """
        hits = self.query(vector, k, where=where, where_document=where_document)
        return [(hit.id, hit.score) for hit in hits]

    async def aquery(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        """:meth:`query` for async callers (see :meth:`off_loop`)."""
        return await self.off_loop(
            functools.partial(
                self.query,
                vector,
                k,
                where=where,
                where_document=where_document,
                include_vectors=include_vectors,
            )
        )

    async def off_loop(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` (store reads) for an async caller, in a worker thread.

        Also for an in-process store: a hybrid search's reads on an embedded Chroma take 10 to
        20 ms (2,000 chunks of 1,024-d), which stall the event loop that long when run on it,
        and about 5 ms in a thread (chromadb holds the GIL for each call, not between calls),
        for the same latency: the hop costs a fraction of a millisecond (docs/api.md, "Async").
        """
        return await asyncio.to_thread(call)

    @abstractmethod
    def fetch(
        self,
        ids: Sequence[str],
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[StoredChunk]:
        """The stored chunks among ``ids`` that pass the filters, in the order of ``ids``."""

    def iter_ids(self, *, batch: int = 10_000) -> Iterator[list[str]]:
        """Every stored id, in pages (stores with a cheaper way than reading texts override it)."""
        for page in self.iter_chunks(batch=batch):
            yield [chunk.id for chunk in page]

    def iter_metadatas(self, *, batch: int = 10_000) -> Iterator[list[Metadata]]:
        """Every row's metadata, in pages (stores that can skip reading texts override it)."""
        for page in self.iter_chunks(batch=batch):
            yield [chunk.metadata for chunk in page]

    def sources(self) -> list[SourceSummary]:
        """Every stored source with its row count and whether it is complete, by name."""
        counts: dict[str, int] = {}
        complete: set[str] = set()
        for page in self.iter_metadatas():
            for meta in page:
                source = str(meta.get(SOURCE, ""))
                counts[source] = counts.get(source, 0) + 1
                marker = meta.get(COMPLETE)
                if meta.get(CHUNK_INDEX) == 0 and marker and marker == meta.get(UNIT_HASH):
                    complete.add(source)
        return [SourceSummary(s, counts[s], s in complete) for s in sorted(counts)]

    def collections(self) -> list[CollectionSummary]:
        """The indexes in this store's directory or on its server, by name (this one included).

        A store that holds one index only returns an empty list.
        """
        return []

    def disk_usage(self) -> dict[str, int]:
        """Bytes on disk of this index's parts (``{"vectors": ..., "lexical": ...}``).

        Empty for a store that is not on this machine's disk.
        """
        return {}

    def lexical_query(
        self,
        query: str,
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        """The ``k`` rows ranking highest by BM25 for ``query`` that pass the filters.

        Hits carry BM25 scores (higher is better). A store without a lexical index refuses.
        """
        msg = f"The store at {self.location} has no lexical index"
        raise NotImplementedError(msg)

    def lexical_rank(
        self,
        query: str,
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
    ) -> list[tuple[str, float]]:
        """The ids of the ``k`` rows ranking highest by BM25 that pass the filters, with scores.

        What a hybrid search fuses: ids only, so that just the rows it keeps are read.
        """
        msg = f"The store at {self.location} has no lexical index"
        raise NotImplementedError(msg)

    def ids_where(
        self, where: Where | None, where_document: Where | None, *, limit: int
    ) -> list[str] | None:
        """The ids of the rows passing the filters, or None when more than ``limit`` do.

        Stores with a filter engine override this; here every chunk is read and checked.
        """
        found: list[str] = []
        for page in self.iter_chunks():
            for chunk in page:
                if matches(where, chunk.metadata) and matches_document(where_document, chunk.text):
                    found.append(chunk.id)
                    if len(found) > limit:
                        return None
        return found

    async def alexical_query(
        self,
        query: str,
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        """:meth:`lexical_query` for async callers (see :meth:`off_loop`)."""
        return await self.off_loop(
            functools.partial(
                self.lexical_query,
                query,
                k,
                where=where,
                where_document=where_document,
                include_vectors=include_vectors,
            )
        )

    async def alexical_rank(
        self,
        query: str,
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
    ) -> list[tuple[str, float]]:
        """:meth:`lexical_rank` for async callers (see :meth:`off_loop`)."""
        call = functools.partial(
            self.lexical_rank, query, k, where=where, where_document=where_document
        )
        return await self.off_loop(call)

    def lexical_scores(self, query: str, ids: Sequence[str]) -> dict[str, float]:
        """BM25 scores of ``query`` for the rows ``ids`` (0 where no term matches)."""
        msg = f"The store at {self.location} has no lexical index"
        raise NotImplementedError(msg)

    # ------------------------------------------------------------------ lookups for ingestion

    @abstractmethod
    def stored_sources(self, sources: Sequence[str]) -> dict[str, StoredSource]:
        """Markers and roots of those ``sources`` that have a first chunk stored."""

    @abstractmethod
    def stored_metadata(self, ids: Sequence[str]) -> dict[str, Metadata]:
        """The metadata of those ``ids`` that are stored."""

    @abstractmethod
    def stored_parts(self, wholes: Sequence[str]) -> list[StoredChunk]:
        """The stored parts of over-long chunks whose ids are in ``wholes``."""

    @abstractmethod
    def vectors_for(self, content_hashes: Sequence[str]) -> dict[str, Vector]:
        """One stored vector for each content hash that has one (the same text embedded)."""

    @abstractmethod
    def sources_under(self, root: str) -> set[str]:
        """The sources added from the folder ``root``."""

    # ------------------------------------------------------------------ writing

    @abstractmethod
    def write(self, group: Sequence[SourceWrite]) -> None:
        """Commit finished sources (see the module docstring for the guarantees)."""

    @abstractmethod
    def delete_ids(self, ids: Sequence[str]) -> int:
        """Delete the stored rows among ``ids``; returns how many there were."""

    @abstractmethod
    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete every row of ``sources``; returns how many there were."""

    # ------------------------------------------------------------------ migration

    @abstractmethod
    def recover(self) -> None:
        """Finish (or undo) a switch to a side store that a crash interrupted."""

    def doing(self, what: str) -> AbstractContextManager[None]:
        """Announce ``what`` this process is doing (``"adding files"``) while the block runs.

        A store with a directory lock records it there, so that another process refused the
        index can say what it waits for. Others do nothing.
        """
        return contextlib.nullcontext()

    def damage(self) -> str | None:
        """What is broken on disk (a crash mid-write), or None when the store is whole.

        Cheap enough to run on every open. A store that cannot be damaged this way (in memory,
        on a server) returns None.
        """
        return None

    def salvage(self, *, batch: int = 1000) -> Iterator[list[StoredChunk]]:
        """Every chunk still readable, with its vector where it survived (None where not).

        What a repair copies into a fresh side store; a whole store yields everything.
        """
        return self.iter_chunks(batch=batch)

    @abstractmethod
    def side(self, manifest: IndexManifest, *, version: str) -> ChunkStore:
        """A side store for re-embedding this index with ``manifest``'s model.

        A side store left by an interrupted migration to the same model, begun when this
        index had the same ``version`` (its ``updated_at``), is resumed; any other is replaced.
        """

    @abstractmethod
    def switch(self, side: ChunkStore) -> None:
        """Make the complete ``side`` store this index, crash-safely; the old rows go."""

    # ------------------------------------------------------------------ LangChain

    def vectorstore(self, embeddings: Embeddings, writer: IndexWriter) -> VectorStore:
        """This store as a LangChain vector store whose writes go through ``writer``.

        A store without a LangChain class of its own can return a
        :class:`~ollama_rag.storage.view.StoreView`, answered by its own calls.
        """
        msg = f"The store at {self.location} has no LangChain vector store view"
        raise NotImplementedError(msg)
