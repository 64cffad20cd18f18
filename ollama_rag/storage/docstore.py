"""The SQLite docstore of a FAISS index: the source of truth, vectors included.

A FAISS index keeps only vectors and integer ids, and its file is written whole; a crash while
it is written, or between a write of the rows and one of the file, would leave the two out of
step. So everything lives in one SQLite database (``faiss.sqlite3``, WAL mode, one transaction
per write call): each chunk's id, text, metadata and vector (float32 bytes), the collections
with their manifests, and a *stamp* that changes with every committed write. The FAISS file is
a cache derived from it, stamped with the stamp it reflects (see :mod:`.faiss`).

Tables:

- ``collections``: one row per index (``role`` ``current``) and per migration's side store
  (``role`` ``side``) of a name, with its manifest, the version a side store began from, the
  write token of the lexical index, and the stamp.
- ``chunks``: every row of every collection; ``fid`` (never reused: ``AUTOINCREMENT``) is the
  row's FAISS id. The keys ingestion looks rows up by are columns of their own, indexed.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ollama_rag.storage.base import Vector
from ollama_rag.storage.schema import (
    CHUNK_INDEX,
    CONTENT_HASH,
    ROOT,
    SOURCE,
    SPLIT_OF,
    Metadata,
)

__all__ = ["DOCSTORE_FILE", "DocStore", "Row", "as_vector"]

DOCSTORE_FILE = "faiss.sqlite3"
"""The docstore's file in an index directory; its presence marks a FAISS index."""

# Rows per ``IN (...)`` lookup: SQLite allows 32,766 variables, far fewer keep plans simple.
LOOKUP_BATCH = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    uid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    manifest TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    token TEXT,
    stamp TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS collections_role ON collections (name, role);
