"""How long awaited work keeps the event loop from running: :func:`loop_stalls`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["LoopStalls", "loop_stalls"]

T = TypeVar("T")


@dataclass(frozen=True)
class LoopStalls(Generic[T]):
    """What :func:`loop_stalls` saw.

    Attributes:
        result: What the work returned.
        stalls: Each gap between two ticks beyond the tick itself, in seconds: time the loop
            could not run.
        seconds: How long the work took.
    """

    result: T
    stalls: list[float]
    seconds: float

    @property
    def longest(self) -> float:
        """The longest stall (the whole time if the loop never got to tick)."""
        return max(self.stalls, default=self.seconds)


async def loop_stalls(work: Awaitable[T], *, tick: float = 0.005) -> LoopStalls[T]:
    """Await ``work`` beside a ticker coroutine that sleeps ``tick`` seconds at a time.

    A coroutine that blocks the loop (a sync HTTP request, a long store call) shows up as a
    stall as long as the block: ``(await loop_stalls(index.aadd_texts(texts))).longest``.
    """
    stalls: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(tick)
            now = time.perf_counter()
            stalls.append(max(0.0, now - last - tick))
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # the ticker starts before the work does
    start = time.perf_counter()
    try:
        result = await work
    finally:
        ticking.cancel()
    return LoopStalls(result, stalls, time.perf_counter() - start)
