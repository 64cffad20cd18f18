"""Talking to Ollama: the base URL, probing a model, and embedding with clear errors.

The object that embeds, :class:`OllamaEmbedder`, is LangChain's
:class:`~langchain_ollama.OllamaEmbeddings` (a subclass), and every request goes through the
``ollama`` clients it builds, so a real Ollama and :class:`ollama_rag.testing.LocalOllama` are
driven exactly the same way, with the user's headers, credentials and timeouts. What this module
adds is what LangChain leaves out: batches spread over several hosts with retries,
``truncate: false`` (no silent truncation), query/document prefixes, a check that every vector
has the recorded dimension, and errors that name the fix instead of a bare ``ConnectionError``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import queue
import random
import re
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import httpx
import numpy as np
import ollama
import pydantic
from langchain_ollama import OllamaEmbeddings
from pydantic import Field, PrivateAttr, model_validator
from typing_extensions import Self

from ollama_rag.errors import (
    MODEL_NOT_FOUND_MESSAGE,
    NOT_AN_EMBEDDING_MODEL_MESSAGE,
    OLLAMA_UNAVAILABLE_MESSAGE,
    ConfigError,
    ContextLengthExceededError,
    EmbeddingModelMismatchError,
    Explained,
    Fix,
    ModelNotFoundError,
    NotAnEmbeddingModelError,
    OllamaError,
    OllamaResponseError,
    OllamaUnavailableError,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TIMEOUT",
    "EmbeddingPool",
    "LoopClients",
    "ModelInfo",
    "OllamaEmbedder",
    "canonical_model_name",
    "check_hosts_agree",
    "normalize_base_url",
    "parse_keep_alive",
    "probe_chat_model",
    "probe_model",
    "resolve_base_url",
    "resolve_base_urls",
]

_T = TypeVar("_T")
log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:11434"
DEFAULT_PORT = 11434
# Seconds for one HTTP request. The ollama client's default is no timeout at all, which turns a
# wedged server into a hung notebook; a CPU embedding a 64-chunk batch needs well under this.
DEFAULT_TIMEOUT = 300.0
DEFAULT_BATCH_SIZE = 64
# New Ollama builds embed with num_batch = min(2048, num_ctx) and cut anything longer
# (reference/ollama-api.md §1.8), so no model is trusted with more than this many tokens.
OLLAMA_EMBED_TOKEN_CAP = 2048


def normalize_base_url(url: str) -> str:
    """Return ``url`` with a scheme and a port, the way the ollama client reads ``OLLAMA_HOST``.

    Without a scheme the port defaults to 11434; with an explicit scheme and no port it is the
    scheme's own (80/443), exactly as ollama-python does. LangChain silently replaces a URL it
    cannot parse with localhost, so the URL is normalised here before LangChain sees it.

    >>> normalize_base_url("localhost")
    'http://localhost:11434'
    >>> normalize_base_url("192.168.1.5:8080")
    'http://192.168.1.5:8080'
    >>> normalize_base_url("http://gpu-box:11434/")
    'http://gpu-box:11434'
    >>> normalize_base_url("https://ollama.example.com")
    'https://ollama.example.com:443'
    >>> normalize_base_url(":9999")
    'http://127.0.0.1:9999'
    """
    text = url.strip()
    if not text:
        return DEFAULT_BASE_URL
    has_scheme = "://" in text
    parts = urlsplit(text if has_scheme else f"http://{text}")
    if parts.scheme not in ("http", "https"):
        msg = f'Ollama base_url {url!r} must use http or https, e.g. "http://127.0.0.1:11434"'
        raise ConfigError(msg)
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port
    except ValueError as err:
        msg = f'Ollama base_url {url!r} has an invalid port; use e.g. "http://127.0.0.1:11434"'
        raise ConfigError(msg) from err
    if port is None:
        port = DEFAULT_PORT if not has_scheme else (443 if parts.scheme == "https" else 80)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    path = parts.path.rstrip("/")
    auth = ""
    if parts.username:
        auth = parts.username + (f":{parts.password}" if parts.password else "") + "@"
    return f"{parts.scheme}://{auth}{host}:{port}{path}"


def resolve_base_url(base_url: str | None) -> str:
    """Pick the Ollama URL: the argument, else ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``."""
    chosen = base_url if base_url else os.environ.get("OLLAMA_HOST", "")
    return normalize_base_url(chosen)


def resolve_base_urls(base_url: str | Sequence[str] | None) -> tuple[str, ...]:
    """Like :func:`resolve_base_url`, for one URL or several (scale-out over Ollama hosts).

    A string may also list several URLs separated by commas, so ``OLLAMA_HOST``-style settings
    can name more than one host.

    >>> resolve_base_urls("gpu1:11434, gpu2:11434")
    ('http://gpu1:11434', 'http://gpu2:11434')
    """
    if base_url is None or isinstance(base_url, str):
        text = base_url or os.environ.get("OLLAMA_HOST", "")
        items = [part for part in text.split(",") if part.strip()] or [""]
    else:
        items = list(base_url)
        if not items:
            msg = "base_url=[] names no Ollama host; pass at least one URL"
            raise ConfigError(msg)
    return tuple(dict.fromkeys(normalize_base_url(item) for item in items))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_keep_alive(value: float | str | None) -> float | None:
    """Read ``keep_alive`` as seconds: a number, or a Go duration string as Ollama accepts.

    >>> parse_keep_alive("1h30m")
    5400.0
    >>> parse_keep_alive(-1)
    -1.0
    >>> parse_keep_alive("300")
    300.0
    """
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    parts = _DURATION.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        msg = (
            f"keep_alive={value!r} is neither seconds nor a duration; use e.g. 300, -1 "
            '(forever) or "30m"'
        )
        raise ConfigError(msg)
    return sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def canonical_model_name(name: str) -> str:
    """Return the model name with its tag, as Ollama lists it.

    >>> canonical_model_name("bge-m3")
    'bge-m3:latest'
    >>> canonical_model_name("qwen3-embedding:0.6b")
    'qwen3-embedding:0.6b'
    >>> canonical_model_name("registry.example.com:5000/team/bge-m3")
    'registry.example.com:5000/team/bge-m3:latest'
    """
    cleaned = name.strip()
    if not cleaned or re.search(r"\s", cleaned):
        msg = f'Invalid Ollama model name {name!r}; pass a name such as "bge-m3"'
        raise ConfigError(msg)
    last = cleaned.rsplit("/", 1)[-1]
    return cleaned if ":" in last else f"{cleaned}:latest"


def _display_url(url: str) -> str:
    """Strip credentials from a URL before it goes into a message."""
    parts = urlsplit(url)
    if parts.username is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl()


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What Ollama reports about an embedding model (``/api/tags`` + ``/api/show``).

    Attributes:
        name: Canonical name with tag, e.g. ``bge-m3:latest``.
        digest: The model's digest from ``/api/tags`` (changes when the tag is re-pulled).
        dimension: Length of the vectors (``<arch>.embedding_length``).
        context_length: Tokens the server will really embed without truncating: the trained
            context, capped by the Modelfile's ``num_ctx`` and by Ollama's 2048-token batch cap.
        trained_context_length: ``<arch>.context_length`` as reported by the model.
        architecture: ``general.architecture``, e.g. ``bert``.
    """

    name: str
    digest: str
    dimension: int
    context_length: int
    trained_context_length: int
    architecture: str


