"""Progress bars (``tqdm.auto``: a widget in notebooks, text in terminals)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Progress", "progress_bar"]


class Progress:
    """A main bar (files, or chunks), plus an optional second bar counting chunks embedded."""

    def __init__(self, total: int, show: bool, *, unit: str, desc: str, chunks: bool) -> None:
        from tqdm.auto import tqdm

        self._main: Any = tqdm(total=total, unit=unit, desc=desc, disable=not show)
        self._chunks: Any = (
            tqdm(unit="chunk", desc="embedded", disable=not show, position=1, leave=False)
            if chunks
            else None
        )

    def update(self, n: int) -> None:
        """Advance the main bar by ``n``."""
        self._main.update(n)

    def add_chunks(self, n: int) -> None:
        """Count ``n`` more chunks embedded."""
        if self._chunks is not None:
            self._chunks.update(n)

    def close(self) -> None:
        """Finish both bars."""
        if self._chunks is not None:
            self._chunks.close()
        self._main.close()


@contextmanager
def progress_bar(
    total: int, show: bool, *, unit: str, desc: str = "ollama-rag", chunks: bool = False
) -> Iterator[Progress]:
    """Yield a :class:`Progress`; ``show=False`` makes every call a no-op."""
    bar = Progress(total, show, unit=unit, desc=desc, chunks=chunks)
    try:
        yield bar
    finally:
        bar.close()
