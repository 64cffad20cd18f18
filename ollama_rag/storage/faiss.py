"""FAISS behind the storage seam: vectors searched by FAISS, everything else in SQLite.

An index directory holds ``faiss.sqlite3`` (the :class:`~.docstore.DocStore`: chunks, their
vectors, manifests, markers) and ``faiss/<collection uid>.faiss``, the search index. The
database is the source of truth; the FAISS file is a cache of the vectors in it:

- every write call is one SQLite transaction (synced), and gives the collection a new *stamp*;
- the in-memory FAISS index is changed after the commit, and written to its file (a temporary
  file, fsync, rename), stamped, on close and after an operation (``doing``) that changed a
  tenth of it (each save writes the whole index);
- on open, a file whose stamp is not the database's (a crash after a commit) is caught up: FAISS
  ids are never reused, so the rows deleted and added since it was saved are the difference of
  the two id sets. A missing file is rebuilt from the stored vectors; one that cannot be read is
  rebuilt with an :class:`~ollama_rag.errors.IndexRepairedWarning`. Nothing is embedded again.

So a ``kill -9`` at any instant leaves the last committed state, and the FAISS index used is
always the one of the rows. A migration writes a side collection in the same database, and
:meth:`FaissStore.switch` is one transaction.

Index types (recorded in the manifest as ``vector_index``): ``"flat"``, exact inner product on
L2-normalised vectors (``IndexFlatIP`` in an ``IndexIDMap2``; scores are cosines, as Chroma's);
``"hnsw"``, an approximate graph (``IndexHNSWFlat``, inner product) for large indexes. It holds
one entry per distinct text (content hash): a search finds the text, then every stored row of
it, since thousands of identical vectors cut a graph apart. FAISS cannot remove from it, so
deleted entries are left out of searches (another row of the text takes over) until a quarter
of the graph is dead, when it is rebuilt.

Filters are Chroma's syntax, evaluated by :mod:`~ollama_rag.storage.filters`; FAISS then
searches only the rows that pass (an ``IDSelectorBatch``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sqlite3
import struct
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ollama_rag.errors import (
    FAISS_EXTRA_MESSAGE,
    FAISS_REBUILT_MESSAGE,
    READ_ONLY_MESSAGE,
    ConfigError,
    IndexReadOnlyError,
    IndexRepairedWarning,
    MissingExtraError,
    RagIndexError,
)
from ollama_rag.manifest import IndexManifest
from ollama_rag.storage.base import (
    ChunkStore,
    CollectionSummary,
    Hit,
    SourceWrite,
    StoredChunk,
    StoredSource,
    Vector,
    Where,
    check_collection_name,
    folder_size,
    index_directory,
)
from ollama_rag.storage.docstore import DOCSTORE_FILE, DocStore, Row, as_vector
from ollama_rag.storage.filters import matches, matches_document, prefilter
from ollama_rag.storage.lock import DirectoryLock, Registry, WriteGate, noting, snapshot
from ollama_rag.storage.schema import COMPLETE, CONTENT_HASH, ROOT, SOURCE, Metadata

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore

    from ollama_rag.storage.base import IndexWriter

__all__ = ["FAISS_DIR", "INDEX_TYPES", "SAVE_AFTER", "SAVE_SHARE", "FaissStore", "import_faiss"]

INDEX_TYPES = ("flat", "hnsw")
"""The FAISS index types: exact (``flat``, the default) and approximate (``hnsw``)."""
FAISS_DIR = "faiss"
"""The folder of an index directory holding the FAISS files, one per collection."""
# HNSW: neighbours per node, and the candidate lists of building and searching. Recall@10 on
# 1,024-d text embeddings is in benchmarks/bench_stores.py.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128
# An HNSW graph is rebuilt once this share of its entries are deleted rows.
HNSW_DEAD_SHARE = 0.25
SAVE_SHARE = 0.1
"""After an operation, the FAISS file is saved once this share of its rows changed..."""
SAVE_AFTER = 60.0
"""...or this many seconds passed since the last save (and always on close)."""
FILTER_FIRST_ROWS = 2_000
"""A filtered search scores the passing rows' stored vectors when at most this many pass...

Beyond it, the filter is broad: the search ranks first (``RANK_FIRST_FACTOR`` times ``k``
rows, widening) and keeps the passing rows, instead of reading and checking every passing
row (4 s for a filter every row of 100,000 passes, against 62 ms ranked first).
"""
RANK_FIRST_FACTOR = 8
"""...and ranks this many times ``k`` rows in the first round of a broad filter."""
_MAGIC = b"ORAGFAIS"
_HEADER = struct.Struct("<8s32sQ")  # magic, stamp, dead ids that follow
_ADD_BATCH = 4096
_LOCKED_FIX = "Close the other process first, or open the index with read_only=True to search it"


def import_faiss() -> Any:
    """The ``faiss`` module.

    Raises:
        MissingExtraError: faiss-cpu is not installed (the message is the pip line).
    """
    try:
        import faiss
    except ImportError as err:
        raise MissingExtraError(FAISS_EXTRA_MESSAGE, extra="faiss", package="faiss-cpu") from err
    return faiss


def _normalised(vectors: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
    matrix = np.array(vectors, dtype=np.float32, ndmin=2)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)


_ROW_KEY = "row:"


def _text_key(fid: int, content_hash: Any) -> str:
    """What identifies a row's text (and so its vector): its content hash, else the row."""
    return str(content_hash) if content_hash else f"{_ROW_KEY}{fid}"