def _num_ctx(parameters: str | None) -> int | None:
    """Read ``num_ctx`` from the Modelfile parameter block ``/api/show`` returns."""
    match = re.search(r"^\s*num_ctx\s+(\d+)\s*$", parameters or "", flags=re.MULTILINE)
    return int(match.group(1)) if match else None


@contextmanager
def translate_errors(
    url: str, model: str | None = None, *, timeout: float | None = None
) -> Iterator[None]:
    """Turn the ollama/httpx client errors into :mod:`ollama_rag.errors` with the fix named."""
    shown = _display_url(url)
    try:
        yield
    except OllamaError:
        raise
    except ollama.ResponseError as err:
        raise _response_error(err, shown, model) from err
    except httpx.TimeoutException as err:
        limit = f"{timeout:g} s" if timeout else "the time limit"
        msg = (
            f"Ollama at {shown} did not answer within {limit}; it may be overloaded or stuck: "
            "raise timeout=, or send less per request with a smaller batch_size="
        )
        raise OllamaUnavailableError(msg, url=shown, model=model) from err
    except (ConnectionError, httpx.TransportError) as err:
        msg = OLLAMA_UNAVAILABLE_MESSAGE.format(url=shown)
        if not isinstance(err, (ConnectionError, httpx.ConnectError)):
            msg += f" ({type(err).__name__}: {err or 'connection lost'})"
        raise OllamaUnavailableError(msg, url=shown, model=model) from err
    except (ValueError, pydantic.ValidationError) as err:  # JSON that is not Ollama's API
        raise OllamaResponseError(_not_ollama(shown), url=shown, model=model) from err


def _not_ollama(url: str) -> str:
    return (
        f"{url} answered, but not like Ollama's API (or the Ollama there is older than 0.2.6, "
        "which has no /api/embed): check base_url / OLLAMA_HOST, or upgrade Ollama"
    )


def _response_error(err: ollama.ResponseError, url: str, model: str | None) -> OllamaError:
    text = str(err.error)
    status = err.status_code
    name = model or "?"
    if status == 404 and not re.search(r"model .* not found", text):
        return OllamaResponseError(_not_ollama(url), url=url, model=model, status_code=status)
    if status == 404:
        return ModelNotFoundError(
            MODEL_NOT_FOUND_MESSAGE.format(model=name, url=url), url=url, model=model
        )
    if status == 501 or "does not support embeddings" in text:
        msg = NOT_AN_EMBEDDING_MODEL_MESSAGE.format(model=name, url=url)
        return NotAnEmbeddingModelError(msg, url=url, model=model)
    if status == 400 and "context length" in text:
        msg = (
            f'An input is longer than the context of "{name}" ({text}). '
            "Split it into smaller chunks (a smaller chunk_size) and add it again"
        )
        return ContextLengthExceededError(msg, url=url, model=model)
    msg = f'Ollama at {url} answered "{text}" (status {status}) for model "{name}"'
    if status in (500, 502, 503):
        msg += "; the server may be overloaded or restarting: retry, and check its log"
    return OllamaResponseError(msg, url=url, model=model, status_code=status)


