"""Chroma clients, the one-writer lock, and writes batched to Chroma's limit.

Chroma is thread-safe but not process-safe: two processes writing one directory silently lose
vectors (reference/chroma.md §1). So a persistent index holds an exclusive lock file for as long
as it is open, and every :class:`RagIndex` on the same directory within one process shares one
client and one lock.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from filelock import FileLock, Timeout

from ollama_rag.errors import ConfigError, IndexLockedError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

__all__ = [
    "COLLECTION_CONFIGURATION",
    "LOCK_FILE",
    "OWNER_FILE",
    "StoreHandle",
    "batched_rows",
    "open_store",
]

LOCK_FILE = ".ollama-rag.lock"
OWNER_FILE = ".ollama-rag.owner"
# Vectors are L2-normalised, so cosine; and Chroma saves its HNSW index every sync_threshold
# rows. Its default of 1000 makes each write slower the more rows wait unsaved (several times
# slower for CJK text, measured in benchmarks/), so it saves more often.
COLLECTION_CONFIGURATION: Any = {"hnsw": {"space": "cosine", "sync_threshold": 100}}
# Chroma's own default for one write is 5461 rows; its docs note throughput plateaus far lower.
WRITE_BATCH = 1000

_registry_lock = threading.Lock()
_open: dict[str, _Shared] = {}


def _forget_after_fork() -> None:
    # A forked child inherits the parent's clients and locks but owns neither: it must open
    # (and lock) the directory itself, or be refused like any other process.
    global _registry_lock
    _registry_lock = threading.Lock()
    _open.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


@dataclass
class _Shared:
    client: ClientAPI
    lock: FileLock | None
    refs: int = 0
    database: str | None = None


@dataclass
class StoreHandle:
    """One :class:`RagIndex`'s share of a Chroma client.

    Attributes:
        client: The chromadb client.
        key: The registry key (the resolved directory, or a unique in-memory id).
        path: The directory, or None for in-memory and user-supplied clients.
    """

    client: ClientAPI
    key: str
    path: str | None
    owned: bool = True

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
        # Closing stops Chroma's cached System, so a later open (after another process may have
        # written) loads the index fresh instead of trusting a stale in-memory HNSW.
        cast(Any, shared.client).close()  # ClientAPI's stub lacks close()
        if shared.lock is not None:
            _owner_path(self.key).unlink(missing_ok=True)
            shared.lock.release()


def _owner_path(directory: str) -> Path:
    return Path(directory) / OWNER_FILE


def _read_owner(directory: str) -> str:
    try:
        info = json.loads(_owner_path(directory).read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _acquire_lock(directory: str) -> FileLock:
    from ollama_rag.manifest import now_iso

    lock = FileLock(os.path.join(directory, LOCK_FILE), timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout as err:
        msg = (
            f"The index at {directory} is open for writing by {_read_owner(directory)}. "
            "Chroma loses vectors when two processes write one directory: close the other "
            "process first, or serve the index with `chroma run --path {dir}` and open it with "
            "RagIndex(client=chromadb.HttpClient(...))"
        ).replace("{dir}", directory)
        raise IndexLockedError(msg, path=directory) from err
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}
    _owner_path(directory).write_text(json.dumps(owner), encoding="utf-8")
    return lock


def _memory_client() -> tuple[ClientAPI, str]:
    """An in-memory client with a database of its own.

    Every ``EphemeralClient`` in a process shares one system, so two in-memory indexes would
    see each other's collections; a private database per index keeps them apart.
    """
    import chromadb

    database = f"ollama_rag_{uuid.uuid4().hex}"
    chromadb.AdminClient(chromadb.config.Settings(is_persistent=False)).create_database(database)
    return chromadb.EphemeralClient(database=database), database


def _drop_memory_database(client: ClientAPI, database: str) -> None:
    import chromadb

    for collection in client.list_collections():
        client.delete_collection(collection.name)
    chromadb.AdminClient(chromadb.config.Settings(is_persistent=False)).delete_database(database)


def open_store(path: str | os.PathLike[str] | None, client: ClientAPI | None) -> StoreHandle:
    """Open (or share) the Chroma client for an index.

    Args:
        path: A directory for a persistent index, or None.
        client: An existing chromadb client (e.g. ``HttpClient`` for ``chroma run``); the caller
            keeps ownership of it.

    Returns:
        A handle; call :meth:`StoreHandle.close` when done.

    Raises:
        ConfigError: Both ``path`` and ``client`` were given, or ``path`` is not a directory.
        IndexLockedError: Another process has the directory open.
    """
    if client is not None:
        if path is not None:
            msg = "Pass either path= (a directory) or client= (a chromadb client), not both"
            raise ConfigError(msg)
        return StoreHandle(client=client, key=f"client:{id(client)}", path=None, owned=False)
    if path is None:
        memory, database = _memory_client()
        key = f"memory:{database}"
        with _registry_lock:
            _open[key] = _Shared(client=memory, lock=None, refs=1, database=database)
        return StoreHandle(client=memory, key=key, path=None)

    directory = Path(path).expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        msg = f"Index path {directory} is a file; pass a directory (it is created if missing)"
        raise ConfigError(msg)
    key = str(directory)
    with _registry_lock:
        shared = _open.get(key)
        if shared is None:
            directory.mkdir(parents=True, exist_ok=True)
            lock = _acquire_lock(key)
            try:
                import chromadb

                persistent = chromadb.PersistentClient(path=key)
            except BaseException:
                lock.release()
                raise
            shared = _Shared(client=persistent, lock=lock)
            _open[key] = shared
        shared.refs += 1
        return StoreHandle(client=shared.client, key=key, path=key)


def batched_rows(
    size: int,
    ids: Sequence[str],
    embeddings: Sequence[Sequence[float]],
    documents: Sequence[str],
    metadatas: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[list[str], list[Sequence[float]], list[str], list[Mapping[str, Any]]]]:
    """Yield aligned slices of at most ``size`` rows (Chroma refuses oversized writes)."""
    if size < 1:
        msg = f"Chroma batch size must be at least 1, got {size}"
        raise ConfigError(msg)
    for start in range(0, len(ids), size):
        end = start + size
        yield (
            list(ids[start:end]),
            list(embeddings[start:end]),
            list(documents[start:end]),
            list(metadatas[start:end]),
        )
