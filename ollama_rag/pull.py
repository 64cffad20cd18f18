"""Pull a model through Ollama's ``/api/pull`` with progress bars, and pull only when missing.

:func:`ensure_model` is what ``RagIndex(..., pull=True)`` does before it probes the model:
present models return at once, missing ones are pulled with :func:`pull_model`, which shows a
tqdm bar per layer like ``ollama pull NAME``.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Final

import ollama

from ollama_rag.errors import ModelNotFoundError, NotAnEmbeddingModelError
from ollama_rag.ollama import (
    DEFAULT_TIMEOUT,
    ModelInfo,
    _display_url,
    canonical_model_name,
    probe_model,
    resolve_base_url,
    translate_errors,
)

__all__ = [
    "LIBRARY_URL",
    "PULL_NOT_FOUND_MESSAGE",
    "ensure_model",
    "pull_model",
]

LIBRARY_URL: Final = "https://ollama.com/library"
PULL_NOT_FOUND_MESSAGE: Final = (
    'Ollama at {url} cannot pull "{model}": the registry has no such model or tag ({error}). '
    f"Check the name and tag at {LIBRARY_URL} (e.g. bge-m3, nomic-embed-text:v1.5), then run "
    '"ollama pull NAME" or ensure_model("NAME")'
)
"""Message of the :class:`ModelNotFoundError` raised when a pull names no real model."""


class _PullProgress:
    """One tqdm bar per layer (bytes, by digest), plus the status lines Ollama streams.

    Layers download one after another, so each bar is closed when its layer completes and the
    next one takes its place, as in the ``ollama pull`` CLI.
    """

    def __init__(self, model: str, *, enabled: bool) -> None:
        self.model = model
        self.enabled = enabled
        self.bars: dict[str, Any] = {}
        self.last_status = ""

    def update(self, part: ollama.ProgressResponse) -> None:
        from tqdm.auto import tqdm

        status = part.status or ""
        if part.digest and part.total:
            bar = self.bars.get(part.digest)
            if bar is None:
                short = part.digest.removeprefix("sha256:")[:12]
                bar = tqdm(
                    total=part.total,
                    desc=f"pulling {short}",
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    disable=not self.enabled,
                    file=sys.stderr,
                )
                self.bars[part.digest] = bar
            completed = min(part.completed or 0, part.total)
            if completed > bar.n:
                bar.update(completed - bar.n)
            if completed >= part.total:
                bar.close()
        elif status and status != self.last_status and self.enabled:
            # The steps between layers ("verifying sha256 digest", "success"), as the ollama
            # CLI prints them; tqdm.write keeps them from tearing an open bar.
            tqdm.write(f"{self.model}: {status}", file=sys.stderr)
        self.last_status = status

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()  # a second close() is a no-op


def _pull_failed_missing(err: ollama.ResponseError) -> bool:
    text = str(err.error)
    return "file does not exist" in text or "not found" in text or "manifest unknown" in text


def _client(
    url: str, timeout: float | None, client: ollama.Client | None
) -> contextlib.AbstractContextManager[ollama.Client]:
    """The caller's client (left open), or a new one for ``url`` (closed after use)."""
    if client is not None:
        return contextlib.nullcontext(client)
    return ollama.Client(host=url, timeout=timeout)


def pull_model(
    name: str,
    *,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    client: ollama.Client | None = None,
) -> None:
    """Pull ``name`` through Ollama's ``/api/pull``, like ``ollama pull NAME``.

    Pulling a model that is already present only re-checks its manifest.

    Args:
        name: The model, with or without tag.
        base_url: Ollama URL; defaults to ``OLLAMA_HOST``, then ``http://127.0.0.1:11434``.
        progress: Show a tqdm bar per layer (bytes) and Ollama's status lines on stderr.
        timeout: Seconds to wait for each streamed line (not for the whole download).
        client: An ``ollama.Client`` for ``base_url`` to pull through (its headers,
            credentials and timeout), instead of a new one.

    Raises:
        ModelNotFoundError: The registry has no such model or tag; the message points at
            https://ollama.com/library.
        OllamaUnavailableError: Ollama is not reachable.
        OllamaError: Any other failure Ollama reports (disk full, registry unreachable, ...).
    """
    canonical_model_name(name)  # a blank name fails here, not as a pydantic error
    url = resolve_base_url(base_url)
    shown = _display_url(url)
    bars = _PullProgress(name, enabled=progress)
    try:
        with translate_errors(url, name), _client(url, timeout, client) as pulling:
            try:
                for part in pulling.pull(name, stream=True):
                    bars.update(part)
            except ollama.ResponseError as err:
                if not _pull_failed_missing(err):
                    raise
                msg = PULL_NOT_FOUND_MESSAGE.format(url=shown, model=name, error=err.error)
                raise ModelNotFoundError(msg, url=shown, model=name) from err
    finally:
        bars.close()


def ensure_model(
    name: str,
    *,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
    client: ollama.Client | None = None,
) -> ModelInfo:
    """Return the model's info, pulling it first if the server does not have it.

    Example:
        .. code-block:: python

            info = ensure_model("bge-m3")  # pulls ~1.2 GB once, with a progress bar
            info.dimension, info.context_length  # (1024, 2048)

    Args:
        name: The embedding model, with or without tag.
        base_url: Ollama URL; defaults to ``OLLAMA_HOST``, then ``http://127.0.0.1:11434``.
        progress: Show the download's progress bars on stderr (tqdm; widgets in notebooks).
        timeout: Seconds per HTTP request (for the pull: per streamed line).
        client: An ``ollama.Client`` for ``base_url`` to use (its headers, credentials and
            timeout), instead of a new one.

    Returns:
        What Ollama reports about the model (:class:`~ollama_rag.ollama.ModelInfo`).

    Raises:
        ModelNotFoundError: No model of that name exists to pull.
        OllamaUnavailableError: Ollama is not reachable.
        NotAnEmbeddingModelError: The model (already present or just pulled) cannot embed.
    """
    url = resolve_base_url(base_url)
    with _client(url, timeout, client) as asking:
        try:
            return probe_model(asking, name, url=url)
        except ModelNotFoundError:
            pass
        pull_model(name, base_url=url, progress=progress, timeout=timeout, client=asking)
        try:
            return probe_model(asking, name, url=url)
        except NotAnEmbeddingModelError as err:
            msg = f'{err}. It was pulled just now: remove it with "ollama rm {name}"'
            raise NotAnEmbeddingModelError(msg, url=err.url, model=err.model) from err
