"""Library messages in the command's terms: the one place the CLI words a fix.

The library words its fixes for Python callers (``RagIndex(path, model='bge-m3')``,
``encoding=``). A message whose fix is such a call is an :class:`~ollama_rag.errors.Explained`
string carrying what happened (``problem``) and the fix as data (a
:class:`~ollama_rag.errors.Fix`); here each kind of fix gets its command-line wording, built
from what the user typed (``--db`` as given, ``--collection``). Errors, warnings and the
per-file reasons of an ingestion report all go through :func:`say`. A message without a
:class:`~ollama_rag.errors.Fix` is printed as it is: its fix, if any, is a command already
(``ollama serve``, ``ollama pull NAME``, ``pip install 'ollama-rag[pdf]'``).
"""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TextIO

import click

from ollama_rag.errors import Fix, FixAction, RagError, fix_of, problem_of

__all__ = ["WORDINGS", "Call", "in_cli_terms", "remember", "say"]

_DB = "ollama_rag.db"
_COLLECTION = "ollama_rag.collection"


@dataclass(frozen=True)
class Call:
    """What the user typed that a fix refers back to.

    Attributes:
        command: The subcommand (``"index"``), or None.
        db: ``--db`` as given (or from ``OLLAMA_RAG_DB``), or None.
        collection: ``--collection`` as given, or None.
    """

    command: str | None = None
    db: str | None = None
    collection: str | None = None

    @classmethod
    def of(cls, ctx: click.Context) -> Call:
        """The call being run in ``ctx`` (the group's context or a command's)."""
        root = ctx.find_root()
        return cls(root.invoked_subcommand, ctx.meta.get(_DB), ctx.meta.get(_COLLECTION))

    @property
    def directory(self) -> str:
        """``--db`` as given, quoted for a shell (``DIR`` when unknown)."""
        return shlex.quote(self.db) if self.db else "DIR"

    @property
    def target(self) -> str:
        """``--db DIR`` (and ``--collection NAME`` unless it is the default one)."""
        return f"--db {self.directory}{_collection_flag(self.collection)}"


def remember(ctx: click.Context, name: str, value: str | None) -> None:
    """Note an option's value for the fixes (``name`` is ``"db"`` or ``"collection"``)."""
    ctx.meta[_DB if name == "db" else _COLLECTION] = value


def _collection_flag(name: str | None) -> str:
    return f" --collection {shlex.quote(name)}" if name and name != "default" else ""


# ------------------------------------------------------------------ one wording per kind of fix


def _create(fix: Fix, call: Call) -> str:
    if call.command == "index":
        make = f"name the embedding model to create it, e.g. --model {fix.model}"
    else:
        target = replace(call, collection=fix.collection or call.collection).target
        make = f"create it with: ollama-rag index PATH {target} --model {fix.model}"
    if not fix.choices:
        return make
    which = "it" if len(fix.choices) == 1 else "one of them"
    return f"pass --collection {shlex.quote(fix.choices[0])} to use {which}, or {make}"


def _migrate(fix: Fix, call: Call) -> str:
    run = f"ollama-rag migrate {fix.model} {call.target}"
    if fix.recorded:
        return (
            f"leave out --model to use {fix.recorded}, or re-embed the index with {fix.model}: "
            f"{run}"
        )
    return f"re-embed the index with {fix.model}: {run}"


def _rebuild(fix: Fix, call: Call) -> str:
    return (
        f"move {call.directory} aside and index the sources again: "
        f"ollama-rag index PATH {call.target} --model {fix.model}"
    )


WORDINGS: dict[FixAction, Callable[[Fix, Call], str]] = {
    "create": _create,
    "migrate": _migrate,
    "rebuild": _rebuild,
    "collection": lambda fix, call: "pass another --collection name",
    "wait": lambda fix, call: (
        "wait for it to finish, or stop it; meanwhile search, info, sources, export, eval, ask "
        "and chat work (they read a snapshot of the index)"
    ),
    "encoding": lambda fix, call: (
        f"pass --encoding with the file's encoding (for example --encoding {fix.value}), or "
        "convert the file to UTF-8"
    ),
    "max-file-size": lambda fix, call: f"raise --max-file-size (to at least {fix.value})",
    "clash": lambda fix, call: (
        "add their common parent folder instead, or index one of them with another --collection"
    ),
    "install": lambda fix, call: f"pip install 'ollama-rag[{fix.value}]'",
}
"""The command-line wording of each kind of :class:`~ollama_rag.errors.Fix`."""


def say(message: object, call: Call) -> str:
    """A library message in the command's terms: what happened, then the fix as a command."""
    fix = fix_of(message)
    if fix is None:
        return problem_of(message)
    return f"{problem_of(message)} — {WORDINGS[fix.action](fix, call)}"


# ------------------------------------------------------------------ errors and warnings


@contextmanager
def in_cli_terms(ctx: click.Context) -> Iterator[None]:
    """Run a command with the library's errors and warnings said in the command's terms.

    A :class:`~ollama_rag.errors.RagError` becomes a ``click.ClickException`` (one line on
    stderr, exit status 1), never a traceback; a warning becomes one ``Warning: ...`` line.
    """

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = message.args[0] if isinstance(message, Warning) and message.args else message
        click.echo(f"Warning: {say(text, Call.of(ctx))}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        try:
            yield
        except RagError as err:
            raise click.ClickException(say(err.args[0] if err.args else err, Call.of(ctx))) from err
