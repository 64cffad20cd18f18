"""One writer per index directory: an exclusive lock file, who holds it, and snapshots.

Chroma is thread-safe but not process-safe: two processes writing one directory silently lose
vectors (reference/chroma.md §1), and a second process damages the index even if it only reads,
because every open of an embedded Chroma writes (it replays Chroma's log into the vector files;
measured in docs/reliability.md). So a persistent index holds an exclusive lock for as long as
it is open, and records its owner and what it is doing beside it so a refusal can say so.

Readers in other processes get a :func:`snapshot`: a private copy taken between two of the
writer's write calls, never during one (the writer holds its :class:`WriteGate` around each).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Generic, TypeVar

from filelock import FileLock, ReadWriteLock, Timeout

from ollama_rag.errors import Explained, Fix, IndexLockedError

__all__ = [
    "GATE_FILE",
    "LOCK_FILE",
    "OWNER_FILE",
    "DirectoryLock",
    "Registry",
    "WriteGate",
    "noting",
    "read_owner",
    "snapshot",
]

LOCK_FILE = ".ollama-rag.lock"
OWNER_FILE = ".ollama-rag.owner"
GATE_FILE = ".ollama-rag.gate"
# How long a snapshot waits for a write call to finish (one call takes well under a second).
SNAPSHOT_WAIT = 120.0
LEXICAL_DIR = "lexical"
"""The folder of an index directory that holds its lexical (Tantivy) index."""
# A snapshot copies the lexical folder again while its commit changed during the copy.
SETTLE_TRIES = 5
_H = TypeVar("_H")


class Registry(Generic[_H]):
    """This process's open directories, by key, shared by every open of the same directory.

    A fork()ed child inherits the parent's handles (clients, files, locks) but owns none of
    them: it must open, and lock, the directory itself, or be refused like any other process.
    So the child starts with an empty registry and a fresh lock.

    Attributes:
        lock: Held while looking up, adding or removing a handle.
        handles: The open handles by key (a directory's resolved path).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handles: dict[str, _H] = {}
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.lock = threading.Lock()
        self.handles.clear()


def read_owner(directory: str | os.PathLike[str]) -> tuple[str, int | None]:
    """Who holds the lock on ``directory`` and what it is doing, and its pid if recorded.

    >>> read_owner("/nonexistent")
    ('another process', None)
    """
    try:
        info = json.loads((Path(directory) / OWNER_FILE).read_text(encoding="utf-8"))
        who = f"pid {info['pid']} on {info['host']} (open since {info['since']})"
        doing = info.get("doing")
        if doing:
            who += f", {doing} since {info.get('doing_since', '?')}"
        else:
            who += ", idle"
        return who, int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process", None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class DirectoryLock:
    """The exclusive lock of one index directory, taken at once or refused.

    Args:
        directory: The index directory (it must exist).
        fix: What the refusal tells the user to do instead, after the cause.

    Raises:
        IndexLockedError: Another process holds the lock.
    """

    def __init__(self, directory: str, *, fix: str) -> None:
        self.directory = directory
        self._lock = FileLock(os.path.join(directory, LOCK_FILE), timeout=0, is_singleton=False)
        try:
            self._lock.acquire()
        except Timeout as err:
            holder, _ = read_owner(directory)
            problem = f"The index at {directory} is open for writing by {holder}"
            msg = Explained(f"{problem}. {fix}", problem=problem, fix=Fix("wait"))
            raise IndexLockedError(msg, path=directory) from err
        self._owner: dict[str, object] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": _now(),
        }
        self._write_owner()

    def note(self, doing: str | None) -> None:
        """Record what the holder is doing (``"adding files"``), or that it is idle (None).

        Another process refused the lock reads it, so that the refusal can say whether to
        wait a moment or for a long ingest.
        """
        self._owner.pop("doing", None)
        self._owner.pop("doing_since", None)
        if doing:
            self._owner.update(doing=doing, doing_since=_now())
        self._write_owner()

    def _write_owner(self) -> None:
        # Written whole to a temporary name and renamed, so a reader never sees half of it.
        target = Path(self.directory) / OWNER_FILE
        temporary = target.with_name(f"{OWNER_FILE}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self._owner), encoding="utf-8")
        os.replace(temporary, target)

    def release(self) -> None:
        """Give the directory up (the owner record first, so it never names a dead holder).

        A ``fork()`` of the holder inherits this object but not the lock: releasing there would
        take the parent's owner record (and, with older filelock, its lock) away, so it does
        nothing.
        """
        if os.getpid() != self._owner["pid"]:
            return
        (Path(self.directory) / OWNER_FILE).unlink(missing_ok=True)
        self._lock.release()


@contextlib.contextmanager
def noting(lock: DirectoryLock | None, what: str) -> Iterator[None]:
    """Record ``what`` in the owner file of ``lock`` (if any) while the block runs."""
    if lock is None:
        yield
        return
    lock.note(what)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the note is a courtesy, never a failure
            lock.note(None)


class WriteGate:
    """Held by the writer around each write call, so that a :func:`snapshot` falls between two.

    Chroma writes its files in place (no temporary file and rename): a copy taken during a write
    call can be unusable (6 of 48 in the measurement), one taken between calls was sound in 48
    of 48.

    Args:
        directory: The index directory.
    """

    def __init__(self, directory: str) -> None:
        # One thread at a time holds the cross-process lock; a thread may nest its holds.
        self._mutex = threading.RLock()
        self._lock = ReadWriteLock(os.path.join(directory, GATE_FILE), is_singleton=False)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Keep snapshots out while the block writes."""
        with self._mutex, self._lock.write_lock():
            yield

    def close(self) -> None:
        """Close the gate's own database connection."""
        self._lock.close()


def _metas(folder: Path) -> dict[Path, bytes]:
    """Every Tantivy ``meta.json`` under ``folder``: what an index's commit consists of."""
    return {meta: meta.read_bytes() for meta in sorted(folder.rglob("meta.json"))}


def _copy_present(source: str, target: str) -> None:
    """``shutil.copy2``, except that a file deleted since the folder was listed is left out."""
    with contextlib.suppress(FileNotFoundError):
        shutil.copy2(source, target)


def _copy_settled(folder: Path, target: Path) -> None:
    """Copy the lexical index's folder, which changes outside the write gate.

    Tantivy commits pending terms before a search and merges segments in background threads,
    writing temporary files and deleting merged ones at any moment. Files its current
    ``meta.json`` names are never deleted while it is current, so a copy during which no
    ``meta.json`` changed holds a consistent index; files that vanish meanwhile were not part
    of it. Otherwise copy again; after a few changing tries the copy is taken as it is (the
    reader then checks it, and rebuilds it from the stored text if it cannot be read).
    """
    for _ in range(SETTLE_TRIES):
        before = _metas(folder)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target, copy_function=_copy_present)
        if _metas(folder) == before:
            return


def snapshot(directory: str | os.PathLike[str]) -> Path:
    """Copy an index directory between two of its writer's write calls; return the copy.

    The copy lives in the system's temporary folder; the caller deletes it. It takes about a
    quarter of a second per 100 MB.

    Raises:
        TimeoutError: A write call did not end within ``SNAPSHOT_WAIT`` seconds.
    """
    source = Path(directory)
    target = Path(tempfile.mkdtemp(prefix="ollama-rag-snapshot-"))
    gate = ReadWriteLock(source / GATE_FILE, timeout=SNAPSHOT_WAIT, is_singleton=False)
    try:
        with gate.read_lock():
            for entry in source.iterdir():
                if entry.name.startswith(".ollama-rag."):
                    continue  # this process's own locks are made afresh in the copy
                if entry.name == LEXICAL_DIR:
                    _copy_settled(entry, target / entry.name)
                elif entry.is_dir():
                    shutil.copytree(entry, target / entry.name)
                else:
                    shutil.copy2(entry, target / entry.name)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        gate.close()
    return target