def probe_model(client: ollama.Client, model: str, *, url: str) -> ModelInfo:
    """Ask Ollama what ``model`` is, refusing anything that cannot embed.

    Args:
        client: An ``ollama.Client`` pointed at ``url``.
        model: The model name, with or without tag.
        url: The base URL, for messages.

    Returns:
        The model's :class:`ModelInfo`.

    Raises:
        OllamaUnavailableError: The server is not reachable.
        ModelNotFoundError: The model is not pulled; the message lists the models that are.
        NotAnEmbeddingModelError: The model cannot produce embeddings.
    """
    name = canonical_model_name(model)
    shown = _display_url(url)
    with translate_errors(url, model):
        listed = client.list().models
        entry = next((m for m in listed if m.model == name), None)
        if entry is None:
            available = tuple(sorted(m.model for m in listed if m.model))
            msg = MODEL_NOT_FOUND_MESSAGE.format(model=model, url=shown)
            msg += f". Models on that server: {', '.join(available) or 'none'}"
            raise ModelNotFoundError(msg, url=shown, model=model, available=available)
        shown_info = client.show(name)
    info = dict(shown_info.modelinfo or {})
    arch = str(info.get("general.architecture", ""))
    capabilities = shown_info.capabilities
    can_embed = (
        "embedding" in capabilities if capabilities is not None else f"{arch}.pooling_type" in info
    )
    dimension = info.get(f"{arch}.embedding_length")
    if not can_embed or not isinstance(dimension, int):
        msg = NOT_AN_EMBEDDING_MODEL_MESSAGE.format(model=model, url=shown)
        raise NotAnEmbeddingModelError(msg, url=shown, model=model)
    trained = info.get(f"{arch}.context_length")
    trained_ctx = int(trained) if isinstance(trained, int) else OLLAMA_EMBED_TOKEN_CAP
    limits = [trained_ctx, OLLAMA_EMBED_TOKEN_CAP]
    if (num_ctx := _num_ctx(shown_info.parameters)) is not None:
        limits.append(num_ctx)
    return ModelInfo(
        name=name,
        digest=entry.digest or "",
        dimension=dimension,
        context_length=min(limits),
        trained_context_length=trained_ctx,
        architecture=arch,
    )


def probe_chat_model(client: ollama.Client, model: str, *, url: str) -> bool:
    """Whether ``model`` can write answers (``/api/show`` lists ``completion``).

    Args:
        client: An ``ollama.Client`` pointed at ``url``.
        model: The chat model's name, with or without tag.
        url: The base URL, for messages.

    Returns:
        False for a model that only embeds; True otherwise (also for a server too old to
        report capabilities).

    Raises:
        OllamaUnavailableError: The server is not reachable.
        ModelNotFoundError: The model is not pulled; the message lists the models that are.
    """
    name = canonical_model_name(model)
    shown = _display_url(url)
    with translate_errors(url, model):
        listed = tuple(sorted(m.model for m in client.list().models if m.model))
        if name not in listed:
            msg = MODEL_NOT_FOUND_MESSAGE.format(model=model, url=shown)
            msg += f". Models on that server: {', '.join(listed) or 'none'}"
            raise ModelNotFoundError(msg, url=shown, model=model, available=listed)
        capabilities = client.show(name).capabilities
    return capabilities is None or "completion" in capabilities


def check_hosts_agree(infos: Sequence[tuple[str, ModelInfo]], model: str) -> ModelInfo:
    """Insist that every host serves the same weights of ``model``; returns the first's info.

    Raises:
        EmbeddingModelMismatchError: Two hosts have different digests or dimensions of it.
    """
    first_url, first = infos[0]
    for url, info in infos[1:]:
        if (info.digest, info.dimension) != (first.digest, first.dimension):
            msg = (
                f'Ollama hosts disagree about "{first.name}": {_display_url(first_url)} has '
                f"digest {first.digest[:12]} ({first.dimension}-d), {_display_url(url)} has "
                f"{info.digest[:12]} ({info.dimension}-d). Vectors from the two would be mixed: "
                f'run "ollama pull {model}" on every host so they serve the same version'
            )
            raise EmbeddingModelMismatchError(msg, recorded=first.name, requested=info.name)
    return first


def _retryable(err: OllamaError) -> bool:
    if isinstance(err, OllamaUnavailableError):
        return True
    return isinstance(err, OllamaResponseError) and err.status_code in (429, 500, 502, 503, 504)


def _backoff(base: float, attempt: int) -> float:
    # Jitter keeps workers that failed together from retrying in lockstep.
    return base * float(2**attempt) * random.uniform(0.9, 1.1)


