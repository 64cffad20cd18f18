"""Talking to Ollama: the base URL, probing a model, and embedding with clear errors.

Everything that crosses the wire goes through the official ``ollama`` client (probing) or
LangChain's :class:`~langchain_ollama.OllamaEmbeddings` (embedding), so a real Ollama and
:class:`ollama_rag.testing.LocalOllama` are driven exactly the same way. What this module adds is
what those clients leave out: batching, query/document prefixes, a check that every vector has the
recorded dimension, and errors that name the fix instead of a bare ``ConnectionError``.
"""

from __future__ import annotations

import os
import queue
import random
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import numpy as np
import ollama
import pydantic
from langchain_core.embeddings import Embeddings
from langchain_ollama import OllamaEmbeddings

from ollama_rag.errors import (
    MODEL_NOT_FOUND_MESSAGE,
    NOT_AN_EMBEDDING_MODEL_MESSAGE,
    OLLAMA_UNAVAILABLE_MESSAGE,
    ConfigError,
    ContextLengthExceededError,
    EmbeddingModelMismatchError,
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
    "ModelInfo",
    "OllamaEmbedder",
    "canonical_model_name",
    "normalize_base_url",
    "parse_keep_alive",
    "probe_hosts",
    "probe_model",
    "resolve_base_url",
    "resolve_base_urls",
]

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


@dataclass(frozen=True)
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


