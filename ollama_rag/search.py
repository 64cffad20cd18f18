"""Queries in, cited documents out: the one place a query becomes results.

:class:`Searcher` embeds the query (with the model's query prefix), asks the store for the
nearest chunks (with the user's ``filter``/``where_document``), applies MMR or a score
threshold, and turns each hit into a LangChain :class:`~langchain_core.documents.Document`
whose metadata a reader can cite: ``source``, ``start_index``/``end_index`` into the source
text, ``chunk_index``, the user's own metadata and file facts, plus ``id`` and ``score``
(cosine similarity). Bookkeeping (hashes, completion markers) is left out, and so is ``root``
(an absolute path on the indexing machine) unless ``include_root=True``.

``RagIndex.search*`` and :class:`~ollama_rag.retriever.RagRetriever` both call it; every
search has a native async twin (the query is embedded with Ollama's async client).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ollama_rag.errors import ConfigError
from ollama_rag.loading.encoding import find_surrogate
from ollama_rag.storage.schema import ID, SCORE, public_metadata

if TYPE_CHECKING:
    from ollama_rag.ollama import OllamaEmbedder
    from ollama_rag.storage.base import ChunkStore, Hit

__all__ = ["SEARCH_KWARGS", "SEARCH_TYPES", "Searcher", "check_search", "with_k"]

SEARCH_TYPES = ("similarity", "mmr", "similarity_score_threshold")
_COMMON = frozenset({"k", "filter", "where_document", "include_root"})
SEARCH_KWARGS: Mapping[str, frozenset[str]] = {
    "similarity": _COMMON,
    "mmr": _COMMON | {"fetch_k", "lambda_mult"},
    "similarity_score_threshold": _COMMON | {"score_threshold"},
}
"""The keyword arguments each search type takes."""


def check_search(search_type: str, search_kwargs: Mapping[str, Any]) -> None:
    """Refuse an unknown search type or search kwargs it would silently ignore.

    Raises:
        ConfigError: The type is unknown, a kwarg is not used by it, or a threshold is missing.
    """
    if search_type not in SEARCH_TYPES:
        msg = f"search_type={search_type!r} is not one of {', '.join(SEARCH_TYPES)}"
        raise ConfigError(msg)
    allowed = SEARCH_KWARGS[search_type]
    unknown = set(search_kwargs) - allowed
    if unknown:
        msg = (
            f"search_kwargs {sorted(unknown)} are not used by search_type={search_type!r}; "
            f"it accepts {sorted(allowed)}"
        )
        raise ConfigError(msg)
    if search_type == "similarity_score_threshold" and not isinstance(
        search_kwargs.get("score_threshold"), (int, float)
    ):
        msg = (
            "search_type='similarity_score_threshold' needs "
            "search_kwargs={'score_threshold': 0.5} (cosine similarity, -1..1)"
        )
        raise ConfigError(msg)


def with_k(k: int | None, search_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``search_kwargs`` with ``k`` in it (a retriever's ``k=`` and its search kwargs).

    Raises:
        ConfigError: The two give different values.
    """
    given = search_kwargs.get("k")
    if k is not None and given is not None and given != k:
        msg = f"k={k} and search_kwargs={{'k': {given}}} disagree; pass one of them"
        raise ConfigError(msg)
    return {**search_kwargs, "k": k} if k is not None else search_kwargs


@dataclass(frozen=True)
class _Plan:
    """One search, checked: what to ask the store for and what to do with the answer."""

    k: int = 4
    filter: Mapping[str, Any] | None = None
    where_document: Mapping[str, Any] | None = None
    include_root: bool = False
    mmr: bool = False
    fetch_k: int = 20
    lambda_mult: float = 0.5
    threshold: float | None = None

    def __post_init__(self) -> None:
        check_encodable(self.filter, "filter=")
        check_encodable(self.where_document, "where_document=")
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
            msg = f"k must be a whole number of at least 1, got {self.k!r}"
            raise ConfigError(msg)
        if self.mmr:
            fetch_k = self.fetch_k
            if not isinstance(fetch_k, int) or isinstance(fetch_k, bool) or fetch_k < 1:
                msg = f"fetch_k must be a whole number of at least 1, got {fetch_k!r}"
                raise ConfigError(msg)
            if not 0.0 <= self.lambda_mult <= 1.0:
                msg = f"lambda_mult must be between 0 and 1, got {self.lambda_mult}"
                raise ConfigError(msg)

    @classmethod
    def of(cls, search_type: str, kwargs: Mapping[str, Any]) -> _Plan:
        """The plan for a retriever's ``search_type`` and ``search_kwargs``."""
        check_search(search_type, kwargs)
        args = dict(kwargs)
        threshold = args.pop("score_threshold", None)
        return cls(**args, mmr=search_type == "mmr", threshold=threshold)

    @property
    def store_args(self) -> dict[str, Any]:
        """What the store's ``query``/``aquery`` takes besides the vector and the count."""
        return {
            "where": self.filter,
            "where_document": self.where_document,
            "include_vectors": self.mmr,
        }

    @property
    def fetch(self) -> int:
        """How many hits to ask the store for."""
        return max(self.fetch_k, self.k) if self.mmr else self.k

    def finish(self, vector: Sequence[float], hits: list[Hit]) -> list[tuple[Document, float]]:
        """The store's hits as cited documents: MMR order, threshold, metadata for readers."""
        if self.mmr and hits:
            order = maximal_marginal_relevance(
                np.asarray(vector, dtype=np.float32),
                [hit.vector for hit in hits],  # type: ignore[misc]  # asked for with the hits
                k=min(self.k, len(hits)),
                lambda_mult=self.lambda_mult,
            )
            hits = [hits[i] for i in order]
        return [
            (_document(hit, self.include_root), hit.score)
            for hit in hits
            if self.threshold is None or hit.score >= self.threshold
        ]


