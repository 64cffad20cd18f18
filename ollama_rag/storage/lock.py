"""One writer per index directory: an exclusive lock file, and who holds it.

Chroma is thread-safe but not process-safe: two processes writing one directory silently lose
vectors (reference/chroma.md §1). So a persistent index holds an exclusive lock for as long as
it is open, and records its owner beside it so the refusal can say who has it.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from ollama_rag.errors import IndexLockedError

__all__ = ["LOCK_FILE", "OWNER_FILE", "DirectoryLock", "read_owner"]

LOCK_FILE = ".ollama-rag.lock"
OWNER_FILE = ".ollama-rag.owner"


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
            msg = f"The index at {directory} is open for writing by {holder}. {fix}"
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
