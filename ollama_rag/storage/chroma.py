"""Chroma behind the storage seam: the only module that calls chromadb or langchain_chroma.

An index is one Chroma collection: its manifest in the collection's metadata (scalars under
``ollama_rag.`` keys), each chunk a row of id, document, metadata and embedding. Vectors are
L2-normalised, so the collection uses cosine space, and similarity is ``1 - distance``.

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

import asyncio
import contextlib
import ctypes
import functools
import os
import re
import shutil
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeAlias, TypeVar, cast

import numpy as np

from ollama_rag.errors import (
    ConfigError,
    IndexNotFoundError,
    IndexReadOnlyError,
    RagIndexError,
)
from ollama_rag.manifest import IndexManifest
from ollama_rag.storage import chroma_files
from ollama_rag.storage.base import (
    ChunkRow,
    ChunkStore,
    Hit,
    IndexWriter,
    SourceWrite,
    StoredChunk,
    StoredSource,
    Vector,
    Where,
)
from ollama_rag.storage.lock import DirectoryLock, WriteGate, snapshot
from ollama_rag.storage.schema import (
    CHUNK_INDEX,
    COMPLETE,
    CONTENT_HASH,
    ROOT,
    SOURCE,
    SPLIT_OF,
    Metadata,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
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

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{1,510})[A-Za-z0-9]$")
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


_registry_lock = threading.Lock()
_open: dict[str, _Shared] = {}


def _forget_after_fork() -> None:
    # A forked child inherits the parent's clients and locks but owns neither: it must open
    # (and lock) the directory itself, or be refused like any other process.
    global _registry_lock
    _registry_lock = threading.Lock()
    _open.clear()
    _forget_chroma_systems()


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
    os.register_at_fork(after_in_child=_forget_after_fork)


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
        with _registry_lock:
            shared = _open.get(self.key)
            if shared is None:
                return
            shared.refs -= 1
            if shared.refs > 0:
                return
            del _open[self.key]
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
    path: str | os.PathLike[str] | None, client: ClientAPI | None, *, read_only: bool = False
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
        with _registry_lock:
            _open[key] = _Shared(client=memory, lock=None, refs=1, database=database)
        return _Handle(client=memory, key=key, path=None)

    directory = Path(path).expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        msg = f"Index path {directory} is a file; pass a directory (it is created if missing)"
        raise ConfigError(msg)
    if read_only:
        return _open_snapshot(directory)
    key = str(directory)
    with _registry_lock:
        shared = _open.get(key)
        if shared is None:
            directory.mkdir(parents=True, exist_ok=True)
            shared = _open_persistent(key)
            _open[key] = shared
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
    if not (directory / "chroma.sqlite3").is_file():
        msg = (
            f"No index at {directory}: read_only=True opens an existing index (to create one, "
            f"open it without read_only and name the model: RagIndex({str(directory)!r}, "
            "model='bge-m3'))"
        )
        raise IndexNotFoundError(msg, path=str(directory))
    copy = snapshot(directory)
    try:
        shared = _open_persistent(str(copy))
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)
        raise
    shared.snapshot = copy
    shared.refs = 1
    key = f"snapshot:{copy}"
    with _registry_lock:
        _open[key] = shared
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
    """
    import chromadb

    client = chromadb.PersistentClient(path=str(directory))
    try:
        return [
            (collection.name, dict(collection.metadata or {}), collection.count())
            for collection in sorted(client.list_collections(), key=lambda c: c.name)
        ]
    finally:
        cast(Any, client).close()  # ClientAPI's stub lacks close()


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


