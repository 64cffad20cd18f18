"""Every error ollama-rag raises on purpose, and the exact fix each one names.

The tree (each class also inherits the builtin that callers already catch)::

    RagError
    ├── OllamaError
    │   ├── OllamaUnavailableError       (ConnectionError) not reachable -> "ollama serve"
    │   ├── ModelNotFoundError           (LookupError)     not pulled -> "ollama pull NAME"
    │   ├── NotAnEmbeddingModelError     (ValueError)      a chat model used to embed
    │   ├── ContextLengthExceededError   (ValueError)      input longer than the context
    │   └── OllamaResponseError                            any other error answer
    ├── RagIndexError
    │   ├── EmbeddingModelMismatchError  (ValueError)      index built by another model
    │   ├── IndexNotFoundError           (LookupError)     no index and no model given
    │   ├── IndexLockedError             (RuntimeError)    another process writes it
    │   ├── IndexClosedError             (RuntimeError)    used after close()
    │   ├── IndexForkedError             (RuntimeError)    used in a fork()ed child
    │   ├── IndexReadOnlyError           (PermissionError) written after read_only=True
    │   └── IndexDamagedError            (RuntimeError)    damaged beyond repair on disk
    ├── ConfigError                      (ValueError)      bad arguments
    │   └── MissingExtraError            (ImportError)     an optional extra is not installed
    ├── DocumentLoadError                (ValueError)      unreadable or undecodable file
    └── SqliteCompatError                (RuntimeError)    no sqlite3 new enough for Chroma

Messages say what happened and then the command or call that fixes it. Fixed texts are module
constants so tests (and users' log filters) can match them.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ContextLengthExceededError",
    "DocumentLoadError",
    "EmbeddingModelMismatchError",
    "IndexClosedError",
    "IndexDamagedError",
    "IndexForkedError",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexReadOnlyError",
    "IndexRepairedWarning",
    "MissingExtraError",
    "ModelNotFoundError",
    "NotAnEmbeddingModelError",
    "OllamaError",
    "OllamaResponseError",
    "OllamaUnavailableError",
    "RagError",
    "RagIndexError",
    "SqliteCompatError",
]

OLLAMA_UNAVAILABLE_MESSAGE = 'Ollama is not reachable at {url} — start it with "ollama serve"'
MODEL_NOT_FOUND_MESSAGE = 'Model "{model}" is not pulled on {url} — run "ollama pull {model}"'
NOT_AN_EMBEDDING_MODEL_MESSAGE = (
    'Model "{model}" on {url} cannot compute embeddings (it is a chat/completion model) — '
    'use an embedding model such as "bge-m3": run "ollama pull bge-m3"'
)
LEXICAL_REBUILT_MESSAGE = (
    "The lexical index of {where} ({file}) could not be read ({error}); it was removed and is "
    "rebuilt from the stored text (nothing is embedded again)"
)
INDEX_CLOSED_MESSAGE = "The index at {where} is closed; open it again with RagIndex(...)"
REPAIRED_MESSAGE = (
    "The index at {where} was damaged ({damage}), as a process killed while writing can leave "
    "it; it was rebuilt from its files: {kept} chunks kept their vectors, {embedded} were "
    "embedded again. Nothing was lost; index.last_repair has the report"
)
REPAIR_FAILED_MESSAGE = (
    "The index at {where} is damaged ({damage}) and cannot be repaired: its database could not "
    "be read ({error}). Move the folder aside and index the sources again, e.g. "
    "RagIndex(path, model=...).add_files(folder)"
)
INDEX_FORKED_MESSAGE = (
    "The index at {where} was opened in process {parent} and cannot be used in process {child}, "
    "a fork() of it: Chroma's and the embedder's threads do not survive fork(). Open the index "
    "in the child instead (call RagIndex(...) inside the worker function), or start workers "
    "with multiprocessing.get_context('spawn')"
)
MISMATCH_MESSAGE = (
    "This index was built with embedding model {recorded} and cannot be used with {requested}: "
    "{reason}. Vectors from two models must never be mixed. Either open it with the recorded model "
    "(RagIndex({path!r}) or model={recorded_name!r}), or re-embed it with the new one: "
    "RagIndex({path!r}, model={requested_name!r}, on_mismatch='migrate'), or "
    "index.migrate({requested_name!r}) on an open index"
)


class RagError(Exception):
    """Base class of every error ollama-rag raises on purpose."""


class OllamaError(RagError):
    """Talking to Ollama failed.

    Attributes:
        url: The Ollama base URL that was used.
        model: The model involved, if any.
    """

    def __init__(self, message: str, *, url: str | None = None, model: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.model = model


class OllamaUnavailableError(OllamaError, ConnectionError):
    """Ollama is not running or not reachable at the configured URL."""


class ModelNotFoundError(OllamaError, LookupError):
    """The model is not pulled on the Ollama server.

    Attributes:
        available: The models the server does have.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        model: str | None = None,
        available: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, url=url, model=model)
        self.available = available