def probe_hosts(model: str, urls: Sequence[str], *, timeout: float | None) -> ModelInfo:
    """Probe ``model`` on every host and insist they all serve the same weights.

    Raises:
        EmbeddingModelMismatchError: Two hosts have different digests or dimensions of it.
        OllamaError: As :func:`probe_model`, for the first host that fails.
    """
    infos = []
    for url in urls:
        with ollama.Client(host=url, timeout=timeout) as client:
            infos.append(probe_model(client, model, url=url))
    first = infos[0]
    for url, info in zip(urls[1:], infos[1:], strict=True):
        if (info.digest, info.dimension) != (first.digest, first.dimension):
            msg = (
                f'Ollama hosts disagree about "{first.name}": {_display_url(urls[0])} has '
                f"digest {first.digest[:12]} ({first.dimension}-d), {_display_url(url)} has "
                f"{info.digest[:12]} ({info.dimension}-d). Vectors from the two would be mixed: "
                f'run "ollama pull {model}" on every host so they serve the same version'
            )
            raise EmbeddingModelMismatchError(msg, recorded=first.name, requested=info.name)
    return first


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
        urls: One or more normalised Ollama base URLs.
        concurrency: Requests in flight per host.
        retries: Extra attempts after a retryable failure.
        backoff: Seconds before the first retry; doubled for each further one.
        timeout: Seconds per HTTP request.
        keep_alive: Seconds Ollama keeps the model loaded (negative = forever).
    """

    def __init__(
        self,
        *,
        model: str,
        urls: Sequence[str],
        concurrency: int = 2,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float | None = DEFAULT_TIMEOUT,
        keep_alive: float | str | None = None,
    ) -> None:
        if not urls:
            msg = "At least one Ollama base_url is needed"
            raise ConfigError(msg)
        if concurrency < 1 or retries < 0 or backoff < 0:
            msg = (
                f"concurrency must be >= 1, retries >= 0 and backoff >= 0; got {concurrency}, "
                f"{retries}, {backoff}"
            )
            raise ConfigError(msg)
        self.model = model
        self.urls = tuple(urls)
        self.retries = retries
        self.backoff = backoff
        self.keep_alive = keep_alive
        self._clients = {url: ollama.Client(host=url, timeout=timeout) for url in self.urls}
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
        self.timeout = timeout
        self.requests = 0

    def submit(self, texts: Sequence[str]) -> Future[list[list[float]]]:
        """Embed ``texts`` in the background; the future holds one vector per text."""
        return self.executor.submit(self.embed, texts)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` in one request, retrying retryable failures.

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
                    response = self._clients[url].embed(
                        self.model, list(texts), truncate=False, keep_alive=self.keep_alive
                    )
                return [list(v) for v in response.embeddings]
            except OllamaError as err:
                if not _retryable(err) or attempt >= self.retries:
                    if attempt:
                        err.args = (f"{err} (after {attempt + 1} attempts)",)
                    raise
                # Jitter keeps workers that failed together from retrying in lockstep.
                delay = self.backoff * (2**attempt) * random.uniform(0.9, 1.1)
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

    def cancel(self) -> None:
        """Make queued and retrying requests stop (after an interrupt); see :meth:`resume`."""
        self._cancelled.set()

    def resume(self) -> None:
        """Accept requests again after :meth:`cancel`."""
        self._cancelled.clear()

    def close(self) -> None:
        """Stop the worker threads without waiting for requests still running."""
        self._cancelled.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for client in self._clients.values():
            client.close()  # type: ignore[no-untyped-call]


def _retryable(err: OllamaError) -> bool:
    if isinstance(err, OllamaUnavailableError):
        return True
    return isinstance(err, OllamaResponseError) and err.status_code in (429, 500, 502, 503, 504)


class OllamaEmbedder(Embeddings):
    """LangChain ``Embeddings`` for one Ollama model, as recorded in an index manifest.

    Embeds through an :class:`EmbeddingPool` (batching, several hosts, retries, no silent
    truncation), applies the model's document/query prefixes, and checks that every vector has
    the recorded dimension. :attr:`embeddings` is the equivalent LangChain
    :class:`~langchain_ollama.OllamaEmbeddings` for code that needs that class; it cannot send
    ``truncate: false``, which is why it is not used for indexing.

    Args:
        model: Ollama model name.
        base_url: Normalised Ollama URL, or several for scale-out.
        dimension: The vector length every answer must have.
        document_prefix: Prepended to every document text before embedding.
        query_prefix: Prepended to every query before embedding.
        batch_size: Texts per ``/api/embed`` request.
        keep_alive: Seconds Ollama keeps the model loaded (negative = forever).
        timeout: Seconds per HTTP request.
        concurrency: Requests in flight per host.
        retries: Extra attempts after a retryable failure.
        backoff: Seconds before the first retry.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str | Sequence[str],
        dimension: int,
        document_prefix: str = "",
        query_prefix: str = "",
        batch_size: int = DEFAULT_BATCH_SIZE,
        keep_alive: float | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        concurrency: int = 2,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        if batch_size < 1:
            msg = f"batch_size must be at least 1, got {batch_size}"
            raise ConfigError(msg)
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.model = model
        self.base_url = urls[0]
        self.dimension = dimension
        self.document_prefix = document_prefix
        self.query_prefix = query_prefix
        self.batch_size = batch_size
        self.pool = EmbeddingPool(
            model=model,
            urls=urls,
            concurrency=concurrency,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            keep_alive=keep_alive,
        )
        self.embeddings = OllamaEmbeddings(
            model=model,
            base_url=self.base_url,
            # LangChain takes whole seconds only.
            keep_alive=None if keep_alive is None else round(keep_alive),
            client_kwargs={"timeout": timeout},
        )

    def __repr__(self) -> str:
        hosts = ", ".join(_display_url(u) for u in self.pool.urls)
        return f"OllamaEmbedder(model={self.model!r}, base_url=[{hosts}])"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed document texts (document prefix applied), batches spread over the hosts."""
        futures = [
            self.submit_documents(texts[start : start + self.batch_size])
            for start in range(0, len(texts), self.batch_size)
        ]
        return [vector for future in futures for vector in future.result()]

    def submit_documents(self, texts: Sequence[str]) -> Future[list[list[float]]]:
        """Embed one batch of document texts in the background (document prefix applied)."""
        return self.pool.executor.submit(self.embed_texts, texts)

    def embed_texts(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed document texts in one request (document prefix applied), in this thread.

        Raises:
            ContextLengthExceededError: A text is longer than the model's context.
        """
        return self._embed([self.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query, with the query prefix."""
        self.pool.resume()  # a new request after an interrupted run
        try:
            return self._embed([self.query_prefix + text])[0]
        except ContextLengthExceededError as err:
            msg = f"The query is longer than the context of {self.model}; shorten it"
            raise ContextLengthExceededError(msg, url=err.url, model=self.model) from err

    def _embed(self, batch: Sequence[str]) -> list[list[float]]:
        if not batch:
            return []
        vectors = self.pool.embed(batch)
        if len(vectors) != len(batch):
            msg = (
                f"Ollama at {_display_url(self.base_url)} returned {len(vectors)} vectors for "
                f"{len(batch)} texts; upgrade Ollama"
            )
            raise OllamaResponseError(msg, url=self.base_url, model=self.model)
        bad = next((len(v) for v in vectors if len(v) != self.dimension), None)
        if bad is None and not np.isfinite(np.asarray(vectors, dtype=np.float64)).all():
            msg = (
                f"Ollama at {_display_url(self.base_url)} returned NaN or infinite values for "
                f'"{self.model}" (a known GPU bug with some models): run the embedding model on '
                'the CPU (Modelfile "PARAMETER num_gpu 0") or upgrade Ollama'
            )
            raise OllamaResponseError(msg, url=self.base_url, model=self.model)
        if bad is not None:
            msg = (
                f'Model "{self.model}" now returns {bad}-dimensional vectors but the index '
                f"holds {self.dimension}-dimensional ones: the model changed since the index was "
                "built. Re-embed the index with index.migrate(model)"
            )
            raise EmbeddingModelMismatchError(msg, recorded=self.model, requested=self.model)
        return vectors

    def close(self) -> None:
        """Stop the embedding worker threads and close the HTTP connections."""
        self.pool.close()
        lc_client = getattr(self.embeddings, "_client", None)
        if lc_client is not None:
            lc_client.close()
