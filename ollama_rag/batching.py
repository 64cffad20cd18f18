"""A work queue that hands chunks to embedding threads in batches cut when a thread is free.

The ingestion pipeline's reader puts chunks in; each embedding thread takes its next batch when
it finishes the last one. Cutting batches that late (rather than queueing fixed batches up front)
lets the tail of a job be spread evenly: once the reader has put everything in and called
:meth:`BatchFeed.close`, batches shrink to ``remaining / workers`` (never below ``minimum``), so
that every host finishes at about the same time and the rows still to be written after the last
answer are few. With fixed batches, one host could still be working through two full batches
while the others sat idle.

The first batch each thread takes is smaller (``first``): the first answers, and so the first
finished sources, come back a fraction of a batch's time after the start, and writing them
(the pipeline's other slow half) starts that much sooner.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

__all__ = ["BatchFeed"]

T = TypeVar("T")


class BatchFeed(Generic[T]):
    """Items waiting to be embedded; :meth:`take` blocks until a batch is ready.

    Args:
        batch_size: Items per batch while more may come.
        workers: Threads taking batches (to size the shrinking batches at the end).
        minimum: Smallest batch cut after :meth:`close` (the last one may be smaller).
        first: Size of the first ``workers`` batches (default: ``batch_size``).
    """

    def __init__(
        self, *, batch_size: int, workers: int, minimum: int = 8, first: int | None = None
    ) -> None:
        first = batch_size if first is None else first
        if min(batch_size, workers, minimum, first) < 1:
            msg = (
                "batch_size, workers, minimum and first must be >= 1; "
                f"got {batch_size}, {workers}, {minimum}, {first}"
            )
            raise ValueError(msg)
        self.batch_size = batch_size
        self.workers = workers
        self.minimum = min(minimum, batch_size)
        self.first = min(first, batch_size)
        self._taken = 0  # batches handed out
        self._items: deque[T] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._aborted = False

    def __len__(self) -> int:
        """Items put in and not yet taken."""
        return len(self._items)

    def _full(self) -> int:
        """The size of the next batch while more may come."""
        return self.first if self._taken < self.workers else self.batch_size

    def put(self, item: T) -> None:
        """Add one item (never blocks: the caller bounds how far it reads ahead)."""
        with self._ready:
            if self._closed:
                msg = "BatchFeed.put after close()"
                raise RuntimeError(msg)
            self._items.append(item)
            if len(self._items) >= self._full():
                self._ready.notify()

    def close(self) -> None:
        """No more items will come: hand out what is left, in shrinking batches."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def abort(self) -> None:
        """Drop everything not yet taken; every :meth:`take` returns None from now on."""
        with self._ready:
            self._aborted = self._closed = True
            self._items.clear()
            self._ready.notify_all()

    def take(self) -> list[T] | None:
        """The next batch, waiting for one; None once the feed is closed and empty, or aborted."""
        with self._ready:
            while not self._aborted and not self._closed and len(self._items) < self._full():
                self._ready.wait()
            if self._aborted or not self._items:
                return None
            size = self._full()
            if self._closed:
                size = min(size, max(self.minimum, -(-len(self._items) // self.workers)))
            batch = [self._items.popleft() for _ in range(min(size, len(self._items)))]
            self._taken += 1
            if len(self._items) >= self._full() or (self._closed and self._items):
                self._ready.notify()  # another full batch waits: wake another thread
            return batch
