"""``doctor``: check everything ollama-rag depends on, and say how to fix what is broken.

:func:`doctor` answers "why does it not work here?" in one call (or ``ollama-rag doctor``):
every check says what it found and, when it failed, the exact command or call that fixes it.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

import httpx
import ollama

from ollama_rag.display import Html, escape, table
from ollama_rag.errors import (
    ConfigError,
    ContextLengthExceededError,
    ModelNotFoundError,
    NotAnEmbeddingModelError,
    OllamaError,
    OllamaUnavailableError,
)
from ollama_rag.models import known_model
from ollama_rag.ollama import (
    ModelInfo,
    _display_url,
    probe_model,
    resolve_base_url,
    translate_errors,
)
from ollama_rag.sqlite_compat import MIN_SQLITE_VERSION, current_backend
from ollama_rag.storage.chroma import chroma_version, read_collections
from ollama_rag.storage.lock import LOCK_FILE, read_owner

__all__ = [
    "DoctorCheck",
    "DoctorReport",
    "doctor",
]

DEFAULT_MODEL: Final = "bge-m3"
# Short, but with all three CJK scripts, so the tokenizer and the model really run on them.
DOCTOR_TEXT: Final = "ollama-rag doctor: 富士山 · 北京 · 서울 — a short test sentence."
# Seconds to wait for a TCP connection in doctor(): a wrong host must not hang the report.
_CONNECT_TIMEOUT = 5.0
# An L2-normalised float32 vector is within ~1e-6 of length 1; anything off by more than this
# was not normalised (a proxy, or the legacy endpoint's raw vectors).
_NORM_TOLERANCE = 1e-3
# /api/embed, the endpoint ollama-rag uses, first appears in v0.2.6 (reference §1.1).
_MIN_OLLAMA: Final = (0, 2, 6)
_SERVE_FIX: Final = (
    "ollama serve   (or point base_url= / --base-url / OLLAMA_HOST at a running Ollama)"
)
_UPGRADE_FIX: Final = "upgrade Ollama: https://ollama.com/download"
# Doctor's fixes are shown by Python and by `ollama-rag doctor` alike, so they name both.
_EMBEDDER_FIX: Final = (
    f'ollama pull {DEFAULT_MODEL}, then use model="{DEFAULT_MODEL}" (--model {DEFAULT_MODEL})'
)


@dataclass(frozen=True)
class DoctorCheck:
    """The outcome of one :func:`doctor` check.

    Attributes:
        name: Short id: ``server``, ``model``, ``registry``, ``embedding``, ``sqlite3``,
            ``chromadb``, ``path`` or ``index``.
        ok: True passed, False failed, None skipped (not applicable, or a check it depends on
            failed; ``detail`` says which).
        detail: What was found.
        fix: The command or call that fixes a failure ("" when there is nothing to fix).
    """

    name: str
    ok: bool | None
    detail: str
    fix: str = ""

    @property
    def symbol(self) -> str:
        """``✓`` passed, ``✗`` failed, ``–`` skipped."""
        return {True: "✓", False: "✗", None: "–"}[self.ok]

    def __str__(self) -> str:
        line = f"{self.symbol} {self.name}: {self.detail}"
        return f"{line}\n    fix: {self.fix}" if self.fix else line


@dataclass(frozen=True)
class DoctorReport:
    """Everything :func:`doctor` found, one :class:`DoctorCheck` per line.

    Attributes:
        checks: The checks, in the order they ran.
        base_url: The Ollama URL that was checked (credentials removed).
        model: The embedding model that was checked, or None when there was none.
    """

    checks: tuple[DoctorCheck, ...]
    base_url: str
    model: str | None = None

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped checks do not count against it)."""
        return not self.failed

    @property
    def failed(self) -> tuple[DoctorCheck, ...]:
        """The checks that failed."""
        return tuple(c for c in self.checks if c.ok is False)

    def __getitem__(self, name: str) -> DoctorCheck:
        """The check called ``name`` (``report["server"]``).

        Raises:
            KeyError: No check of that name ran.
        """
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.checks)

    def __str__(self) -> str:
        lines = [f"ollama-rag doctor (Ollama at {self.base_url})"]
        lines += [str(c) for c in self.checks]
        n = len(self.failed)
        lines.append("All checks passed." if n == 0 else f"{n} problem{'s' * (n != 1)} found.")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colours = {True: "#1a7f37", False: "#cf222e", None: "#6e7781"}
        rows = [
            (
                Html(f'<span style="color:{colours[c.ok]};font-weight:bold">{c.symbol}</span>'),
                Html(f"<b>{escape(c.name)}</b>"),
                Html(escape(c.detail) + (f"<br><code>{escape(c.fix)}</code>" if c.fix else "")),
            )
            for c in self.checks
        ]
        verdict = "All checks passed." if self.ok else f"{len(self.failed)} problem(s) found."
        caption = f"ollama-rag doctor (Ollama at {self.base_url})"
        return f"<div>{table(rows, caption=caption)}<p>{verdict}</p></div>"


