"""Swap in ``pysqlite3`` when the host's ``sqlite3`` is too old for Chroma.

chromadb checks ``sqlite3.sqlite_version_info`` while it is being imported and raises
``RuntimeError: Your system has an unsupported version of sqlite3. Chroma requires sqlite3 >=
3.35.0.`` when it is lower (Ubuntu 20.04, for one, ships 3.31.1). The check reads whatever module
``sys.modules["sqlite3"]`` holds, so binding the newer ``pysqlite3`` (from the
``pysqlite3-binary`` wheel, Linux x86_64 only) under that name *before* chromadb is imported
gets past it. chromadb 1.5's Rust core bundles its own SQLite and does not use the Python
module for storage, so the swap changes nothing else about how Chroma works.

Usage::

    from ollama_rag import sqlite_compat

    sqlite_compat.ensure()  # before anything imports chromadb or langchain_chroma
    import chromadb

Or with no code change, through the environment (``import ollama_rag`` calls
:func:`ensure_from_env` before it imports anything that uses chromadb)::

    OLLAMA_RAG_PYSQLITE3=auto   # swap only when the system sqlite3 is older than 3.35.0
    OLLAMA_RAG_PYSQLITE3=1      # always use pysqlite3
    OLLAMA_RAG_PYSQLITE3=0      # (or unset) never swap automatically
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Final

from ollama_rag.errors import ConfigError, SqliteCompatError

__all__ = [
    "ENV_VAR",
    "MIN_SQLITE_VERSION",
    "SqliteBackend",
    "current_backend",
    "ensure",
    "ensure_from_env",
    "sqlite_version",
]

MIN_SQLITE_VERSION: Final = (3, 35, 0)
"""The lowest SQLite version chromadb's import-time check accepts."""

ENV_VAR: Final = "OLLAMA_RAG_PYSQLITE3"
"""Environment variable read by :func:`ensure_from_env`: ``1``, ``auto`` or ``0``/unset."""

_MIN_TEXT: Final = ".".join(map(str, MIN_SQLITE_VERSION))

# Fixed texts are constants so tests and log filters can match them (as in errors.py).
TOO_OLD_MESSAGE: Final = (
    "This Python's sqlite3 module links SQLite {installed}, but Chroma requires SQLite >= 3.35.0, "
    "and the replacement module pysqlite3 {problem}. Fix it with one of: "
    '"pip install pysqlite3-binary" (Linux x86_64 only), then call '
    "ollama_rag.sqlite_compat.ensure() "
    "or set OLLAMA_RAG_PYSQLITE3=auto before chromadb is imported; upgrade Python or its SQLite "
    "to >= 3.35.0; or run the Chroma server where SQLite is new enough (e.g. the chromadb/chroma "
    'Docker image) and connect with the thin client ("pip install chromadb-client"), which has no '
    "sqlite3 check"
)
FORCED_UNAVAILABLE_MESSAGE: Final = (
    "pysqlite3 was requested (OLLAMA_RAG_PYSQLITE3=1 or ensure(force=True)) but it {problem}. "
    "The system sqlite3 (SQLite {installed}) is new enough for Chroma, so unset "
    "OLLAMA_RAG_PYSQLITE3 or set it to auto, or install the replacement: "
    '"pip install pysqlite3-binary" (Linux x86_64 only)'
)
CHROMADB_FIRST_NOTE: Final = (
    "chromadb was imported before ollama_rag.sqlite_compat.ensure() ran; its sqlite3 check runs "
    "at import time, so ensure() (or OLLAMA_RAG_PYSQLITE3=auto) must come before importing "
    "chromadb, langchain_chroma or any module that imports them"
)
INVALID_ENV_MESSAGE: Final = (
    "OLLAMA_RAG_PYSQLITE3={value!r} is not valid; use 1 (always use pysqlite3), auto (use it "
    "only when the system sqlite3 is older than 3.35.0) or 0 / unset (never swap automatically)"
)

_ENV_CHOICES: Final[Mapping[str, str]] = {"": "off", "0": "off", "auto": "auto", "1": "force"}

_log = logging.getLogger(__name__)
_lock = threading.Lock()
# The stdlib module's version, kept at swap time because the module is unreachable afterwards.
_system_version: str | None = None


@dataclass(frozen=True)
class SqliteBackend:
    """Which module is bound to ``sqlite3`` and the SQLite it links.

    Attributes:
        module: ``"sqlite3"`` (the standard library) or ``"pysqlite3"``.
        version: The linked SQLite version, e.g. ``"3.51.1"``.
        version_info: The same as a tuple of ints.
        system_version: The standard library's SQLite version, or None when it is unknown
            (pysqlite3 was swapped in by someone else).
        chromadb_imported_first: True when chromadb was already imported when the swap happened.
    """

    module: str
    version: str
    version_info: tuple[int, ...]
    system_version: str | None
    chromadb_imported_first: bool = False

    @property
    def swapped(self) -> bool:
        """Whether ``sqlite3`` is bound to pysqlite3."""
        return self.module == "pysqlite3"


def _bound_sqlite3() -> ModuleType:
    # The import statement honours sys.modules, so this is the swapped module after a swap.
    return importlib.import_module("sqlite3")


def _is_pysqlite3(module: ModuleType) -> bool:
    return module.__name__.split(".")[0] == "pysqlite3"


