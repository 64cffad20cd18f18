"""The public surface is exactly what the docs promise, sorted, and every name resolves."""

from __future__ import annotations

import ollama_rag
import ollama_rag.testing

EXPECTED = [
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


def isort_order(names: list[str]) -> list[str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then everything else."""

    def key(name: str) -> tuple[int, str]:
        if name.isupper():
            return (0, name)
        return (1 if name[:1].isupper() else 2, name)

    return sorted(names, key=key)


def test_all_is_exact_and_sorted() -> None:
    assert ollama_rag.__all__ == EXPECTED
    assert isort_order(ollama_rag.__all__) == ollama_rag.__all__


def test_every_public_name_resolves() -> None:
    for name in ollama_rag.__all__:
        assert getattr(ollama_rag, name) is not None


def test_testing_surface_is_sorted_and_resolves() -> None:
    names = ollama_rag.testing.__all__
    assert names == isort_order(names)
    for name in (
        "ChatOnlyModel",
        "ExtractiveChatModel",
        "HashEmbeddingModel",
        "LocalOllama",
        "MultilingualUSEModel",
    ):
        assert name in names
    for name in names:
        assert getattr(ollama_rag.testing, name) is not None


def test_errors_inherit_the_builtins_callers_catch() -> None:
    assert issubclass(ollama_rag.OllamaUnavailableError, ConnectionError)
    assert issubclass(ollama_rag.ModelNotFoundError, LookupError)
    assert issubclass(ollama_rag.IndexNotFoundError, LookupError)
    assert issubclass(ollama_rag.EmbeddingModelMismatchError, ValueError)
    assert issubclass(ollama_rag.ConfigError, ValueError)
    assert issubclass(ollama_rag.IndexLockedError, RuntimeError)
    assert issubclass(ollama_rag.IndexForkedError, RuntimeError)
    assert issubclass(ollama_rag.IndexDamagedError, RuntimeError)
    assert issubclass(ollama_rag.IndexReadOnlyError, PermissionError)
    assert issubclass(ollama_rag.IndexRepairedWarning, UserWarning)
    for name in ollama_rag.__all__:
        obj = getattr(ollama_rag, name)
        if isinstance(obj, type) and issubclass(obj, Exception) and not issubclass(obj, Warning):
            assert issubclass(obj, ollama_rag.RagError), name


def test_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    assert ollama_rag.__version__ == version("ollama-rag")