CREATE TABLE IF NOT EXISTS chunks (
    fid INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL,
    id TEXT NOT NULL,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL,
    source TEXT,
    chunk_index INTEGER,
    content_hash TEXT,
    root TEXT,
    split_of TEXT,
    vector BLOB NOT NULL,
    UNIQUE (uid, id)
);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks (uid, source, chunk_index);
CREATE INDEX IF NOT EXISTS chunks_hash ON chunks (uid, content_hash);
CREATE INDEX IF NOT EXISTS chunks_split ON chunks (uid, split_of);
"""


def as_vector(blob: bytes) -> Vector:
    """A stored vector (float32 bytes) as an array of its own (the blob's buffer is shared)."""
    vector: Vector = np.frombuffer(blob, dtype=np.float32).copy()
    return vector


class Row:
    """One stored chunk as read: FAISS id, chunk id, text, metadata and the vector's bytes."""

    __slots__ = ("blob", "fid", "id", "metadata", "text")

    def __init__(self, fid: int, id_: str, text: str, metadata: str, blob: bytes | None) -> None:
        self.fid = fid
        self.id = id_
        self.text = text
        self.metadata: Metadata = json.loads(metadata)
        self.blob = blob


def _batches(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), LOOKUP_BATCH):
        yield items[start : start + LOOKUP_BATCH]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class DocStore:
    """The SQLite database of a FAISS index directory (or an in-memory one).

    Every method takes the connection's lock: an index is used from several threads (async
    callers read in worker threads), and one connection serialises them.

    Args:
        file: The database file, or ``":memory:"``.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self._mutex = threading.RLock()
        # isolation_level=None: transactions are begun and ended here, explicitly.
        self._db = sqlite3.connect(file, isolation_level=None, check_same_thread=False)
        # WAL: a commit is one append, and a kill -9 mid-transaction leaves the last commit.
        # synchronous=FULL syncs each commit (one per write call), so even a power cut never
        # leaves a saved FAISS file ahead of the rows: catching a file up relies on it.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._mutex:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of the block's changes are committed, or none."""
        with self._mutex:
            if self._db.in_transaction:  # nested: part of the outer one
                yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of a query."""
        with self._mutex:
            return self._db.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ collections

    def collection(self, name: str, role: str) -> tuple[str, Metadata, str, str | None, str] | None:
        """``(uid, manifest metadata, version, token, stamp)`` of a collection, or None."""
        found = self.select(
            "SELECT uid, manifest, version, token, stamp FROM collections WHERE name=? AND role=?",
            (name, role),
        )
        if not found:
            return None
        uid, manifest, version, token, stamp = found[0]
        return uid, json.loads(manifest), version, token, stamp

    def collections(self) -> list[tuple[str, Metadata, int]]:
        """``(name, manifest metadata, rows)`` of every current collection, by name."""
        return [
            (name, json.loads(manifest), count)
            for name, manifest, count in self.select(
                "SELECT name, manifest, (SELECT COUNT(*) FROM chunks WHERE chunks.uid = c.uid) "
                "FROM collections c WHERE role='current' ORDER BY name"
            )
        ]

    def uids(self) -> set[str]:
        """The uids of every collection (current and side)."""
        return {uid for (uid,) in self.select("SELECT uid FROM collections")}

    def add_collection(self, name: str, role: str, manifest: Metadata, version: str = "") -> str:
        """Create a collection; returns its uid."""
        uid = uuid.uuid4().hex
        with self.transaction() as db:
            db.execute(
                "INSERT INTO collections (uid, name, role, manifest, version, stamp) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (uid, name, role, json.dumps(manifest), version, uuid.uuid4().hex),
            )
        return uid

    def drop_collection(self, uid: str) -> None:
        """Delete a collection and its rows, in one transaction."""
        with self.transaction() as db:
            db.execute("DELETE FROM chunks WHERE uid=?", (uid,))
            db.execute("DELETE FROM collections WHERE uid=?", (uid,))

    def set_field(self, uid: str, column: str, value: Any) -> None:
        """Set ``manifest`` (JSON), ``token`` or ``role`` of a collection."""
        if column not in ("manifest", "token", "role"):
            raise ValueError(column)
        with self.transaction() as db:
            db.execute(f"UPDATE collections SET {column}=? WHERE uid=?", (value, uid))

    def stamp(self, uid: str) -> str | None:
        """The collection's stamp: it changes with every committed change of its rows."""
        found = self.select("SELECT stamp FROM collections WHERE uid=?", (uid,))
        return str(found[0][0]) if found else None

    def restamp(self, db: sqlite3.Connection, uid: str) -> str:
        """Give the collection a new stamp, inside the caller's transaction."""
        stamp = uuid.uuid4().hex
        db.execute("UPDATE collections SET stamp=? WHERE uid=?", (stamp, uid))
        return stamp

    # ------------------------------------------------------------------ rows

    def count(self, uid: str) -> int:
        """The collection's rows."""
        return int(self.select("SELECT COUNT(*) FROM chunks WHERE uid=?", (uid,))[0][0])

    def pages(
        self, uid: str, columns: str, *, batch: int, after: int = 0
    ) -> Iterator[list[tuple[Any, ...]]]:
        """``columns`` (``fid`` first) of every row, in pages by FAISS id."""
        # "+uid" keeps SQLite from answering through an index on uid, which would sort every
        # remaining row for each page (quadratic: 6.5 s against 1.3 s for 100,000 rows); so
        # each page reads on along the primary key from where the last one stopped.
        sql = f"SELECT {columns} FROM chunks WHERE +uid=? AND fid>? ORDER BY fid LIMIT ?"
        while True:
            page = self.select(sql, (uid, after, batch))
            if not page:
                return
            yield page
            after = int(page[-1][0])

    def each_row(
        self,
        uid: str,
        columns: str,
        where: tuple[str, Sequence[Any]],
        handle: Callable[[tuple[Any, ...]], None],
    ) -> None:
        """Call ``handle`` with ``columns`` of every row meeting ``where``, in any order.

        One statement, so SQLite answers a condition on an indexed column from its index; the
        rows are fetched a page at a time, never all at once. ``handle`` runs under the
        docstore's lock: it must not call the docstore.

        Args:
            uid: The collection.
            columns: The columns to read.
            where: A SQL condition on the ``chunks`` table and its parameters.
            handle: Called once per row.
        """
        condition, args = where
        sql = f"SELECT {columns} FROM chunks WHERE uid=? AND ({condition})"
        with self._mutex:
            cursor = self._db.execute(sql, (uid, *args))
            while rows := cursor.fetchmany(LOOKUP_BATCH):
                for row in rows:
                    handle(row)

    def rows_by(
        self, uid: str, column: str, values: Sequence[Any], *, vectors: bool = False
    ) -> list[Row]:
        """Rows whose ``column`` (id, source, content_hash, split_of, fid) is among ``values``."""
        blob = "vector" if vectors else "NULL"
        # By FAISS id, "+uid" keeps SQLite on the primary key: through an index on uid it
        # would read every row of the collection for each lookup (33 ms a search at 100,000).
        uid_term = "+uid" if column == "fid" else "uid"
        found: list[Row] = []
        for part in _batches(list(values)):
            sql = (
                f"SELECT fid, id, text, metadata, {blob} FROM chunks "
                f"WHERE {uid_term}=? AND {column} IN ({_marks(len(part))})"
            )
            found.extend(Row(*row) for row in self.select(sql, (uid, *part)))
        return found

    def first_rows(self, uid: str, sources: Sequence[str]) -> list[Row]:
        """The first chunks (``chunk_index`` 0) of ``sources``."""
        found: list[Row] = []
        for part in _batches(list(sources)):
            sql = (
                "SELECT fid, id, text, metadata, NULL FROM chunks "
                f"WHERE uid=? AND chunk_index=0 AND source IN ({_marks(len(part))})"
            )
            found.extend(Row(*row) for row in self.select(sql, (uid, *part)))
        return found

    def sources_under(self, uid: str, root: str) -> set[str]:
        """Sources whose first chunk records ``root``."""
        sql = "SELECT DISTINCT source FROM chunks WHERE uid=? AND chunk_index=0 AND root=?"
        return {str(source) for (source,) in self.select(sql, (uid, root))}

    @staticmethod
    def insert(
        db: sqlite3.Connection, uid: str, id_: str, text: str, metadata: Metadata, blob: bytes
    ) -> int:
        """Insert a row (replacing one of the same id); returns its new FAISS id."""
        cursor = db.execute(
            "INSERT INTO chunks (uid, id, text, metadata, source, chunk_index, content_hash, "
            "root, split_of, vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (uid, id_, text, json.dumps(metadata), *_columns(metadata), blob),
        )
        return int(cursor.lastrowid or 0)

    @staticmethod
    def update_metadata(db: sqlite3.Connection, fid: int, metadata: Metadata) -> None:
        """Replace a row's metadata (and the columns drawn from it)."""
        db.execute(
            "UPDATE chunks SET metadata=?, source=?, chunk_index=?, content_hash=?, root=?, "
            "split_of=? WHERE fid=?",
            (json.dumps(metadata), *_columns(metadata), fid),
        )

    @staticmethod
    def delete_fids(db: sqlite3.Connection, fids: Sequence[int]) -> None:
        """Delete rows by FAISS id."""
        for part in _batches(list(fids)):
            db.execute(f"DELETE FROM chunks WHERE fid IN ({_marks(len(part))})", part)


def _columns(metadata: Metadata) -> tuple[Any, ...]:
    """The looked-up keys of a row's metadata, as its columns."""
    index = metadata.get(CHUNK_INDEX)
    return (
        metadata.get(SOURCE),
        index if isinstance(index, int) and not isinstance(index, bool) else None,
        metadata.get(CONTENT_HASH),
        metadata.get(ROOT),
        metadata.get(SPLIT_OF),
    )
