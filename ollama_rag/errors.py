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

A message whose fix is a Python call (``RagIndex(path, model=...)``, ``encoding=``) is an
:class:`Explained` string: it reads as usual, and it also keeps what happened (``err.problem``)
apart from the fix as data (``err.fix``, a :class:`Fix`), so that the ``ollama-rag`` command
can say the same fix as a command line. A fix that is a command already (``ollama serve``,
``ollama pull``, ``pip install``) is said as it is everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ConfigError",
    "ContextLengthExceededError",
    "DocumentLoadError",
    "EmbeddingModelMismatchError",
    "Explained",
    "Fix",
    "FixAction",
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
    "fix_of",
    "index_not_found",
    "problem_of",
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
FAISS_REBUILT_MESSAGE = (
    "The FAISS file of {where} ({file}) could not be read ({error}); it was rebuilt from the "
    "vectors in its docstore (nothing is embedded again)"
)
STORE_KIND_MESSAGE = (
    "The index at {path} is a {found} index, not a {asked} one; open it without store= "
    "(or with store={found!r}), or give another directory for a new {asked} index"
)
FAISS_EXTRA_MESSAGE = "The FAISS store needs faiss-cpu: pip install 'ollama-rag[faiss]'"
READ_ONLY_MESSAGE = (
    "The index at {where} was opened with read_only=True and cannot be written ({what}); "
    "open it without read_only to write"
)
INDEX_CLOSED_MESSAGE = "The index at {where} is closed; open it again with RagIndex(...)"
REPAIRED_PROBLEM = (
    "The index at {where} was damaged ({damage}), as a process killed while writing can leave "
    "it; it was rebuilt from its files: {kept} chunks kept their vectors, {embedded} were "
    "embedded again. Nothing was lost"
)
REPAIRED_MESSAGE = REPAIRED_PROBLEM + "; index.last_repair has the report"
REPAIR_FAILED_PROBLEM = (
    "The index at {where} is damaged ({damage}) and cannot be repaired: its database could not "
    "be read ({error})"
)
REPAIR_FAILED_MESSAGE = (
    REPAIR_FAILED_PROBLEM + ". Move the folder aside and index the sources again, e.g. "
    "RagIndex(path, model=...).add_files(folder)"
)
INDEX_FORKED_MESSAGE = (
    "The index at {where} was opened in process {parent} and cannot be used in process {child}, "
    "a fork() of it: Chroma's and the embedder's threads do not survive fork(). Open the index "
    "in the child instead (call RagIndex(...) inside the worker function), or start workers "
    "with multiprocessing.get_context('spawn')"
)
MISMATCH_PROBLEM = (
    "This index was built with embedding model {recorded} and cannot be used with {requested}: "
    "{reason}. Vectors from two models must never be mixed"
)
MISMATCH_MESSAGE = (
    MISMATCH_PROBLEM + ". Either open it with the recorded model "
    "(RagIndex({path!r}) or model={recorded_name!r}), or re-embed it with the new one: "
    "RagIndex({path!r}, model={requested_name!r}, on_mismatch='migrate'), or "
    "index.migrate({requested_name!r}) on an open index"
)
INDEX_NOT_FOUND_PROBLEM = "No index at {where}"
INDEX_NOT_FOUND_ELSEWHERE = "; the directory holds the index(es) {choices}"
INDEX_NOT_FOUND_FIX = (
    "To create one, name the embedding model: RagIndex({path!r}, model='bge-m3'{collection})"
)
INDEX_NOT_FOUND_OTHER_FIX = (
    "Open one of them with RagIndex({path!r}, collection={choice!r}), or, to create this one, "
    "name the embedding model: RagIndex({path!r}, model='bge-m3'{collection})"
)
FOREIGN_COLLECTION_PROBLEM = (
    "The Chroma collection at {where} was not created by ollama-rag and records no embedding "
    "model, so it cannot be guarded"
)
FOREIGN_COLLECTION_MESSAGE = (
    FOREIGN_COLLECTION_PROBLEM
    + ". Use another collection name, e.g. RagIndex(path, model=..., collection='docs')"
)

FixAction = Literal[
    "create",
    "migrate",
    "rebuild",
    "collection",
    "wait",
    "encoding",
    "max-file-size",
    "clash",
    "install",
]
"""What a :class:`Fix` asks for (its fields say with what)."""