class _BroadFilterError(Exception):
    """More rows pass a filter than a restricted search is worth (stops reading them)."""


@contextlib.contextmanager
def _one_thread(faiss: Any) -> Iterator[None]:
    """Run FAISS calls in the block on the calling thread alone.

    One query is too little work to share out: waking FAISS's OpenMP threads costs more than
    they save, most of all while other processes (Ollama) use the cores. Measured on two cores
    under load, one query over a flat index of 20,000 256-d vectors took 2.9 ms on one thread
    and 26 ms on two; 115 and 349 ms at 1,000,000 (see docs/stores.md). The setting is the
    calling thread's own (an OpenMP per-thread value, not the process's), and is put back, so
    the process's other FAISS calls keep theirs.
    """
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class _Vectors:
    """One collection's FAISS index in memory: which stamp it reflects, and its dead ids."""

    def __init__(self, kind: str, dimension: int, stamp: str | None, index: Any = None) -> None:
        faiss = import_faiss()
        if index is None:
            if kind == "hnsw":
                inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
                inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            else:
                inner = faiss.IndexFlatIP(dimension)
            index = faiss.IndexIDMap2(inner)
        self.kind = kind
        self.index = index
        self.stamp = stamp
        self.dead: set[int] = set()
        # HNSW: one graph entry per distinct text (content hash); the other rows of a text are
        # found through it. Thousands of identical vectors in a graph cut the rest of it off.
        self.unique = kind == "hnsw"
        self.rep: dict[str, int] = {}  # content hash -> the row in the graph
        self.text_of: dict[int, str] = {}  # row in the graph -> its content hash
        self.dirty = True  # differs from its file
        self.changes = 0  # rows added or removed since the file was saved
        self.saved_at = time.monotonic()

    def add(self, fids: Sequence[int], vectors: Sequence[Vector], hashes: Sequence[str]) -> None:
        """Add rows (with an HNSW graph, only those of texts it does not hold yet)."""
        if self.unique:
            keep = []
            for i, (fid, text) in enumerate(zip(fids, hashes, strict=True)):
                if text not in self.rep:
                    self.rep[text], self.text_of[fid] = fid, text
                    keep.append(i)
            fids, vectors = [fids[i] for i in keep], [vectors[i] for i in keep]
        if fids:
            self.index.add_with_ids(np.stack(vectors), np.asarray(fids, dtype=np.int64))
            self.changes += len(fids)

    def remove(self, fids: Sequence[int]) -> set[str]:
        """Remove rows; returns the texts that lost their graph entry (HNSW)."""
        if not self.unique:
            if fids:
                self.index.remove_ids(np.asarray(fids, dtype=np.int64))
                self.changes += len(fids)
            return set()
        orphaned = set()
        for fid in fids:
            text = self.text_of.pop(fid, None)
            if text is not None:
                self.dead.add(fid)  # HNSW cannot remove: searches leave it out
                del self.rep[text]
                orphaned.add(text)
        self.changes += len(orphaned)
        return orphaned

    def live(self) -> set[int]:
        """The rows in the index that are not deleted."""
        faiss = import_faiss()
        return {int(f) for f in faiss.vector_to_array(self.index.id_map)} - self.dead

    @property
    def worn(self) -> bool:
        """Whether so many graph entries are dead that a rebuild pays."""
        return len(self.dead) > HNSW_DEAD_SHARE * max(1, int(self.index.ntotal))

    def search(self, query: Any, k: int) -> list[tuple[int, float]]:
        faiss = import_faiss()
        keep: list[Any] = []  # FAISS selectors hold raw pointers: keep their owners alive
        selector = None
        if self.dead:
            keep.append(faiss.IDSelectorBatch(np.asarray(sorted(self.dead), dtype=np.int64)))
            selector = faiss.IDSelectorNot(keep[-1])
        k = min(k, int(self.index.ntotal))
        if k <= 0:
            return []
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k))
            if selector is not None:
                params.sel = selector
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        with _one_thread(faiss):
            scores, fids = self.index.search(query, k, params=params)
        found = [(int(f), float(s)) for f, s in zip(fids[0], scores[0], strict=True) if f >= 0]
        return [(f, s) for f, s in found if f not in self.dead]

    # -------------------------------------------------------------- its file

    def save(self, file: Path) -> None:
        """Write the file whole under a temporary name, then rename: never half a file."""
        faiss = import_faiss()
        file.parent.mkdir(parents=True, exist_ok=True)
        temporary = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        dead = np.asarray(sorted(self.dead), dtype=np.int64)
        with open(temporary, "wb") as out:
            out.write(_HEADER.pack(_MAGIC, (self.stamp or "").encode("ascii"), len(dead)))
            out.write(dead.tobytes())
            out.write(faiss.serialize_index(self.index).tobytes())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, file)
        self.changes = 0
        self.saved_at = time.monotonic()
        with contextlib.suppress(OSError):  # the rename is durable once the folder is synced
            folder = os.open(file.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        self.dirty = False

    @classmethod
    def load(cls, file: Path, kind: str, dimension: int) -> _Vectors:
        """Read a file written by :meth:`save`.

        Raises:
            ValueError: The file is not one (truncated, garbage, another dimension).
        """
        faiss = import_faiss()
        data = file.read_bytes()
        if len(data) < _HEADER.size:
            raise ValueError("truncated header")
        magic, stamp, dead_count = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not an ollama-rag FAISS file")
        start = _HEADER.size + 8 * dead_count
        dead = np.frombuffer(data[_HEADER.size : start], dtype=np.int64)
        try:
            index = faiss.deserialize_index(np.frombuffer(data[start:], dtype=np.uint8))
        except RuntimeError as err:
            raise ValueError(str(err).splitlines()[0]) from err
        # deserialize_index returns the concrete type; a downcast would drop ownership.
        if int(index.d) != dimension:
            raise ValueError(f"{index.d}-d vectors, not {dimension}-d")
        found = cls(kind, dimension, stamp.decode("ascii"), index)
        found.dead = {int(f) for f in dead}
        found.dirty = False
        found.changes = 0
        return found


@dataclasses.dataclass
class _Handle:
    """What the stores on one directory share within a process: database, lock, indexes."""

    docstore: DocStore
    key: str
    path: str | None
    files: str | None
    lock: DirectoryLock | None = None
    gate: WriteGate | None = None
    read_only: bool = False
    snapshot: Path | None = None
    refs: int = 1
    mutex: threading.RLock = dataclasses.field(default_factory=threading.RLock)
    vectors: dict[str, _Vectors] = dataclasses.field(default_factory=dict)
    owner: int = dataclasses.field(default_factory=os.getpid)

    def file(self, uid: str) -> Path | None:
        """The FAISS file of a collection (None in memory)."""
        return None if self.files is None else Path(self.files) / FAISS_DIR / f"{uid}.faiss"

    def writing(self) -> contextlib.AbstractContextManager[None]:
        return self.gate.writing() if self.gate is not None else contextlib.nullcontext()

    def release(self) -> None:
        if self.owner != os.getpid():  # a fork()ed child's copy: the parent's to release
            return
        with _registry.lock:
            self.refs -= 1
            if self.refs > 0:
                return
            _registry.handles.pop(self.key, None)
        self.docstore.close()
        if self.gate is not None:
            self.gate.close()
        if self.lock is not None:
            self.lock.release()
        if self.snapshot is not None:
            shutil.rmtree(self.snapshot, ignore_errors=True)


_registry: Registry[_Handle] = Registry()


def _open_handle(
    directory: Path | None, *, read_only: bool, create: bool, collection: str
) -> _Handle:
    if directory is None:
        if read_only:
            msg = "read_only=True needs an index directory (path=)"
            raise ConfigError(msg)
        return _Handle(DocStore(":memory:"), key=f"memory:{id(object())}", path=None, files=None)
    directory = index_directory(
        directory, marker=DOCSTORE_FILE, collection=collection, read_only=read_only, create=create
    )
    if read_only:
        copy = snapshot(directory)
        try:
            docstore = DocStore(str(copy / DOCSTORE_FILE))
        except BaseException:
            shutil.rmtree(copy, ignore_errors=True)
            raise
        return _Handle(
            docstore,
            key=f"snapshot:{copy}",
            path=str(directory),
            files=str(copy),
            read_only=True,
            snapshot=copy,
        )
    key = str(directory)
    with _registry.lock:
        shared = _registry.handles.get(key)
        if shared is not None:
            shared.refs += 1
            return shared
        directory.mkdir(parents=True, exist_ok=True)
        lock = DirectoryLock(key, fix=_LOCKED_FIX)
        try:
            gate = WriteGate(key)
            with gate.writing():
                docstore = DocStore(str(directory / DOCSTORE_FILE))
        except BaseException:
            lock.release()
            raise
        shared = _registry.handles[key] = _Handle(
            docstore, key=key, path=key, files=key, lock=lock, gate=gate
        )
        return shared


class FaissStore(ChunkStore):
    """An index stored as a FAISS index over a SQLite docstore (see the module docstring).

    Open one with :meth:`open`; ``RagIndex(path, store="faiss")`` does this for you.

    Args:
        handle: The directory's shared database and lock.
        name: The collection name.
        side_uid: For a migration's side store: its collection's uid.
    """

    def __init__(self, handle: _Handle, name: str, *, side_uid: str | None = None) -> None:
        where = handle.path or "memory"
        suffix = " (migration side store)" if side_uid else ""
        super().__init__(location=f"{where} (collection {name!r}){suffix}", path=handle.path)
        self._handle = handle
        self._db = handle.docstore
        self.name = name
        self._side_uid = side_uid
        self._index_type: str | None = None

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        collection: str = "default",
        index: str | None = None,
        read_only: bool = False,
        create: bool = True,
    ) -> FaissStore:
        """Open (or create) the directory's docstore, and load or rebuild the FAISS index.

        Args:
            path: A directory (created if missing, unless ``create`` is False), or None for
                an in-memory index.
            collection: The collection name.
            index: ``"flat"`` (exact) or ``"hnsw"`` (approximate) for a new index; for an
                existing one, None or the recorded type.
            read_only: Refuse writes; the directory is opened as a private snapshot, so another
                process may be writing it.
            create: False when no index may be created (nothing is written to the disk then).

        Raises:
            MissingExtraError: faiss-cpu is not installed.
            ConfigError: ``index`` is not a known type, or not the one the index records.
            IndexNotFoundError: Nothing to open, and nothing may be created.
            IndexLockedError: Another process has the directory open for writing.
        """
        import_faiss()
        check_collection_name(collection)
        if index is not None and index not in INDEX_TYPES:
            msg = f"faiss_index must be one of {', '.join(map(repr, INDEX_TYPES))}, not {index!r}"
            raise ConfigError(msg)
        directory = None if path is None else Path(path)
        handle = _open_handle(directory, read_only=read_only, create=create, collection=collection)
        store = cls(handle, collection)
        store._index_type = index
        try:
            manifest = store.read_manifest()
            if manifest is not None and index is not None and manifest.vector_index != index:
                msg = (
                    f"The index at {store.location} is a FAISS {manifest.vector_index!r} index; "
                    f"open it without faiss_index= (or with faiss_index="
                    f"{manifest.vector_index!r}), or migrate it to a new directory"
                )
                raise ConfigError(msg)
            store.recover()
            if manifest is not None:
                store._vectors()  # load now: a damaged file is rebuilt (and said) on open
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Save the FAISS index if it changed, and release the directory. Safe to call twice."""
        if self._closed:
            return
        if self._side_uid is None and os.getpid() == self._pid:
            with contextlib.suppress(OSError, RagIndexError):
                self._save()
        super().close()
        if self._side_uid is None:
            self._handle.release()

    # ------------------------------------------------------------------ collections

    def _uid(self) -> str | None:
        if self._side_uid is not None:
            return self._side_uid
        found = self._db.collection(self.name, "current")
        return None if found is None else found[0]

    def _need_uid(self) -> str:
        uid = self._uid()
        if uid is None:
            msg = f"No index at {self.location} yet"
            raise RagIndexError(msg, path=self.path)
        return uid

    def _manifest_of(self, uid: str) -> IndexManifest:
        found = self._db.select("SELECT manifest FROM collections WHERE uid=?", (uid,))
        manifest = IndexManifest.from_metadata(json.loads(found[0][0]), path=self.path)
        if manifest is None:  # never written so: every collection is created with one
            msg = f"The FAISS index at {self.location} has no manifest"
            raise RagIndexError(msg, path=self.path)
        return manifest

    def read_manifest(self) -> IndexManifest | None:
        """The collection's manifest, or None before :meth:`create`."""
        self.check_open()
        uid = self._uid()
        return None if uid is None else self._manifest_of(uid)

    def _stamped(self, manifest: IndexManifest) -> IndexManifest:
        return dataclasses.replace(
            manifest, store="faiss", vector_index=self._index_type or manifest.vector_index
        )

    def create(self, manifest: IndexManifest) -> IndexManifest:
        """Create the collection, recording ``store="faiss"`` and the index type."""
        self.check_open()
        self._check_writable("creating the index")
        if self._index_type is None:
            self._index_type = "flat"
        with self._handle.writing(), self._handle.mutex:
            existing = self.read_manifest()
            if existing is not None:
                return existing
            stored = self._stamped(manifest)
            self._db.add_collection(self.name, "current", dict(stored.to_metadata()))
        return stored

    def write_manifest(self, manifest: IndexManifest) -> None:
        """Replace the stored manifest (the store kind and index type are kept)."""
        self.check_open()
        uid = self._need_uid()
        current = self._manifest_of(uid)
        kept = dataclasses.replace(manifest, store=current.store, vector_index=current.vector_index)
        with self._handle.writing():
            self._db.set_field(uid, "manifest", json.dumps(kept.to_metadata()))

    def collections(self) -> list[CollectionSummary]:
        """Every index in the directory's docstore."""
        self.check_open()
        return [
            CollectionSummary(name, IndexManifest.from_metadata(meta, path=self.path), count)
            for name, meta, count in self._db.collections()
        ]

    def disk_usage(self) -> dict[str, int]:
        """The FAISS file of this index, and the docstore (shared by the directory's indexes)."""
        uid = self._uid()
        if self._handle.files is None or uid is None:
            return {}
        file = self._handle.file(uid)
        database = Path(self._handle.files) / DOCSTORE_FILE
        return {
            "vectors": folder_size(file) if file is not None else 0,
            "database": sum(folder_size(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")),
        }

    # ------------------------------------------------------------------ identity and change

    @property
    def uid(self) -> str | None:
        """The collection's uid (a migration's switch brings a new one)."""
        return None if self._closed else self._uid()

    @property
    def files(self) -> str | None:
        """The directory of the files: the index's, or a read-only snapshot's copy."""
        return self._handle.files

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """The write gate (see :class:`~ollama_rag.storage.lock.WriteGate`)."""
        return self._handle.writing()

    def write_token(self) -> str | None:
        """The token the lexical index compares with its own."""
        self.check_open()
        uid = self._uid()
        if uid is None:
            return None
        found = self._db.select("SELECT token FROM collections WHERE uid=?", (uid,))
        return None if not found or found[0][0] is None else str(found[0][0])

    def new_write_token(self) -> tuple[str | None, str]:
        """Store a fresh token; returns the previous one and the new one."""
        import uuid

        previous = self.write_token()
        token = uuid.uuid4().hex
        with self._handle.writing():
            self._db.set_field(self._need_uid(), "token", token)
        return previous, token

    @contextlib.contextmanager
    def doing(self, what: str) -> Iterator[None]:
        """Record ``what`` in the owner file while the block runs; save the FAISS file after.

        Raises:
            IndexReadOnlyError: The store was opened read-only.
        """
        self._check_writable(what)
        with noting(self._handle.lock, what):
            try:
                yield
            finally:
                self._save(whenever=False)

    def _check_writable(self, what: str) -> None:
        if self._handle.read_only:
            msg = READ_ONLY_MESSAGE.format(where=self.location, what=what)
            raise IndexReadOnlyError(msg, path=self.path)

    # ------------------------------------------------------------------ the FAISS index

    def _vectors(self, uid: str | None = None) -> _Vectors:
        """The collection's FAISS index: loaded from its file if in step, else rebuilt."""
        uid = uid or self._need_uid()
        with self._handle.mutex:
            stamp = self._db.stamp(uid)
            found = self._handle.vectors.get(uid)
            if found is not None and found.stamp == stamp and not found.worn:
                return found
            manifest = self._manifest_of(uid)
            kind = manifest.vector_index or "flat"
            file = self._handle.file(uid)
            if found is None and file is not None and file.is_file():
                try:
                    loaded = _Vectors.load(file, kind, manifest.dimension)
                except (ValueError, OSError) as err:
                    warnings.warn(
                        FAISS_REBUILT_MESSAGE.format(where=self.location, file=file, error=err),
                        IndexRepairedWarning,
                        stacklevel=3,
                    )
                else:
                    self._know_texts(uid, loaded)
                    if loaded.stamp != stamp:
                        self._catch_up(uid, loaded, stamp)
                    if not loaded.worn:
                        self._handle.vectors[uid] = loaded
                        return loaded
            built = _Vectors(kind, manifest.dimension, stamp)
            for page in self._db.pages(uid, "fid, vector, content_hash", batch=_ADD_BATCH):
                built.add(
                    [int(f) for f, _, _ in page],
                    [as_vector(b) for _, b, _ in page],
                    [_text_key(f, h) for f, _, h in page],
                )
            self._handle.vectors[uid] = built
            return built

    def _know_texts(self, uid: str, vectors: _Vectors) -> None:
        """Fill in which text each graph entry of a FAISS index read from its file stands for."""
        if not vectors.unique:
            return
        live = vectors.live()
        for page in self._db.pages(uid, "fid, content_hash", batch=50_000):
            for fid, text in page:
                if fid in live:
                    key = _text_key(fid, text)
                    vectors.rep[key], vectors.text_of[fid] = fid, key

    def _restore(self, uid: str, vectors: _Vectors, texts: set[str]) -> None:
        """Give texts that lost their graph entry another row of theirs, if one is left."""
        wanted = [t for t in texts if t not in vectors.rep]
        if not wanted:
            return
        rows = self._db.rows_by(uid, "content_hash", wanted, vectors=True)
        vectors.add(
            [r.fid for r in rows],
            [as_vector(r.blob or b"") for r in rows],
            [_text_key(r.fid, r.metadata.get(CONTENT_HASH)) for r in rows],
        )

    def _catch_up(self, uid: str, loaded: _Vectors, stamp: str | None) -> None:
        """Bring a FAISS index read from an older file in step with the docstore.

        A FAISS id is never reused and a row's vector never changes under its id (a new vector
        is a new row), so the difference of the id sets is the whole difference: rows deleted
        since the file was saved are removed, rows added since are read and added. (The file is
        never ahead of the docstore: commits are synced before a file is saved.)
        """
        in_file = loaded.live()
        stored = {int(f) for page in self._db.pages(uid, "fid", batch=50_000) for (f,) in page}
        orphaned = loaded.remove(sorted(in_file - stored))
        # With an HNSW graph, rows of a text already in it are not in the file: not new.
        known = {
            r.fid for r in self._db.rows_by(uid, "content_hash", list(loaded.rep)) if loaded.unique
        }
        added = self._db.rows_by(uid, "fid", sorted(stored - in_file - known), vectors=True)
        loaded.add(
            [r.fid for r in added],
            [as_vector(r.blob or b"") for r in added],
            [_text_key(r.fid, r.metadata.get(CONTENT_HASH)) for r in added],
        )
        self._restore(uid, loaded, orphaned)
        loaded.stamp = stamp
        loaded.dirty = True

    def _save(self, *, whenever: bool = True) -> None:
        """Write the FAISS file of this collection if it changed (not for read-only snapshots).

        Args:
            whenever: Save any change; False saves only once enough changed (see
                :data:`SAVE_SHARE`) or the last save is old, since each save writes the whole
                index, and a file behind the docstore is caught up on open at little cost.
        """
        if self._handle.read_only:
            return
        uid = self._uid()
        if uid is None:
            return
        with self._handle.writing(), self._handle.mutex:
            found = self._handle.vectors.get(uid)
            file = self._handle.file(uid)
            if found is None or not found.dirty or file is None:
                return
            due = (
                whenever
                or not file.exists()
                or found.changes >= SAVE_SHARE * max(1, int(found.index.ntotal))
                or time.monotonic() - found.saved_at >= SAVE_AFTER
            )
            if due:
                found.save(file)

    def _change(
        self, what: str, edit: Callable[[sqlite3.Connection, str], tuple[list[int], list[Row]]]
    ) -> None:
        """Run ``edit`` in one transaction, then bring the FAISS index in step.

        ``edit`` returns the FAISS ids it removed and the rows it added (with their vectors).
        """
        self.check_open()
        self._check_writable(what)
        uid = self._need_uid()
        with self._handle.writing(), self._handle.mutex:
            vectors = self._vectors(uid)
            with self._db.transaction() as db:
                removed, added = edit(db, uid)
                if removed or added:
                    stamp = self._db.restamp(db, uid)
            if not (removed or added):
                return
            try:
                orphaned = vectors.remove(removed)
                vectors.add(
                    [r.fid for r in added],
                    [as_vector(r.blob or b"") for r in added],
                    [_text_key(r.fid, r.metadata.get(CONTENT_HASH)) for r in added],
                )
                self._restore(uid, vectors, orphaned)
            except BaseException:
                self._handle.vectors.pop(uid, None)  # rebuilt from the rows when next used
                raise
            vectors.stamp = stamp
            vectors.dirty = True

    # ------------------------------------------------------------------ reading and search

    def count(self) -> int:
        """The number of stored rows."""
        self.check_open()
        uid = self._uid()
        return 0 if uid is None else self._db.count(uid)

    def iter_chunks(self, *, batch: int = 1000) -> Iterator[list[StoredChunk]]:
        """Every chunk with text and metadata, in pages."""
        self.check_open()
        uid = self._uid()
        if uid is None:
            return
        for page in self._db.pages(uid, "fid, id, text, metadata", batch=batch):
            yield [StoredChunk(i, t, json.loads(m)) for _, i, t, m in page]

    def iter_ids(self, *, batch: int = 10_000) -> Iterator[list[str]]:
        """Every stored id, in pages (no text read)."""
        self.check_open()
        uid = self._uid()
        if uid is None:
            return
        for page in self._db.pages(uid, "fid, id", batch=batch):
            yield [i for _, i in page]

    def iter_metadatas(self, *, batch: int = 10_000) -> Iterator[list[Metadata]]:
        """Every row's metadata, in pages (no text read)."""
        self.check_open()
        uid = self._uid()
        if uid is None:
            return
        for page in self._db.pages(uid, "fid, metadata", batch=batch):
            yield [json.loads(m) for _, m in page]

    def _passing_rows(
        self, uid: str, where: Where | None, where_document: Where | None, *, most: int
    ) -> list[tuple[int, str, Metadata]] | None:
        """``(FAISS id, chunk id, metadata)`` of every row that passes the filters.

        SQLite narrows the rows first (:func:`~ollama_rag.storage.filters.prefilter`: an
        indexed lookup for ``source``, JSON functions for other keys), so a selective filter
        reads few rows; each row it returns gets the exact check. None as soon as more than
        ``most`` rows pass (the rest are not read).
        """
        narrowed = prefilter(where, where_document, columns={SOURCE: "source"})
        columns = "fid, id, metadata, text" if where_document else "fid, id, metadata, NULL"
        found: list[tuple[int, str, Metadata]] = []

        def check(row: tuple[Any, ...]) -> None:
            fid, id_, meta, text = row
            metadata = json.loads(meta)
            if matches(where, metadata) and matches_document(where_document, text or ""):
                found.append((int(fid), str(id_), metadata))
                if len(found) > most:
                    raise _BroadFilterError

        try:
            try:
                self._db.each_row(uid, columns, narrowed, check)
            except sqlite3.OperationalError:
                # Metadata SQLite's JSON functions refuse (json.dumps writes NaN and Infinity
                # as bare words; the library never stores them): check every row in Python.
                found.clear()
                self._db.each_row(uid, columns, ("1", ()), check)
        except _BroadFilterError:
            return None
        return found

    def ids_where(
        self, where: Where | None, where_document: Where | None, *, limit: int
    ) -> list[str] | None:
        """The ids of the rows passing the filters, or None when more than ``limit`` do."""
        self.check_open()
        uid = self._uid()
        if uid is None:
            return []
        found = self._passing_rows(uid, where, where_document, most=limit)
        return None if found is None else [id_ for _, id_, _ in found]

    def _ranked_then_filtered(
        self,
        vector: Sequence[float],
        k: int,
        where: Where | None,
        where_document: Where | None,
        include_vectors: bool,
    ) -> list[Hit]:
        """The best ``k`` passing rows of a broad filter: rank first, then keep those passing.

        Ranked rows are checked best first, so the first ``k`` that pass are the best ``k``
        passing rows of all those ranked; the ranking widens (4x) until ``k`` pass or every row
        is ranked. Exact on a ``flat`` index, as approximate as the graph on ``hnsw``.
        """
        wanted = k * RANK_FIRST_FACTOR
        while True:
            hits = self.query(vector, wanted, include_vectors=include_vectors)
            kept = [
                hit
                for hit in hits
                if matches(where, hit.metadata) and matches_document(where_document, hit.text)
            ]
            if len(kept) >= k or len(hits) < wanted:  # enough, or every row was ranked
                return kept[:k]
            wanted *= 4

    def _scored_exactly(
        self, uid: str, fids: Sequence[int], vector: Sequence[float], k: int, with_vectors: bool
    ) -> list[Hit]:
        """The best ``k`` of a few rows, scored against their stored vectors.

        Exact on either index type: an HNSW graph searched for a few allowed rows among many
        wanders through rows it may not return and can come back short.
        """
        rows = sorted(self._db.rows_by(uid, "fid", fids, vectors=True), key=lambda r: r.fid)
        if not rows:
            return []
        stored = np.frombuffer(b"".join(r.blob or b"" for r in rows), dtype=np.float32)
        scores = stored.reshape(len(rows), -1) @ _normalised(vector)[0]
        best = np.argsort(-scores, kind="stable")[:k]
        return [
            Hit(
                rows[i].id,
                rows[i].text,
                rows[i].metadata,
                float(scores[i]),
                as_vector(rows[i].blob or b"") if with_vectors else None,
            )
            for i in best
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
        """The ``k`` rows most similar to ``vector`` that pass the filters, best first."""
        self.check_open()
        uid = self._uid()
        if uid is None or k <= 0:
            return []
        if where or where_document:
            found = self._passing_rows(uid, where, where_document, most=FILTER_FIRST_ROWS)
            if found is None:  # most rows pass: scoring them all would cost more than ranking
                return self._ranked_then_filtered(vector, k, where, where_document, include_vectors)
            return self._scored_exactly(
                uid, [fid for fid, _, _ in found], vector, k, include_vectors
            )
        with self._handle.mutex:
            vectors = self._vectors(uid)
            ranked = vectors.search(_normalised(vector), k)
            texts = {vectors.text_of.get(fid): score for fid, score in ranked}
        if vectors.unique:
            # Every row of a text found, with its entry's score (they share the vector).
            hashes = [t for t in texts if t and not t.startswith(_ROW_KEY)]
            scores = dict(ranked)
            for r in self._db.rows_by(uid, "content_hash", hashes):
                key = _text_key(r.fid, r.metadata.get(CONTENT_HASH))
                if key in texts:
                    scores[r.fid] = texts[key]
            ranked = sorted(scores.items(), key=lambda pair: -pair[1])[:k]
        rows = {
            r.fid: r
            for r in self._db.rows_by(uid, "fid", [f for f, _ in ranked], vectors=include_vectors)
        }
        return [
            Hit(
                row.id,
                row.text,
                row.metadata,
                score,
                as_vector(row.blob) if include_vectors and row.blob is not None else None,
            )
            for fid, score in ranked
            if (row := rows.get(fid)) is not None
        ]

    def fetch(
        self,
        ids: Sequence[str],
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[StoredChunk]:
        """The stored chunks among ``ids`` that pass the filters, in the order of ``ids``."""
        self.check_open()
        uid = self._uid()
        if uid is None:
            return []
        rows = {r.id: r for r in self._db.rows_by(uid, "id", ids, vectors=include_vectors)}
        return [
            StoredChunk(
                row.id,
                row.text,
                row.metadata,
                as_vector(row.blob) if include_vectors and row.blob is not None else None,
            )
            for i in ids
            if (row := rows.get(i)) is not None
            and matches(where, row.metadata)
            and matches_document(where_document, row.text)
        ]

    # ------------------------------------------------------------------ lookups for ingestion

    def stored_sources(self, sources: Sequence[str]) -> dict[str, StoredSource]:
        """Markers and roots of the stored first chunks of ``sources``."""
        self.check_open()
        uid = self._uid()
        found: dict[str, StoredSource] = {}
        for row in self._db.first_rows(uid, sources) if uid else []:
            entry = found.setdefault(str(row.metadata[SOURCE]), StoredSource())
            if COMPLETE in row.metadata:
                entry.markers.add(str(row.metadata[COMPLETE]))
            if ROOT in row.metadata:
                entry.roots.add(str(row.metadata[ROOT]))
        return found

    def stored_metadata(self, ids: Sequence[str]) -> dict[str, Metadata]:
        """The metadata of the stored rows among ``ids``."""
        self.check_open()
        uid = self._uid()
        return {r.id: r.metadata for r in self._db.rows_by(uid, "id", ids)} if uid else {}

    def stored_parts(self, wholes: Sequence[str]) -> list[StoredChunk]:
        """The stored parts of the over-long chunks ``wholes``."""
        self.check_open()
        uid = self._uid()
        rows = self._db.rows_by(uid, "split_of", wholes) if uid else []
        return [StoredChunk(r.id, r.text, r.metadata) for r in rows]

    def vectors_for(self, content_hashes: Sequence[str]) -> dict[str, Vector]:
        """One stored vector per content hash that has one."""
        self.check_open()
        uid = self._uid()
        found: dict[str, Vector] = {}
        for row in (
            self._db.rows_by(uid, "content_hash", content_hashes, vectors=True) if uid else []
        ):
            key = str(row.metadata.get("content_hash"))
            if key not in found and row.blob is not None:
                found[key] = as_vector(row.blob)
        return found

    def sources_under(self, root: str) -> set[str]:
        """The sources added from the folder ``root``."""
        self.check_open()
        uid = self._uid()
        return self._db.sources_under(uid, root) if uid else set()

    # ------------------------------------------------------------------ writing

    def write(self, group: Sequence[SourceWrite]) -> None:
        """Commit sources in one transaction (unmark, rows, stale rows, marker last)."""

        def edit(db: sqlite3.Connection, uid: str) -> tuple[list[int], list[Row]]:
            removed: list[int] = []
            added: list[Row] = []
            for w in group:
                if w.unmark:
                    for row in self._db.first_rows(uid, [w.source]):
                        if row.metadata.pop(COMPLETE, None) is not None:
                            DocStore.update_metadata(db, row.fid, row.metadata)
            for w in group:
                stored = {r.id: r for r in self._db.rows_by(uid, "id", [r.id for r in w.rows])}
                for r in w.rows:
                    old = stored.get(r.id)
                    if r.vector is not None:
                        if old is not None:
                            DocStore.delete_fids(db, [old.fid])
                            removed.append(old.fid)
                        blob = _normalised(r.vector)[0].tobytes()
                        fid = DocStore.insert(db, uid, r.id, r.text, dict(r.metadata), blob)
                        hashes = json.dumps({CONTENT_HASH: r.metadata.get(CONTENT_HASH)})
                        added.append(Row(fid, r.id, r.text, hashes, blob))
                    elif old is not None:
                        meta = dict(r.metadata)
                        if COMPLETE in old.metadata and COMPLETE not in meta:
                            meta[COMPLETE] = old.metadata[COMPLETE]
                        DocStore.update_metadata(db, old.fid, meta)
            for w in group:
                if w.marker is None:
                    continue
                keep = {r.id for r in w.rows}
                stale = [
                    r.fid for r in self._db.rows_by(uid, "source", [w.source]) if r.id not in keep
                ]
                DocStore.delete_fids(db, stale)
                removed.extend(stale)
                if w.rows:
                    first = self._db.rows_by(uid, "id", [w.rows[0].id])
                    if first:
                        first[0].metadata[COMPLETE] = w.marker
                        DocStore.update_metadata(db, first[0].fid, first[0].metadata)
            return removed, added

        self._change("writing chunks", edit)

    def delete_ids(self, ids: Sequence[str]) -> int:
        """Delete the stored rows among ``ids``; returns how many there were."""
        return self._delete("id", ids)

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Delete every row of ``sources``; returns how many there were."""
        return self._delete("source", sources)

    def _delete(self, column: str, values: Sequence[str]) -> int:
        deleted: list[int] = []

        def edit(db: sqlite3.Connection, uid: str) -> tuple[list[int], list[Row]]:
            deleted.extend(r.fid for r in self._db.rows_by(uid, column, values))
            DocStore.delete_fids(db, deleted)
            return deleted, []

        if self._uid() is None:
            return 0
        self._change("deleting chunks", edit)
        return len(deleted)

    # ------------------------------------------------------------------ crash recovery

    def recover(self) -> None:
        """Remove what a crash left behind: temporary files, files of collections now gone.

        A switch is one transaction, so there is nothing to finish.
        """
        if self._handle.read_only or self._handle.files is None or self._side_uid is not None:
            return
        folder = Path(self._handle.files) / FAISS_DIR
        if not folder.is_dir():
            return
        with self._handle.writing():
            uids = self._db.uids()
            for file in folder.iterdir():
                if file.name.endswith(".tmp") or file.name.removesuffix(".faiss") not in uids:
                    file.unlink(missing_ok=True)

    def salvage(self, *, batch: int = 1000) -> Iterator[list[StoredChunk]]:
        """Every chunk with its vector (the docstore holds them all)."""
        self.check_open()
        uid = self._uid()
        if uid is None:
            return
        for page in self._db.pages(uid, "fid, id, text, metadata, vector", batch=batch):
            yield [StoredChunk(i, t, json.loads(m), as_vector(v)) for _, i, t, m, v in page]

    # ------------------------------------------------------------------ migration

    def side(self, manifest: IndexManifest, *, version: str) -> FaissStore:
        """The side collection of a migration: resumed if for the same model and state."""
        self.check_open()
        self._check_writable("migrating")
        current = self.read_manifest()
        kind = current.vector_index if current is not None else (self._index_type or "flat")
        with self._handle.writing(), self._handle.mutex:
            existing = self._db.collection(self.name, "side")
            if existing is not None:
                uid, meta, was, _, _ = existing
                found = IndexManifest.from_metadata(meta)
                if (
                    found is not None
                    and found.vector_identity == manifest.vector_identity
                    and was == version
                ):
                    return FaissStore(self._handle, self.name, side_uid=uid)
                self._drop(uid)  # abandoned: another model, or the index changed since
            stamped = dataclasses.replace(manifest, store="faiss", vector_index=kind)
            uid = self._db.add_collection(self.name, "side", dict(stamped.to_metadata()), version)
        return FaissStore(self._handle, self.name, side_uid=uid)

    def _drop(self, uid: str) -> None:
        self._db.drop_collection(uid)
        self._forget(uid)

    def _forget(self, uid: str) -> None:
        """Let go of a collection no longer in the docstore: its FAISS index and file.

        A crash before this leaves only a file :meth:`recover` removes on the next open.
        """
        self._handle.vectors.pop(uid, None)
        file = self._handle.file(uid)
        if file is not None:
            file.unlink(missing_ok=True)

    def switch(self, side: ChunkStore) -> None:
        """Make the complete side collection this index, in one transaction; the old rows go."""
        if (
            not isinstance(side, FaissStore)
            or side._handle is not self._handle
            or side._side_uid is None
        ):
            msg = f"Cannot switch {self.location} to {side.location}: not its side store"
            raise RagIndexError(msg, path=self.path)
        new = side._side_uid
        with self._handle.writing(), self._handle.mutex:
            old = self._need_uid()
            with self._db.transaction() as db:
                db.execute("DELETE FROM chunks WHERE uid=?", (old,))
                db.execute("DELETE FROM collections WHERE uid=?", (old,))
                db.execute("UPDATE collections SET role='current' WHERE uid=?", (new,))
            self._forget(old)
        side.close()

    # ------------------------------------------------------------------ LangChain

    def vectorstore(self, embeddings: Embeddings, writer: IndexWriter) -> VectorStore:
        """A LangChain vector store answered by this store; writes go through ``writer``."""
        from ollama_rag.storage.view import StoreView

        return StoreView(self, embeddings, writer)
