"""ollama-rag: local RAG over Chinese, Japanese, Korean and English documents.

Ollama computes the embeddings, Chroma stores the vectors, LangChain is the interface, and one
facade, :class:`RagIndex`, guards the rule that vectors from two embedding models never meet.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ollama-rag")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
