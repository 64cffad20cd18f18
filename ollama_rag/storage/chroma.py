"""Chroma behind the storage seam: the only module that calls chromadb or langchain_chroma.

An index is one Chroma collection: its manifest in the collection's metadata (scalars under
``ollama_rag.`` keys), each chunk a row of id, document, metadata and embedding. Vectors are
L2-normalised, so the collection uses cosine space, and similarity is ``1 - distance``.
Identical chunks beyond :data:`GRAPH_COPIES` of one text go to a companion collection
(``<collection id>.copies``) that is read by metadata, never searched through its HNSW graph:
thousands of identical vectors cut the rest of a graph off (see :class:`ChromaStore`). The
store presents both as one; the companion is created when first needed and deleted with its
collection.

Clients: every :class:`ChromaStore` on one directory within a process shares one
``PersistentClient`` and holds the directory's lock (:mod:`ollama_rag.storage.lock`); the last
one closed closes the client, so a later open loads the index fresh instead of trusting a stale
in-memory HNSW. An in-memory index gets a private database, because every ``EphemeralClient``
in a process shares one system. A user's own client (``chromadb.HttpClient`` for ``chroma
run``) is used as given and never closed here.

Migration writes into a side collection ``<name>.next`` that carries the new manifest and a
``migration_of`` marker. :meth:`ChromaStore.switch` then runs, each step one atomic Chroma
metadata update:

1. mark ``<name>.next`` complete;
2. rename ``<name>`` to ``<name>.retired``;
3. rename ``<name>.next`` to ``<name>`` and drop the markers;
4. delete ``<name>.retired``.

Killed at any point, the index is either the old one (before step 2) or the new one (after
it): :meth:`ChromaStore.recover`, run on every open, finishes an interrupted switch.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import json
import os
import shutil
import sys
import threading
import uuid
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    NamedTuple,
    ParamSpec,
    TypeAlias,
    TypeVar,
    cast,
)

import numpy as np

from ollama_rag.errors import (
    FOREIGN_COLLECTION_MESSAGE,
    FOREIGN_COLLECTION_PROBLEM,
    READ_ONLY_MESSAGE,
    ConfigError,
    Explained,
    Fix,
    IndexReadOnlyError,
    RagIndexError,
)
from ollama_rag.manifest import IndexManifest
from ollama_rag.storage import chroma_files
from ollama_rag.storage.base import (
    ChunkRow,
    ChunkStore,
    CollectionSummary,
    Hit,
    IndexWriter,
    SourceWrite,
    StoredChunk,
    StoredSource,
    Vector,
    Where,
    check_collection_name,
    folder_size,
    index_directory,
)
from ollama_rag.storage.lock import DirectoryLock, Registry, WriteGate, noting, snapshot
from ollama_rag.storage.schema import (
    CHUNK_INDEX,
    COMPLETE,
    CONTENT_HASH,
    ROOT,
    SOURCE,
    SPLIT_OF,
    Metadata,
)
from ollama_rag.storage.view import WritesThroughIndex

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma
    from langchain_core.embeddings import Embeddings

__all__ = [
    "COLLECTION_CONFIGURATION",
    "NEXT_SUFFIX",
    "RETIRED_SUFFIX",
    "UPSERT_ROWS",
    "WRITE_BATCH",
    "ChromaClient",
    "ChromaStore",
    "chroma_version",
    "read_collections",
    "rename",
]

ChromaClient: TypeAlias = "ClientAPI"
"""A chromadb client (``PersistentClient``, ``EphemeralClient``, ``HttpClient``)."""

# Vectors are L2-normalised, so cosine; and Chroma saves its HNSW index every sync_threshold
# rows. Its default of 1000 makes each write slower the more rows wait unsaved (several times
# slower for CJK text, measured in benchmarks/), so it saves more often.
COLLECTION_CONFIGURATION: Any = {"hnsw": {"space": "cosine", "sync_threshold": 100}}
# Rows per lookup or delete call. Chroma's own limit for one call is 5461 rows; its docs note
# throughput plateaus far lower.
WRITE_BATCH = 1000
# Rows per add/upsert call. Chroma's local bindings hold the GIL for a whole call (about 1 ms a
# row), so while one runs the embedding threads cannot hand results back or send the next
# request; short calls keep every host fed. Larger calls save little: the cost is per row.
UPSERT_ROWS = 256
# Rows in the first page iter_chunks reads (later pages grow to the size asked for).
FIRST_PAGE = 64

NEXT_SUFFIX = ".next"
RETIRED_SUFFIX = ".retired"
MIGRATION_OF = "ollama_rag.migration_of"
MIGRATION_COMPLETE = "ollama_rag.migration_complete"
# The source index's updated_at when the copy began: a resumed copy of an index that was written
# to in between would bring back deleted or outdated chunks, so it starts over instead.
SOURCE_VERSION = "ollama_rag.migration_source_version"
_MIGRATION_KEYS = (MIGRATION_OF, MIGRATION_COMPLETE, SOURCE_VERSION)
# Changes with every write (see ChunkStore.write_token); kept by manifest writes.
WRITE_TOKEN = "ollama_rag.write_token"

_LOCKED_FIX = (
    "Chroma loses vectors when two processes write one directory: close the other process "
    "first, or serve the index with `chroma run --path {dir}` and open it with "
    "RagIndex(client=chromadb.HttpClient(...))"
)


def chroma_version() -> str:
    """The installed chromadb version (importing it, so an import failure surfaces here)."""
    import chromadb

    return str(chromadb.__version__)


def rename(collection: Collection, name: str) -> None:
    """Rename a collection (one Chroma metadata update, atomic)."""
    collection.modify(name=name)


# ------------------------------------------------------------------------------- clients


@dataclass
class _Shared:
    client: ClientAPI
    lock: DirectoryLock | None
    refs: int = 0
    database: str | None = None
    gate: WriteGate | None = None
    snapshot: Path | None = None  # a private copy, deleted with the last share


_registry: Registry[_Shared] = Registry()


def _forget_chroma_systems() -> None:
    """Drop chromadb's per-path client cache in a forked child, keeping its objects alive.

    Chroma's Rust runtime does not survive fork(): in the child every call on an inherited
    client blocks forever, a new ``PersistentClient`` for the same path reuses the inherited
    one (chromadb caches one per path), and even finalising it at interpreter exit blocks.
    So the inherited bindings are pinned (never finalised) and the cache is emptied, which
    lets the child open the directory afresh and exit normally (measured with chromadb 1.5.9;
    docs/reliability.md).
    """
    module = sys.modules.get("chromadb.api.shared_system_client")
    if module is None:  # chromadb was never imported: nothing inherited
        return
    cache = module.SharedSystemClient
    for system in list(cache._identifier_to_system.values()):
        for component in list(getattr(system, "_instances", {}).values()):
            bindings = getattr(component, "bindings", None)
            if bindings is not None:
                ctypes.pythonapi.Py_IncRef(ctypes.py_object(bindings))
    cache._identifier_to_system.clear()
    cache._identifier_to_refcount.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_chroma_systems)


@dataclass
class _Handle:
    """One store's share of a Chroma client."""

    client: ClientAPI
    key: str
    path: str | None
    owned: bool = True
    remote: bool = False
    lock: DirectoryLock | None = None
    gate: WriteGate | None = None
    read_only: bool = False
    files: str | None = None  # the directory Chroma's files are in (a snapshot's copy)

    def close(self) -> None:
        """Release this share; the last one closes the client and frees the lock."""
        if not self.owned:
            return
        self.owned = False
        with _registry.lock:
            shared = _registry.handles.get(self.key)
            if shared is None:
                return
            shared.refs -= 1
            if shared.refs > 0:
                return
            del _registry.handles[self.key]
        if shared.database is not None:
            _drop_memory_database(shared.client, shared.database)
        cast(Any, shared.client).close()  # ClientAPI's stub lacks close()
        if shared.gate is not None:
            shared.gate.close()
        if shared.lock is not None:
            shared.lock.release()
        if shared.snapshot is not None:
            shutil.rmtree(shared.snapshot, ignore_errors=True)


