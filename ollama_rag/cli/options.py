"""Options every command that touches an index shares, and how a command prints.

``--db``, ``--collection``, ``--base-url``, ``--json`` and ``--quiet`` are decorators here so
that every command (and any command added later) spells, documents and reads them the same
way. :class:`Output` holds the one rule for where things go: results on stdout (JSON when
``--json``), progress bars, warnings and errors on stderr, progress bars only on a terminal,
nothing but results and errors with ``--quiet``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ollama_rag.cli.errors import remember

if TYPE_CHECKING:
    from ollama_rag.index import RagIndex

__all__ = [
    "DB_ENV",
    "ByteSize",
    "Output",
    "base_url_option",
    "collection_option",
    "db_option",
    "json_option",
    "open_index",
    "quiet_option",
]

DB_ENV = "OLLAMA_RAG_DB"
"""The environment variable ``--db`` defaults to."""

_F = TypeVar("_F", bound=Callable[..., Any])


def db_option(*, required: bool = True, names: tuple[str, ...] = ("--db",)) -> Callable[[_F], _F]:
    """``--db DIR``: the index directory, by default ``$OLLAMA_RAG_DB``.

    Args:
        required: Refuse to run without one (naming both ways to give it).
        names: The option's names (``doctor`` also accepts its older ``--path``).
    """

    def given(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if not value:
            if required:
                msg = f"no index directory: pass --db DIR or set {DB_ENV}=DIR"
                raise click.UsageError(msg, ctx)
            return None
        remember(ctx, "db", value)
        return value

    return click.option(
        *names,
        "db",
        envvar=DB_ENV,
        show_envvar=True,
        metavar="DIR",
        type=click.Path(file_okay=False, path_type=str),
        callback=given,
        help="Index directory.",
    )


def collection_option(function: _F) -> _F:
    """``--collection NAME``: which index of the directory (one directory holds several)."""

    def given(ctx: click.Context, param: click.Parameter, value: str) -> str:
        remember(ctx, "collection", value)
        return value

    return click.option(
        "--collection",
        default="default",
        show_default=True,
        metavar="NAME",
        callback=given,
        help="Index (Chroma collection) in the directory.",
    )(function)


def base_url_option(function: _F) -> _F:
    """``--base-url URL``: the Ollama server (the library falls back to ``$OLLAMA_HOST``)."""
    return click.option(
        "--base-url",
        default=None,
        metavar="URL",
        help="Ollama URL (default: $OLLAMA_HOST, else http://127.0.0.1:11434).",
    )(function)


def json_option(function: _F) -> _F:
    """``--json``: machine-readable output (see docs/cli.md for the keys)."""
    return click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print JSON: one object, or one per line for lists (see docs/cli.md).",
    )(function)


def quiet_option(function: _F) -> _F:
    """``-q/--quiet``: no progress bars and no messages; results and errors only."""
    return click.option(
        "-q", "--quiet", is_flag=True, help="No progress bars or messages; results and errors only."
    )(function)


@dataclass(frozen=True)
class Output:
    """Where a command's output goes.

    Attributes:
        as_json: ``--json`` was given: stdout carries JSON only.
        quiet: ``--quiet`` was given.
    """

    as_json: bool = False
    quiet: bool = False

    @property
    def progress(self) -> bool | None:
        """The library's ``progress=``: its own choice (by job size) on a terminal, else off."""
        return None if not self.quiet and sys.stderr.isatty() else False

    def say(self, text: str) -> None:
        """A message for the person at the terminal (stderr; not with ``--quiet``)."""
        if not self.quiet:
            click.echo(text, err=True)

    def show(self, text: str) -> None:
        """A human-readable result (stdout; not with ``--json``, not with ``--quiet``)."""
        if not self.as_json and not self.quiet:
            click.echo(text)

    def record(self, value: Mapping[str, Any]) -> None:
        """One JSON object on a line of its own (stdout)."""
        click.echo(dumps(value))


def dumps(value: Any) -> str:
    """One line of JSON, with CJK text as itself rather than escaped."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def open_index(
    db: str,
    collection: str,
    base_url: str | None = None,
    *,
    read_only: bool = True,
    **kwargs: Any,
) -> RagIndex:
    """Open an existing index; never creates one (or anything else on the disk).

    Read-only opens take a private snapshot, so they work while another process writes the
    index, and they need no Ollama until a query is embedded.
    """
    from ollama_rag.index import RagIndex

    return RagIndex(
        db, collection=collection, base_url=base_url, read_only=read_only, create=False, **kwargs
    )


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


class ByteSize(click.ParamType[int]):
    """A size in bytes: ``52428800``, ``50M``, ``1.5GB`` (K, M, G, T are powers of 1024)."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """The size in bytes, or a usage error naming the accepted forms."""
        if isinstance(value, int):
            return value
        found = _SIZE.match(str(value))
        if found is None or float(found[1]) <= 0:
            self.fail(f"{value!r} is not a size such as 52428800, 50M or 1.5G", param, ctx)
        scale = 1024 ** " kmgt".index((found[2] or " ").lower())
        return int(float(found[1]) * scale)