def _with_attempts(err: OllamaError, attempt: int) -> OllamaError:
    if attempt:
        err.args = (f"{err} (after {attempt + 1} attempts)",)
    return err


class EmbeddingPool:
    """Send embedding batches to one or more Ollama hosts with bounded concurrency and retries.

    Each request carries ``truncate: false``, so an input longer than the model's context is an
    error (:class:`ContextLengthExceededError`) instead of being silently cut. Requests that fail
    with a connection error or a 5xx/429 answer are retried with exponential backoff, on whichever
    host is free first. A host is used by at most ``concurrency`` requests at a time; Ollama
    embeds one request at a time per model anyway, so two in flight keep it busy while the next
    batch travels.

    Args:
        model: Ollama model name.
        clients: One ``ollama.Client`` per Ollama base URL (configured by the caller: headers,
            timeouts, proxies).
        request: Further ``embed`` arguments sent with every request (``keep_alive``,
            ``options``, ``dimensions``).
        concurrency: Requests in flight per host.
        retries: Extra attempts after a retryable failure.
        backoff: Seconds before the first retry; doubled for each further one.
        timeout: Seconds per HTTP request, for messages.
    """

    def __init__(
        self,
        *,
        model: str,
        clients: Mapping[str, ollama.Client],
        request: Mapping[str, Any] | None = None,
        concurrency: int = 2,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        if not clients:
            msg = "At least one Ollama base_url is needed"
            raise ConfigError(msg)
        if concurrency < 1 or retries < 0 or backoff < 0:
            msg = (
                f"concurrency must be >= 1, retries >= 0 and backoff >= 0; got {concurrency}, "
                f"{retries}, {backoff}"
            )
            raise ConfigError(msg)
        self.model = model
        self.urls = tuple(clients)
        self.retries = retries
        self.backoff = backoff
        self.request = dict(request or {})
        self.keep_alive = self.request.get("keep_alive")
        self._clients = dict(clients)
        self._free: queue.Queue[str] = queue.Queue()
        for _ in range(concurrency):
            for url in self.urls:
                self._free.put(url)
        self.workers = concurrency * len(self.urls)
        self.executor = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="ollama-rag-embed"
        )
        self._count_lock = threading.Lock()
        self._cancelled = threading.Event()
        self._fail_fast = threading.Event()
        self.timeout = timeout
        self.requests = 0

    def embed(self, texts: Sequence[str], *, via: LoopClients | None = None) -> list[list[float]]:
        """Embed ``texts`` in one request, retrying retryable failures.

        Args:
            texts: The texts (prefixes applied).
            via: Send the request through an event loop's async clients instead of this
                thread's sync ones (see :class:`LoopClients`); slots and retries are the same.

        Raises:
            ContextLengthExceededError: An input is longer than the model's context.
            OllamaError: Any other failure, after the last retry for retryable ones.
        """
        if not texts:
            return []
        attempt = 0
        while True:
            url = self._free.get()
            if self._cancelled.is_set():
                self._free.put(url)
                msg = "Embedding was cancelled (the run was interrupted)"
                raise OllamaError(msg, url=url, model=self.model)
            delay = 0.0
            try:
                with self._count_lock:
                    self.requests += 1
                with translate_errors(url, self.model, timeout=self.timeout):
                    if via is None:
                        response = self._clients[url].embed(
                            self.model, list(texts), truncate=False, **self.request
                        )
                    else:
                        response = via.embed(
                            url, self.model, list(texts), truncate=False, **self.request
                        )
                return [list(v) for v in response.embeddings]
            except OllamaError as err:
                retries = 0 if self._fail_fast.is_set() else self.retries
                if not _retryable(err) or attempt >= retries:
                    raise _with_attempts(err, attempt) from err.__cause__
                delay = _backoff(self.backoff, attempt)
            finally:
                if delay:
                    # The failed host sits out the backoff; the retry takes whichever host is
                    # free first, so a healthy host carries on while a dead one recovers.
                    timer = threading.Timer(delay, self._free.put, args=(url,))
                    timer.daemon = True
                    timer.start()
                else:
                    self._free.put(url)
            attempt += 1

    @property
    def clients(self) -> Mapping[str, ollama.Client]:
        """The ``ollama.Client`` of each host, by base URL."""
        return self._clients

    def fail_fast(self) -> None:
        """Stop retrying (after a batch failed for good): what is left is tried once each."""
        self._fail_fast.set()

    def cancel(self) -> None:
        """Make queued and retrying requests stop (after an interrupt); see :meth:`resume`."""
        self._cancelled.set()

    def resume(self) -> None:
        """Accept requests (with retries) again after :meth:`cancel` or :meth:`fail_fast`."""
        self._cancelled.clear()
        self._fail_fast.clear()

    def close(self) -> None:
        """Stop the worker threads without waiting for requests still running."""
        self._cancelled.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for client in self._clients.values():
            client.close()  # type: ignore[no-untyped-call]


_CANCELLED_MESSAGE = "Embedding was cancelled (the task awaiting it was cancelled)"


