"""``RagRetriever``: the LangChain retriever ``RagIndex.as_retriever()`` returns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, model_validator

from ollama_rag.errors import ConfigError

if TYPE_CHECKING:
    from ollama_rag.index import RagIndex

__all__ = ["SEARCH_TYPES", "RagRetriever", "check_search"]

SEARCH_TYPES = ("similarity", "mmr", "similarity_score_threshold")
_COMMON = {"k", "filter", "where_document"}
_ALLOWED = {
    "similarity": _COMMON,
    "mmr": _COMMON | {"fetch_k", "lambda_mult"},
    "similarity_score_threshold": _COMMON | {"score_threshold"},
}


def check_search(search_type: str, search_kwargs: dict[str, Any]) -> None:
    """Refuse an unknown search type or search kwargs it would silently ignore.

    Raises:
        ConfigError: The type is unknown, a kwarg is not used by it, or a threshold is missing.
    """
    if search_type not in SEARCH_TYPES:
        msg = f"search_type={search_type!r} is not one of {', '.join(SEARCH_TYPES)}"
        raise ConfigError(msg)
    unknown = set(search_kwargs) - _ALLOWED[search_type]
    if unknown:
        msg = (
            f"search_kwargs {sorted(unknown)} are not used by search_type={search_type!r}; "
            f"it accepts {sorted(_ALLOWED[search_type])}"
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


class RagRetriever(BaseRetriever):
    """Retrieve chunks from a :class:`~ollama_rag.RagIndex` for a LangChain chain.

    Documents carry ``score`` (cosine similarity), ``source`` and character offsets in their
    metadata, whichever search type is used.

    Attributes:
        index: The index searched.
        search_type: ``"similarity"``, ``"mmr"`` or ``"similarity_score_threshold"``.
        search_kwargs: Arguments for the search (``k``, ``filter``, ``where_document``,
            ``fetch_k``/``lambda_mult`` for MMR, ``score_threshold`` for the threshold type).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: Any
    search_type: str = "similarity"
    search_kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_kwargs(self) -> RagRetriever:
        check_search(self.search_type, self.search_kwargs)
        return self

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        index: RagIndex = self.index
        kwargs = dict(self.search_kwargs)
        if self.search_type == "mmr":
            return index.max_marginal_relevance_search(query, **kwargs)
        if self.search_type == "similarity_score_threshold":
            threshold = float(kwargs.pop("score_threshold"))
            hits = index.search_with_scores(query, **kwargs)
            return [doc for doc, score in hits if score >= threshold]
        return index.search(query, **kwargs)
