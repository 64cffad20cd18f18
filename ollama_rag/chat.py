"""A cited RAG chain on a retriever: question → documents → labelled context → chat model → answer.

Everything is a LangChain runnable and every piece is public, so a chain can be taken apart
and rebuilt: :func:`format_docs` writes the context, :data:`DEFAULT_PROMPT` asks for an answer
in the question's language with citations, and :func:`rag_chain` wires them to any retriever
(``RagIndex.as_retriever()``) and chat model (``langchain_ollama.ChatOllama``)::

    chain = rag_chain(index.as_retriever(), ChatOllama(model="qwen2.5"))
    chain.invoke("日本で一番高い山は？")  # '富士山は日本で一番高い山です。[fuji.md]'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.language_models import LanguageModelLike
from langchain_core.messages import HumanMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import (
    Runnable,
    RunnableLambda,
    RunnableParallel,
    RunnablePassthrough,
)

from ollama_rag.errors import ConfigError

__all__ = [
    "CHAT_PROMPT",
    "DEFAULT_PROMPT",
    "NO_CONTEXT",
    "Citations",
    "chat_chain",
    "format_docs",
    "rag_chain",
]

Citations = Literal["source", "number"]

# What the model reads when the retriever found nothing, so it can say it does not know.
NO_CONTEXT = "(no passages were found)"

DEFAULT_PROMPT = ChatPromptTemplate.from_messages(
    [
        (
            "system",
            "Answer the question using only the passages below. Answer in the language the "
            "question is written in. After each sentence of your answer, cite the passages it "
            "comes from by the label in square brackets at the start of each passage. If the "
            "passages do not contain the answer, say that you do not know.\n\n"
            "Passages:\n\n{context}",
        ),
        ("human", "{question}"),
    ]
)
"""The prompt :func:`rag_chain` uses: a system message with the passages, the question as the
human message. Its variables are ``context`` (from :func:`format_docs`) and ``question``."""

CHAT_PROMPT = ChatPromptTemplate.from_messages(
    [
        DEFAULT_PROMPT.messages[0],
        MessagesPlaceholder("history", optional=True),
        DEFAULT_PROMPT.messages[1],
    ]
)
"""The prompt :func:`chat_chain` uses: :data:`DEFAULT_PROMPT` with the conversation so far
(``history``, a list of messages) between the instructions and the question."""

# A blank line ends a passage (for the model, and for a reader of the prompt): blank lines
# inside a document are folded so each document stays one passage.
_BLANK_LINES = re.compile(r"\n\s*\n")


def _check(citations: str) -> None:
    if citations not in ("source", "number"):
        msg = f'citations must be "source" or "number", got {citations!r}'
        raise ConfigError(msg)


def _label(doc: Document, number: int, citations: Citations) -> str:
    source = doc.metadata.get("source")
    if citations == "number" or not source:
        return str(number)
    return str(source)


def format_docs(docs: Sequence[Document], *, citations: Citations = "source") -> str:
    """The context for a prompt: one passage per document, each starting with its label.

    >>> print(format_docs([Document("富士山は日本一高い山です。", metadata={"source": "fuji.md"}),
    ...                    Document("Tokyo is the capital.", metadata={"source": "tokyo.md"})]))
    [fuji.md] 富士山は日本一高い山です。
    <BLANKLINE>
    [tokyo.md] Tokyo is the capital.

    Args:
        docs: The retrieved documents, best first.
        citations: ``"source"`` labels each passage with its ``metadata["source"]``
            (``[fuji.md]``); ``"number"`` with its position, from 1 (``[1]``). A document
            without a source is numbered either way.

    Returns:
        The passages separated by blank lines, or :data:`NO_CONTEXT` when there are none.

    Raises:
        ConfigError: For another ``citations`` (a ValueError).
    """
    _check(citations)
    if not docs:
        return NO_CONTEXT
    return "\n\n".join(
        f"[{_label(doc, n, citations)}] {_BLANK_LINES.sub(chr(10), doc.page_content.strip())}"
        for n, doc in enumerate(docs, start=1)
    )


def rag_chain(
    retriever: Runnable[str, list[Document]],
    llm: LanguageModelLike,
    *,
    prompt: BasePromptTemplate[Any] | None = None,
    citations: Citations = "source",
    with_sources: bool = False,
) -> Runnable[str, Any]:
    """A chain that answers a question from what ``retriever`` finds, citing it.

    The chain is plain LCEL: ``{"context": retriever | format_docs, "question": ...} | prompt
    | llm | StrOutputParser()``. ``invoke``, ``stream``, ``batch`` and their async forms all
    work; ``stream`` yields the answer as the model writes it.

    Args:
        retriever: Question -> documents, e.g. ``RagIndex.as_retriever()``.
        llm: The chat model, e.g. ``ChatOllama(model="qwen2.5")``.
        prompt: A prompt with ``context`` and ``question`` variables; :data:`DEFAULT_PROMPT`
            when not given.
        citations: How passages are labelled (see :func:`format_docs`).
        with_sources: Return ``{"question", "context", "answer"}`` (``context`` being the
            retrieved documents, so ``[n]`` is ``context[n - 1]``) instead of the answer alone.
            Streamed, the keys arrive one after another and ``answer`` in pieces.

    Returns:
        A runnable from a question (``str``) to the answer (``str``), or to the dict above.

    Raises:
        ConfigError: For another ``citations`` (a ValueError).
    """
    _check(citations)
    # The documents are kept in the output (assign passes them through) beside the answer.
    found = RunnableParallel(question=RunnablePassthrough(), context=retriever)
    return _answering(found, llm, prompt or DEFAULT_PROMPT, citations, with_sources)


def chat_chain(
    retriever: Runnable[str, list[Document]],
    llm: LanguageModelLike,
    *,
    prompt: BasePromptTemplate[Any] | None = None,
    citations: Citations = "source",
    with_sources: bool = False,
    search_turns: int = 1,
) -> Runnable[dict[str, Any], Any]:
    """:func:`rag_chain` for a conversation: the earlier turns go into the prompt as messages.

    The input is ``{"question": str, "history": [HumanMessage, AIMessage, ...]}``; the caller
    keeps the history (append the question and the answer after each turn). The prompt is
    :data:`CHAT_PROMPT`, :data:`DEFAULT_PROMPT` with a ``MessagesPlaceholder("history")``
    between the system message and the question. A follow-up question often leaves out what it
    is about ("when was it built?"), so the retriever searches for the last ``search_turns``
    questions of the history and this one together.

    Args:
        retriever: Question -> documents, e.g. ``RagIndex.as_retriever()``.
        llm: The chat model, e.g. ``ChatOllama(model="qwen2.5")``.
        prompt: A prompt with ``context``, ``question`` and ``history`` variables;
            :data:`CHAT_PROMPT` when not given.
        citations: How passages are labelled (see :func:`format_docs`).
        with_sources: Return the input with ``context`` (the retrieved documents) and
            ``answer`` added, instead of the answer alone.
        search_turns: How many earlier questions the retriever searches with (0: this one only).

    Returns:
        A runnable from ``{"question", "history"}`` to the answer (``str``), or to the dict
        above.

    Raises:
        ConfigError: For another ``citations``, or a negative ``search_turns``.
    """
    _check(citations)
    if search_turns < 0:
        msg = f"search_turns must be 0 or more, got {search_turns}"
        raise ConfigError(msg)

    def search_text(inputs: dict[str, Any]) -> str:
        asked = [m.content for m in inputs.get("history", ()) if isinstance(m, HumanMessage)]
        earlier = [str(text) for text in asked[len(asked) - search_turns :]] if search_turns else []
        return " ".join([*earlier, inputs["question"]])

    found = RunnablePassthrough.assign(context=RunnableLambda(search_text) | retriever)
    return _answering(found, llm, prompt or CHAT_PROMPT, citations, with_sources)


def _answering(
    found: Runnable[Any, dict[str, Any]],
    llm: LanguageModelLike,
    prompt: BasePromptTemplate[Any],
    citations: Citations,
    with_sources: bool,
) -> Runnable[Any, Any]:
    """``found`` (a dict holding the retrieved ``context``) -> passages -> prompt -> answer."""

    def labelled(docs: list[Document]) -> str:
        return format_docs(docs, citations=citations)

    answer = (
        RunnablePassthrough.assign(context=itemgetter("context") | RunnableLambda(labelled))
        | prompt
        | llm
        | StrOutputParser()
    )
    if with_sources:
        return found | RunnablePassthrough.assign(answer=answer)
    return found | answer