def _memory_client() -> tuple[ClientAPI, str]:
    import chromadb

    database = f"ollama_rag_{uuid.uuid4().hex}"
    chromadb.AdminClient(chromadb.config.Settings(is_persistent=False)).create_database(database)
    return chromadb.EphemeralClient(database=database), database


def _drop_memory_database(client: ClientAPI, database: str) -> None:
    import chromadb

    for collection in client.list_collections():
        client.delete_collection(collection.name)
    chromadb.AdminClient(chromadb.config.Settings(is_persistent=False)).delete_database(database)


def _open_client(
    path: str | os.PathLike[str] | None,
    client: ClientAPI | None,
    *,
    collection: str,
    read_only: bool = False,
    create: bool = True,
) -> _Handle:
    if client is not None:
        if path is not None:
            msg = "Pass either path= (a directory) or client= (a chromadb client), not both"
            raise ConfigError(msg)
        return _Handle(
            client=client,
            key=f"client:{id(client)}",
            path=None,
            owned=False,
            remote=True,
            read_only=read_only,
        )
    if path is None:
        if read_only:
            msg = "read_only=True needs an index directory (path=) or a Chroma server (client=)"
            raise ConfigError(msg)
        memory, database = _memory_client()
        key = f"memory:{database}"
        with _registry.lock:
            _registry.handles[key] = _Shared(client=memory, lock=None, refs=1, database=database)
        return _Handle(client=memory, key=key, path=None)

    directory = index_directory(
        path, marker="chroma.sqlite3", collection=collection, read_only=read_only, create=create
    )
    if read_only:
        return _open_snapshot(directory)
    key = str(directory)
    with _registry.lock:
        shared = _registry.handles.get(key)
        if shared is None:
            directory.mkdir(parents=True, exist_ok=True)
            shared = _open_persistent(key)
            _registry.handles[key] = shared
        shared.refs += 1
        return _Handle(
            client=shared.client, key=key, path=key, lock=shared.lock, gate=shared.gate, files=key
        )


def _open_persistent(directory: str, *, fix: str = _LOCKED_FIX) -> _Shared:
    """Lock ``directory`` and open a ``PersistentClient`` on it."""
    lock = DirectoryLock(directory, fix=fix.replace("{dir}", directory))
    try:
        import chromadb

        gate = WriteGate(directory)
        with gate.writing():  # opening replays Chroma's log into its files
            persistent = chromadb.PersistentClient(path=directory)
    except BaseException:
        lock.release()
        raise
    return _Shared(client=persistent, lock=lock, gate=gate)


def _open_snapshot(directory: Path) -> _Handle:
    """A read-only handle on a private copy of ``directory`` (see :func:`snapshot`)."""
    copy = snapshot(directory)
    try:
        shared = _open_persistent(str(copy))
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)
        raise
    shared.snapshot = copy
    shared.refs = 1
    key = f"snapshot:{copy}"
    with _registry.lock:
        _registry.handles[key] = shared
    return _Handle(
        client=shared.client,
        key=key,
        path=str(directory),
        lock=shared.lock,
        gate=shared.gate,
        read_only=True,
        files=str(copy),
    )


def read_collections(directory: str | os.PathLike[str]) -> list[tuple[str, Metadata, int]]:
    """``(name, metadata, record count)`` of each collection in a Chroma directory, by name.

    For ``doctor``, which holds the directory's lock while it reads (so no lock is taken here).
    A collection's copies of repeated text count as its records, not as a collection.
    """
    import chromadb

    client = chromadb.PersistentClient(path=str(directory))
    try:
        return _describe_collections(client)
    finally:
        cast(Any, client).close()  # ClientAPI's stub lacks close()


def _describe_collections(client: ClientAPI) -> list[tuple[str, Metadata, int]]:
    """``(name, metadata, record count)`` of each collection of a client, copies folded in."""
    found = sorted(client.list_collections(), key=lambda c: c.name)
    copies = Counter(
        {
            str((c.metadata or {})[COPIES_OF]): c.count()
            for c in found
            if COPIES_OF in (c.metadata or {})
        }
    )
    return [
        (c.name, dict(c.metadata or {}), c.count() + copies[str(c.id)])
        for c in found
        if COPIES_OF not in (c.metadata or {})
    ]


