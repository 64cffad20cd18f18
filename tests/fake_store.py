"""A second store behind the storage seam, for the seam tests: plain dicts and numpy.

It implements :class:`~ollama_rag.storage.base.ChunkStore` from its documented contract only
(no Chroma anywhere), brute-force cosine search and filters through
:mod:`ollama_rag.storage.filters`, and logs every call so tests can see the seam was used.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ollama_rag.manifest import IndexManifest
from ollama_rag.storage import (
    ChunkStore,
    Hit,
    SourceWrite,
    StoredChunk,
    StoredSource,
    Vector,
    Where,
    matches,
    matches_document,
)
from ollama_rag.storage.schema import (
    CHUNK_INDEX,
    COMPLETE,
    CONTENT_HASH,
    ROOT,
    SOURCE,
    SPLIT_OF,
    Metadata,
)


@dataclass
class _Row:
    text: str
    metadata: Metadata
    vector: Vector


@dataclass
class _Data:
    manifest: IndexManifest | None = None
    rows: dict[str, _Row] = field(default_factory=dict)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    token: str | None = None


class MemoryStore(ChunkStore):
    """Chunks in a dict; a side store is another dict, switched in by swapping."""

    def __init__(self, name: str = "memory", *, log: list[str] | None = None) -> None:
        super().__init__(location=f"fake store {name!r}", path=None)
        self.data = _Data()
        self.log: list[str] = log if log is not None else []
        self._sides: dict[tuple[Any, ...], MemoryStore] = {}

    def _call(self, name: str) -> None:
        self.check_open()
        self.log.append(name)

    # manifest
    def read_manifest(self) -> IndexManifest | None:
        self._call("read_manifest")
        return self.data.manifest

    def create(self, manifest: IndexManifest) -> IndexManifest:
        self._call("create")
        if self.data.manifest is None:
            self.data.manifest = manifest
        return self.data.manifest

    def write_manifest(self, manifest: IndexManifest) -> None:
        self._call("write_manifest")
        self.data.manifest = manifest

    # reading
    def count(self) -> int:
        self._call("count")
        return len(self.data.rows)

    def iter_chunks(self, *, batch: int = 1000) -> Iterator[list[StoredChunk]]:
        self._call("iter_chunks")
        items = [StoredChunk(i, r.text, dict(r.metadata)) for i, r in self.data.rows.items()]
        for start in range(0, len(items), batch):
            yield items[start : start + batch]

    def query(
        self,
        vector: Sequence[float],
        k: int,
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[Hit]:
        self._call("query")
        found = [
            (cid, row)
            for cid, row in self.data.rows.items()
            if matches(where, row.metadata) and matches_document(where_document, row.text)
        ]
        if not found:
            return []
        query = np.asarray(vector, dtype=np.float32)
        scores = np.stack([row.vector for _, row in found]) @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return [
            Hit(
                found[i][0],
                found[i][1].text,
                dict(found[i][1].metadata),
                float(scores[i]),
                found[i][1].vector if include_vectors else None,
            )
            for i in order
        ]

    def fetch(
        self,
        ids: Sequence[str],
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        include_vectors: bool = False,
    ) -> list[StoredChunk]:
        self._call("fetch")
        return [
            StoredChunk(i, row.text, dict(row.metadata), row.vector if include_vectors else None)
            for i in ids
            if (row := self.data.rows.get(i)) is not None
            and matches(where, row.metadata)
            and matches_document(where_document, row.text)
        ]

    # identity and change
    @property
    def uid(self) -> str | None:
        return self.data.uid if self.data.manifest is not None else None

    def write_token(self) -> str | None:
        return self.data.token

    def new_write_token(self) -> tuple[str | None, str]:
        self._call("new_write_token")
        previous, self.data.token = self.data.token, uuid.uuid4().hex
        return previous, self.data.token

    # lookups
    def _firsts(self) -> Iterator[Metadata]:
        return (r.metadata for r in self.data.rows.values() if r.metadata.get(CHUNK_INDEX) == 0)

    def stored_sources(self, sources: Sequence[str]) -> dict[str, StoredSource]:
        self._call("stored_sources")
        wanted = set(sources)
        found: dict[str, StoredSource] = {}
        for meta in self._firsts():
            if meta[SOURCE] in wanted:
                entry = found.setdefault(str(meta[SOURCE]), StoredSource())
                if COMPLETE in meta:
                    entry.markers.add(str(meta[COMPLETE]))
                if ROOT in meta:
                    entry.roots.add(str(meta[ROOT]))
        return found

    def stored_metadata(self, ids: Sequence[str]) -> dict[str, Metadata]:
        self._call("stored_metadata")
        return {i: dict(self.data.rows[i].metadata) for i in ids if i in self.data.rows}

    def stored_parts(self, wholes: Sequence[str]) -> list[StoredChunk]:
        self._call("stored_parts")
        wanted = set(wholes)
        return [
            StoredChunk(i, r.text, dict(r.metadata))
            for i, r in self.data.rows.items()
            if r.metadata.get(SPLIT_OF) in wanted
        ]

    def vectors_for(self, content_hashes: Sequence[str]) -> dict[str, Vector]:
        self._call("vectors_for")
        wanted = set(content_hashes)
        found: dict[str, Vector] = {}
        for row in self.data.rows.values():
            h = row.metadata.get(CONTENT_HASH)
            if h in wanted:
                found.setdefault(str(h), row.vector)
        return found

    def sources_under(self, root: str) -> set[str]:
        self._call("sources_under")
        return {str(m[SOURCE]) for m in self._firsts() if m.get(ROOT) == root}

    # writing: the documented contract, in its order
    def write(self, group: Sequence[SourceWrite]) -> None:
        self._call("write")
        rows = self.data.rows
        for w in group:
            if w.unmark:
                for row in rows.values():
                    if row.metadata.get(SOURCE) == w.source:
                        row.metadata.pop(COMPLETE, None)
        for w in group:
            for r in w.rows:
                if r.vector is not None:
                    rows[r.id] = _Row(r.text, dict(r.metadata), np.asarray(r.vector))
                elif r.id in rows:
                    complete = rows[r.id].metadata.get(COMPLETE)
                    rows[r.id].metadata = dict(r.metadata)
                    if complete is not None and COMPLETE not in r.metadata:
                        rows[r.id].metadata[COMPLETE] = complete
        for w in group:
            if w.marker is None:
                continue
            keep = {r.id for r in w.rows}
            for cid in [i for i, r in rows.items() if r.metadata.get(SOURCE) == w.source]:
                if cid not in keep:
                    del rows[cid]
        for w in group:
            if w.marker is not None and w.rows:
                rows[w.rows[0].id].metadata[COMPLETE] = w.marker

    def delete_ids(self, ids: Sequence[str]) -> int:
        self._call("delete_ids")
        found = [i for i in ids if i in self.data.rows]
        for i in found:
            del self.data.rows[i]
        return len(found)

    def delete_sources(self, sources: Sequence[str]) -> int:
        self._call("delete_sources")
        wanted = set(sources)
        found = [i for i, r in self.data.rows.items() if r.metadata.get(SOURCE) in wanted]
        for i in found:
            del self.data.rows[i]
        return len(found)

    # migration
    def recover(self) -> None:
        self._call("recover")

    def side(self, manifest: IndexManifest, *, version: str) -> ChunkStore:
        self._call("side")
        key = (manifest.vector_identity, version)
        side = self._sides.get(key)
        if side is None:
            self._sides = {}  # any other side store is abandoned
            side = self._sides[key] = MemoryStore("side", log=self.log)
            side.data.manifest = manifest
        return side

    def switch(self, side: ChunkStore) -> None:
        self._call("switch")
        assert isinstance(side, MemoryStore)
        self.data = side.data
        self._sides = {}
        side.close()
