"""Queries in, cited documents out: the one place a query becomes results.

:class:`Searcher` runs a search in one of three modes:

- ``"dense"``: embed the query (with the model's query prefix) and ask the store for the
  nearest chunks by cosine similarity;
- ``"lexical"``: rank chunks by BM25 over the index's analysed terms (CJK bigrams by default);
- ``"hybrid"`` (the default): both at once (the BM25 ranking runs while the query is being
  embedded), fused by :mod:`ollama_rag.fusion`.

The user's ``filter``/``where_document`` apply to both sides; then MMR or a score threshold
(always on the cosine similarity), and each hit becomes a LangChain
:class:`~langchain_core.documents.Document` whose metadata a reader can cite: ``source``,
``start_index``/``end_index`` into the source text, ``chunk_index``, the user's own metadata
and file facts, plus ``id``, ``score`` (the mode's own: cosine, BM25, or fused),
``dense_score`` (cosine similarity), ``lexical_score`` (BM25; 0 when no term matches) and
``found_by`` (``"dense"``, ``"lexical"`` or ``"both"``). Bookkeeping (hashes, completion
markers) is left out, and so is ``root`` (an absolute path on the indexing machine) unless
``include_root=True``.

``RagIndex.search*`` and :class:`~ollama_rag.retriever.RagRetriever` both call it; every
search has a native async twin (the query is embedded with Ollama's async client, and the
sync search reads the store in a worker thread, off the event loop). Searches return a
:class:`SearchResults`, a plain list that notebooks show as a table; the retriever's are
plain lists.
"""

from __future__ import annotations

import functools
import os
import random
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ollama_rag.display import snippet, table
from ollama_rag.errors import ConfigError
from ollama_rag.fusion import CALIBRATION_QUERIES, Calibration, fuse, pseudo_queries
from ollama_rag.loading.encoding import find_surrogate
from ollama_rag.storage.base import Hit
from ollama_rag.storage.filters import normalized
from ollama_rag.storage.schema import (
    DENSE_SCORE,
    END,
    FOUND_BY,
    ID,
    LEXICAL_SCORE,
    SCORE,
    SOURCE,
    START,
    public_metadata,
)

if TYPE_CHECKING:
    from ollama_rag.ollama import LoopClients, OllamaEmbedder
    from ollama_rag.storage.base import ChunkStore

__all__ = [
    "CANDIDATES",
    "DEFAULT_MODE",
    "MODES",
    "SEARCH_KWARGS",
    "SEARCH_TYPES",
    "MMROptions",
    "SearchOptions",
    "SearchResults",
    "Searcher",
    "check_search",
    "with_k",
]

MODES = ("hybrid", "dense", "lexical")
DEFAULT_MODE = "hybrid"
CANDIDATES = 50
"""How many candidates each side of a hybrid search contributes to the fusion (at least)."""
MIN_CALIBRATION = 20
"""Pseudo-queries (and chunks) a calibration needs; smaller indexes fuse with equal priors."""
SEARCH_TYPES = ("similarity", "mmr", "similarity_score_threshold")
_COMMON = frozenset({"k", "filter", "where_document", "include_root", "mode"})
SEARCH_KWARGS: Mapping[str, frozenset[str]] = {
    "similarity": _COMMON,
    "mmr": _COMMON | {"fetch_k", "lambda_mult"},
    "similarity_score_threshold": _COMMON | {"score_threshold"},
}
"""The keyword arguments each search type takes."""


class SearchOptions(TypedDict, total=False):
    """The keyword options of every search, typed once for the async twins' ``**options``.

    Each is described at ``RagIndex.search_with_scores``; an option left out takes the
    default the sync method has.
    """

    filter: Mapping[str, Any] | None
    where_document: Mapping[str, Any] | None
    include_root: bool
    mode: Literal["hybrid", "dense", "lexical"] | None