@dataclass(frozen=True)
class Fix:
    """What fixes a problem, as data, for an interface that words fixes in its own terms.

    A message says its fix for Python callers (``RagIndex(path, model=...)``); the
    ``ollama-rag`` command says the same fix as a command line, from this record
    (``ollama_rag.cli.errors``).

    Attributes:
        action: ``"create"``: there is no index: create one with ``model``, or open one of
            ``choices``, the indexes beside it. ``"migrate"``: re-embed the index with
            ``model`` (or, when ``recorded`` is set, open it with that model instead).
            ``"rebuild"``: the index is damaged beyond repair: move it aside and index the
            sources again with ``model``. ``"collection"``: the collection was not made by
            ollama-rag: use another one. ``"wait"``: another process is writing the index:
            wait for it, or read a snapshot meanwhile. ``"encoding"``: name the file's text
            encoding (``value``: an example). ``"max-file-size"``: raise the file size limit
            (``value``: the file's size). ``"clash"``: two files have the same source name:
            add their common parent folder, or use a separate collection. ``"install"``:
            install the optional extra ``value`` (its pip line is in the message already;
            the record lets an interface say it once for many files).
        model: The embedding model to create or re-embed with.
        recorded: The model the index records, when opening with it is the other way out.
        collection: The collection the problem is about.
        choices: Collections beside it that hold an ollama-rag index.
        value: An example value for the setting to change.
    """

    action: FixAction
    model: str | None = None
    recorded: str | None = None
    collection: str | None = None
    choices: tuple[str, ...] = ()
    value: str | None = None


class Explained(str):
    """A message that keeps what happened apart from its fix.

    It is an ordinary string to whatever reads it (``str(err)``, logs, the ``(source,
    reason)`` pairs of an ``IngestReport``, a warning's text), worded for Python callers. An
    interface that words fixes its own way (the ``ollama-rag`` command) shows :attr:`problem`
    and words :attr:`fix` itself. A string subclass, so that every place a message already
    goes carries the parts along unchanged.

    Attributes:
        problem: What happened, in terms that hold for every interface.
        fix: The fix as data, or None when ``problem`` says all there is to say.
    """

    problem: str
    fix: Fix | None

    def __new__(cls, text: str, *, problem: str, fix: Fix | None = None) -> Explained:
        """The message ``text``, worded for Python, with its ``problem`` and ``fix``."""
        message = super().__new__(cls, text)
        message.problem = problem
        message.fix = fix
        return message

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, object]]:
        # Pickled (errors cross process boundaries) with its parts, not as a bare string.
        return (str(self),), {"problem": self.problem, "fix": self.fix}


def problem_of(message: object) -> str:
    """What happened, without a Python-worded fix: an :class:`Explained` message's problem."""
    return message.problem if isinstance(message, Explained) else str(message)


def fix_of(message: object) -> Fix | None:
    """The fix an :class:`Explained` message carries as data (None for a plain string)."""
    return message.fix if isinstance(message, Explained) else None


class RagError(Exception):
    """Base class of every error ollama-rag raises on purpose."""

    @property
    def problem(self) -> str:
        """What happened; without the fix when the message is :class:`Explained`."""
        return problem_of(self.args[0]) if self.args else ""

    @property
    def fix(self) -> Fix | None:
        """The fix as data, when the message carries one (see :class:`Fix`)."""
        return fix_of(self.args[0]) if self.args else None


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


def index_not_found(
    where: str,
    *,
    path: str | None,
    collection: str,
    choices: Sequence[str] = (),
    read_only: bool = False,
) -> IndexNotFoundError:
    """The error for opening an index that does not exist (nothing was created).

    Args:
        where: Where the index was looked for, for the message (``./db (collection 'x')``).
        path: The index directory, if any.
        collection: The collection name asked for.
        choices: The collections beside it that hold an ollama-rag index.
        read_only: The index was opened with ``read_only=True`` (which never creates one).
    """
    problem = INDEX_NOT_FOUND_PROBLEM.format(where=where)
    if choices:
        problem += INDEX_NOT_FOUND_ELSEWHERE.format(choices=", ".join(map(repr, choices)))
    template = INDEX_NOT_FOUND_OTHER_FIX if choices else INDEX_NOT_FOUND_FIX
    python_fix = template.format(
        path=path,
        choice=choices[0] if choices else None,
        collection=f", collection={collection!r}" if collection != "default" else "",
    )
    if read_only:
        python_fix += " (without read_only=True)"
    fix = Fix("create", model="bge-m3", collection=collection, choices=tuple(choices))
    text = Explained(f"{problem}. {python_fix}", problem=problem, fix=fix)
    return IndexNotFoundError(text, path=path)