def _check_query(query: object) -> None:
    if not isinstance(query, str) or not query.strip():
        msg = "search() needs a non-empty query string"
        raise ConfigError(msg)
    check_encodable(query, "the query")


def check_encodable(value: object, what: str) -> None:
    """Refuse strings (also inside filters) that hold a lone surrogate, naming where.

    Such a string (from undecodable bytes) cannot be encoded as UTF-8, so neither Ollama nor
    Chroma can take it; their own errors would not say which argument was wrong.

    Raises:
        ConfigError: ``value`` or a string inside it holds a surrogate.
    """
    if isinstance(value, str):
        at = find_surrogate(value)
        if at >= 0:
            msg = (
                f"{what} contains a lone surrogate (\\u{ord(value[at]):04x}) at offset {at}, "
                "which cannot be encoded as UTF-8; fix the text, e.g. "
                "text.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')"
            )
            raise ConfigError(msg)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_encodable(key, what)
            check_encodable(item, what)
    elif isinstance(value, (list, tuple)):
        for item in value:
            check_encodable(item, what)


def _document(hit: Hit, include_root: bool) -> Document:
    metadata = public_metadata(hit.metadata, include_root=include_root)
    metadata[ID] = hit.id
    metadata[SCORE] = hit.score
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)


class Searcher:
    """Turns queries into cited documents for one index (see the module docstring).

    Args:
        store: Where the chunks are.
        embeddings: Embeds queries with the index's model and query prefix.
    """

    def __init__(self, store: ChunkStore, embeddings: OllamaEmbedder) -> None:
        self.store = store
        self.embeddings = embeddings

    def use(self, store: ChunkStore, embeddings: OllamaEmbedder) -> None:
        """Search ``store`` with ``embeddings`` from now on (after a migration)."""
        self.store = store
        self.embeddings = embeddings

    def _search(self, query: str, plan: _Plan) -> list[tuple[Document, float]]:
        _check_query(query)
        self.store.check_open()
        vector = self.embeddings.embed_query(query)
        hits = self.store.query(vector, plan.fetch, **plan.store_args)
        return plan.finish(vector, hits)

    async def _asearch(self, query: str, plan: _Plan) -> list[tuple[Document, float]]:
        _check_query(query)
        self.store.check_open()
        vector = await self.embeddings.aembed_query(query)
        hits = await self.store.aquery(vector, plan.fetch, **plan.store_args)
        return plan.finish(vector, hits)

    # ------------------------------------------------------------------ sync

    def search_with_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        include_root: bool = False,
    ) -> list[tuple[Document, float]]:
        """The ``k`` chunks most similar to ``query``, best first, with cosine similarities."""
        return self._search(query, _Plan(k, filter, where_document, include_root))

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        include_root: bool = False,
    ) -> list[Document]:
        """``k`` chunks relevant to ``query`` and different from each other, in MMR order."""
        plan = _Plan(k, filter, where_document, include_root, True, fetch_k, lambda_mult)
        return [doc for doc, _ in self._search(query, plan)]

    def run(self, search_type: str, query: str, **kwargs: Any) -> list[Document]:
        """One search of ``search_type`` with its ``search_kwargs`` (checked)."""
        return [doc for doc, _ in self._search(query, _Plan.of(search_type, kwargs))]

    # ------------------------------------------------------------------ async

    async def asearch_with_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        include_root: bool = False,
    ) -> list[tuple[Document, float]]:
        """:meth:`search_with_scores`, natively async."""
        return await self._asearch(query, _Plan(k, filter, where_document, include_root))

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        *,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        include_root: bool = False,
    ) -> list[Document]:
        """:meth:`max_marginal_relevance_search`, natively async."""
        plan = _Plan(k, filter, where_document, include_root, True, fetch_k, lambda_mult)
        return [doc for doc, _ in await self._asearch(query, plan)]

    async def arun(self, search_type: str, query: str, **kwargs: Any) -> list[Document]:
        """:meth:`run`, natively async."""
        return [doc for doc, _ in await self._asearch(query, _Plan.of(search_type, kwargs))]

    # stand-in: replaced by the batched hybrid version
    def search_many(
        self,
        queries: Sequence[str],
        *,
        k: int,
        mode: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[list[Document]]:
        """The ``k`` best chunks for each query, in order (one query at a time, dense only)."""
        if mode not in (None, "dense"):
            msg = f"mode={mode!r} is not available yet; use mode='dense' (or None)"
            raise ConfigError(msg)
        plan = _Plan(k, filter)
        return [[doc for doc, _ in self._search(query, plan)] for query in queries]