def _version_info(module: ModuleType) -> tuple[int, ...]:
    return tuple(int(part) for part in module.sqlite_version_info)


def _chromadb_loaded() -> bool:
    # A failed `import chromadb` removes "chromadb" but leaves its submodules behind.
    return any(name == "chromadb" or name.startswith("chromadb.") for name in sys.modules)


def _describe(module: ModuleType, *, chromadb_imported_first: bool = False) -> SqliteBackend:
    swapped = _is_pysqlite3(module)
    return SqliteBackend(
        module="pysqlite3" if swapped else "sqlite3",
        version=str(module.sqlite_version),
        version_info=_version_info(module),
        system_version=_system_version if swapped else str(module.sqlite_version),
        chromadb_imported_first=chromadb_imported_first,
    )


def sqlite_version() -> str:
    """Return the SQLite version of the module currently bound to ``sqlite3``.

    Returns:
        The version string, e.g. ``"3.40.1"`` (standard library) or ``"3.51.1"`` (pysqlite3).
    """
    return str(_bound_sqlite3().sqlite_version)


def current_backend() -> SqliteBackend:
    """Describe the module bound to ``sqlite3`` right now, without changing anything.

    Returns:
        The module name and the SQLite version it links.
    """
    return _describe(_bound_sqlite3())


def _load_pysqlite3() -> tuple[ModuleType | None, str]:
    """Import pysqlite3 and check its SQLite; return (module, "") or (None, why it is unusable)."""
    try:
        module = importlib.import_module("pysqlite3")
    except ImportError as err:
        return None, f"cannot be imported ({type(err).__name__}: {err})"
    # A source-built pysqlite3 links the system library and can be just as old.
    if _version_info(module) < MIN_SQLITE_VERSION:
        return None, f"links SQLite {module.sqlite_version}, which is too old as well"
    return module, ""


def ensure(*, force: bool = False) -> SqliteBackend:
    """Make ``import sqlite3`` yield a SQLite new enough for Chroma.

    When the standard library's SQLite is older than :data:`MIN_SQLITE_VERSION` (or ``force`` is
    set), ``pysqlite3`` is put in ``sys.modules["sqlite3"]`` (and its ``dbapi2`` in
    ``sys.modules["sqlite3.dbapi2"]``). Otherwise nothing changes. Calling it again is a no-op
    once pysqlite3 is bound. Call it before chromadb is imported: chromadb checks the version at
    import time. If chromadb is already loaded, the swap still happens (a retried ``import
    chromadb`` then succeeds) but a ``RuntimeWarning`` says the call came too late.

    Args:
        force: Use pysqlite3 even when the system SQLite is new enough.

    Returns:
        Which module is bound to ``sqlite3`` now and the SQLite version it links.

    Raises:
        SqliteCompatError: pysqlite3 is needed (or forced) but cannot be imported or is too old
            itself. The message names the installed version, the required one and the fixes.
    """
    global _system_version
    with _lock:
        bound = _bound_sqlite3()
        if _is_pysqlite3(bound):
            return _describe(bound)
        installed = str(bound.sqlite_version)
        too_old = _version_info(bound) < MIN_SQLITE_VERSION
        if not (too_old or force):
            return _describe(bound)

        chromadb_first = _chromadb_loaded()
        replacement, problem = _load_pysqlite3()
        if replacement is None:
            template = TOO_OLD_MESSAGE if too_old else FORCED_UNAVAILABLE_MESSAGE
            msg = template.format(installed=installed, problem=problem)
            if chromadb_first and too_old:
                msg = f"{msg}. Note: {CHROMADB_FIRST_NOTE}"
            raise SqliteCompatError(msg)

        _system_version = installed
        sys.modules["sqlite3"] = replacement
        # Without this alias, `import sqlite3.dbapi2` would still find the stdlib submodule.
        sys.modules["sqlite3.dbapi2"] = importlib.import_module("pysqlite3.dbapi2")
        backend = _describe(replacement, chromadb_imported_first=chromadb_first)
        _log.info(
            "sqlite3 is now pysqlite3 (SQLite %s; the system has %s, Chroma needs >= %s)",
            backend.version,
            installed,
            _MIN_TEXT,
        )
    if chromadb_first:
        warnings.warn(CHROMADB_FIRST_NOTE, RuntimeWarning, stacklevel=2)
    return backend


def ensure_from_env(*, environ: Mapping[str, str] | None = None) -> SqliteBackend | None:
    """Apply :data:`ENV_VAR`: ``1`` forces pysqlite3, ``auto`` swaps only when needed.

    Unset, empty or ``0`` returns at once without importing anything, which keeps the call cheap
    enough for the package ``__init__``. It never imports chromadb.

    Args:
        environ: The environment to read; ``os.environ`` when None.

    Returns:
        The result of :func:`ensure`, or None when the variable is unset or ``0``.

    Raises:
        ConfigError: The variable has a value other than ``1``, ``auto`` or ``0``.
        SqliteCompatError: See :func:`ensure`.
    """
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "")
    mode = _ENV_CHOICES.get(raw.strip().lower())
    if mode is None:
        raise ConfigError(INVALID_ENV_MESSAGE.format(value=raw))
    if mode == "off":
        return None
    return ensure(force=mode == "force")