class ChromaStore(ChunkStore):
    """An index stored in a Chroma collection (embedded, in memory, or on a Chroma server).

    Open one with :meth:`open`; ``RagIndex`` does this for you.

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

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        client: ClientAPI | None = None,
        collection: str = "default",
        read_only: bool = False,
    ) -> ChromaStore:
        """Open (or share) the Chroma client and finish any interrupted migration.

        Args:
            path: A directory for a persistent index (created if missing), or None.
            client: An existing chromadb client (e.g. ``HttpClient`` for ``chroma run``); the
                caller keeps ownership of it.
            collection: The collection name.
            read_only: Refuse writes; a directory is opened as a private snapshot, so that
                another process may be writing it (see :func:`~ollama_rag.storage.lock.snapshot`).

        Raises:
            ConfigError: Both ``path`` and ``client`` were given, ``path`` is a file, or the
                collection name is not one Chroma accepts.
            IndexLockedError: Another process has the directory open.
        """
        if not _COLLECTION_NAME.match(collection):
            msg = (
                f"Invalid collection name {collection!r}: use 3-500 characters from "
                "[A-Za-z0-9._-], starting and ending with a letter or digit"
            )
            raise ConfigError(msg)
        handle = _open_client(path, client, read_only=read_only)
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
            msg = (
                f"The index at {self.location} was opened with read_only=True and cannot be "
                f"written ({what}); open it without read_only to write"
            )
            raise IndexReadOnlyError(msg, path=self.path)
        lock = self._handle.lock
        if lock is None or self._handle.read_only:
            yield
            return
        lock.note(what)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):  # the note is a courtesy, never a failure
                lock.note(None)

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
            msg = (
                f"The Chroma collection at {self.location} was not created by ollama-rag "
                "and records no embedding model, so it cannot be guarded. Use another "
                "collection name, e.g. RagIndex(path, model=..., collection='docs')"
            )
            raise RagIndexError(msg, path=self.path)
        return manifest

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
        self.collection.modify(metadata=manifest.to_metadata())

    # ------------------------------------------------------------------ reading and search

    def count(self) -> int:
        """The number of stored rows."""
        return int(self.collection.count())

    def iter_chunks(self, *, batch: int = WRITE_BATCH) -> Iterator[list[StoredChunk]]:
        """Every chunk with text and metadata, a page at a time."""
        # The first pages are small, so that a caller (a migration) starts its work at once.
        size = min(batch, self._batch, FIRST_PAGE)
        offset = 0
        while True:
            got = self.collection.get(
                limit=size, offset=offset, include=cast(Any, ["documents", "metadatas"])
            )
            if not got["ids"]:
                return
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
        """Nearest rows by cosine similarity (Chroma returns fewer when it has fewer)."""
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

    async def aquery(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        """:meth:`query`, off the event loop when the client talks to a Chroma server."""
        call = functools.partial(
            self.query,
            vector,
            k,
            where=where,
            where_document=where_document,
            include_vectors=include_vectors,
        )
        if self._handle.remote:
            return await asyncio.to_thread(call)
        return call()  # in-process and quick: a thread hop would cost more than the query

    # ------------------------------------------------------------------ lookups

    def _metadatas(self, where: Mapping[str, Any]) -> Iterator[tuple[str, Metadata]]:
        got = self.collection.get(where=cast(Any, where), include=cast(Any, ["metadatas"]))
        for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
            if meta is not None:
                yield cid, dict(meta)

    def stored_sources(self, sources: Sequence[str]) -> dict[str, StoredSource]:
        """Markers and roots of the sources with a first chunk (a group per Chroma call)."""
        found: dict[str, StoredSource] = {}
        for part in _batches(list(dict.fromkeys(sources)), self._batch):
            for _, meta in self._metadatas(_first_chunks_of(part)):
                entry = found.setdefault(str(meta[SOURCE]), StoredSource())
                if COMPLETE in meta:
                    entry.markers.add(str(meta[COMPLETE]))
                if ROOT in meta:
                    entry.roots.add(str(meta[ROOT]))
        return found

    def stored_metadata(self, ids: Sequence[str]) -> dict[str, Metadata]:
        """The metadata of the stored ones among ``ids``."""
        stored: dict[str, Metadata] = {}
        for part in _batches(ids, self._batch):
            got = self.collection.get(ids=list(part), include=cast(Any, ["metadatas"]))
            for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=True):
                stored[cid] = dict(meta or {})
        return stored

    def stored_parts(self, wholes: Sequence[str]) -> list[StoredChunk]:
        """Rows stored as parts of the over-long chunks ``wholes``."""
        parts: list[StoredChunk] = []
        for part in _batches(wholes, self._batch):
            got = self.collection.get(
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
        copy.
        """
        one_id: dict[str, str] = {}
        for part in _batches(sorted(set(content_hashes)), self._batch):
            for cid, meta in self._metadatas({CONTENT_HASH: {"$in": list(part)}}):
                one_id.setdefault(str(meta[CONTENT_HASH]), cid)
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
        return {str(meta[SOURCE]) for _, meta in self._metadatas(where)}

    def _ids_of(self, sources: Sequence[str]) -> list[str]:
        ids: list[str] = []
        for part in _batches(sources, self._batch):
            where = {SOURCE: {"$in": list(part)}}
            ids.extend(self.collection.get(where=cast(Any, where), include=[])["ids"])
        return ids

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
        present = set(self._ids_of(replacing))
        stale = [i for i in present if i not in keep]
        marked = self._add(group, present=present, fold_markers=not stale)
        self._update_metadata(group)
        for part in _batches(stale, self._batch):
            self.collection.delete(ids=list(part))
        markers = [
            (w.rows[0].id, w.marker)
            for w in group
            if w.marker is not None and w.rows and w.rows[0].id not in marked
        ]
        for part in _batches(markers, self._batch):
            self.collection.update(
                ids=[m[0] for m in part], metadatas=[{COMPLETE: m[1]} for m in part]
            )

    def _unmark(self, sources: Sequence[str]) -> None:
        """Clear the completion markers of sources about to be rewritten.

        Otherwise a crash mid-rewrite would leave an old marker in place (Chroma merges
        metadata), and the half-written source would pass for the old, complete one.
        """
        for part in _batches(sources, self._batch):
            where = _first_chunks_of(part)
            firsts = self.collection.get(where=cast(Any, where), include=[])["ids"]
            if firsts:
                self.collection.update(ids=firsts, metadatas=[{COMPLETE: None}] * len(firsts))

    def _add(
        self, group: Sequence[SourceWrite], *, present: set[str], fold_markers: bool
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
            group: The sources and their rows.
            present: Every id stored for the group's replacing sources (an id is derived from
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
            existing = {r.id for _, rows in replacing for r in rows if r.id in present}
            unchecked = [(w, rows) for w, rows, _ in call if w.marker is None and not w.checked]
            if others := [r.id for _, rows in unchecked for r in rows]:
                existing.update(self.collection.get(ids=others, include=[])["ids"])
            new: list[tuple[ChunkRow, Metadata]] = []
            for write, rows, whole in call:
                fresh = [(r, r.metadata) for r in rows if r.id not in existing]
                if (
                    fold_markers
                    and whole
                    and write.marker is not None
                    and not write.unmark
                    and len(fresh) == len(rows)
                ):
                    first, meta = fresh[0]
                    fresh[0] = (first, {**meta, COMPLETE: write.marker})
                    marked.add(first.id)
                new.extend(fresh)
            upserts = [(r, r.metadata) for _, rows, _ in call for r in rows if r.id in existing]
            self._put(self.collection.add, new)
            self._put(self.collection.upsert, upserts)
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
        changes: list[tuple[str, Metadata]] = []
        for write in group:
            for row in write.rows:
                if row.vector is not None:
                    continue
                old = {k: v for k, v in (row.stored or {}).items() if k != COMPLETE}
                new = {k: v for k, v in row.metadata.items() if k != COMPLETE}
                if old != new:
                    changes.append((row.id, {**dict.fromkeys(old), **row.metadata}))
        for part in _batches(changes, self._batch):
            self.collection.update(
                ids=[c[0] for c in part], metadatas=cast(Any, [c[1] for c in part])
            )

    @_gated
    def delete_ids(self, ids: Sequence[str]) -> int:
        """Delete the stored rows among ``ids``."""
        found = list(self.stored_metadata(ids))
        for part in _batches(found, self._batch):
            self.collection.delete(ids=list(part))
        return len(found)

    @_gated
    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete every row of ``sources``."""
        ids = self._ids_of(sources)
        for part in _batches(ids, self._batch):
            self.collection.delete(ids=list(part))
        return len(ids)

    # ------------------------------------------------------------------ repair

    def damage(self) -> str | None:
        """What is wrong with the collection's files after a crash, or None.

        See :mod:`~ollama_rag.storage.chroma_files`; a Chroma server's files are its own.
        """
        if self._handle.files is None:
            return None
        return chroma_files.check(self._handle.files, self.name)

    def salvage(self, *, batch: int = WRITE_BATCH) -> Iterator[list[StoredChunk]]:
        """Every row, read from Chroma's files, with the vectors that survived."""
        if self._handle.files is None:
            return self.iter_chunks(batch=batch)
        return chroma_files.salvage(self._handle.files, self.name, batch=batch)

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
        if retired is not None:
            self.client.delete_collection(name + RETIRED_SUFFIX)

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
            self.client.delete_collection(name)
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
        self.client.delete_collection(self.name + RETIRED_SUFFIX)
        self._collection = new
        side.close()

    # ------------------------------------------------------------------ LangChain

    def vectorstore(self, embeddings: Embeddings, writer: IndexWriter) -> Chroma:
        """A LangChain ``Chroma`` on this collection whose writes go through ``writer``."""
        return _guarded_chroma()(
            writer,
            client=self.client,
            collection_name=self.collection.name,
            embedding_function=embeddings,
            create_collection_if_not_exists=False,
        )


BYPASS_MESSAGE = (
    "{what} on index.vectorstore would bypass ollama-rag's chunking, completion markers and "
    "model guard; use index.add_texts(...) / index.add_documents(...) to write and "
    "index.delete(ids=... or source=...) to delete"
)


@functools.cache
def _guarded_chroma() -> Callable[..., Chroma]:
    """A ``Chroma`` subclass whose writes go through the index, built on first use.

    langchain_chroma is imported only when asked for: importing the package must not import
    chromadb (see :mod:`ollama_rag.sqlite_compat`).
    """
    from langchain_chroma import Chroma

    class GuardedChroma(Chroma):
        """LangChain's ``Chroma`` on an index's collection; writes go through the index."""

        def __init__(self, writer: IndexWriter, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._writer = writer

        def add_texts(
            self,
            texts: Iterable[str],
            metadatas: list[dict[Any, Any]] | None = None,
            ids: list[str] | None = None,
            **kwargs: Any,
        ) -> list[str]:
            """Add texts through the index (split, embedded, marked); ids are its own."""
            if ids is not None and any(i is not None for i in ids):
                raise ConfigError(BYPASS_MESSAGE.format(what="Writing chosen ids"))
            if kwargs:
                raise ConfigError(BYPASS_MESSAGE.format(what=f"add_texts({', '.join(kwargs)}=)"))
            return self._writer.add_texts(list(texts), metadatas)

        def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
            """Add documents through the index, like :meth:`add_texts`."""
            ids = kwargs.pop("ids", None) or [d.id for d in documents]
            return self.add_texts(
                [d.page_content for d in documents],
                [dict(d.metadata) for d in documents],
                ids=ids,
                **kwargs,
            )

        def delete(self, ids: list[str] | None = None, **kwargs: Any) -> None:
            """Delete chunks by id through the index."""
            if kwargs or ids is None:
                raise ConfigError(BYPASS_MESSAGE.format(what="Deleting by filter"))
            self._writer.delete(ids)

        def _refuse(self, *_: Any, **__: Any) -> Any:
            raise ConfigError(BYPASS_MESSAGE.format(what="This call"))

        update_document = update_documents = _refuse
        add_images = reset_collection = delete_collection = fork = _refuse

    return GuardedChroma