def _skipped(name: str, why: str) -> DoctorCheck:
    return DoctorCheck(name, None, f"skipped: {why}")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("-")[0])[:3])


def _fix_for(err: OllamaError, model: str) -> str:
    if isinstance(err, OllamaUnavailableError):
        return _SERVE_FIX
    if isinstance(err, ModelNotFoundError):
        return f"ollama pull {model}"
    if isinstance(err, NotAnEmbeddingModelError):
        return _EMBEDDER_FIX
    if isinstance(err, ContextLengthExceededError):
        return _UPGRADE_FIX
    return "check the Ollama server log (journalctl -u ollama, or ~/.ollama/logs/server.log)"


def _check_server(url: str, timeout: float | None) -> DoctorCheck:
    shown = _display_url(url)
    connect = _CONNECT_TIMEOUT if timeout is None else min(timeout, _CONNECT_TIMEOUT)
    try:
        response = httpx.get(f"{url}/api/version", timeout=httpx.Timeout(timeout, connect=connect))
    except httpx.HTTPError as err:
        reason = str(err) or type(err).__name__
        return DoctorCheck(
            "server", False, f"Ollama is not reachable at {shown} ({reason})", _SERVE_FIX
        )
    try:
        found = str(response.json()["version"]) if response.status_code == 200 else ""
    except (ValueError, KeyError, TypeError):
        found = ""
    if not found:
        detail = (
            f"{shown} answers, but not as Ollama does "
            f"(GET /api/version gave HTTP {response.status_code})"
        )
        fix = "point base_url= / --base-url / OLLAMA_HOST at Ollama, e.g. http://127.0.0.1:11434"
        return DoctorCheck("server", False, detail, fix)
    parsed = _version_tuple(found)
    if parsed and parsed != (0, 0, 0) and parsed < _MIN_OLLAMA:
        detail = f"Ollama {found} at {shown} is too old: /api/embed needs 0.2.6 or later"
        return DoctorCheck("server", False, detail, _UPGRADE_FIX)
    return DoctorCheck("server", True, f"Ollama {found} at {shown}")


def _describe_info(info: ModelInfo) -> str:
    trained = (
        f" (trained {info.trained_context_length})"
        if info.trained_context_length != info.context_length
        else ""
    )
    digest = info.digest.removeprefix("sha256:")[:12] or "unknown"
    return (
        f"{info.name} is an embedding model: {info.dimension}-d, context {info.context_length} "
        f"tokens{trained}, digest {digest}"
    )


def _choose_model(client: ollama.Client, url: str) -> tuple[ModelInfo | None, DoctorCheck]:
    """bge-m3 when present, else the first embedding model the server lists."""
    with translate_errors(url):
        listed = [m.model for m in client.list().models if m.model]
    preferred = [n for n in listed if n.split(":")[0] == DEFAULT_MODEL]
    others = [n for n in listed if n not in preferred]
    for name in preferred + others:
        try:
            info = probe_model(client, name, url=url)
        except (NotAnEmbeddingModelError, ModelNotFoundError):
            continue
        detail = _describe_info(info)
        if name not in preferred:
            detail += (
                f" ({DEFAULT_MODEL} is not pulled, so the first embedding model on the server "
                "was picked; pass model= / --model to choose)"
            )
        return info, DoctorCheck("model", True, detail)
    has = ", ".join(listed) or "no models at all"
    detail = f"no embedding model on the server (it has {has})"
    return None, DoctorCheck("model", False, detail, f"ollama pull {DEFAULT_MODEL}")


