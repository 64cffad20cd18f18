"""The ``ollama-rag`` command. Expected failures (``RagError``) print one line and exit 1."""

from __future__ import annotations

import click

from ollama_rag import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ollama-rag")
def cli() -> None:
    """Local RAG over CJK and English documents with Ollama and Chroma."""


@cli.command("serve-local")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=11434, show_default=True, type=int, help="Port (0 = any free).")
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="SPEC",
    help="A model to serve, e.g. 'use-multilingual' or 'bge-m3=hash:1024:8192'. Repeatable.",
)
def serve_local(host: str, port: int, models: tuple[str, ...]) -> None:
    """Run LocalOllama, an Ollama-protocol server for tests and demos, until Ctrl-C."""
    from ollama_rag.testing import run_server

    run_server(host=host, port=port, model_specs=list(models))


def main() -> None:
    """Entry point of the ``ollama-rag`` console script."""
    cli()
