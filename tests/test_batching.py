"""BatchFeed: batches cut when an embedding thread is free, shrinking evenly at the end."""

from __future__ import annotations

import threading

import pytest

from ollama_rag.batching import BatchFeed


def test_full_batches_while_more_may_come() -> None:
    feed: BatchFeed[int] = BatchFeed(batch_size=4, workers=2)
    for i in range(10):
        feed.put(i)
    assert len(feed) == 10
    assert feed.take() == [0, 1, 2, 3]
    assert feed.take() == [4, 5, 6, 7]
    assert len(feed) == 2


def test_take_waits_for_a_full_batch_until_close() -> None:
    feed: BatchFeed[int] = BatchFeed(batch_size=4, workers=1)
    taken: list[list[int] | None] = []
    worker = threading.Thread(target=lambda: taken.append(feed.take()))
    worker.start()
    for i in range(3):
        feed.put(i)
    worker.join(timeout=0.2)
    assert worker.is_alive()  # three items are not a batch while more may come
    feed.close()
    worker.join(timeout=5)
    assert taken == [[0, 1, 2]]
    assert feed.take() is None  # closed and empty


@pytest.mark.parametrize(
    ("remaining", "workers", "minimum", "sizes"),
    [
        (40, 4, 2, [10, 8, 6, 4, 3, 3, 2, 2, 2]),  # each take: ceil(left / workers)
        (40, 4, 8, [10, 8, 8, 8, 6]),  # never below the minimum, but for the last
        (100, 2, 8, [16, 16, 16, 16, 16, 10, 8, 2]),  # capped at batch_size
    ],
)
def test_after_close_batches_shrink_to_spread_the_tail(
    remaining: int, workers: int, minimum: int, sizes: list[int]
) -> None:
    feed: BatchFeed[int] = BatchFeed(batch_size=16, workers=workers, minimum=minimum)
    for i in range(remaining):
        feed.put(i)
    feed.close()
    got = []
    while (batch := feed.take()) is not None:
        got.append(batch)
    assert [len(b) for b in got] == sizes
    assert [x for b in got for x in b] == list(range(remaining))  # in order, nothing lost


def test_each_threads_first_batch_is_cut_smaller() -> None:
    feed: BatchFeed[int] = BatchFeed(batch_size=8, workers=2, first=3)
    for i in range(3):
        feed.put(i)
    taken: list[list[int] | None] = []
    worker = threading.Thread(target=lambda: taken.append(feed.take()))
    worker.start()
    worker.join(timeout=5)
    assert taken == [[0, 1, 2]]  # three items make a first batch, without waiting for eight
    for i in range(3, 30):
        feed.put(i)
    sizes = [len(feed.take() or []) for _ in range(3)]
    assert sizes == [3, 8, 8]  # one first batch per worker, full batches after
    assert len(feed) == 30 - 3 - 3 - 16


def test_abort_drops_what_is_left_and_wakes_every_thread() -> None:
    feed: BatchFeed[int] = BatchFeed(batch_size=8, workers=3)
    feed.put(1)
    results: list[list[int] | None] = []
    threads = [threading.Thread(target=lambda: results.append(feed.take())) for _ in range(3)]
    for thread in threads:
        thread.start()
    feed.abort()
    for thread in threads:
        thread.join(timeout=5)
    assert results == [None, None, None]
    assert len(feed) == 0


def test_put_after_close_is_an_error() -> None:
    feed: BatchFeed[int] = BatchFeed(batch_size=2, workers=1)
    feed.close()
    with pytest.raises(RuntimeError, match="after close"):
        feed.put(1)


@pytest.mark.parametrize(
    "kwargs", [{"batch_size": 0}, {"workers": 0}, {"minimum": 0}, {"first": 0}]
)
def test_sizes_below_one_are_refused(kwargs: dict[str, int]) -> None:
    args = {"batch_size": 4, "workers": 2, "minimum": 1, "first": 2, **kwargs}
    with pytest.raises(ValueError, match=">= 1"):
        BatchFeed(**args)