def _check_model(
    client: ollama.Client, url: str, model: str | None
) -> tuple[ModelInfo | None, DoctorCheck]:
    if model is None:
        try:
            return _choose_model(client, url)
        except OllamaError as err:
            return None, DoctorCheck("model", False, str(err), _fix_for(err, DEFAULT_MODEL))
    try:
        info = probe_model(client, model, url=url)
    except ConfigError as err:
        return None, DoctorCheck("model", False, str(err), 'pass a model name such as "bge-m3"')
    except NotAnEmbeddingModelError:
        detail = f"{model} is on the server but cannot embed (a chat/completion model)"
        return None, DoctorCheck("model", False, detail, _EMBEDDER_FIX)
    except ModelNotFoundError as err:
        available = ", ".join(err.available) or "none"
        detail = f"{model} is not pulled (models on the server: {available})"
        return None, DoctorCheck("model", False, detail, f"ollama pull {model}")
    except OllamaError as err:
        return None, DoctorCheck("model", False, str(err), _fix_for(err, model))
    return info, DoctorCheck("model", True, _describe_info(info))


def _check_registry(model: str, info: ModelInfo | None) -> DoctorCheck:
    known = known_model(model)
    if known is None:
        detail = (
            f"{model} is not in ollama-rag's registry: no document/query prefixes are applied, "
            "dimension and context come from /api/show"
        )
        return DoctorCheck("registry", None, detail)
    languages = ", ".join(known.languages)
    if known.document_prefix or known.query_prefix:
        prefixes = f"document prefix {known.document_prefix!r}, query prefix {known.query_prefix!r}"
    else:
        prefixes = "no prefixes needed"
    detail = f"known model {known.name} ({languages}); {prefixes}"
    if info is not None and info.dimension != known.dimension:
        detail += (
            f"; note: the server's model is {info.dimension}-d, the registry's "
            f"{known.name} {known.dimension}-d (the server's value is used)"
        )
    if known.english_only:
        detail += "; English only: a poor fit for Chinese, Japanese or Korean text (use bge-m3)"
    return DoctorCheck("registry", True, detail)


def _check_embedding(client: ollama.Client, url: str, info: ModelInfo) -> DoctorCheck:
    started = time.perf_counter()
    try:
        with translate_errors(url, info.name):
            response = client.embed(info.name, DOCTOR_TEXT, truncate=False)
    except OllamaError as err:
        return DoctorCheck("embedding", False, str(err), _fix_for(err, info.name))
    elapsed = (time.perf_counter() - started) * 1000
    vectors = response.embeddings
    if len(vectors) != 1:
        detail = f"/api/embed returned {len(vectors)} vectors for one input"
        return DoctorCheck("embedding", False, detail, _UPGRADE_FIX)
    vector = vectors[0]
    if len(vector) != info.dimension:
        detail = (
            f"the vector has {len(vector)} dimensions but /api/show says {info.dimension}: "
            "the model files are inconsistent"
        )
        return DoctorCheck("embedding", False, detail, f"ollama pull {info.name}")
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if not math.isfinite(norm) or abs(norm - 1.0) > _NORM_TOLERANCE:
        detail = (
            f"the vector's length is {norm:.4g}, not 1: /api/embed should return "
            "L2-normalised vectors (is something other than Ollama answering?)"
        )
        return DoctorCheck("embedding", False, detail, _UPGRADE_FIX)
    detail = (
        f"one {len(vector)}-d unit-length vector in {elapsed:.0f} ms "
        "(including loading the model, if it was not loaded yet)"
    )
    return DoctorCheck("embedding", True, detail)


_SQLITE_FIX: Final = (
    "pip install pysqlite3-binary, then set OLLAMA_RAG_PYSQLITE3=auto (or call "
    "ollama_rag.sqlite_compat.ensure() before chromadb is imported)"
)


def _check_sqlite() -> DoctorCheck:
    try:
        backend = current_backend()
    except Exception as err:  # a broken sqlite3 build must be reported, not crash the report
        return DoctorCheck("sqlite3", False, f"sqlite3 cannot be imported ({err})", _SQLITE_FIX)
    needed = ".".join(map(str, MIN_SQLITE_VERSION))
    detail = f"{backend.module} module, SQLite {backend.version}"
    if backend.swapped and backend.system_version:
        detail += f" (the system's is {backend.system_version})"
    if backend.version_info < MIN_SQLITE_VERSION:
        return DoctorCheck("sqlite3", False, f"{detail}; Chroma needs >= {needed}", _SQLITE_FIX)
    return DoctorCheck("sqlite3", True, f"{detail} (Chroma needs >= {needed})")


def _chromadb_version() -> str | None:
    """The installed chromadb's version, or None when it is not installed."""
    try:
        return version("chromadb")
    except PackageNotFoundError:
        return None


