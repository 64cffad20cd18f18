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
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ollama_rag.errors import ConfigError
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


def _check_query(query: object, k: object) -> None:
    if not isinstance(query, str) or not query.strip():
        msg = "search() needs a non-empty query string"
        raise ConfigError(msg)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        msg = f"k must be a whole number of at least 1, got {k!r}"
        raise ConfigError(msg)


def _check_mmr(k: int, fetch_k: int, lambda_mult: float) -> None:
    if not isinstance(fetch_k, int) or isinstance(fetch_k, bool) or fetch_k < 1:
        msg = f"fetch_k must be a whole number of at least 1, got {fetch_k!r}"
        raise ConfigError(msg)
    if not 0.0 <= lambda_mult <= 1.0:
        msg = f"lambda_mult must be between 0 and 1, got {lambda_mult}"
        raise ConfigError(msg)


def _document(hit: Hit, include_root: bool) -> Document:
    metadata = public_metadata(hit.metadata, include_root=include_root)
    metadata[ID] = hit.id
    metadata[SCORE] = hit.score
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)


def _mmr(vector: Sequence[float], hits: list[Hit], k: int, lambda_mult: float) -> list[Hit]:
    if not hits:
        return []
    order = maximal_marginal_relevance(
        np.asarray(vector, dtype=np.float32),
        [hit.vector for hit in hits],  # type: ignore[misc]  # asked for with the hits
        k=min(k, len(hits)),
        lambda_mult=lambda_mult,
    )
    return [hits[i] for i in order]


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
        _check_query(query, k)
        self.store.check_open()
        vector = self.embeddings.embed_query(query)
        hits = self.store.query(vector, k, where=filter, where_document=where_document)
        return [(_document(hit, include_root), hit.score) for hit in hits]

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
        _check_query(query, k)
        _check_mmr(k, fetch_k, lambda_mult)
        self.store.check_open()
        vector = self.embeddings.embed_query(query)
        hits = self.store.query(
            vector,
            max(fetch_k, k),
            where=filter,
            where_document=where_document,
            include_vectors=True,
        )
        return [_document(hit, include_root) for hit in _mmr(vector, hits, k, lambda_mult)]

    def run(self, search_type: str, query: str, **kwargs: Any) -> list[Document]:
        """One search of ``search_type`` with its ``search_kwargs`` (checked)."""
        check_search(search_type, kwargs)
        if search_type == "mmr":
            return self.max_marginal_relevance_search(query, **kwargs)
        threshold = kwargs.pop("score_threshold", None)
        hits = self.search_with_scores(query, **kwargs)
        return [doc for doc, score in hits if threshold is None or score >= threshold]

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
        _check_query(query, k)
        self.store.check_open()
        vector = await self.embeddings.aembed_query(query)
        hits = await self.store.aquery(vector, k, where=filter, where_document=where_document)
        return [(_document(hit, include_root), hit.score) for hit in hits]

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
        _check_query(query, k)
        _check_mmr(k, fetch_k, lambda_mult)
        self.store.check_open()
        vector = await self.embeddings.aembed_query(query)
        hits = await self.store.aquery(
            vector,
            max(fetch_k, k),
            where=filter,
            where_document=where_document,
            include_vectors=True,
        )
        return [_document(hit, include_root) for hit in _mmr(vector, hits, k, lambda_mult)]

    async def arun(self, search_type: str, query: str, **kwargs: Any) -> list[Document]:
        """:meth:`run`, natively async."""
        check_search(search_type, kwargs)
        if search_type == "mmr":
            return await self.amax_marginal_relevance_search(query, **kwargs)
        threshold = kwargs.pop("score_threshold", None)
        hits = await self.asearch_with_scores(query, **kwargs)
        return [doc for doc, score in hits if threshold is None or score >= threshold]
