"""``ask`` and ``chat``: answers from a chat model, grounded in the index and citing it.

Both open the index read-only (so they work while another process indexes into it) and run
the library's own chains, :func:`~ollama_rag.chat.rag_chain` and
:func:`~ollama_rag.chat.chat_chain`, with ``ChatOllama``: the answer streams to the terminal
as the model writes it, then the passages it was given are listed, those it cites marked.
The same ``--keep-alive`` goes to the embedding model and the chat model, so Ollama keeps both
loaded between questions instead of swapping them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import click

from ollama_rag.cli.options import (
    Output,
    base_url_option,
    collection_option,
    db_option,
    json_option,
    open_index,
    quiet_option,
)
from ollama_rag.cli.show import SourceLines, location

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.runnables import Runnable

    from ollama_rag.chat import Citations
    from ollama_rag.index import RagIndex

__all__ = ["CHAT_MODEL_ENV", "ask_command", "chat_command"]

CHAT_MODEL_ENV = "OLLAMA_RAG_CHAT_MODEL"
"""The environment variable ``--model`` of ``ask`` and ``chat`` defaults to."""
DEFAULT_CHAT_MODEL = "qwen2.5"
QUIT = frozenset({"/exit", "/quit", "/bye"})


@dataclass(frozen=True)
class _Setup:
    """The options ``ask`` and ``chat`` share: the index's, the chat model's, the search's."""

    db: str
    collection: str
    base_url: str | None
    chat_model: str
    k: int
    mode: str
    citations: Citations
    keep_alive: str
    temperature: float | None

    @contextmanager
    def chain(self, build: Callable[..., Runnable[Any, Any]]) -> Iterator[tuple[RagIndex, Any]]:
        """Open the index read-only and yield it with ``build``'s chain on its retriever.

        ``build`` is :func:`~ollama_rag.chat.rag_chain` or :func:`~ollama_rag.chat.chat_chain`.
        """
        # The same keep_alive on the embedding requests, so neither model evicts the other.
        with open_index(
            self.db, self.collection, self.base_url, keep_alive=self.keep_alive
        ) as index:
            llm = _chat_model(index, self.chat_model, self.keep_alive, self.temperature)
            kwargs = {"k": self.k, "mode": self.mode, "include_root": True}
            retriever = index.as_retriever(search_kwargs=kwargs)
            yield index, build(retriever, llm, citations=self.citations, with_sources=True)


_SETUP = tuple(f.name for f in fields(_Setup))


def _options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the shared options; the command receives them as one ``setup`` (:class:`_Setup`)."""

    @functools.wraps(function)
    def command(**kwargs: Any) -> Any:
        setup = _Setup(**{name: kwargs.pop(name) for name in _SETUP})
        return function(setup, **kwargs)

    for option in reversed(
        [
            db_option(),
            collection_option,
            base_url_option,
            click.option(
                "--model",
                "chat_model",
                default=DEFAULT_CHAT_MODEL,
                envvar=CHAT_MODEL_ENV,
                show_envvar=True,
                show_default=True,
                metavar="NAME",
                help="Chat model that writes the answers (the index's embedding model is "
                "the recorded one).",
            ),
            click.option(
                "-k",
                "k",
                default=4,
                show_default=True,
                type=click.IntRange(min=1),
                help="Passages retrieved for each question.",
            ),
            click.option(
                "--mode",
                type=click.Choice(["hybrid", "dense", "lexical"]),
                default="hybrid",
                show_default=True,
                help="Search mode of the retrieval.",
            ),
            click.option(
                "--citations",
                type=click.Choice(["source", "number"]),
                default="source",
                show_default=True,
                help="Label passages by source name ([a.md]) or by number ([1]).",
            ),
            click.option(
                "--keep-alive",
                default="30m",
                show_default=True,
                metavar="DURATION",
                help="How long Ollama keeps both models loaded after a request (e.g. 30m, "
                "3600, -1 for ever).",
            ),
            click.option(
                "--temperature",
                default=None,
                type=click.FloatRange(min=0),
                help="Sampling temperature of the chat model (default: the model's own).",
            ),
        ]
    ):
        command = option(command)
    return command


def _check_chat_model(model: str, base_url: str) -> None:
    """Refuse a chat model that Ollama lacks, or that cannot chat, before the first question."""
    import ollama

    from ollama_rag.ollama import probe_chat_model

    if not probe_chat_model(ollama.Client(host=base_url), model, url=base_url):
        msg = (
            f'"{model}" cannot write answers (it is an embedding model) — pass --model with a '
            f"chat model, e.g. --model {DEFAULT_CHAT_MODEL} (ollama pull {DEFAULT_CHAT_MODEL})"
        )
        raise click.ClickException(msg)


def _chat_model(index: RagIndex, model: str, keep_alive: str, temperature: float | None) -> Any:
    """``ChatOllama`` on the index's Ollama, after checking that the model can chat."""
    from langchain_ollama import ChatOllama

    from ollama_rag.ollama import parse_keep_alive

    _check_chat_model(model, index.base_url)
    seconds = parse_keep_alive(keep_alive)
    return ChatOllama(
        model=model,
        base_url=index.base_url,
        keep_alive=None if seconds is None else int(seconds),
        temperature=temperature,
    )