def _check_chromadb() -> DoctorCheck:
    installed = _chromadb_version()
    if installed is None:
        return DoctorCheck(
            "chromadb", False, "chromadb is not installed", 'pip install "chromadb>=1.5,<2"'
        )
    try:
        chroma_version()  # imports chromadb; whatever the import raises propagates
    except Exception as err:  # chromadb raises RuntimeError for an old sqlite3, among others
        detail = (
            f"chromadb {installed} is installed but importing it fails: {type(err).__name__}: {err}"
        )
        fix = (
            _SQLITE_FIX
            if "sqlite" in str(err).lower()
            else f'pip install --force-reinstall "chromadb=={installed}"'
        )
        return DoctorCheck("chromadb", False, detail, fix)
    return DoctorCheck("chromadb", True, f"chromadb {installed} imports")


def _try_write(directory: Path) -> OSError | None:
    """Create and delete a temporary file in ``directory``: the only honest writability test."""
    try:
        fd, name = tempfile.mkstemp(prefix=".ollama-rag-doctor-", dir=directory)
    except OSError as err:
        return err
    os.close(fd)
    os.unlink(name)
    return None


def _check_path(directory: Path) -> DoctorCheck:
    shown = str(directory)
    if directory.exists() and not directory.is_dir():
        detail = f"{shown} is a file; an index needs a directory"
        return DoctorCheck("path", False, detail, "pass a directory path, e.g. --path ./rag_db")
    if directory.is_dir():
        error = _try_write(directory)
        if error is not None:
            detail = f"{shown} is not writable ({error.strerror or error})"
            return DoctorCheck(
                "path", False, detail, f'chmod u+w "{shown}"   (or pick another path)'
            )
        return DoctorCheck("path", True, f"{shown} exists and is writable")
    ancestor = directory.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        detail = f"{shown} cannot be created: {ancestor} is a file, not a directory"
        return DoctorCheck("path", False, detail, "pick a path whose parent is a directory")
    error = _try_write(ancestor)
    if error is not None:
        why = error.strerror or error
        detail = f"{shown} does not exist and cannot be created: {ancestor} is not writable ({why})"
        return DoctorCheck(
            "path", False, detail, f'chmod u+w "{ancestor}"   (or pick another path)'
        )
    return DoctorCheck(
        "path", True, f"{shown} does not exist yet; it will be created ({ancestor} is writable)"
    )


def _collection_lines(
    collections: Sequence[tuple[str, Mapping[str, Any], int]],
) -> list[tuple[str | None, str]]:
    """``(recorded model or None, description)`` per collection, in the order given."""
    found: list[tuple[str | None, str]] = []
    for name, meta, count in collections:
        recorded = meta.get("ollama_rag.model")
        if isinstance(recorded, str):
            dim = meta.get("ollama_rag.dimension", "?")
            chunks = f"{count} chunk" + ("" if count == 1 else "s")
            found.append((recorded, f"{name!r}: {recorded}, {dim}-d, {chunks}"))
        else:
            what = f"{name!r}: not an ollama-rag collection ({count} records)"
            found.append((None, what))
    return found


