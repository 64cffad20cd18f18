"""Which vector store an index directory holds, and opening one by kind.

``RagIndex(path, store="faiss")`` creates a FAISS index; reopened without ``store=``, the kind
is found from the files in the directory (Chroma's ``chroma.sqlite3`` or the FAISS docstore
``faiss.sqlite3``), and asking for the other kind is refused. A new index without ``store=``
is of the default kind: ``$OLLAMA_RAG_STORE``, else ``"chroma"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeAlias

from ollama_rag.errors import STORE_KIND_MESSAGE, ConfigError
from ollama_rag.storage.base import ChunkStore
from ollama_rag.storage.docstore import DOCSTORE_FILE

__all__ = [
    "STORE_ENV",
    "STORE_KINDS",
    "StoreKind",
    "detect_store",
    "open_store",
    "resolve_store",
    "store_version",
]

StoreKind: TypeAlias = Literal["chroma", "faiss"]
STORE_KINDS: tuple[StoreKind, ...] = ("chroma", "faiss")
STORE_ENV = "OLLAMA_RAG_STORE"
"""The environment variable naming the store of new indexes when ``store=`` is not given."""
_MARKERS: dict[StoreKind, str] = {"chroma": "chroma.sqlite3", "faiss": DOCSTORE_FILE}


def _checked(kind: str, what: str) -> StoreKind:
    for known in STORE_KINDS:
        if kind == known:
            return known
    msg = f"{what} must be one of {', '.join(map(repr, STORE_KINDS))}, not {kind!r}"
    raise ConfigError(msg)


def detect_store(path: str | os.PathLike[str] | None) -> StoreKind | None:
    """The kind of index in the directory ``path``, or None when it holds none.

    >>> detect_store("/nonexistent") is None
    True
    """
    if path is None:
        return None
    directory = Path(path).expanduser()
    found = [kind for kind, marker in _MARKERS.items() if (directory / marker).is_file()]
    return found[0] if len(found) == 1 else None


def resolve_store(path: str | os.PathLike[str] | None, asked: str | None) -> StoreKind:
    """The kind to open ``path`` with: the one it holds, else ``asked``, else the default.

    Raises:
        ConfigError: ``asked`` is unknown, or not the kind the directory holds.
    """
    wanted = None if asked is None else _checked(asked, "store")
    found = detect_store(path)
    if found is not None and wanted is not None and found != wanted:
        where = Path(path or ".").expanduser().resolve()
        raise ConfigError(STORE_KIND_MESSAGE.format(path=where, found=found, asked=wanted))
    if found is not None:
        return found
    if wanted is not None:
        return wanted
    return _checked(os.environ.get(STORE_ENV) or "chroma", f"${STORE_ENV}")


def open_store(
    kind: StoreKind,
    path: str | os.PathLike[str] | None,
    *,
    collection: str,
    read_only: bool = False,
    create: bool = True,
    faiss_index: str | None = None,
) -> ChunkStore:
    """Open a store of ``kind`` on ``path`` (see ``ChromaStore.open`` and ``FaissStore.open``)."""
    if kind == "faiss":
        from ollama_rag.storage.faiss import FaissStore

        return FaissStore.open(
            path, collection=collection, index=faiss_index, read_only=read_only, create=create
        )
    if faiss_index is not None:
        msg = "faiss_index= applies to FAISS indexes (store='faiss')"
        raise ConfigError(msg)
    from ollama_rag.storage.chroma import ChromaStore

    return ChromaStore.open(path, collection=collection, read_only=read_only, create=create)


def store_version(kind: str) -> str:
    """The installed version of the library behind a store kind (``chromadb``, ``faiss-cpu``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("faiss-cpu" if kind == "faiss" else "chromadb")
    except PackageNotFoundError:
        return "not installed"
