"""ollama-rag: local RAG over Chinese, Japanese, Korean and English documents.

Ollama computes the embeddings, Chroma stores the vectors, LangChain is the interface, and one
facade, :class:`RagIndex`, guards the rule that vectors from two embedding models never meet.
"""

from __future__ import annotations

# Must run before anything imports chromadb: on hosts with an old sqlite3 it swaps in pysqlite3
# when OLLAMA_RAG_PYSQLITE3 asks for it (see ollama_rag.sqlite_compat).
from ollama_rag import sqlite_compat

sqlite_compat.ensure_from_env()

from ollama_rag._version import __version__  # noqa: E402
from ollama_rag.chat import CHAT_PROMPT, DEFAULT_PROMPT, chat_chain, format_docs, rag_chain  # noqa: E402
from ollama_rag.doctor import DoctorReport, doctor  # noqa: E402
from ollama_rag.errors import (  # noqa: E402
    ConfigError,
    ContextLengthExceededError,
    DocumentLoadError,
    EmbeddingModelMismatchError,
    IndexClosedError,
    IndexDamagedError,
    IndexForkedError,
    IndexLockedError,
    IndexNotFoundError,
    IndexReadOnlyError,
    IndexRepairedWarning,
    MissingExtraError,
    ModelNotFoundError,
    NotAnEmbeddingModelError,
    OllamaError,
    OllamaResponseError,
    OllamaUnavailableError,
    RagError,
    RagIndexError,
    SqliteCompatError,
)
from ollama_rag.evaluation import EvaluationResult, LabelledQuestion  # noqa: E402
from ollama_rag.index import RagIndex  # noqa: E402
from ollama_rag.ingest.report import IngestReport  # noqa: E402
from ollama_rag.manifest import IndexManifest  # noqa: E402
from ollama_rag.models import KnownModel, known_model, recommended_model  # noqa: E402
from ollama_rag.pull import ensure_model  # noqa: E402
from ollama_rag.retriever import RagRetriever  # noqa: E402
from ollama_rag.search import SearchResults  # noqa: E402
from ollama_rag.splitting import CJKTextSplitter  # noqa: E402

__all__ = [
    "CHAT_PROMPT",
    "DEFAULT_PROMPT",
    "CJKTextSplitter",
    "ConfigError",
    "ContextLengthExceededError",
    "DoctorReport",
    "DocumentLoadError",
    "EmbeddingModelMismatchError",
    "EvaluationResult",
    "IndexClosedError",
    "IndexDamagedError",
    "IndexForkedError",
    "IndexLockedError",
    "IndexManifest",
    "IndexNotFoundError",
    "IndexReadOnlyError",
    "IndexRepairedWarning",
    "IngestReport",
    "KnownModel",
    "LabelledQuestion",
    "MissingExtraError",
    "ModelNotFoundError",
    "NotAnEmbeddingModelError",
    "OllamaError",
    "OllamaResponseError",
    "OllamaUnavailableError",
    "RagError",
    "RagIndex",
    "RagIndexError",
    "RagRetriever",
    "SearchResults",
    "SqliteCompatError",
    "__version__",
    "chat_chain",
    "doctor",
    "ensure_model",
    "format_docs",
    "known_model",
    "rag_chain",
    "recommended_model",
]