def _check_index(directory: Path, server_models: set[str] | None) -> DoctorCheck:
    from filelock import FileLock, Timeout

    if not (directory / "chroma.sqlite3").exists():
        detail = (
            f"no index in {directory} yet; RagIndex({str(directory)!r}, model=...) "
            f"(or ollama-rag index PATH --db {directory} --model MODEL) creates one"
        )
        return DoctorCheck("index", None, detail)
    lock = FileLock(str(directory / LOCK_FILE), timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        owner, pid = read_owner(directory)
        if pid == os.getpid():
            return DoctorCheck("index", True, f"{directory} is open in this process ({owner})")
        detail = f"{directory} is in use by {owner}; its collections were not read"
        fix = (
            "close the index in that process first: Chroma loses vectors when two processes "
            "write one directory (to share it, serve it with `chroma run --path DIR`)"
        )
        return DoctorCheck("index", False, detail, fix)
    except OSError as err:
        return DoctorCheck(
            "index", False, f"cannot lock {directory}: {err}", f'chmod u+w "{directory}"'
        )
    try:
        collections = _collection_lines(read_collections(directory))
    except Exception as err:  # a damaged or foreign directory must not crash the report
        detail = (
            f"{directory} holds a Chroma database that cannot be read ({type(err).__name__}: {err})"
        )
        return DoctorCheck("index", False, detail, "check the directory, or pick another path")
    finally:
        lock.release()
    if not collections:
        return DoctorCheck(
            "index", None, f"{directory} holds a Chroma database with no collections"
        )
    detail = f"{len(collections)} collection(s): " + "; ".join(d for _, d in collections)
    recorded = {m for m, _ in collections if m}
    missing = sorted(recorded - server_models) if server_models is not None else []
    if missing:
        fix = " && ".join(f"ollama pull {m.removesuffix(':latest')}" for m in missing)
        detail += f"; recorded model(s) not on the server: {', '.join(missing)}"
        return DoctorCheck("index", False, detail, fix)
    return DoctorCheck("index", True, detail)


def doctor(
    *,
    base_url: str | None = None,
    model: str | None = None,
    path: str | os.PathLike[str] | None = None,
    timeout: float | None = 60.0,
) -> DoctorReport:
    """Check everything ollama-rag needs and say how to fix what is broken.

    The checks, in order: ``server`` (reachable, ``GET /api/version``), ``model`` (pulled and
    able to embed; its dimension and context), ``registry`` (prefixes and languages when the
    model is known), ``embedding`` (one real embedding: timed, its dimension checked against
    ``/api/show``, its L2 norm checked), ``sqlite3``, ``chromadb`` (installed and importable),
    ``path`` (the index directory writable, or creatable) and ``index`` (the collections an
    existing index records, unless another process holds it). A check that depends on a failed
    one is skipped and says why. Nothing here raises for a broken setup.

    Example:
        .. code-block:: python

            report = doctor(model="bge-m3", path="./rag_db")
            print(report)  # one line per check, with the fix under each failure
            report.ok      # True when nothing failed

    Args:
        base_url: Ollama URL; defaults to ``OLLAMA_HOST``, then ``http://127.0.0.1:11434``.
        model: The embedding model to check. None picks ``bge-m3`` when it is pulled, else the
            first embedding model on the server (the report says so).
        path: An index directory to check; None skips the ``path`` and ``index`` checks.
        timeout: Seconds per HTTP request (connecting gives up after 5 s); the test embedding
            may have to load the model first.

    Returns:
        The report: print it, or read ``.ok`` / ``.checks`` / ``report["server"]``.
    """
    checks: list[DoctorCheck] = []
    url: str | None
    try:
        url = resolve_base_url(base_url)
    except ConfigError as err:
        url = None
        fix = "pass a URL such as http://127.0.0.1:11434"
        checks.append(DoctorCheck("server", False, str(err), fix))
    else:
        checks.append(_check_server(url, timeout))
    info: ModelInfo | None = None
    server_models: set[str] | None = None
    if url is not None and checks[0].ok:
        info, server_models = _check_ollama_side(checks, url, model, timeout)
    else:
        checks.append(_skipped("model", "Ollama is not reachable (see server)"))
        if model is not None:
            checks.append(_check_registry(model, None))
        checks.append(_skipped("embedding", "Ollama is not reachable (see server)"))
    checks.append(_check_sqlite())
    chroma = _check_chromadb()
    checks.append(chroma)
    if path is None:
        why = "no path given; pass path= (or --path DIR) to check an index directory"
        checks.append(_skipped("path", why))
    else:
        directory = Path(path).expanduser().resolve()
        path_check = _check_path(directory)
        checks.append(path_check)
        if not path_check.ok:
            checks.append(_skipped("index", "the index directory is not usable (see path)"))
        elif not chroma.ok:
            checks.append(_skipped("index", "chromadb cannot be imported (see chromadb)"))
        else:
            checks.append(_check_index(directory, server_models))
    shown = _display_url(url) if url is not None else str(base_url)
    return DoctorReport(tuple(checks), base_url=shown, model=info.name if info else model)


def _check_ollama_side(
    checks: list[DoctorCheck], url: str, model: str | None, timeout: float | None
) -> tuple[ModelInfo | None, set[str] | None]:
    """Run the model, registry and embedding checks; return the model and the server's list."""
    connect = _CONNECT_TIMEOUT if timeout is None else min(timeout, _CONNECT_TIMEOUT)
    limits = httpx.Timeout(timeout, connect=connect)
    with ollama.Client(host=url, timeout=limits) as client:
        info, model_check = _check_model(client, url, model)
        checks.append(model_check)
        chosen = info.name if info is not None else model
        if chosen is not None:
            checks.append(_check_registry(chosen, info))
        if info is not None:
            checks.append(_check_embedding(client, url, info))
        else:
            checks.append(_skipped("embedding", "no usable embedding model (see model)"))
        try:
            with translate_errors(url):
                server_models = {m.model for m in client.list().models if m.model}
        except OllamaError:
            server_models = None
    return info, server_models
