"""The BM25 index of the lexical side: SQLite FTS5 over analysed terms, one file per collection.

Each chunk's text is turned into terms by an :class:`~ollama_rag.lexical.analysis.Analyzer`
(character bigrams for CJK by default), and the terms, joined by spaces, go into an FTS5 table
whose tokenizer splits on spaces only, so FTS5 indexes exactly the analyser's terms and ranks
with its built-in ``bm25()`` (k1 = 1.2, b = 0.75). A plain table maps FTS5 row ids to chunk
ids and sources.

The text itself is not stored: with SQLite 3.43 or newer the FTS5 table is *contentless* and
can still delete rows (``contentless_delete=1``); on an older SQLite it keeps its terms, which
costs disk but nothing else. ``pysqlite3`` (a dependency on Linux x86_64) is preferred when it
links a newer SQLite than the standard library's ``sqlite3``.

What keeps this index in step with the vectors (write tokens, catching up, rebuilding) is
:class:`~ollama_rag.storage.hybrid.HybridStore`'s job; this module only stores and ranks.
Every change is one SQLite transaction (WAL journal), so a process killed at any instant
leaves the file as it was before or after that change.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["FORMAT", "LexicalIndex", "sqlite_module"]

FORMAT = 1
"""The layout of the file; a file of another format is rebuilt."""

_CONTENTLESS_DELETE = (3, 43, 0)
# Only spaces (and other separators and controls) split: every analyser term is one token.
_TOKENIZE = "unicode61 remove_diacritics 0 categories 'L* M* N* P* S* Co Cn'"
_BUSY_MS = 30_000


def sqlite_module() -> ModuleType:
    """``pysqlite3.dbapi2`` when it links a newer SQLite than ``sqlite3``, else ``sqlite3``."""
    import sqlite3

    try:
        newer = importlib.import_module("pysqlite3.dbapi2")
    except ImportError:
        return sqlite3
    return newer if newer.sqlite_version_info > sqlite3.sqlite_version_info else sqlite3


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


class LexicalIndex:
    """One collection's BM25 index in a SQLite file (or in memory).

    Args:
        file: The SQLite file (its folder is created), or None for an in-memory index.
        contentless: Keep no copy of the terms (needs SQLite 3.43); by default whenever the
            SQLite at hand can. A file keeps the layout it was created with.

    Attributes:
        file: The file, or None.
    """

    def __init__(
        self, file: str | os.PathLike[str] | None, *, contentless: bool | None = None
    ) -> None:
        self.file = None if file is None else str(file)
        self._sqlite = sqlite_module()
        able = self._sqlite.sqlite_version_info >= _CONTENTLESS_DELETE
        self.contentless = able if contentless is None else contentless and able
        if self.file is not None:
            Path(self.file).parent.mkdir(parents=True, exist_ok=True)
        # One connection used under a lock: searches may come from worker threads.
        self._lock = threading.RLock()
        self._db: Any = self._sqlite.connect(
            self.file or ":memory:",
            check_same_thread=False,
            isolation_level=None,
            timeout=_BUSY_MS / 1000,
        )
        try:
            self._setup()
        except BaseException:
            self._db.close()
            raise

    def _setup(self) -> None:
        db = self._db
        if self.file is not None:
            db.execute("PRAGMA journal_mode=WAL")
            # A kill -9 loses nothing committed in WAL mode; only a power cut may drop the
            # last transactions, which the write token then reports as out of step.
            db.execute("PRAGMA synchronous=NORMAL")
        options = ", content='', contentless_delete=1" if self.contentless else ""
        with self._transaction():
            db.execute("CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value TEXT)")
            db.execute(
                "CREATE TABLE IF NOT EXISTS chunks("
                "rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS chunks_source ON chunks(source)")
            db.execute(
                "CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5("
                f'terms, tokenize="{_TOKENIZE}"{options})'
            )
            db.execute("INSERT OR IGNORE INTO state VALUES ('format', ?)", (str(FORMAT),))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ state

    def get(self, key: str) -> str | None:
        """A recorded value (``format``, ``analyzer``, ``uid``, ``token``), or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def record(self, **values: str | None) -> None:
        """Record values (None removes one), in one transaction."""
        with self._transaction():
            self._set(values)

    def _set(self, values: dict[str, str | None]) -> None:
        for key, value in values.items():
            if value is None:
                self._db.execute("DELETE FROM state WHERE key = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    def count(self) -> int:
        """The number of indexed chunks."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM chunks").fetchone()[0])

    def ids(self) -> set[str]:
        """Every indexed chunk id."""
        with self._lock:
            return {row[0] for row in self._db.execute("SELECT id FROM chunks")}

    def ids_of(self, sources: Sequence[str]) -> set[str]:
        """The indexed chunk ids of ``sources``."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(sources), 500):
                part = list(sources[start : start + 500])
                marks = ",".join("?" * len(part))
                found.update(
                    row[0]
                    for row in self._db.execute(
                        f"SELECT id FROM chunks WHERE source IN ({marks})", part
                    )
                )
        return found

    # ------------------------------------------------------------------ writing

    def apply(
        self,
        *,
        add: Iterable[tuple[str, str, Sequence[str]]] = (),
        delete: Iterable[str] = (),
        state: dict[str, str | None] | None = None,
    ) -> None:
        """Delete and add chunks, and record ``state``, in one transaction.

        Args:
            add: ``(chunk id, source, terms)``; a chunk already indexed is left as it is
                (an id names one text, so its terms cannot have changed).
            delete: Chunk ids; ids not indexed are ignored.
            state: Values to record with the change (the write token).
        """
        with self._transaction():
            db = self._db
            gone = list(delete)
            for start in range(0, len(gone), 500):
                part = gone[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = [
                    (r[0],)
                    for r in db.execute(f"SELECT rowid FROM chunks WHERE id IN ({marks})", part)
                ]
                db.executemany("DELETE FROM fts WHERE rowid = ?", rows)
                db.executemany("DELETE FROM chunks WHERE rowid = ?", rows)
            new: list[tuple[int, str]] = []
            for cid, source, terms in add:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO chunks(id, source) VALUES (?, ?)", (cid, source)
                )
                if cursor.rowcount == 1:
                    new.append((cursor.lastrowid, " ".join(terms)))
            db.executemany("INSERT INTO fts(rowid, terms) VALUES (?, ?)", new)
            if state:
                self._set(state)

    # ------------------------------------------------------------------ search

    def search(self, terms: Sequence[str], *, limit: int | None) -> list[tuple[str, float]]:
        """Chunk ids ranked by BM25 for any of ``terms``, best first, with their scores.

        Args:
            terms: The query's terms (repeats are ignored).
            limit: At most this many; None for every chunk holding a term.

        Returns:
            ``(chunk id, BM25 score)`` pairs; higher scores are better.
        """
        unique = list(dict.fromkeys(t for t in terms if t))
        if not unique:
            return []
        query = " OR ".join(_quote(t) for t in unique)
        sql = (
            "SELECT c.id, -bm25(fts) FROM fts JOIN chunks c ON c.rowid = fts.rowid "
            "WHERE fts MATCH ? ORDER BY rank"
        )
        args: tuple[Any, ...] = (query,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (query, limit)
        with self._lock:
            return [(str(cid), float(score)) for cid, score in self._db.execute(sql, args)]

    def scores(self, terms: Sequence[str], ids: Sequence[str]) -> dict[str, float]:
        """BM25 scores of the chunks ``ids`` that hold any of ``terms``."""
        unique = list(dict.fromkeys(t for t in terms if t))
        if not unique or not ids:
            return {}
        query = " OR ".join(_quote(t) for t in unique)
        found: dict[str, float] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                part = list(ids[start : start + 500])
                marks = ",".join("?" * len(part))
                found.update(
                    (str(cid), float(score))
                    for cid, score in self._db.execute(
                        "SELECT c.id, -bm25(fts) FROM fts JOIN chunks c ON c.rowid = fts.rowid "
                        f"WHERE fts MATCH ? AND c.id IN ({marks})",
                        (query, *part),
                    )
                )
        return found

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the file. Safe to call twice."""
        with self._lock:
            self._db.close()

    def delete_file(self) -> None:
        """Close and remove the file with its journal (the index is rebuilt elsewhere)."""
        self.close()
        if self.file is not None:
            for suffix in ("", "-wal", "-shm"):
                Path(self.file + suffix).unlink(missing_ok=True)