# ------------------------------------------------------------------------------- the store


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _gated(
    method: Callable[Concatenate[ChromaStore, _P], _R],
) -> Callable[Concatenate[ChromaStore, _P], _R]:
    """Run a writing method inside the store's write gate (see :class:`WriteGate`)."""

    @functools.wraps(method)
    def gated(self: ChromaStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._writing():
            return method(self, *args, **kwargs)

    return gated


def _first_chunks_of(sources: Sequence[str]) -> dict[str, Any]:
    return {"$and": [{SOURCE: {"$in": list(sources)}}, {CHUNK_INDEX: 0}]}


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Identical texts have identical vectors, and HNSW cannot tell them apart: the nearest points to
# a copy are its other copies (at distance 0), so once a text has more copies than a node has
# links (Chroma's max_neighbors, 16) they fill each other's neighbour lists, and the graph's
# search stays among them. One file split into 3,000 identical chunks left 0 of 30 unrelated
# passages findable. The graph therefore holds at most GRAPH_COPIES rows of one text, half of
# max_neighbors, so that most of every node's links lead elsewhere (measured with 2,000 other
# texts: 50 texts of 40 copies each still gave recall 1.00, 1,000 copies of one 0.84-0.99).
GRAPH_COPIES = 8
COPIES_SUFFIX = ".copies"
# At most this many texts are remembered as looked up and absent (ChromaStore._unseen).
UNSEEN_TEXTS = 1 << 16
# Pages a filtered search reads to find the texts of the copies it passes (ChromaStore._passing).
FILTER_PAGES = 8
COPIES_OF = "ollama_rag.copies_of"
# Texts whose graph rows are being deleted and replaced by copies: set before the delete,
# cleared after, so a crash in between is finished by recover() (see ChromaStore._delete).
REBALANCE = "ollama_rag.rebalance"
# The companion is never searched through its graph, so its graph is built cheaply: 3,000
# identical 1024-d rows cost 0.55 ms a row to add, against 1.8 ms with the index's configuration.
COPIES_CONFIGURATION: Any = {
    "hnsw": {
        "space": "cosine",
        "sync_threshold": 100,
        "max_neighbors": 4,
        "ef_construction": 8,
        "ef_search": 8,
    }
}
# Per client of this process, the companions known not to exist. Only a client this process
# owns is trusted (one process writes a directory); a user's client may be shared, and is
# asked every time.
_no_copies: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_copies_lock = threading.Lock()


def copies_name(collection: Collection) -> str:
    """The name of a collection's companion: from its id, which stays when it is renamed."""
    return f"{collection.id}{COPIES_SUFFIX}"


@dataclass(frozen=True)
class _Place:
    """Where a stored row is (the graph, or the companion's copies) and its text's hash."""

    copy: bool
    content_hash: str | None = None


class _Query(NamedTuple):
    """One search, as :meth:`ChromaStore.query` was asked it."""

    vector: Sequence[float]
    k: int
    where: Where | None
    where_document: Where | None
    include_vectors: bool


def _hash_of(meta: Mapping[str, Any] | None) -> str | None:
    value = (meta or {}).get(CONTENT_HASH)
    return str(value) if value is not None else None


class ChromaStore(ChunkStore):
    """An index stored in a Chroma collection (embedded, in memory, or on a Chroma server).

    Open one with :meth:`open`; ``RagIndex`` does this for you.

    Repeated text: the collection's HNSW graph holds at most :data:`GRAPH_COPIES` rows of any
    one text (``content_hash``); further rows of it (every row is kept: ids, offsets and
    metadata stay per occurrence) are written to the companion collection, with the same
    metadata and vector. Every read, lookup, count and delete covers both. A search runs on the
    graph, and takes from the companion the rows it would have returned: with a filter, the
    companion's rows that pass it (one cosine per distinct text, as every copy has its vector);
    without one, more copies of a text all of whose graph rows made the results. When rows of a
    text leave the graph, copies of it take their places, so a text never drops out of search.

    Args:
        handle: The client share it uses.
        name: The collection name.
        collection: The collection, when already at hand.
        owns_handle: Closing the store releases the handle (False for side stores).
    """

    def __init__(
        self,
        handle: _Handle,
        name: str,
        *,
        collection: Collection | None = None,
        owns_handle: bool = True,
    ) -> None:
        where = handle.path or ("a Chroma server" if handle.remote else "memory")
        super().__init__(location=f"{where} (collection {name!r})", path=handle.path)
        self._handle = handle
        self.name = name
        self._collection = collection
        self._owns_handle = owns_handle
        self._batch = min(WRITE_BATCH, handle.client.get_max_batch_size())
        self._found_copies: tuple[Any, Collection] | None = None  # (collection id, companion)
        # Texts vectors_for found no row of, until this store writes them: a new row of one
        # goes to the graph without asking how many the graph holds (see _overflow).
        self._unseen: set[str] = set()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        client: ClientAPI | None = None,
        collection: str = "default",
        read_only: bool = False,
        create: bool = True,
    ) -> ChromaStore:
        """Open (or share) the Chroma client and finish any interrupted migration.

        Args:
            path: A directory for a persistent index (created if missing, unless ``create``
                is False), or None.
            client: An existing chromadb client (e.g. ``HttpClient`` for ``chroma run``); the
                caller keeps ownership of it.
            collection: The collection name.
            read_only: Refuse writes; a directory is opened as a private snapshot, so that
                another process may be writing it (see :func:`~ollama_rag.storage.lock.snapshot`).
            create: False when no index may be created: a directory without Chroma's
                database is then refused before anything is written to the disk.

        Raises:
            ConfigError: Both ``path`` and ``client`` were given, ``path`` is a file, or the
                collection name is not one Chroma accepts.
            IndexNotFoundError: ``read_only`` or not ``create``, and the directory holds no
                Chroma database (nothing was created).
            IndexLockedError: Another process has the directory open.
        """
        check_collection_name(collection)
        handle = _open_client(
            path, client, collection=collection, read_only=read_only, create=create
        )
        try:
            store = cls(handle, collection)
            store.recover()
        except BaseException:
            handle.close()
            raise
        return store

    @property
    def client(self) -> ClientAPI:
        """The chromadb client."""
        return self._handle.client

    @property
    def collection(self) -> Collection:
        """The Chroma collection (for tests and diagnostics; write through the store)."""
        self.check_open()
        if self._collection is None:
            msg = f"No index at {self.location} yet"
            raise RagIndexError(msg, path=self.path)
        return self._collection

    def close(self) -> None:
        """Release the client share (and with the last one, the lock). Safe to call twice."""
        if not self._closed:
            super().close()
            if self._owns_handle:
                self._handle.close()

    @contextlib.contextmanager
    def doing(self, what: str) -> Iterator[None]:
        """Record ``what`` in the directory's owner file while the block runs.

        Raises:
            IndexReadOnlyError: The store was opened read-only.
        """
        if self._handle.read_only:
            msg = READ_ONLY_MESSAGE.format(where=self.location, what=what)
            raise IndexReadOnlyError(msg, path=self.path)
        with noting(self._handle.lock, what):
            yield

    def _writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold the write gate: a snapshot never copies the files halfway through a write."""
        gate = self._handle.gate
        return gate.writing() if gate is not None else contextlib.nullcontext()

    def _get(self, name: str) -> Collection | None:
        from chromadb.errors import NotFoundError

        try:
            return self.client.get_collection(name, embedding_function=None)
        except NotFoundError:
            return None

    # ------------------------------------------------------------------ manifest

    def read_manifest(self) -> IndexManifest | None:
        """The manifest in the collection's metadata, read fresh (another client may write)."""
        self.check_open()
        found = self._get(self.name)
        if found is None:
            return None
        self._collection = found
        manifest = IndexManifest.from_metadata(found.metadata, path=self.path)
        if manifest is None:
            msg = Explained(
                FOREIGN_COLLECTION_MESSAGE.format(where=self.location),
                problem=FOREIGN_COLLECTION_PROBLEM.format(where=self.location),
                fix=Fix("collection", collection=self.name),
            )
            raise RagIndexError(msg, path=self.path)
        return manifest

    def collections(self) -> list[CollectionSummary]:
        """Every index of this client (directory or server), a migration's side ones left out."""
        self.check_open()
        found = []
        for name, metadata, count in _describe_collections(self.client):
            if name.endswith((NEXT_SUFFIX, RETIRED_SUFFIX)):
                continue
            try:
                manifest = IndexManifest.from_metadata(metadata, path=self.path)
            except RagIndexError:
                manifest = None  # a record this version cannot read: shown as not ours
            found.append(CollectionSummary(name, manifest, count))
        return found

    def disk_usage(self) -> dict[str, int]:
        """This collection's vector files and the directory's database (shared by its indexes)."""
        files = self.files
        if files is None or self._collection is None:
            return {}
        folders = [chroma_files.vector_folder(files, c.name) for c in self._collections()]
        return {
            "vectors": sum(folder_size(f) for f in folders if f is not None),
            "database": folder_size(Path(files) / "chroma.sqlite3"),
        }

    @_gated
    def create(self, manifest: IndexManifest) -> IndexManifest:
        """Create the collection; a Chroma server shared by several clients may have won."""
        self.check_open()
        self._collection = self.client.get_or_create_collection(
            self.name,
            metadata=manifest.to_metadata(),
            configuration=COLLECTION_CONFIGURATION,
            embedding_function=None,
        )
        stored = IndexManifest.from_metadata(self._collection.metadata, path=self.path)
        return stored if stored is not None else manifest

    @_gated
    def write_manifest(self, manifest: IndexManifest) -> None:
        """Replace the collection metadata (``modify`` replaces, so all of it is written)."""
        metadata: dict[str, Any] = dict(manifest.to_metadata())
        token = (self.collection.metadata or {}).get(WRITE_TOKEN)
        if token is not None:
            metadata[WRITE_TOKEN] = token
        self.collection.modify(metadata=metadata)

    # ------------------------------------------------------------------ identity and change

    @property
    def uid(self) -> str | None:
        """The collection's id (a migration's switch brings a new one)."""
        return None if self._collection is None else str(self._collection.id)

    @property
    def files(self) -> str | None:
        """The directory of Chroma's files: the index's, or a read-only snapshot's copy."""
        return self._handle.files

    @property
    def shared(self) -> bool:
        """True on a Chroma server, where other clients may write the collection."""
        return self._handle.remote

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """The write gate (see :class:`~ollama_rag.storage.lock.WriteGate`)."""
        return self._writing()

    def write_token(self) -> str | None:
        """The token in the collection's metadata, read fresh from a server."""
        self.check_open()
        if self._collection is None:
            return None
        if self._handle.remote:
            found = self._get(self.name)
            if found is None:
                return None
            self._collection = found
        token = (self._collection.metadata or {}).get(WRITE_TOKEN)
        return None if token is None else str(token)

    @_gated
    def new_write_token(self) -> tuple[str | None, str]:
        """Store a fresh token in the collection's metadata (the rest of it is kept)."""
        previous = self.write_token()
        token = uuid.uuid4().hex
        self.collection.modify(metadata={**(self.collection.metadata or {}), WRITE_TOKEN: token})
        return previous, token

    # ------------------------------------------------------------------ reading and search

    def count(self) -> int:
        """The number of stored rows (the graph's and the copies')."""
        return sum(int(c.count()) for c in self._collections())

    def iter_chunks(self, *, batch: int = WRITE_BATCH) -> Iterator[list[StoredChunk]]:
        """Every chunk with text and metadata, a page at a time (the copies' last)."""
        # The first pages are small, so that a caller (a migration) starts its work at once.
        size = min(batch, self._batch, FIRST_PAGE)
        for collection in self._collections():
            offset = 0
            while True:
                got = collection.get(
                    limit=size, offset=offset, include=cast(Any, ["documents", "metadatas"])
                )
                if not got["ids"]:
                    break
                offset += len(got["ids"])
                size = min(size * 4, batch, self._batch)
                yield [
                    StoredChunk(cid, text or "", dict(meta or {}))
                    for cid, text, meta in zip(
                        got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
                    )
                ]

    def query(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        """Nearest rows by cosine similarity (Chroma returns fewer when it has fewer).

        Rows among the copies are added where they belong (see the class docstring).
        """
        asked = _Query(vector, k, where, where_document, include_vectors)
        hits = self._query_graph(asked)
        copies = self._copies()
        return hits if copies is None else self._with_copies(copies, hits, asked)

    def dense_rank(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest ids by cosine, read with distances only (half the time of whole rows).

        With copies of repeated text the rows are needed to place them (:meth:`query`).
        """
        if self._copies() is not None:
            return super().dense_rank(vector, k, where=where, where_document=where_document)
        res = self.collection.query(
            query_embeddings=cast(Any, [vector]),
            n_results=k,
            where=cast(Any, dict(where)) if where else None,
            where_document=cast(Any, dict(where_document)) if where_document else None,
            include=cast(Any, ["distances"]),
        )
        distances = (res["distances"] or [[]])[0]
        return [(cid, 1.0 - float(d)) for cid, d in zip(res["ids"][0], distances, strict=True)]

    def _query_graph(self, asked: _Query) -> list[Hit]:
        vector, k, where, where_document, include_vectors = asked
        include = ["documents", "metadatas", "distances"]
        if include_vectors:
            include.append("embeddings")
        res = self.collection.query(
            query_embeddings=cast(Any, [vector]),
            n_results=k,
            where=cast(Any, dict(where)) if where else None,
            where_document=cast(Any, dict(where_document)) if where_document else None,
            include=cast(Any, include),
        )
        ids = res["ids"][0]
        docs = (res["documents"] or [[]])[0]
        metas = (res["metadatas"] or [[]])[0]
        dists = (res["distances"] or [[]])[0]
        found = res["embeddings"]
        vectors: Any = found[0] if include_vectors and found is not None else []
        return [
            Hit(
                cid,
                text or "",
                dict(meta or {}),
                1.0 - float(dist),  # cosine space: distance = 1 - cosine similarity
                np.asarray(vectors[i], dtype=np.float32) if include_vectors else None,
            )
            for i, (cid, text, meta, dist) in enumerate(zip(ids, docs, metas, dists, strict=True))
        ]

    def fetch(
        self,
        ids: Sequence[str],
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[StoredChunk]:
        """The stored rows among ``ids`` that pass the filters (graph and copies), in order."""
        include = ["documents", "metadatas"]
        if include_vectors:
            include.append("embeddings")
        found: dict[str, StoredChunk] = {}
        for collection in self._collections():
            wanted = [i for i in dict.fromkeys(ids) if i not in found]
            for part in _batches(wanted, self._batch):
                got = collection.get(
                    ids=list(part),
                    where=cast(Any, dict(where)) if where else None,
                    where_document=cast(Any, dict(where_document)) if where_document else None,
                    include=cast(Any, include),
                )
                vectors: Any = got["embeddings"] if include_vectors else None
                for i, (cid, text, meta) in enumerate(
                    zip(got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True)
                ):
                    vector = None
                    if vectors is not None:
                        vector = np.asarray(vectors[i], dtype=np.float32)
                    found[cid] = StoredChunk(cid, text or "", dict(meta or {}), vector)
        return [found[i] for i in ids if i in found]

    def ids_where(
        self, where: Where | None, where_document: Where | None, *, limit: int
    ) -> list[str] | None:
        """The ids passing the filters (graph and copies), or None when more than ``limit`` do."""
        found: list[str] = []
        for collection in self._collections():
            got = collection.get(
                where=cast(Any, dict(where)) if where else None,
                where_document=cast(Any, dict(where_document)) if where_document else None,
                limit=limit + 1 - len(found),
                include=[],
            )
            found.extend(got["ids"])
            if len(found) > limit:
                return None
        return found

    def iter_ids(self, *, batch: int = 10_000) -> Iterator[list[str]]:
        """Every stored id (graph, then copies), read without texts or metadata."""
        size = min(batch, self._batch)
        for collection in self._collections():
            offset = 0
            while ids := collection.get(limit=size, offset=offset, include=[])["ids"]:
                offset += len(ids)
                yield list(ids)

    def iter_metadatas(self, *, batch: int = 10_000) -> Iterator[list[Metadata]]:
        """Every row's metadata (graph, then copies), read without texts."""
        size = min(batch, self._batch)
        for collection in self._collections():
            offset = 0
            while True:
                got = collection.get(limit=size, offset=offset, include=cast(Any, ["metadatas"]))
                if not got["ids"]:
                    break
                offset += len(got["ids"])
                yield [dict(meta or {}) for meta in got["metadatas"] or []]

    # ------------------------------------------------------------------ lookups

    def _metadatas(
        self, where: Mapping[str, Any], collection: Collection | None = None
    ) -> Iterator[tuple[str, Metadata]]:
        source = collection if collection is not None else self.collection
        got = source.get(where=cast(Any, where), include=cast(Any, ["metadatas"]))
        for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
            if meta is not None:
                yield cid, dict(meta)

    def stored_sources(self, sources: Sequence[str]) -> dict[str, StoredSource]:
        """Markers and roots of the sources with a first chunk (a group per Chroma call)."""
        found: dict[str, StoredSource] = {}
        for collection in self._collections():
            for part in _batches(list(dict.fromkeys(sources)), self._batch):
                for _, meta in self._metadatas(_first_chunks_of(part), collection):
                    entry = found.setdefault(str(meta[SOURCE]), StoredSource())
                    if COMPLETE in meta:
                        entry.markers.add(str(meta[COMPLETE]))
                    if ROOT in meta:
                        entry.roots.add(str(meta[ROOT]))
        return found

    def stored_metadata(self, ids: Sequence[str]) -> dict[str, Metadata]:
        """The metadata of the stored ones among ``ids``."""
        stored: dict[str, Metadata] = {}
        for collection in self._collections():
            wanted = [i for i in ids if i not in stored]
            for part in _batches(wanted, self._batch):
                got = collection.get(ids=list(part), include=cast(Any, ["metadatas"]))
                for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                    stored[cid] = dict(meta or {})
        return stored

    def stored_parts(self, wholes: Sequence[str]) -> list[StoredChunk]:
        """Rows stored as parts of the over-long chunks ``wholes``."""
        parts: list[StoredChunk] = []
        for collection in self._collections():
            for part in _batches(wholes, self._batch):
                got = collection.get(
                    where=cast(Any, {SPLIT_OF: {"$in": list(part)}}),
                    include=cast(Any, ["metadatas", "documents"]),
                )
                parts.extend(
                    StoredChunk(cid, text or "", dict(meta or {}))
                    for cid, text, meta in zip(
                        got["ids"], got["documents"] or [], got["metadatas"] or [], strict=True
                    )
                )
        return parts

    def vectors_for(self, content_hashes: Sequence[str]) -> dict[str, Vector]:
        """One vector per known text: ids first, then one vector per text.

        Text repeated in many sources (a licence header) costs one vector fetch, not one per
        copy. The graph has a row of every text the copies have, so only the graph is read.
        """
        one_id: dict[str, str] = {}
        for part in _batches(sorted(set(content_hashes)), self._batch):
            for cid, meta in self._metadatas({CONTENT_HASH: {"$in": list(part)}}):
                one_id.setdefault(str(meta[CONTENT_HASH]), cid)
        if len(self._unseen) > UNSEEN_TEXTS:  # looked up, never written (a failed run)
            self._unseen.clear()
        self._unseen.update(h for h in content_hashes if h not in one_id)
        by_id = {cid: h for h, cid in one_id.items()}
        known: dict[str, Vector] = {}
        for part in _batches(list(by_id), self._batch):
            got = self.collection.get(ids=list(part), include=cast(Any, ["embeddings"]))
            # Chroma returns a numpy array here, whose truth value is ambiguous.
            vectors = got["embeddings"] if got["embeddings"] is not None else []
            for cid, vector in zip(got["ids"], vectors, strict=True):
                known[by_id[cid]] = np.asarray(vector, dtype=np.float32)
        return known

    def sources_under(self, root: str) -> set[str]:
        """Sources whose first chunk records ``root``."""
        where = {"$and": [{ROOT: root}, {CHUNK_INDEX: 0}]}
        return {
            str(meta[SOURCE])
            for collection in self._collections()
            for _, meta in self._metadatas(where, collection)
        }

    def _ids_of(self, sources: Sequence[str]) -> dict[str, _Place]:
        """Every row of ``sources``: where it is, and (when there are copies) its text."""
        copies = self._copies()
        # Without copies nothing can take a deleted row's place, and ids alone are quicker.
        include = cast(Any, ["metadatas"] if copies is not None else [])
        places: dict[str, _Place] = {}
        for collection in self._collections():
            for part in _batches(sources, self._batch):
                where = {SOURCE: {"$in": list(part)}}
                got = collection.get(where=cast(Any, where), include=include)
                metas = got["metadatas"] or [{}] * len(got["ids"])
                for cid, meta in zip(got["ids"], metas, strict=True):
                    places[cid] = _Place(collection is copies, _hash_of(meta))
        return places

    # ------------------------------------------------------------------ writing

    @_gated
    def write(self, group: Sequence[SourceWrite]) -> None:
        """Write finished sources with a handful of Chroma calls, in crash-safe order.

        Chroma's cost is per call (and grows with the rows written since its index was last
        saved), so many small sources written one by one are slow. Per group: markers of
        rewritten sources are cleared first, then come new rows, metadata updates and stale
        deletions, and the completion markers come last.
        """
        if not group:
            return
        replacing = [w.source for w in group if w.marker is not None]
        self._unmark([w.source for w in group if w.unmark])
        keep = {r.id for w in group for r in w.rows}
        # Looked up before anything is written (the writes add only kept rows, so the answer is
        # the same after them): with nothing stale, new sources can carry their own markers.
        present = self._ids_of(replacing)
        stale = {i: place for i, place in present.items() if i not in keep}
        marked = self._add(group, present=present, fold_markers=not stale)
        self._update_metadata(group)
        self._delete(stale)
        markers = [
            (w.rows[0].id, w.marker)
            for w in group
            if w.marker is not None and w.rows and w.rows[0].id not in marked
        ]
        by_id = dict(markers)
        for collection, ids in self._split([i for i, _ in markers]):
            for part in _batches(ids, self._batch):
                collection.update(ids=list(part), metadatas=[{COMPLETE: by_id[i]} for i in part])

    def _unmark(self, sources: Sequence[str]) -> None:
        """Clear the completion markers of sources about to be rewritten.

        Otherwise a crash mid-rewrite would leave an old marker in place (Chroma merges
        metadata), and the half-written source would pass for the old, complete one.
        """
        for collection in self._collections():
            for part in _batches(sources, self._batch):
                where = _first_chunks_of(part)
                firsts = collection.get(where=cast(Any, where), include=[])["ids"]
                if firsts:
                    collection.update(ids=firsts, metadatas=[{COMPLETE: None}] * len(firsts))

    def _add(
        self, group: Sequence[SourceWrite], *, present: Mapping[str, _Place], fold_markers: bool
    ) -> set[str]:
        """Store the rows that have vectors, in calls of at most ``UPSERT_ROWS`` rows.

        Calls are cut between sources where possible. A new source whose rows all go into one
        ``add`` call gets its completion marker in that same call (when ``fold_markers``):
        Chroma appends a call's rows to its log in one SQL statement, so the rows and the
        marker land together or not at all, and the separate marker update is saved.

        Almost every row is new, and Chroma's ``add`` costs about 12% less than ``upsert``; but
        ``add`` silently keeps a row whose id exists, so the few that do (the same text added
        twice to one source in one run) go through ``upsert``, where they are.

        A new row goes to the graph while it has fewer than ``GRAPH_COPIES`` rows of its text,
        and to the copies after that; the graph's rows are written first, so the copies never
        hold a text the graph lacks.

        Args:
            group: The sources and their rows.
            present: Every row stored for the group's replacing sources (an id is derived from
                its source, so only the other sources' rows need looking up).
            fold_markers: Whether new sources may carry their markers (nothing is stale).

        Returns:
            The ids of the first chunks whose marker was written here.
        """
        limit = min(UPSERT_ROWS, self._batch)
        # Per call: (source, its rows in this call, whether they are all of the source's rows).
        calls: list[list[tuple[SourceWrite, list[ChunkRow], bool]]] = [[]]
        size = 0
        for write in group:
            rows = [r for r in write.rows if r.vector is not None]
            whole = len(rows) == len(write.rows) <= limit
            for start in range(0, len(rows), limit):
                part = rows[start : start + limit]
                if size + len(part) > limit and size:
                    calls.append([])
                    size = 0
                calls[-1].append((write, part, whole))
                size += len(part)
        marked: set[str] = set()
        for call in calls:
            if not call:  # a group with no new rows
                continue
            replacing = [(w, rows) for w, rows, _ in call if w.marker is not None]
            existing = {
                r.id: present[r.id] for _, rows in replacing for r in rows if r.id in present
            }
            unchecked = [(w, rows) for w, rows, _ in call if w.marker is None and not w.checked]
            if others := [r.id for _, rows in unchecked for r in rows]:
                existing.update(self._locate(others))
            fresh = [r for _, rows, _ in call for r in rows if r.id not in existing]
            to_copies = self._overflow(fresh)
            graph: list[tuple[ChunkRow, Metadata]] = []
            copies: list[tuple[ChunkRow, Metadata]] = []
            for write, rows, whole in call:
                new = [(r, r.metadata) for r in rows if r.id not in existing]
                if (
                    fold_markers
                    and whole
                    and write.marker is not None
                    and not write.unmark
                    and len(new) == len(rows)
                    # One call: the source's rows all go to one collection.
                    and len({r.id in to_copies for r, _ in new}) == 1
                ):
                    first, meta = new[0]
                    new[0] = (first, {**meta, COMPLETE: write.marker})
                    marked.add(first.id)
                for row, meta in new:
                    (copies if row.id in to_copies else graph).append((row, meta))
            upserts = [(r, r.metadata) for _, rows, _ in call for r in rows if r.id in existing]
            self._put(self.collection.add, graph)
            if copies:
                self._put(self._create_copies().add, copies)
            for collection, ids in self._split([r.id for r, _ in upserts], known=existing):
                chosen = set(ids)
                self._put(collection.upsert, [u for u in upserts if u[0].id in chosen])
        return marked

    @staticmethod
    def _put(write: Any, rows: list[tuple[ChunkRow, Metadata]]) -> None:
        if rows:
            write(
                ids=[r.id for r, _ in rows],
                embeddings=np.stack([cast(Vector, r.vector) for r, _ in rows]),
                documents=[r.text for r, _ in rows],
                metadatas=[meta for _, meta in rows],
            )

    def _update_metadata(self, group: Sequence[SourceWrite]) -> None:
        """Rewrite metadata that changed (e.g. a chunk moved), dropping keys no longer set."""
        changes: dict[str, Metadata] = {}
        for write in group:
            for row in write.rows:
                if row.vector is not None:
                    continue
                old = {k: v for k, v in (row.stored or {}).items() if k != COMPLETE}
                new = {k: v for k, v in row.metadata.items() if k != COMPLETE}
                if old != new:
                    changes[row.id] = {**dict.fromkeys(old), **row.metadata}
        for collection, ids in self._split(list(changes)):
            for part in _batches(ids, self._batch):
                collection.update(ids=list(part), metadatas=cast(Any, [changes[i] for i in part]))

    @_gated
    def delete_ids(self, ids: Sequence[str]) -> int:
        """Delete the stored rows among ``ids``."""
        found = self._locate(ids, hashes=True)
        self._delete(found)
        return len(found)

    @_gated
    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete every row of ``sources``."""
        found = self._ids_of(sources)
        self._delete(found)
        return len(found)

    # ------------------------------------------------------------------ copies of repeated text

    def _collections(self) -> list[Collection]:
        """The graph, and the companion holding copies when there is one."""
        copies = self._copies()
        return [self.collection] if copies is None else [self.collection, copies]

    def _copies(self) -> Collection | None:
        """The companion collection holding copies beyond ``GRAPH_COPIES``, if there is one.

        Most indexes never need one. It is looked up once per store and kept; for a client
        this process owns, its absence is remembered until this process creates it.
        """
        main = self.collection
        if self._found_copies is not None and self._found_copies[0] == main.id:
            return self._found_copies[1]
        name = copies_name(main)
        with _copies_lock:
            absent = None if self._handle.remote else _no_copies.setdefault(self.client, set())
            if absent is not None and name in absent:
                return None
            found = self._get(name)
            if found is None:
                if absent is not None:
                    absent.add(name)
                return None
        self._found_copies = (main.id, found)
        return found

    def _create_copies(self) -> Collection:
        """The companion collection, created if this is the first copy written."""
        if (found := self._copies()) is not None:
            return found
        main = self.collection
        name = copies_name(main)
        with _copies_lock:
            created = self.client.get_or_create_collection(
                name,
                metadata={COPIES_OF: str(main.id)},
                configuration=COPIES_CONFIGURATION,
                embedding_function=None,
            )
            if not self._handle.remote:
                _no_copies.setdefault(self.client, set()).discard(name)
        self._found_copies = (main.id, created)
        return created

    def _locate(self, ids: Sequence[str], *, hashes: bool = False) -> dict[str, _Place]:
        """Where each stored one among ``ids`` is (with its text's hash, if ``hashes``)."""
        include = cast(Any, ["metadatas"] if hashes else [])
        places: dict[str, _Place] = {}
        copies = self._copies()
        for collection in self._collections():
            wanted = [i for i in ids if i not in places]
            for part in _batches(wanted, self._batch):
                got = collection.get(ids=list(part), include=include)
                metas = got["metadatas"] or [{}] * len(got["ids"])
                for cid, meta in zip(got["ids"], metas, strict=True):
                    places[cid] = _Place(collection is copies, _hash_of(meta))
        return places

    def _split(
        self, ids: Sequence[str], *, known: Mapping[str, _Place] | None = None
    ) -> list[tuple[Collection, list[str]]]:
        """``ids`` (all stored) by the collection each is in; ``known`` places need no lookup."""
        if not ids:
            return []
        copies = self._copies()
        if copies is None:
            return [(self.collection, list(ids))]
        places = dict(known or {})
        if missing := [i for i in ids if i not in places]:
            places.update(self._locate(missing))
        in_copies = [i for i in ids if i in places and places[i].copy]
        in_graph = [i for i in ids if i not in places or not places[i].copy]
        return [(c, i) for c, i in ((self.collection, in_graph), (copies, in_copies)) if i]

    def _overflow(self, rows: Sequence[ChunkRow]) -> set[str]:
        """The ids among new ``rows`` whose text has ``GRAPH_COPIES`` rows in the graph already.

        One Chroma call for the texts of a whole call's rows (the graph holds at most
        ``GRAPH_COPIES`` rows of a text, so its answer is small), and none for texts the
        pipeline has just looked up with :meth:`vectors_for` and found nowhere: in a corpus
        without repeated text, that is every row.
        """
        hashes = [h for r in rows if (h := _hash_of(r.metadata)) is not None]
        if not hashes:
            return set()
        unknown = [h for h in hashes if h not in self._unseen]
        counts = self._graph_counts(self.collection, unknown) if unknown else Counter()
        self._unseen.difference_update(hashes)
        overflow: set[str] = set()
        for row in rows:
            content_hash = _hash_of(row.metadata)
            if content_hash is None:
                continue
            if counts[content_hash] < GRAPH_COPIES:
                counts[content_hash] += 1
            else:
                overflow.add(row.id)
        return overflow

    def _graph_counts(self, graph: Collection, hashes: Iterable[str]) -> Counter[str]:
        """How many rows of each of these texts the graph holds."""
        counts: Counter[str] = Counter()
        for part in _batches(sorted(set(hashes)), self._batch):
            for _, meta in self._metadatas({CONTENT_HASH: {"$in": list(part)}}, graph):
                counts[str(meta[CONTENT_HASH])] += 1
        return counts

    def _delete(self, places: Mapping[str, _Place]) -> None:
        """Delete stored rows; copies of a text take the places of its graph rows that go.

        Which texts lose graph rows is written to the companion's metadata first and cleared
        last, so a crash in between leaves :meth:`recover` the work to finish: the text would
        otherwise be in the copies only, where a search without a filter does not look.
        """
        graph_ids = [i for i, p in places.items() if not p.copy]
        copy_ids = [i for i, p in places.items() if p.copy]
        copies = self._copies() if places else None
        texts: set[str] = set()
        if copies is not None and graph_ids:
            # Only a text with a full graph has copies (they are written after it is full).
            lost = {p.content_hash for p in places.values() if not p.copy and p.content_hash}
            counts = self._graph_counts(self.collection, lost)
            texts = {h for h in lost if counts[h] >= GRAPH_COPIES}
        if copies is not None and texts:
            self._mark_rebalance(copies, texts)
        for part in _batches(graph_ids, self._batch):
            self.collection.delete(ids=list(part))
        if copies is not None:
            for part in _batches(copy_ids, self._batch):
                copies.delete(ids=list(part))
            if texts:
                self._rebalance(self.collection, copies, texts)
                self._mark_rebalance(copies, set())

    def _mark_rebalance(self, copies: Collection, texts: set[str]) -> None:
        meta: dict[str, Any] = {COPIES_OF: str(self.collection.id)}
        if texts:
            meta[REBALANCE] = json.dumps(sorted(texts))
        copies.modify(metadata=meta)

    def _rebalance(self, graph: Collection, copies: Collection, texts: Iterable[str]) -> None:
        """Move copies of ``texts`` into the graph until it holds ``GRAPH_COPIES`` of each.

        Each move adds the rows to the graph before deleting them from the copies, so a crash
        can leave a row in both; such rows are deleted from the copies first. Running it again
        changes nothing.
        """
        for part in _batches(sorted(set(texts)), self._batch):
            held: dict[str, set[str]] = {h: set() for h in part}
            for cid, meta in self._metadatas({CONTENT_HASH: {"$in": list(part)}}, graph):
                held[str(meta[CONTENT_HASH])].add(cid)
            in_both = [cid for ids in held.values() for cid in ids]
            if in_both and (in_both := copies.get(ids=in_both, include=[])["ids"]):
                copies.delete(ids=in_both)
            for content_hash, in_graph in held.items():
                while (need := GRAPH_COPIES - len(in_graph)) > 0:
                    got = copies.get(
                        where=cast(Any, {CONTENT_HASH: content_hash}),
                        limit=need,
                        include=cast(Any, ["documents", "metadatas", "embeddings"]),
                    )
                    if not got["ids"]:
                        break
                    graph.add(
                        ids=got["ids"],
                        documents=got["documents"],
                        metadatas=got["metadatas"],
                        embeddings=got["embeddings"],
                    )
                    copies.delete(ids=got["ids"])
                    in_graph.update(got["ids"])

    def _finish_rebalance(self, graph: Collection) -> None:
        """Finish moving copies into the graph where a crash interrupted :meth:`_delete`."""
        copies = self._get(copies_name(graph))
        pending = (copies.metadata or {}).get(REBALANCE) if copies is not None else None
        if copies is not None and isinstance(pending, str):
            self._rebalance(graph, copies, json.loads(pending))
            copies.modify(metadata={COPIES_OF: str(graph.id)})

    def _drop(self, collection: Collection, name: str) -> None:
        """Delete a collection, its companion first (a companion is never left behind)."""
        from chromadb.errors import NotFoundError

        with contextlib.suppress(NotFoundError):
            self.client.delete_collection(copies_name(collection))
        self.client.delete_collection(name)

    def _with_copies(self, copies: Collection, hits: list[Hit], asked: _Query) -> list[Hit]:
        """The graph's ``hits`` with the copies' rows that belong among the ``k`` best.

        With a filter, the candidates are the copies that pass it. Without one, a text can have
        copies among the best only when every graph row of it is there already (they share
        its score), so only then are its copies read, at most ``k`` of each.
        """
        vector, k, where, where_document, include_vectors = asked
        candidates: list[tuple[str, Metadata]] = []
        if where or where_document:
            candidates = self._passing(copies, where, where_document, k)
        else:
            shown = Counter(_hash_of(hit.metadata) for hit in hits)
            for content_hash, n in shown.items():
                if content_hash is not None and n >= GRAPH_COPIES:
                    candidates.extend(
                        self._first_rows(copies, [{CONTENT_HASH: content_hash}], None, k)
                    )
        seen = {hit.id for hit in hits}
        # (Every copy has its text's hash: rows without one are never routed to the copies.)
        candidates = [(cid, meta) for cid, meta in candidates if cid not in seen]
        if not candidates:
            return hits
        # Every copy of a text has the text's vector: one score per text, one row read for it.
        scores = {_hash_of(hit.metadata): hit.score for hit in reversed(hits)}
        first: dict[str | None, str] = {}
        for cid, meta in candidates:
            first.setdefault(_hash_of(meta), cid)
        got = copies.get(ids=list(first.values()), include=cast(Any, ["documents", "embeddings"]))
        embeddings = got["embeddings"] if got["embeddings"] is not None else []
        by_id = dict(
            zip(got["ids"], zip(got["documents"] or [], embeddings, strict=True), strict=True)
        )
        query = np.asarray(vector, dtype=np.float32)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        texts: dict[str | None, tuple[str, Vector, float]] = {}
        for content_hash, cid in first.items():
            text, row_vector = by_id[cid]
            row = np.asarray(row_vector, dtype=np.float32)
            score = scores.get(content_hash)
            if score is None:
                score = float(row @ query) / max(float(np.linalg.norm(row)), 1e-12)
            texts[content_hash] = (text or "", row, score)
        # Best first; on equal scores the graph's rows, then the copies in stored order.
        ranked = sorted(
            [(hit.score, 0, n, hit) for n, hit in enumerate(hits)]
            + [
                (texts[_hash_of(meta)][2], 1, n, (cid, meta))
                for n, (cid, meta) in enumerate(candidates)
            ],
            key=lambda entry: (-entry[0], entry[1], entry[2]),
        )[:k]
        merged: list[Hit] = []
        for score, kind, _, item in ranked:
            if kind == 0:
                merged.append(cast(Hit, item))
                continue
            cid, meta = cast(tuple[str, Metadata], item)
            text, row, _ = texts[_hash_of(meta)]
            merged.append(Hit(cid, text, meta, score, row if include_vectors else None))
        return merged

    def _passing(
        self, copies: Collection, where: Where | None, where_document: Where | None, k: int
    ) -> list[tuple[str, Metadata]]:
        """The copies a filter passes, as search candidates: each text's first ``k`` of them.

        Copies are few texts in many rows, and reading a row's metadata costs about 0.1 ms, so
        the texts are found a page of ``k`` rows at a time, each page leaving out the texts
        already seen; a text a full page may have cut short is read again on its own. Past
        ``FILTER_PAGES`` pages (a filter passing copies of many texts), every row is read.
        """
        rows: dict[str, list[tuple[str, Metadata]]] = {}
        short: set[str] = set()
        base = [dict(where)] if where else []
        for _ in range(FILTER_PAGES):
            seen = [{CONTENT_HASH: {"$nin": list(rows)}}] if rows else []
            page = self._first_rows(copies, base + seen, where_document, k)
            for cid, meta in page:
                rows.setdefault(str(_hash_of(meta)), []).append((cid, meta))
            if len(page) < k:
                break
            short.update(str(_hash_of(m)) for _, m in page)
        else:
            return self._first_rows(copies, base, where_document, None)
        for content_hash in short:
            if len(rows[content_hash]) < k:
                only = [{CONTENT_HASH: content_hash}]
                rows[content_hash] = self._first_rows(copies, base + only, where_document, k)
        return [row for text in rows.values() for row in text]

    @staticmethod
    def _first_rows(
        collection: Collection,
        clauses: list[dict[str, Any]],
        where_document: Where | None,
        limit: int | None,
    ) -> list[tuple[str, Metadata]]:
        """Ids and metadata of the first ``limit`` rows passing all ``clauses`` (stored order)."""
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        got = collection.get(
            where=cast(Any, where),
            where_document=cast(Any, dict(where_document)) if where_document else None,
            limit=limit,
            include=cast(Any, ["metadatas"]),
        )
        return [
            (cid, dict(meta or {}))
            for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True)
        ]

    # ------------------------------------------------------------------ repair

    def damage(self) -> str | None:
        """What is wrong with the collection's files after a crash, or None.

        The companion holding copies of repeated text is checked too. See
        :mod:`~ollama_rag.storage.chroma_files`; a Chroma server's files are its own.
        """
        files = self._handle.files
        if files is None or self._collection is None:
            return None
        for name in self._file_names():
            problem = chroma_files.check(files, name)
            if problem is not None:
                return problem if name == self.name else f"its copies: {problem}"
        return None

    def salvage(self, *, batch: int = WRITE_BATCH) -> Iterator[list[StoredChunk]]:
        """Every row, read from Chroma's files (the copies' too), with the vectors that survived."""
        files = self._handle.files
        if files is None or self._collection is None:
            return self.iter_chunks(batch=batch)
        return itertools.chain.from_iterable(
            chroma_files.salvage(files, name, batch=batch) for name in self._file_names()
        )

    def _file_names(self) -> list[str]:
        copies = self._copies()
        return [self.name] if copies is None else [self.name, copies.name]

    # ------------------------------------------------------------------ migration

    @_gated
    def recover(self) -> None:
        """Finish a switch that a crash interrupted, so the name is one whole index again."""
        name = self.name
        current = self._get(name)
        retired = self._get(name + RETIRED_SUFFIX)
        if current is None and retired is not None:
            target = self._get(name + NEXT_SUFFIX)
            done = target is not None and bool((target.metadata or {}).get(MIGRATION_COMPLETE))
            # Step 2 ran: finish step 3 with the complete copy, or (never expected) undo step 2.
            if target is not None and done:
                rename(target, name)
            else:
                rename(retired, name)
                retired = None
            current = self._get(name)
        if current is not None:
            self._strip_markers(current)
            self._finish_rebalance(current)
        if retired is not None:
            self._drop(retired, name + RETIRED_SUFFIX)

    @staticmethod
    def _strip_markers(collection: Collection) -> None:
        meta = dict(collection.metadata or {})
        if any(key in meta for key in _MIGRATION_KEYS):
            for key in _MIGRATION_KEYS:
                meta.pop(key, None)
            collection.modify(metadata=meta)

    @_gated
    def side(self, manifest: IndexManifest, *, version: str) -> ChromaStore:
        """The side collection ``<name>.next``: resumed if it is for the same model and state."""
        self.check_open()
        name = self.name + NEXT_SUFFIX
        existing = self._get(name)
        if existing is not None:
            found = IndexManifest.from_metadata(existing.metadata)
            same = (
                found is not None
                and found.vector_identity == manifest.vector_identity
                and (existing.metadata or {}).get(SOURCE_VERSION) == version
            )
            if same:
                return ChromaStore(self._handle, name, collection=existing, owns_handle=False)
            # Abandoned: a migration to another model, or the index changed since it began.
            self._drop(existing, name)
        metadata = {
            **manifest.to_metadata(),
            MIGRATION_OF: self.name,
            MIGRATION_COMPLETE: False,
            SOURCE_VERSION: version,
        }
        created = self.client.create_collection(
            name,
            metadata=cast(Any, metadata),
            configuration=COLLECTION_CONFIGURATION,
            embedding_function=None,
        )
        return ChromaStore(self._handle, name, collection=created, owns_handle=False)

    @_gated
    def switch(self, side: ChunkStore) -> None:
        """Switch to the complete side collection (see the module docstring for the steps)."""
        if not isinstance(side, ChromaStore) or side.name != self.name + NEXT_SUFFIX:
            msg = f"Cannot switch {self.location} to {side.location}: not its side store"
            raise RagIndexError(msg, path=self.path)
        old, new = self.collection, side.collection
        meta = dict(new.metadata or {})
        new.modify(metadata={**meta, MIGRATION_COMPLETE: True})
        rename(old, self.name + RETIRED_SUFFIX)
        rename(new, self.name)
        self._strip_markers(new)
        self._drop(old, self.name + RETIRED_SUFFIX)
        self._collection = new
        side.close()

    # ------------------------------------------------------------------ LangChain

    def _chroma_get(
        self,
        *,
        ids: list[str] | None,
        where: Where | None,
        limit: int | None,
        offset: int | None,
        where_document: Where | None,
        include: list[str] | None,
    ) -> dict[str, Any]:
        """What Chroma's ``get`` returns, over the graph and then the copies as one collection."""
        asked: dict[str, Any] = {"ids": ids, "where": where, "where_document": where_document}
        if include is not None:
            asked["include"] = include
        got: dict[str, Any] = dict(self.collection.get(**asked, limit=limit, offset=offset))
        copies = self._copies()
        if copies is None or (limit is not None and len(got["ids"]) >= limit):
            return got
        # The copies' part of the page: past the graph's rows that pass the filter.
        if got["ids"] or not offset:
            graph_rows = (offset or 0) + len(got["ids"])
        else:
            graph_rows = len(self.collection.get(**{**asked, "include": []})["ids"])
        more: dict[str, Any] = dict(
            copies.get(
                **asked,
                limit=None if limit is None else limit - len(got["ids"]),
                offset=max(0, (offset or 0) - graph_rows),
            )
        )
        for key, value in more.items():
            if key == "included" or value is None or got.get(key) is None:
                continue
            if isinstance(value, np.ndarray):
                got[key] = np.concatenate(
                    [np.asarray(got[key]).reshape(-1, *value.shape[1:]), value]
                )
            else:
                got[key] = [*got[key], *value]
        return got

    def _chroma_query(
        self,
        vectors: Sequence[Sequence[float]],
        k: int,
        *,
        where: Where | None,
        where_document: Where | None,
        include: list[str] | None,
    ) -> dict[str, Any]:
        """What Chroma's ``query`` returns, from :meth:`query` (so the copies are included)."""
        wanted = set(include if include is not None else ["documents", "metadatas", "distances"])
        found = [
            self.query(
                vector,
                k,
                where=where,
                where_document=where_document,
                include_vectors="embeddings" in wanted,
            )
            for vector in vectors
        ]
        fields: dict[str, Callable[[Hit], Any]] = {
            "documents": lambda hit: hit.text,
            "metadatas": lambda hit: hit.metadata,
            "distances": lambda hit: 1.0 - hit.score,
            "embeddings": lambda hit: hit.vector,
        }
        columns: dict[str, Any] = {"ids": [[hit.id for hit in hits] for hits in found]}
        for key, value in fields.items():
            columns[key] = [[value(h) for h in hits] for hits in found] if key in wanted else None
        return {**columns, "uris": None, "data": None, "included": sorted(wanted)}

    def vectorstore(self, embeddings: Embeddings, writer: IndexWriter) -> Chroma:
        """A LangChain ``Chroma`` on this collection whose writes go through ``writer``.

        Its reads and searches cover the copies of repeated text too.
        """
        return _guarded_chroma()(
            writer,
            self,
            client=self.client,
            collection_name=self.collection.name,
            embedding_function=embeddings,
            create_collection_if_not_exists=False,
        )


@functools.cache
def _guarded_chroma() -> Callable[..., Chroma]:
    """A ``Chroma`` subclass whose writes go through the index, built on first use.

    langchain_chroma is imported only when asked for: importing the package must not import
    chromadb (see :mod:`ollama_rag.sqlite_compat`).
    """
    from langchain_chroma import Chroma

    class GuardedChroma(WritesThroughIndex, Chroma):
        """LangChain's ``Chroma`` on an index's collection; writes go through the index."""

        def __init__(self, writer: IndexWriter, store: ChromaStore, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._writer = writer
            self._store = store

        def get(
            self,
            ids: str | list[str] | None = None,
            where: Any = None,
            limit: int | None = None,
            offset: int | None = None,
            where_document: Any = None,
            include: list[str] | None = None,
        ) -> dict[str, Any]:
            """Chroma's ``get`` over the index's rows, the copies of repeated text included."""
            return self._store._chroma_get(
                ids=[ids] if isinstance(ids, str) else ids,
                where=where,
                limit=limit,
                offset=offset,
                where_document=where_document,
                include=include,
            )

        # Every LangChain search (similarity, scores, vectors, MMR) asks Chroma through this
        # private method of Chroma's; answered by the store, it covers the copies too.
        def _Chroma__query_collection(  # noqa: N802 (the name Chroma's methods call)
            self,
            query_texts: list[str] | None = None,
            query_embeddings: list[list[float]] | None = None,
            n_results: int = 4,
            where: Where | None = None,
            where_document: Where | None = None,
            **kwargs: Any,
        ) -> dict[str, Any]:
            vectors = query_embeddings
            if vectors is None:  # LangChain embeds queries itself; this is for completeness
                vectors = cast(Any, self.embeddings).embed_documents(query_texts or [])
            include = kwargs.pop("include", None)
            if kwargs:
                msg = (
                    f"index.vectorstore searches take filter= and where_document=, not "
                    f"{', '.join(f'{name}=' for name in kwargs)}"
                )
                raise ConfigError(msg)
            return self._store._chroma_query(
                vectors,
                n_results,
                where=where,
                where_document=where_document,
                include=include,
            )

    return GuardedChroma