def _stream(chain: Runnable[Any, Any], inputs: Any, echo: bool) -> tuple[str, list[Document]]:
    """Run ``chain`` (built ``with_sources=True``), echoing the answer as it is written."""
    pieces: list[str] = []
    docs: list[Document] = []
    for part in chain.stream(inputs):
        if "context" in part:
            docs = list(part["context"])
        if "answer" in part:
            pieces.append(part["answer"])
            if echo:
                click.echo(part["answer"], nl=False)
    if echo:
        click.echo()
    return "".join(pieces), docs


def _sources(
    docs: Iterable[Document], answer: str, citations: str, lines: SourceLines
) -> list[dict[str, Any]]:
    """The passages the model was given, as records: label, whether cited, where they are."""
    records = []
    for rank, doc in enumerate(docs, start=1):
        metadata = dict(doc.metadata)
        source = str(metadata.get("source", ""))
        label = str(rank) if citations == "number" or not source else source
        line = lines.line(metadata, doc.page_content)
        records.append(
            {
                "rank": rank,
                "label": label,
                "cited": f"[{label}]" in answer,
                "source": source,
                "location": location(source, metadata, line),
                "line": line,
                "start_index": metadata.get("start_index"),
                "end_index": metadata.get("end_index"),
                "score": metadata.get("score"),
                "text": doc.page_content,
            }
        )
    return records


def _show_sources(records: list[dict[str, Any]]) -> None:
    for record in records:
        mark = "*" if record["cited"] else " "
        click.echo(f" {mark} [{record['label']}] {record['location']}")


@click.command("ask")
@click.argument("question")
@_options
@json_option
@quiet_option
def ask_command(setup: _Setup, question: str, as_json: bool, quiet: bool) -> None:
    """Answer QUESTION from the index at --db with a chat model, citing the passages used.

    The answer streams as the model writes it; then the passages it was given are listed,
    those it cites marked with *. --json prints one object instead; --quiet only the answer.
    """
    from ollama_rag.chat import rag_chain

    out = Output(as_json, quiet)
    with setup.chain(rag_chain) as (index, chain):
        answer, docs = _stream(chain, question, echo=not as_json)
        records = _sources(docs, answer, setup.citations, SourceLines())
        if as_json:
            out.record(
                {
                    "question": question,
                    "answer": answer,
                    "chat_model": setup.chat_model,
                    "embedding_model": index.manifest.model_label,
                    "mode": setup.mode,
                    "sources": records,
                }
            )
        elif not quiet:
            click.echo("\nSources (* cited):")
            _show_sources(records)


def _questions(prompt: str) -> Iterator[str]:
    """Lines typed at the prompt (or piped in), until end of input or a quit command."""
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input(prompt) if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and not line:
            return  # end of piped input
        text = line.strip()
        if text.lower() in QUIT:
            return
        if text:
            yield text


@click.command("chat")
@_options
@click.option(
    "--history",
    "turns",
    default=6,
    show_default=True,
    type=click.IntRange(min=0),
    help="Earlier questions and answers the model reads with each question.",
)
@quiet_option
def chat_command(setup: _Setup, turns: int, quiet: bool) -> None:
    """Chat with the index at --db: each answer streams, cites its passages, knows the chat so far.

    Type a question and press Enter; /clear forgets the conversation, /exit (or Ctrl-D) ends
    it, Ctrl-C stops an answer. Questions can also be piped in, one per line.
    """
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

    from ollama_rag.chat import chat_chain

    out = Output(quiet=quiet)
    lines = SourceLines()
    with setup.chain(chat_chain) as (index, chain):
        out.say(
            f"Chatting with {setup.chat_model} over {setup.db} ({index.count()} chunks, "
            f"{index.manifest.model_label}). /clear forgets, /exit or Ctrl-D ends."
        )
        history: list[BaseMessage] = []
        for question in _questions("> " if not quiet else ""):
            if question.lower() == "/clear":
                history = []
                out.say("(conversation forgotten)")
                continue
            try:
                recent = history[len(history) - 2 * turns :] if turns else []
                answer, docs = _stream(chain, {"question": question, "history": recent}, True)
            except KeyboardInterrupt:
                click.echo("\n(answer stopped)", err=True)
                continue
            history += [HumanMessage(question), AIMessage(answer)]
            if not quiet:
                _show_sources(_sources(docs, answer, setup.citations, lines))
                click.echo()