class LoopClients:
    """The ``ollama.AsyncClient`` of each host on one event loop, for worker threads.

    ``RagIndex.aadd_*`` runs the ingestion pipeline (reading, splitting, lookups, store writes,
    none of which may block the event loop) in a worker thread, with the sync path's own
    embedding threads; only their HTTP hop differs: each request is sent from here, on the
    loop, through the async client of its host, while the thread that sent it waits for the
    answer. Batching, per-host slots, retries with backoff and the splitting of over-long
    inputs are therefore the sync path's code, unchanged (see :meth:`EmbeddingPool.embed`).

    :meth:`cancel` aborts the requests in flight at once and fails every later one, which the
    pipeline handles as a batch that failed for good: it writes what is finished and stops.

    Args:
        loop: The running event loop the clients belong to.
        clients: The async client of each host, by base URL.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, clients: Mapping[str, ollama.AsyncClient]
    ) -> None:
        self.loop = loop
        self._clients = dict(clients)
        self._lock = threading.Lock()
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def check(self, url: str = "", model: str | None = None) -> None:
        """Raise :class:`OllamaError` once cancelled (for waits that are not requests).

        Raises:
            OllamaError: :meth:`cancel` was called.
        """
        if self._cancelled:
            raise OllamaError(_CANCELLED_MESSAGE, url=url, model=model)

    def embed(self, url: str, model: str, texts: list[str], **request: Any) -> ollama.EmbedResponse:
        """``AsyncClient.embed`` of ``url``'s host, run on the loop; this thread waits.

        Raises:
            OllamaError: Cancelled, before or during the request.
        """
        with self._lock:  # so that cancel() either sees this request or it never starts
            self.check(url, model)
            running = asyncio.run_coroutine_threadsafe(
                self._clients[url].embed(model, texts, **request), self.loop
            )
            self._running.add(running)
        try:
            return running.result()
        except concurrent.futures.CancelledError:
            raise OllamaError(_CANCELLED_MESSAGE, url=url, model=model) from None
        finally:
            with self._lock:
                self._running.discard(running)

    def cancel(self) -> None:
        """Abort the requests in flight and refuse new ones."""
        with self._lock:
            self._cancelled = True
            running = list(self._running)
        for future in running:
            future.cancel()

    async def run(self, call: Callable[[], _T]) -> _T:
        """Await ``call`` (which embeds through these clients) run in a worker thread.

        If the awaiting task is cancelled, the embedding is cancelled and ``call`` is waited
        for (it writes what is finished, then stops) before ``CancelledError`` is raised: a
        thread cannot be stopped from outside, and once this returns nothing of ``call`` is
        still writing, so the index's write lock is free and its state is final.
        """
        done = asyncio.ensure_future(asyncio.to_thread(call))
        try:
            await asyncio.wait([done])  # unlike awaiting it, leaves ``done`` running if cancelled
        except asyncio.CancelledError:
            self.cancel()
            while not done.done():
                with contextlib.suppress(asyncio.CancelledError):  # asked again: still waiting
                    await asyncio.wait([done])
            if not done.cancelled() and done.exception() is not None:
                log.debug("cancelled write ended with: %r", done.exception())
            raise
        return done.result()


# LangChain's OllamaEmbeddings fields that configure its HTTP clients (used to build one client
# per host exactly as LangChain builds its own: auth from userinfo, headers, proxies, TLS).
_CLIENT_FIELDS = ("client_kwargs", "sync_client_kwargs", "async_client_kwargs")


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every client that does not choose its own ``verify``.

    httpx builds (and loads the CA bundle into) a new context for every client, about 50 ms
    each; an index with four hosts opens ten clients, so opening it took half a second.
    """
    return httpx.create_ssl_context()


