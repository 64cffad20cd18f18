"""Talking to Ollama: the base URL, probing a model, and embedding with clear errors.

Everything that crosses the wire goes through the official ``ollama`` client (probing) or
LangChain's :class:`~langchain_ollama.OllamaEmbeddings` (embedding), so a real Ollama and
:class:`ollama_rag.testing.LocalOllama` are driven exactly the same way. What this module adds is
what those clients leave out: batching, query/document prefixes, a check that every vector has the
recorded dimension, and errors that name the fix instead of a bare ``ConnectionError``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
import ollama
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
    "ModelInfo",
    "OllamaEmbedder",
    "canonical_model_name",
    "normalize_base_url",
    "probe_model",
    "resolve_base_url",
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

_T = TypeVar("_T")


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
def translate_errors(url: str, model: str | None = None) -> Iterator[None]:
    """Turn the ollama/httpx client errors into :mod:`ollama_rag.errors` with the fix named."""
    shown = _display_url(url)
    try:
        yield
    except OllamaError:
        raise
    except ollama.ResponseError as err:
        raise _response_error(err, shown, model) from err
    except (ConnectionError, httpx.TransportError) as err:
        msg = OLLAMA_UNAVAILABLE_MESSAGE.format(url=shown)
        if not isinstance(err, (ConnectionError, httpx.ConnectError)):
            msg += f" ({type(err).__name__}: {err or 'connection lost'})"
        raise OllamaUnavailableError(msg, url=shown, model=model) from err


def _response_error(err: ollama.ResponseError, url: str, model: str | None) -> OllamaError:
    text = str(err.error)
    status = err.status_code
    name = model or "?"
    if status == 404 and "not found" in text:
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


class OllamaEmbedder(Embeddings):
    """LangChain ``Embeddings`` for one Ollama model, as recorded in an index manifest.

    Wraps :class:`~langchain_ollama.OllamaEmbeddings` (available as :attr:`embeddings`) and adds
    batching, the model's document/query prefixes, a dimension check on every vector and
    errors that name the fix.

    Args:
        model: Ollama model name.
        base_url: Normalised Ollama URL.
        dimension: The vector length every answer must have.
        document_prefix: Prepended to every document text before embedding.
        query_prefix: Prepended to every query before embedding.
        batch_size: Texts per ``/api/embed`` request.
        keep_alive: Seconds Ollama keeps the model loaded (negative = forever).
        timeout: Seconds per HTTP request.
    """

    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        dimension: int,
        document_prefix: str = "",
        query_prefix: str = "",
        batch_size: int = DEFAULT_BATCH_SIZE,
        keep_alive: int | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        if batch_size < 1:
            msg = f"batch_size must be at least 1, got {batch_size}"
            raise ConfigError(msg)
        self.model = model
        self.base_url = base_url
        self.dimension = dimension
        self.document_prefix = document_prefix
        self.query_prefix = query_prefix
        self.batch_size = batch_size
        self.embeddings = OllamaEmbeddings(
            model=model,
            base_url=base_url,
            keep_alive=keep_alive,
            client_kwargs={"timeout": timeout},
        )

    def __repr__(self) -> str:
        return f"OllamaEmbedder(model={self.model!r}, base_url={_display_url(self.base_url)!r})"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed document texts in batches, with the document prefix."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [self.document_prefix + t for t in texts[start : start + self.batch_size]]
            vectors.extend(self._embed(batch))
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """Embed a search query, with the query prefix."""
        return self._embed([self.query_prefix + text])[0]

    def _embed(self, batch: Sequence[str]) -> list[list[float]]:
        if not batch:
            return []
        vectors = self._call(lambda: self.embeddings.embed_documents(list(batch)))
        if len(vectors) != len(batch):
            msg = (
                f"Ollama at {_display_url(self.base_url)} returned {len(vectors)} vectors for "
                f"{len(batch)} texts; upgrade Ollama"
            )
            raise OllamaResponseError(msg, url=self.base_url, model=self.model)
        bad = next((len(v) for v in vectors if len(v) != self.dimension), None)
        if bad is not None:
            msg = (
                f'Model "{self.model}" now returns {bad}-dimensional vectors but the index '
                f"holds {self.dimension}-dimensional ones: the model changed since the index was "
                "built. Re-embed the index with index.migrate(model)"
            )
            raise EmbeddingModelMismatchError(msg, recorded=self.model, requested=self.model)
        return [list(map(float, v)) for v in vectors]

    def _call(self, fn: Callable[[], _T]) -> _T:
        with translate_errors(self.base_url, self.model):
            return fn()