class MMROptions(SearchOptions, total=False):
    """:class:`SearchOptions` plus MMR's own (see ``RagIndex.max_marginal_relevance_search``)."""

    fetch_k: int
    lambda_mult: float


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
    mode: str | None = None

    def __post_init__(self) -> None:
        if self.mode is None:
            object.__setattr__(self, "mode", DEFAULT_MODE)
        if self.mode not in MODES:
            msg = f"mode={self.mode!r} is not one of {', '.join(repr(m) for m in MODES)}"
            raise ConfigError(msg)
        check_encodable(self.filter, "filter=")
        check_encodable(self.where_document, "where_document=")
        # Checked here, once, so every store and both search sides get the same filters (and the
        # same ConfigError for a bad one) in the form Chroma takes.
        where, where_document = normalized(self.filter, self.where_document)
        object.__setattr__(self, "filter", where)
        object.__setattr__(self, "where_document", where_document)
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
        """What the store's ``query``/``lexical_query`` take besides the query and the count."""
        return {
            "where": self.filter,
            "where_document": self.where_document,
            # Hybrid and lexical hits carry vectors for their cosine similarity.
            "include_vectors": self.mmr or (self.mode != "dense" and self.embeds),
        }

    @property
    def fetch(self) -> int:
        """How many results to choose the answer from (more for MMR)."""
        return max(self.fetch_k, self.k) if self.mmr else self.k

    @property
    def embeds(self) -> bool:
        """Whether the query is embedded (a lexical search does for MMR and thresholds)."""
        return self.mode != "lexical" or self.mmr or self.threshold is not None

    def finish(self, vector: Sequence[float] | None, found: list[_Found]) -> list[_Scored]:
        """MMR order and the threshold (on cosine similarity) over the ranked results."""
        if self.mmr and found and vector is not None:
            order = maximal_marginal_relevance(
                np.asarray(vector, dtype=np.float32),
                [f.hit.vector for f in found],  # type: ignore[misc]  # asked for with the hits
                k=min(self.k, len(found)),
                lambda_mult=self.lambda_mult,
            )
            found = [found[i] for i in order]
        found = found[: self.k]
        return [
            (_document(f, self.include_root), f.score)
            for f in found
            if self.threshold is None or (f.dense is not None and f.dense >= self.threshold)
        ]


@dataclass(frozen=True)
class _Found:
    """One result before it becomes a document: the stored row and its scores."""

    hit: Hit
    score: float
    dense: float | None
    lexical: float | None
    found_by: str


_Scored = tuple[Document, float]
_Result = TypeVar("_Result", Document, _Scored)


def _location(metadata: Mapping[str, Any]) -> str:
    """Where a chunk is in its source: page or heading, then its character offsets."""
    parts = [f"p. {metadata['page']}"] if "page" in metadata else []
    if "heading" in metadata:
        parts.append(snippet(str(metadata["heading"]), 40))
    if START in metadata and END in metadata:
        parts.append(f"{metadata[START]}–{metadata[END]}")
    return " · ".join(parts)


def _score(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "–"


class SearchResults(list[_Result]):
    """What a search returns: a plain ``list`` of documents (or ``(document, score)`` pairs).

    It is a real list, so it compares, slices and serialises like one; it only adds a table
    for notebooks (rank, scores, ``found_by``, source, location and the start of the text).
    """

    __slots__ = ()

    def _repr_html_(self) -> str:
        rows = []
        for rank, item in enumerate(self, start=1):
            doc = item[0] if isinstance(item, tuple) else item
            m = doc.metadata
            rows.append(
                (
                    rank,
                    _score(m.get(SCORE)),
                    _score(m.get(DENSE_SCORE)),
                    _score(m.get(LEXICAL_SCORE)),
                    m.get(FOUND_BY, ""),
                    m.get(SOURCE, ""),
                    _location(m),
                    snippet(doc.page_content),
                )
            )
        head = ("rank", "score", "dense", "lexical", "found by", "source", "location", "text")
        caption = f"SearchResults: {len(self)} result{'s' * (len(self) != 1)}"
        return table(rows, head=head, caption=caption, align="rrrr")


def _cosine(vector: np.ndarray[Any, Any], other: Any) -> float | None:
    if other is None:
        return None
    other = np.asarray(other, dtype=np.float32)
    norm = float(np.linalg.norm(vector) * np.linalg.norm(other))
    return float(vector @ other) / norm if norm else 0.0


def _dense_found(hits: list[Hit]) -> list[_Found]:
    return [_Found(h, h.score, h.score, None, "dense") for h in hits]


def _lexical_found(vector: Sequence[float] | None, hits: list[Hit]) -> list[_Found]:
    query = None if vector is None else np.asarray(vector, dtype=np.float32)
    return [
        _Found(h, h.score, None if query is None else _cosine(query, h.vector), h.score, "lexical")
        for h in hits
    ]


_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _lexical_pool() -> ThreadPoolExecutor:
    """Threads that run the BM25 side of hybrid searches while the query is embedded."""
    global _pool  # one pool per process, made on first use (and after fork)
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(4, thread_name_prefix="ollama-rag-bm25"))
        return _pool[1]


def _reciprocal_rank(hits: list[Hit], sentence: str) -> float:
    return next((1.0 / (rank + 1) for rank, h in enumerate(hits) if sentence in h.text), 0.0)


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