class NotAnEmbeddingModelError(OllamaError, ValueError):
    """The model exists but cannot produce embeddings (a chat or completion model)."""


class ContextLengthExceededError(OllamaError, ValueError):
    """An input is longer than the model's context and would have been truncated."""


class OllamaResponseError(OllamaError):
    """Ollama answered with an error not covered by a more specific class.

    Attributes:
        status_code: The HTTP status code (-1 for an error inside a stream).
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, url=url, model=model)
        self.status_code = status_code


class RagIndexError(RagError):
    """Something is wrong with the index itself (its manifest, lock or state).

    Attributes:
        path: The index directory, or None for an in-memory index.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class EmbeddingModelMismatchError(RagIndexError, ValueError):
    """The index was built by a different embedding model (name, digest or dimension).

    Attributes:
        recorded: The model recorded in the index manifest.
        requested: The model that was asked for.
    """

    def __init__(
        self, message: str, *, path: str | None = None, recorded: str = "", requested: str = ""
    ) -> None:
        super().__init__(message, path=path)
        self.recorded = recorded
        self.requested = requested


class IndexNotFoundError(RagIndexError, LookupError):
    """No index exists at the path and no model was given to create one."""


class IndexLockedError(RagIndexError, RuntimeError):
    """Another process has the index open for writing."""


class IndexClosedError(RagIndexError, RuntimeError):
    """The index was used after ``close()``."""


class IndexForkedError(RagIndexError, RuntimeError):
    """The index was opened before ``fork()`` and used in the child process."""


class IndexReadOnlyError(RagIndexError, PermissionError):
    """A write was asked of an index opened with ``read_only=True``."""


class IndexDamagedError(RagIndexError, RuntimeError):
    """The index's files are damaged in a way the automatic repair cannot undo."""


class IndexRepairedWarning(UserWarning):
    """An index damaged on disk was repaired while it was opened (the message says how)."""


class ConfigError(RagError, ValueError):
    """An argument or setting is invalid; the message names the valid range."""


class MissingExtraError(ConfigError, ImportError):
    """A feature needs an optional extra that is not installed; the message is the pip line.

    It is a ``ConfigError`` because choosing the feature is the setting at fault, and an
    ``ImportError`` because that is what callers of optional packages already catch.

    Attributes:
        extra: The extra that installs what is missing, e.g. ``"sudachi"``.
        package: The missing package as its users know it, e.g. ``"SudachiPy"``.
    """

    def __init__(self, message: str, *, extra: str, package: str) -> None:
        super().__init__(message)
        self.extra = extra
        self.package = package


class DocumentLoadError(RagError, ValueError):
    """A file cannot be read or decoded.

    Attributes:
        source: The file that failed.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class SqliteCompatError(RagError, RuntimeError):
    """Neither the system sqlite3 nor pysqlite3 is new enough for Chroma."""