def _copy_client_kwargs(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy LangChain may change in place (it merges auth headers into ``headers``)."""
    copied = dict(kwargs or {})
    if isinstance(copied.get("headers"), Mapping):
        copied["headers"] = dict(copied["headers"])
    return copied


class OllamaEmbedder(OllamaEmbeddings):
    """LangChain's :class:`~langchain_ollama.OllamaEmbeddings`, as an index embeds with it.

    It is the real LangChain class (pass it to any LangChain component), and adds what indexing
    needs: batches spread over one or more Ollama hosts (:class:`EmbeddingPool`) with retries,
    ``truncate: false`` so an over-long input is an error instead of silently cut, the model's
    document/query prefixes, and a check that every vector has the recorded dimension and is
    finite. ``embed_query``/``aembed_query`` are natively sync/async. Everything
    ``OllamaEmbeddings`` takes (``base_url`` with credentials, ``client_kwargs`` such as headers
    and timeouts, ``num_ctx``, ``dimensions``, ``keep_alive``) is honoured.

    Build one from a user's ``OllamaEmbeddings`` with :meth:`from_embeddings`.
    """

    hosts: list[str] = Field(default_factory=list)
    """More Ollama base URLs serving the same model; batches are spread over all of them."""
    document_prefix: str = ""
    """Prepended to every document text before embedding."""
    query_prefix: str = ""
    """Prepended to every query before embedding."""
    batch_size: int = DEFAULT_BATCH_SIZE
    """Texts per ``/api/embed`` request."""
    concurrency: int = 2
    """Requests in flight per host."""
    retries: int = 3
    """Extra attempts after a connection error or a 5xx/429 answer."""
    retry_backoff: float = 0.5
    """Seconds before the first retry; doubled for each further one."""
    expected_dimension: int | None = None
    """The vector length every answer must have (the index's recorded dimension)."""
    keep_alive: float | str | None = None  # type: ignore[assignment]
    """How long Ollama keeps the model loaded: seconds (negative = forever) or ``"30m"``."""

    _pool: EmbeddingPool = PrivateAttr()
    _async: dict[int, tuple[asyncio.AbstractEventLoop, list[ollama.AsyncClient]]] = PrivateAttr(
        default_factory=dict
    )
    _next_host: itertools.count[int] = PrivateAttr(default_factory=itertools.count)
    _pending_check: Callable[[], None] | None = PrivateAttr(default=None)
    _check_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @model_validator(mode="before")
    @classmethod
    def _resolve_hosts(cls, data: Any) -> Any:
        # The URL is normalised (and OLLAMA_HOST read, which may list several hosts) before
        # LangChain builds its clients: it silently replaces a URL it cannot parse.
        if isinstance(data, dict):
            urls = resolve_base_urls(data.get("base_url"))
            extra = [normalize_base_url(u) for u in data.get("hosts") or ()]
            urls = tuple(dict.fromkeys([*urls, *extra]))
            data = {**data, "base_url": urls[0], "hosts": list(urls[1:])}
            data["keep_alive"] = parse_keep_alive(data.get("keep_alive"))
            kwargs = _copy_client_kwargs(data.get("client_kwargs"))
            if not any("verify" in (data.get(name) or {}) for name in _CLIENT_FIELDS):
                kwargs["verify"] = _ssl_context()
            data["client_kwargs"] = kwargs
        return data

    @model_validator(mode="after")
    def _build_pool(self) -> Self:
        if self.batch_size < 1:
            msg = f"batch_size must be at least 1, got {self.batch_size}"
            raise ConfigError(msg)
        clients = {self.urls[0]: cast(ollama.Client, self._client)}
        for url in self.urls[1:]:
            clients[url] = cast(ollama.Client, self._for_host(url)._client)
        self._pool = EmbeddingPool(
            model=self.model,
            clients=clients,
            request=self._request,
            concurrency=self.concurrency,
            retries=self.retries,
            backoff=self.retry_backoff,
            timeout=self.timeout,
        )
        return self

    @classmethod
    def build(cls, **fields: Any) -> OllamaEmbedder:
        """Construct one, raising :class:`ConfigError` (not pydantic's wrapper) for bad values."""
        try:
            return cls(**fields)
        except pydantic.ValidationError as err:
            for error in err.errors():
                original = (error.get("ctx") or {}).get("error")
                if isinstance(original, ConfigError):
                    raise original from None
            msg = f"Invalid embedding settings: {err}"
            raise ConfigError(msg) from err

    @classmethod
    def settings_for(
        cls,
        *,
        model: str | None,
        embeddings: OllamaEmbeddings | None,
        base_url: str | Sequence[str] | None,
        keep_alive: float | str | None,
        timeout: float | None,
        batch_size: int,
        concurrency: int,
        retries: int,
        retry_backoff: float,
    ) -> dict[str, Any]:
        """Every field of an index's embedders but the model, from ``RagIndex``'s arguments.

        With a user's ``embeddings``, its configuration is kept (URL, headers, client options,
        ``keep_alive``, ``num_ctx``, ...); ``RagIndex``'s Ollama arguments may add to it but not
        contradict it. ``timeout`` applies unless its ``client_kwargs`` set one.

        Raises:
            ConfigError: An argument is invalid or contradicts ``embeddings``.
        """
        if batch_size < 1 or concurrency < 1 or retries < 0 or retry_backoff < 0:
            msg = (
                "batch_size and concurrency must be >= 1, retries and retry_backoff >= 0; got "
                f"{batch_size}, {concurrency}, {retries}, {retry_backoff}"
            )
            raise ConfigError(msg)
        alive = parse_keep_alive(keep_alive)
        fields: dict[str, Any] = {"keep_alive": alive, "client_kwargs": {"timeout": timeout}}
        if embeddings is not None:
            if not isinstance(embeddings, OllamaEmbeddings):
                msg = (
                    "embeddings= takes a langchain_ollama.OllamaEmbeddings (ollama-rag embeds "
                    f"with Ollama); got {type(embeddings).__name__}"
                )
                raise ConfigError(msg)
            theirs = cls._fields_of(embeddings)
            if model is not None and canonical_model_name(model) != canonical_model_name(
                embeddings.model
            ):
                msg = (
                    f"model={model!r} and embeddings=OllamaEmbeddings(model="
                    f"{embeddings.model!r}) disagree; pass only embeddings="
                )
                raise ConfigError(msg)
            for name, given, their in (
                (
                    "base_url",
                    resolve_base_urls(base_url) if base_url is not None else None,
                    resolve_base_urls(embeddings.base_url) if embeddings.base_url else None,
                ),
                ("keep_alive", alive, parse_keep_alive(embeddings.keep_alive)),
            ):
                if given is not None and their is not None and given != their:
                    msg = (
                        f"{name}= and the OllamaEmbeddings' {name} disagree; set it in one "
                        "place (on the OllamaEmbeddings)"
                    )
                    raise ConfigError(msg)
            if alive is None:
                fields["keep_alive"] = parse_keep_alive(embeddings.keep_alive)
            if base_url is None:
                base_url = [*resolve_base_urls(embeddings.base_url), *theirs.pop("hosts", [])]
            theirs["client_kwargs"] = {"timeout": timeout, **theirs.get("client_kwargs", {})}
            fields.update({k: v for k, v in theirs.items() if k != "keep_alive"})
        urls = resolve_base_urls(base_url)
        fields.update(
            base_url=urls[0],
            hosts=list(urls[1:]),
            batch_size=batch_size,
            concurrency=concurrency,
            retries=retries,
            retry_backoff=retry_backoff,
        )
        return fields

    @staticmethod
    def _fields_of(embeddings: OllamaEmbeddings) -> dict[str, Any]:
        """An OllamaEmbeddings' configuration (all but the model), copied."""
        names = [n for n in OllamaEmbeddings.model_fields if n != "model"]
        if isinstance(embeddings, OllamaEmbedder):
            names.append("hosts")
        fields = {n: getattr(embeddings, n) for n in names if getattr(embeddings, n) is not None}
        for name in _CLIENT_FIELDS:
            fields[name] = _copy_client_kwargs(fields.get(name))
        return fields

    def _for_host(self, url: str) -> OllamaEmbeddings:
        """LangChain's own clients for another host (same options, that host's credentials)."""
        fields: dict[str, Any] = {
            name: _copy_client_kwargs(getattr(self, name)) for name in _CLIENT_FIELDS
        }
        return OllamaEmbeddings(model=self.model, base_url=url, **fields)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every Ollama base URL embedding goes to (``base_url`` first)."""
        return (cast(str, self.base_url), *self.hosts)

    @property
    def timeout(self) -> float | None:
        """Seconds per HTTP request (``client_kwargs["timeout"]``), for messages."""
        value = (self.client_kwargs or {}).get("timeout")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def pool(self) -> EmbeddingPool:
        """The host pool the batches go through (request counts, cancellation)."""
        return self._pool

    @property
    def _request(self) -> dict[str, Any]:
        """What every ``/api/embed`` request carries besides the texts."""
        options = {k: v for k, v in self._default_params.items() if v is not None}
        request: dict[str, Any] = {"keep_alive": self.keep_alive, "dimensions": self.dimensions}
        if options:
            request["options"] = options
        return request

    def __repr__(self) -> str:
        hosts = ", ".join(_display_url(u) for u in self.urls)
        return f"OllamaEmbedder(model={self.model!r}, base_url=[{hosts}])"

    # ------------------------------------------------------------------ probing

    def probe(self) -> ModelInfo:
        """Ask every host what the model is, through the same clients embedding uses.

        Raises:
            EmbeddingModelMismatchError: Two hosts serve different versions of it.
            OllamaError: As :func:`probe_model`, for the first host that fails.
        """
        clients = self._pool.clients
        infos = [(url, probe_model(clients[url], self.model, url=url)) for url in self.urls]
        info = check_hosts_agree(infos, self.model)
        if self.num_ctx is not None and 0 < self.num_ctx < info.context_length:
            # Every request carries this num_ctx: it is the context the model really gets.
            info = dataclasses.replace(info, context_length=self.num_ctx)
        return info

    def check_before_use(self, check: Callable[[], None]) -> None:
        """Run ``check`` (the index's model guard) before the first text is embedded.

        It runs once it passes; a check that raises is tried again by the next embedding.
        """
        self._pending_check = check

    def _checked(self) -> None:
        if self._pending_check is None:
            return
        with self._check_lock:
            if self._pending_check is not None:
                self._pending_check()
                self._pending_check = None

    # ------------------------------------------------------------------ sync

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed document texts (document prefix applied), batches spread over the hosts."""
        self._pool.resume()
        futures = [
            self._pool.executor.submit(self.embed_texts, texts[start : start + self.batch_size])
            for start in range(0, len(texts), self.batch_size)
        ]
        return [vector for future in futures for vector in future.result()]

    def embed_texts(
        self, texts: Sequence[str], *, via: LoopClients | None = None
    ) -> list[list[float]]:
        """Embed document texts in one request (document prefix applied), in this thread.

        Args:
            texts: The texts.
            via: An event loop's async clients to send the request through (see
                :class:`LoopClients`).

        Raises:
            ContextLengthExceededError: A text is longer than the model's context.
        """
        self._checked()
        batch = [self.document_prefix + t for t in texts]
        return self._check(self._pool.embed(batch, via=via), len(batch))

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query, with the query prefix."""
        self._pool.resume()  # a new request after an interrupted run
        self._checked()
        with self._query_errors():
            return self._check(self._pool.embed([self.query_prefix + text]), 1)[0]

    def embed_queries(
        self, texts: Sequence[str], *, via: LoopClients | None = None
    ) -> list[list[float]]:
        """Embed many search queries (query prefix applied), batches spread over the hosts.

        ``via``: an event loop's async clients to send the requests through.
        """
        self._pool.resume()
        self._checked()
        batches = [
            [self.query_prefix + t for t in texts[start : start + self.batch_size]]
            for start in range(0, len(texts), self.batch_size)
        ]
        with self._query_errors():
            futures = [
                self._pool.executor.submit(
                    lambda b: self._check(self._pool.embed(b, via=via), len(b)), b
                )
                for b in batches
            ]
            return [vector for future in futures for vector in future.result()]

    # ------------------------------------------------------------------ async

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed document texts natively async, batches spread over the hosts."""
        batches = [
            [self.document_prefix + t for t in texts[start : start + self.batch_size]]
            for start in range(0, len(texts), self.batch_size)
        ]
        limit = asyncio.Semaphore(self._pool.workers)

        async def one(batch: list[str]) -> list[list[float]]:
            async with limit:
                return await self._aembed(batch)

        results = await asyncio.gather(*(one(b) for b in batches))
        return [vector for vectors in results for vector in vectors]

    def loop_clients(self) -> LoopClients:
        """The running event loop's async clients, for worker threads to embed through."""
        clients = dict(zip(self.urls, self._async_clients(), strict=True))
        return LoopClients(asyncio.get_running_loop(), clients)

    async def aembed_query(self, text: str) -> list[float]:
        """Embed a search query natively async (no thread hop), with the query prefix."""
        with self._query_errors():
            return (await self._aembed([self.query_prefix + text]))[0]

    def _async_clients(self) -> list[ollama.AsyncClient]:
        # An httpx AsyncClient's connections belong to the event loop that opened them, and
        # notebooks and asyncio.run() make a new loop per call: one set of clients per loop.
        loop = asyncio.get_running_loop()
        for key, (owner, _) in list(self._async.items()):
            if owner.is_closed():
                del self._async[key]
        entry = self._async.get(id(loop))
        if entry is None or entry[0] is not loop:
            clients = [
                cast(ollama.AsyncClient, self._for_host(url)._async_client) for url in self.urls
            ]
            entry = self._async[id(loop)] = (loop, clients)
        return entry[1]

    async def _aembed(self, batch: list[str]) -> list[list[float]]:
        if self._pending_check is not None:
            await asyncio.to_thread(self._checked)  # its probe is a blocking HTTP call
        clients = self._async_clients()
        attempt = 0
        while True:
            index = next(self._next_host) % len(clients)
            url = self.urls[index]
            try:
                with translate_errors(url, self.model, timeout=self.timeout):
                    response = await clients[index].embed(
                        self.model, batch, truncate=False, **self._request
                    )
                return self._check([list(v) for v in response.embeddings], len(batch))
            except OllamaError as err:
                if not _retryable(err) or attempt >= self.retries:
                    raise _with_attempts(err, attempt) from err.__cause__
                await asyncio.sleep(_backoff(self.retry_backoff, attempt))
            attempt += 1

    # ------------------------------------------------------------------ checks

    @contextmanager
    def _query_errors(self) -> Iterator[None]:
        try:
            yield
        except ContextLengthExceededError as err:
            msg = f"The query is longer than the context of {self.model}; shorten it"
            raise ContextLengthExceededError(msg, url=err.url, model=self.model) from err

    def _check(self, vectors: list[list[float]], expected: int) -> list[list[float]]:
        url = _display_url(cast(str, self.base_url))
        if len(vectors) != expected:
            msg = (
                f"Ollama at {url} returned {len(vectors)} vectors for {expected} texts; "
                "upgrade Ollama"
            )
            raise OllamaResponseError(msg, url=url, model=self.model)
        want = self.expected_dimension
        bad = next((len(v) for v in vectors if want is not None and len(v) != want), None)
        if bad is not None:
            problem = (
                f'Model "{self.model}" now returns {bad}-dimensional vectors but the index '
                f"holds {want}-dimensional ones: the model changed since the index was built"
            )
            msg = Explained(
                f"{problem}. Re-embed the index with index.migrate({self.model!r})",
                problem=problem,
                fix=Fix("migrate", model=self.model),
            )
            raise EmbeddingModelMismatchError(msg, recorded=self.model, requested=self.model)
        if not np.isfinite(np.asarray(vectors, dtype=np.float64)).all():
            msg = (
                f"Ollama at {url} returned NaN or infinite values for "
                f'"{self.model}" (a known GPU bug with some models): run the embedding model on '
                'the CPU (Modelfile "PARAMETER num_gpu 0") or upgrade Ollama'
            )
            raise OllamaResponseError(msg, url=url, model=self.model)
        return vectors

    def close(self) -> None:
        """Stop the embedding worker threads and close the HTTP connections."""
        self._pool.close()
