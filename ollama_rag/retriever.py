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
from pydantic import ConfigDict, Field

from ollama_rag.search import Searcher, check_search, with_k

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

    def __init__(self, **data: Any) -> None:
        # Checked before pydantic sees them, so a bad argument raises ConfigError (with the
        # fix in its message) rather than pydantic's wrapper.
        if "index" in data and "searcher" not in data:
            # RagRetriever(index=...) as documented before the searcher had a name of its
            # own; any object with a .searcher works, so this module needs no RagIndex.
            data["searcher"] = data.pop("index").searcher
        data["search_kwargs"] = with_k(data.get("k"), dict(data.get("search_kwargs") or {}))
        data["k"] = data["search_kwargs"].get("k")
        check_search(data.get("search_type", "similarity"), data["search_kwargs"])
        super().__init__(**data)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return self.searcher.run(self.search_type, query, **{**self.search_kwargs, **kwargs})

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return await self.searcher.arun(self.search_type, query, **{**self.search_kwargs, **kwargs})
