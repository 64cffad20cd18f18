"""``RagRetriever``: the LangChain retriever ``RagIndex.as_retriever()`` returns.

It follows LangChain's retriever contract: ``k`` (and every other search kwarg) can be given at
construction or per call (``retriever.invoke(query, k=1)``, which applies to that call only),
unknown kwargs are refused instead of ignored, and ``ainvoke`` is natively async. It depends on
:class:`~ollama_rag.search.Searcher` only, not on ``RagIndex``.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from ollama_rag.errors import ConfigError
from ollama_rag.search import Searcher, check_search

__all__ = ["RagRetriever"]


class RagRetriever(BaseRetriever):
    """Retrieve chunks from a :class:`~ollama_rag.RagIndex` for a LangChain chain.

    Documents carry ``score`` (cosine similarity), ``source`` and character offsets in their
    metadata, whichever search type is used.

    Example:
        .. code-block:: python

            retriever = index.as_retriever(search_kwargs={"k": 5})
            retriever.invoke("日本で一番高い山は？")         # 5 documents
            retriever.invoke("日本で一番高い山は？", k=1)    # this call only: 1 document
            await retriever.ainvoke("日本で一番高い山は？")   # natively async

    Attributes:
        searcher: What runs the searches (``index.searcher``). ``index=`` is accepted too.
        search_type: ``"similarity"``, ``"mmr"`` or ``"similarity_score_threshold"``.
        search_kwargs: Arguments for every search (``k``, ``filter``, ``where_document``,
            ``include_root``, ``fetch_k``/``lambda_mult`` for MMR, ``score_threshold`` for the
            threshold type).
        k: How many documents to return; the same as ``search_kwargs["k"]``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Searcher
    search_type: str = "similarity"
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    k: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_index(cls, data: Any) -> Any:
        # RagRetriever(index=...) as documented before the searcher had a name of its own; any
        # object with a .searcher works, so this module needs no import of RagIndex.
        if isinstance(data, dict) and "index" in data and "searcher" not in data:
            data = dict(data)
            data["searcher"] = data.pop("index").searcher
        return data

    @model_validator(mode="after")
    def _check_kwargs(self) -> RagRetriever:
        given = self.search_kwargs.get("k")
        if self.k is not None and given is not None and given != self.k:
            msg = f"k={self.k} and search_kwargs={{'k': {given}}} disagree; pass one of them"
            raise ConfigError(msg)
        if self.k is not None:
            self.search_kwargs = {**self.search_kwargs, "k": self.k}
        self.k = self.search_kwargs.get("k")
        check_search(self.search_type, self.search_kwargs)
        return self

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self.searcher.run(self.search_type, query, **{**self.search_kwargs, **kwargs})

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await self.searcher.arun(self.search_type, query, **{**self.search_kwargs, **kwargs})
