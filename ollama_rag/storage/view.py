"""Any :class:`~ollama_rag.storage.base.ChunkStore` as a LangChain ``VectorStore``.

``index.vectorstore`` of a FAISS index (or of a store passed as ``store=``). It answers
LangChain's searches from the store, also offers Chroma's ``get(ids=, where=, ...)`` (the call
users of ``index.vectorstore`` already make), and sends writes through the index, so that
chunking, completion markers and the model guard apply as to ``index.add_texts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ollama_rag.errors import ConfigError

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from ollama_rag.storage.base import ChunkStore, Hit, IndexWriter, Where

__all__ = ["BYPASS_MESSAGE", "StoreView", "WritesThroughIndex"]

BYPASS_MESSAGE = (
    "{what} on index.vectorstore would bypass ollama-rag's chunking, completion markers and "
    "model guard; use index.add_texts(...) / index.add_documents(...) to write and "
    "index.delete(ids=... or source=...) to delete"
)


def _document(hit: Any) -> Document:
    return Document(page_content=hit.text, metadata=dict(hit.metadata), id=hit.id)


class WritesThroughIndex:
    """LangChain's writing calls on a vector store, sent through the index (a mixin).

    Writes go through ``self._writer`` (the index), so chunking, completion markers and the
    model guard apply as to ``index.add_texts``; calls that would write around it are refused.
    """

    _writer: IndexWriter

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Add texts through the index (split, embedded, marked); ids are its own."""
        if ids is not None and any(i is not None for i in ids):
            raise ConfigError(BYPASS_MESSAGE.format(what="Writing chosen ids"))
        if kwargs:
            raise ConfigError(BYPASS_MESSAGE.format(what=f"add_texts({', '.join(kwargs)}=)"))
        return self._writer.add_texts(list(texts), metadatas)

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Add documents through the index, like :meth:`add_texts`."""
        ids = kwargs.pop("ids", None) or [d.id for d in documents]
        return self.add_texts(
            [d.page_content for d in documents],
            [dict(d.metadata) for d in documents],
            ids=ids,
            **kwargs,
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> None:
        """Delete chunks by id through the index."""
        if kwargs or ids is None:
            raise ConfigError(BYPASS_MESSAGE.format(what="Deleting by filter"))
        self._writer.delete(ids)

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise ConfigError(BYPASS_MESSAGE.format(what="This call"))

    # Chroma's other writing calls, which code written for index.vectorstore may make.
    update_document = update_documents = _refuse
    add_images = reset_collection = delete_collection = fork = _refuse


class StoreView(WritesThroughIndex, VectorStore):
    """A LangChain vector store over a chunk store; writes go through the index.

    Scores of ``similarity_search_with_score`` are cosine distances (0 = same), as Chroma's.

    Args:
        store: The chunk store.
        embeddings: The index's embeddings (queries are embedded with them).
        writer: The index, which splits, embeds and marks what is added.
    """

    def __init__(self, store: ChunkStore, embeddings: Embeddings, writer: IndexWriter) -> None:
        self._store = store
        self._embeddings = embeddings
        self._writer = writer

    @property
    def embeddings(self) -> Embeddings:
        """The index's embeddings."""
        return self._embeddings

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> StoreView:
        """Refused: an index is made with ``RagIndex``, which records its model."""
        msg = "Create an index with RagIndex(path, model=...), then index.add_texts(...)"
        raise ConfigError(msg)

    # ------------------------------------------------------------------ reading

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored chunks among ``ids``, as documents."""
        return [_document(chunk) for chunk in self._store.fetch(list(ids))]

    def get(
        self,
        ids: str | list[str] | None = None,
        where: Where | None = None,
        limit: int | None = None,
        offset: int | None = None,
        where_document: Where | None = None,
        include: list[str] | None = None,
    ) -> dict[str, Any]:
        """Chroma's ``get``: stored rows by ids and/or filters, as lists of ids and fields."""
        include = include or ["documents", "metadatas"]
        if isinstance(ids, str):
            ids = [ids]
        if ids is None:
            ids = [i for page in self._store.iter_ids() for i in page]
        vectors = "embeddings" in include
        chunks = self._store.fetch(
            ids, where=where, where_document=where_document, include_vectors=vectors
        )
        chunks = chunks[offset or 0 :]
        if limit is not None:
            chunks = chunks[:limit]
        return {
            "ids": [c.id for c in chunks],
            "documents": [c.text for c in chunks] if "documents" in include else None,
            "metadatas": [dict(c.metadata) for c in chunks] if "metadatas" in include else None,
            "embeddings": [c.vector for c in chunks] if vectors else None,
            "include": include,
        }

    # ------------------------------------------------------------------ search

    def _hits(
        self, vector: Sequence[float], k: int, filter: Where | None, **kwargs: Any
    ) -> list[Hit]:
        where_document = kwargs.pop("where_document", None)
        if kwargs:
            msg = (
                "index.vectorstore searches take filter= and where_document=, not "
                f"{', '.join(f'{name}=' for name in kwargs)}"
            )
            raise ConfigError(msg)
        return self._store.query(vector, k, where=filter, where_document=where_document)

    def similarity_search(
        self, query: str, k: int = 4, filter: Where | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` chunks nearest to ``query``."""
        vector = self._embeddings.embed_query(query)
        return [_document(hit) for hit in self._hits(vector, k, filter, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Where | None = None, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` chunks nearest to ``embedding``."""
        return [_document(hit) for hit in self._hits(embedding, k, filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Where | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The ``k`` nearest chunks with their cosine distances (lower is nearer)."""
        vector = self._embeddings.embed_query(query)
        hits = self._hits(vector, k, filter, **kwargs)
        return [(_document(hit), 1.0 - hit.score) for hit in hits]

    def _select_relevance_score_fn(self) -> Any:
        return lambda distance: 1.0 - distance

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: Where | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """``k`` chunks near ``query`` and unlike each other, from the ``fetch_k`` nearest."""
        vector = self._embeddings.embed_query(query)
        where_document = kwargs.pop("where_document", None)
        hits = self._store.query(
            vector, fetch_k, where=filter, where_document=where_document, include_vectors=True
        )
        if not hits:
            return []
        chosen = maximal_marginal_relevance(
            np.asarray(vector, dtype=np.float32),
            [[float(x) for x in np.asarray(hit.vector)] for hit in hits],
            k=k,
            lambda_mult=lambda_mult,
        )
        return [_document(hits[i]) for i in chosen]
