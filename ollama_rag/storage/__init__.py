"""Where chunks live: the chunk schema, the :class:`ChunkStore` seam and its Chroma implementation.

- :mod:`~ollama_rag.storage.schema` — the metadata keys every chunk carries and how ids are made;
- :mod:`~ollama_rag.storage.base` — :class:`ChunkStore`, the calls every store implements, and
  the records that cross it;
- :mod:`~ollama_rag.storage.chroma` — :class:`ChromaStore`, the only code that calls chromadb;
- :mod:`~ollama_rag.storage.filters` — Chroma's ``where`` filters evaluated in Python, for
  stores without a filter engine of their own;
- :mod:`~ollama_rag.storage.lock` — one writer per index directory.

A new store is one more ``ChunkStore``; pass it as ``RagIndex(store=...)``.

Importing this package does not import chromadb (see :mod:`ollama_rag.sqlite_compat`).
"""

from __future__ import annotations

from ollama_rag.storage.base import (
    ChunkRow,
    ChunkStore,
    CollectionSummary,
    Hit,
    IndexWriter,
    SourceSummary,
    SourceWrite,
    StoredChunk,
    StoredSource,
    Vector,
    Where,
)
from ollama_rag.storage.chroma import ChromaStore
from ollama_rag.storage.filters import matches, matches_document

__all__ = [
    "ChromaStore",
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
    "matches",
    "matches_document",
]