def _document(found: _Found, include_root: bool) -> Document:
    hit = found.hit
    metadata = public_metadata(hit.metadata, include_root=include_root)
    metadata[ID] = hit.id
    metadata[SCORE] = found.score
    metadata[DENSE_SCORE] = found.dense
    metadata[LEXICAL_SCORE] = found.lexical
    metadata[FOUND_BY] = found.found_by
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
        # Each side's reliability on this index (from its calibration); equal until measured.
        self.priors: tuple[float, float] = (1.0, 1.0)

    def use(self, store: ChunkStore, embeddings: OllamaEmbedder) -> None:
        """Search ``store`` with ``embeddings`` from now on (after a migration)."""
        self.store = store
        self.embeddings = embeddings

    def _search(
        self, query: str, plan: _Plan, vector: Sequence[float] | None = None
    ) -> list[_Scored]:
        _check_query(query)
        self.store.check_open()
        args = plan.store_args
        if plan.mode == "dense":
            vector = vector if vector is not None else self.embeddings.embed_query(query)
            return plan.finish(vector, _dense_found(self.store.query(vector, plan.fetch, **args)))
        if plan.mode == "lexical":
            if vector is None and plan.embeds:
                vector = self.embeddings.embed_query(query)
            hits = self.store.lexical_query(query, plan.fetch, **args)
            return plan.finish(vector, _lexical_found(vector, hits))
        n = max(plan.fetch, CANDIDATES)
        filters = {"where": plan.filter, "where_document": plan.where_document}
        # The BM25 side runs in a worker thread while this one waits for Ollama.
        lexical: Future[list[tuple[str, float]]] = _lexical_pool().submit(
            self.store.lexical_rank, query, n, **filters
        )
        try:
            vector = vector if vector is not None else self.embeddings.embed_query(query)
            dense = self._dense_side(vector, n, plan)
        finally:
            ranked = lexical.result()
        return plan.finish(vector, self._fused(query, vector, dense, ranked, plan.fetch))

    def _dense_side(self, vector: Sequence[float], n: int, plan: _Plan) -> list[Hit]:
        """The dense candidates: ids and cosines only, unless MMR needs their vectors."""
        filters = {"where": plan.filter, "where_document": plan.where_document}
        if plan.mmr:
            return self.store.query(vector, n, **filters, include_vectors=True)
        ranked = self.store.dense_rank(vector, n, **filters)
        return [Hit(cid, "", {}, score) for cid, score in ranked]

    def _fused(
        self,
        query: str,
        vector: Sequence[float],
        dense: list[Hit],
        ranked: list[tuple[str, float]],
        limit: int,
    ) -> list[_Found]:
        """The ``limit`` best of both sides in fused order, each with both scores.

        Both sides rank ids only; the rows the fusion keeps are then fetched in one call (with
        vectors, for the cosine similarity of those the dense side did not rank), and BM25
        scores are looked up for the kept ones the lexical side did not rank.
        """
        order, _ = fuse([(h.id, h.score) for h in dense], ranked, priors=self.priors)
        top = order[:limit]
        # Dense candidates carry rows only when MMR asked for them (with vectors).
        by_id = {h.id: h for h in dense if h.vector is not None}
        dense_of = {h.id: h.score for h in dense}
        missing = [f.id for f in top if f.id not in by_id]
        fetched = {c.id: c for c in self.store.fetch(missing, include_vectors=True)}
        lexical_of = dict(ranked)
        unscored = [f.id for f in top if f.id not in lexical_of]
        extra = self.store.lexical_scores(query, unscored) if unscored else {}
        query_vector = np.asarray(vector, dtype=np.float32)
        found: list[_Found] = []
        for f in top:
            if f.id in by_id:
                hit = by_id[f.id]
            elif (chunk := fetched.get(f.id)) is not None:
                hit = Hit(chunk.id, chunk.text, chunk.metadata, f.score, chunk.vector)
            else:
                continue  # deleted since it was ranked
            dense_score = dense_of.get(f.id)
            if dense_score is None:
                dense_score = _cosine(query_vector, hit.vector)
            both = f.dense_rank is not None and f.lexical_rank is not None
            side = "both" if both else "dense" if f.dense_rank is not None else "lexical"
            lexical_score = lexical_of.get(f.id, extra.get(f.id, 0.0))
            found.append(_Found(hit, f.score, dense_score, lexical_score, side))
        return found

    def calibrate(
        self, *, queries: int = CALIBRATION_QUERIES, seed: int = 0, via: LoopClients | None = None
    ) -> Calibration | None:
        """Measure how reliable each side is on this index, with no labels.

        Pseudo-queries are made from the index's own chunks (a sentence with half of its
        characters dropped, see :func:`~ollama_rag.fusion.pseudo_queries`) and asked of each
        side alone; a side's MRR@10 at finding a chunk that holds the sentence sets its prior.
        ``via``: embed them through an event loop's async clients (after an async write).

        Returns:
            The calibration, or None when the index is too small to measure
            (fewer than ``MIN_CALIBRATION`` usable chunks).
        """
        self.store.check_open()
        ids = [i for page in self.store.iter_ids() for i in page]
        if len(ids) < MIN_CALIBRATION:
            return None
        picked = random.Random(seed).sample(sorted(ids), min(len(ids), 2 * queries))
        chunks = self.store.fetch(picked)
        asked = pseudo_queries([(c.id, c.text) for c in chunks], count=queries, seed=seed)
        if len(asked) < MIN_CALIBRATION:
            return None
        vectors = self.embeddings.embed_queries([q for q, _ in asked], via=via)
        dense = lexical = 0.0
        for (query, sentence), vector in zip(asked, vectors, strict=True):
            dense += _reciprocal_rank(self.store.query(vector, 10), sentence)
            lexical += _reciprocal_rank(self.store.lexical_query(query, 10), sentence)
        # Rounded as the manifest records them, so a reopened index fuses exactly alike.
        return Calibration(
            round(dense / len(asked), 4), round(lexical / len(asked), 4), len(asked), len(ids)
        )

    async def _asearch(self, query: str, plan: _Plan) -> list[_Scored]:
        _check_query(query)
        self.store.check_open()
        # Only the embedding differs from a sync search: Ollama's async client on the loop.
        # The store's side is the sync search itself, in a worker thread (ChunkStore.off_loop).
        vector = await self.embeddings.aembed_query(query) if plan.embeds else None
        return await self.store.off_loop(functools.partial(self._search, query, plan, vector))

    def search_many(
        self,
        queries: Sequence[str],
        *,
        k: int,
        mode: str | None = None,
        filter: Mapping[str, Any] | None = None,
    ) -> list[list[Document]]:
        """Search for many queries at once, their embeddings computed in batched requests.

        Args:
            queries: The queries.
            k: Results per query.
            mode: ``"hybrid"`` (default), ``"dense"`` or ``"lexical"``.
            filter: A metadata filter for every query.

        Returns:
            One list of documents per query, best first.
        """
        plan = _Plan(k, filter, mode=mode)
        for query in queries:
            _check_query(query)
        self.store.check_open()
        vectors: list[Any] = [None] * len(queries)
        if plan.embeds and queries:
            vectors = self.embeddings.embed_queries(list(queries))
        return [
            [doc for doc, _ in self._search(query, plan, vector)]
            for query, vector in zip(queries, vectors, strict=True)
        ]

    # ------------------------------------------------------------------ sync

    def search_with_scores(
        self,
        query: str,
        k: int = 4,
        *,
        filter: Mapping[str, Any] | None = None,
        where_document: Mapping[str, Any] | None = None,
        include_root: bool = False,
        mode: str | None = None,
    ) -> SearchResults[tuple[Document, float]]:
        """The ``k`` best chunks for ``query`` in ``mode``, best first, with their scores."""
        plan = _Plan(k, filter, where_document, include_root, mode=mode)
        return SearchResults(self._search(query, plan))

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
        mode: str | None = None,
    ) -> SearchResults[Document]:
        """``k`` chunks relevant to ``query`` and different from each other, in MMR order."""
        plan = _Plan(k, filter, where_document, include_root, True, fetch_k, lambda_mult, mode=mode)
        return SearchResults(doc for doc, _ in self._search(query, plan))

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
        mode: str | None = None,
    ) -> SearchResults[tuple[Document, float]]:
        """:meth:`search_with_scores`, natively async."""
        plan = _Plan(k, filter, where_document, include_root, mode=mode)
        return SearchResults(await self._asearch(query, plan))

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
        mode: str | None = None,
    ) -> SearchResults[Document]:
        """:meth:`max_marginal_relevance_search`, natively async."""
        plan = _Plan(k, filter, where_document, include_root, True, fetch_k, lambda_mult, mode=mode)
        return SearchResults(doc for doc, _ in await self._asearch(query, plan))

    async def arun(self, search_type: str, query: str, **kwargs: Any) -> list[Document]:
        """:meth:`run`, natively async."""
        return [doc for doc, _ in await self._asearch(query, _Plan.of(search_type, kwargs))]
