"""Progress bars (``tqdm.auto``: a widget in notebooks, text in terminals).

A notebook shows widgets only with ``ipywidgets`` installed (the ``[notebook]`` extra);
without it the bars are text, and the one warning about it names the extra to install.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["NOTEBOOK_EXTRA_HINT", "Progress", "progress_bar"]

NOTEBOOK_EXTRA_HINT = (
    "Progress bars show as text because ipywidgets is not installed; for widgets in "
    "notebooks: pip install 'ollama-rag[notebook]'"
)


@functools.cache
def _tqdm() -> Any:
    """``tqdm.auto.tqdm``: the widget bar in a notebook kernel with ipywidgets, else text."""
    with warnings.catch_warnings():
        # tqdm's own warning ("update jupyter and ipywidgets") does not say what to install.
        warnings.filterwarnings("ignore", "IProgress not found")
        from tqdm.auto import tqdm
    return tqdm


@functools.cache
def _hint_without_widgets() -> None:
    """Warn once, in a notebook kernel without ipywidgets, that ``[notebook]`` gives widgets."""
    if "ipykernel.zmqshell" in sys.modules and importlib.util.find_spec("ipywidgets") is None:
        warnings.warn(NOTEBOOK_EXTRA_HINT, UserWarning, stacklevel=3)


class Progress:
    """A main bar (files, or chunks), plus an optional second bar counting chunks embedded."""

    def __init__(self, total: int, show: bool, *, unit: str, desc: str, chunks: bool) -> None:
        tqdm = _tqdm()
        if show:
            _hint_without_widgets()
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
