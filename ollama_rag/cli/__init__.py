"""The ``ollama-rag`` command.

Modules: :mod:`~ollama_rag.cli.options` (the options commands share, and where output goes),
:mod:`~ollama_rag.cli.errors` (the library's messages in the command's terms),
:mod:`~ollama_rag.cli.show` (locations and snippets), and the commands: ``indexing``
(``index``, ``delete``, ``migrate``), ``reading`` (``search``, ``info``, ``sources``,
``export``, ``eval``), ``chatting`` (``ask``, ``chat``) and ``tools`` (``doctor``,
``demo``, ``serve-local``).

Exit status: 0 success, 1 an expected failure (one line on stderr, never a traceback), 2 a
usage error, 130 interrupted (Ctrl-C). docs/cli.md documents every command and option.
"""

from __future__ import annotations

from typing import Any

import click

from ollama_rag._version import __version__
from ollama_rag.cli.chatting import ask_command, chat_command
from ollama_rag.cli.errors import in_cli_terms
from ollama_rag.cli.indexing import delete_command, index_command, migrate_command
from ollama_rag.cli.reading import (
    eval_command,
    export_command,
    info_command,
    search_command,
    sources_command,
)
from ollama_rag.cli.tools import demo_command, doctor_command, serve_local_command
from ollama_rag.errors import RagError

__all__ = ["cli", "main"]


class _Group(click.Group):
    """A group whose commands' library errors and warnings are said in the command's terms."""

    def invoke(self, ctx: click.Context) -> Any:
        with in_cli_terms(ctx):
            return super().invoke(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ollama-rag")
def cli() -> None:
    """Local RAG over CJK and English documents with Ollama and Chroma.

    The index directory comes from --db, or from $OLLAMA_RAG_DB when --db is not given.
    """


for _command in (
    index_command,
    search_command,
    info_command,
    sources_command,
    export_command,
    delete_command,
    migrate_command,
    eval_command,
    ask_command,
    chat_command,
    doctor_command,
    demo_command,
    serve_local_command,
):
    cli.add_command(_command)


def main() -> None:
    """Entry point of the ``ollama-rag`` console script."""
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        raise SystemExit(130) from None
    except click.ClickException as err:
        err.show()
        raise SystemExit(err.exit_code) from None
    except RagError as err:  # raised outside a command (there is none today): still one line
        click.echo(f"Error: {err}", err=True)
        raise SystemExit(1) from None
