"""The cited RAG chain: a real Chroma-backed RagIndex, LocalOllama's chat model, ChatOllama."""

from __future__ import annotations

import asyncio
import doctest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_ollama import ChatOllama

from ollama_rag import (
    CHAT_PROMPT,
    DEFAULT_PROMPT,
    ConfigError,
    RagIndex,
    chat_chain,
    format_docs,
    rag_chain,
)
from ollama_rag import chat as chat_module
from ollama_rag.chat import NO_CONTEXT
from ollama_rag.testing import NO_ANSWER, LocalOllama

SOURCES = {
    "fuji.md": "富士山は日本で一番高い山です。標高は3776メートルです。",
    "tokyo.md": "東京は日本の首都です。Tokyo is the capital of Japan.",
    "yangtze.md": "长江是中国最长的河流，全长约6300公里。",
}


@pytest.fixture
def index(ollama: LocalOllama, tmp_path: Path) -> Iterator[RagIndex]:
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url) as opened:
        for source, text in SOURCES.items():
            opened.add_texts([text], source=source)
        yield opened


@pytest.fixture
def llm(ollama: LocalOllama) -> ChatOllama:
    return ChatOllama(model="qwen2.5", base_url=ollama.url)


def test_the_answer_quotes_the_right_chunk_and_cites_its_source(
    index: RagIndex, llm: ChatOllama
) -> None:
    chain = rag_chain(index.as_retriever(search_kwargs={"k": 2}), llm)
    assert chain.invoke("日本で一番高い山は？") == "富士山は日本で一番高い山です。[fuji.md]"
    assert chain.invoke("What is the capital of Japan?") == (
        "Tokyo is the capital of Japan. [tokyo.md]"
    )
    assert chain.invoke("中国最长的河流是哪条？") == (
        "长江是中国最长的河流，全长约6300公里。[yangtze.md]"
    )


def test_no_matching_context_gives_the_no_answer_text(index: RagIndex, llm: ChatOllama) -> None:
    chain = rag_chain(index.as_retriever(), llm)
    assert chain.invoke("What is the boiling point of mercury?") == NO_ANSWER


def test_numbered_citations_point_into_the_returned_sources(
    index: RagIndex, llm: ChatOllama, ollama: LocalOllama
) -> None:
    retriever = index.as_retriever(search_kwargs={"k": 2})
    chain = rag_chain(retriever, llm, citations="number", with_sources=True)
    result = chain.invoke("日本で一番高い山は？")
    assert set(result) == {"question", "context", "answer"}
    assert result["question"] == "日本で一番高い山は？"
    assert result["answer"] == "富士山は日本で一番高い山です。[1]"
    assert result["context"][0].metadata["source"] == "fuji.md"  # [1] is context[0]
    # What the model was sent: the system message with the numbered passages, then the question.
    system, question = ollama.received("qwen2.5")[-2:]
    assert "[1] 富士山は日本で一番高い山です。標高は3776メートルです。" in system
    assert question == "日本で一番高い山は？"


def test_streaming_yields_the_answer_in_pieces(index: RagIndex, llm: ChatOllama) -> None:
    chain = rag_chain(index.as_retriever(search_kwargs={"k": 2}), llm)
    pieces = list(chain.stream("日本で一番高い山は？"))
    assert len(pieces) > 1
    assert "".join(pieces) == "富士山は日本で一番高い山です。[fuji.md]"


def test_streaming_with_sources_sends_the_documents_first(index: RagIndex, llm: ChatOllama) -> None:
    chain = rag_chain(index.as_retriever(search_kwargs={"k": 2}), llm, with_sources=True)
    chunks: list[dict[str, Any]] = list(chain.stream("日本で一番高い山は？"))
    keys = [next(iter(chunk)) for chunk in chunks]
    assert keys.index("context") < keys.index("answer")
    assert keys.count("answer") > 1
    answer = "".join(chunk["answer"] for chunk in chunks if "answer" in chunk)
    assert answer == "富士山は日本で一番高い山です。[fuji.md]"


def test_async_invoke_and_stream(index: RagIndex, llm: ChatOllama) -> None:
    chain = rag_chain(index.as_retriever(search_kwargs={"k": 2}), llm)

    async def run() -> tuple[str, list[str]]:
        answer = await chain.ainvoke("What is the capital of Japan?")
        pieces = [piece async for piece in chain.astream("日本で一番高い山は？")]
        return answer, pieces

    answer, pieces = asyncio.run(run())
    assert answer == "Tokyo is the capital of Japan. [tokyo.md]"
    assert len(pieces) > 1
    assert "".join(pieces) == "富士山は日本で一番高い山です。[fuji.md]"


def test_a_prompt_of_ones_own(index: RagIndex, llm: ChatOllama) -> None:
    prompt = ChatPromptTemplate.from_template(
        "Context:\n{context}\n\nQuestion: {question}\nAnswer in one sentence."
    )
    chain = rag_chain(index.as_retriever(search_kwargs={"k": 2}), llm, prompt=prompt)
    assert chain.invoke("日本で一番高い山は？") == "富士山は日本で一番高い山です。[fuji.md]"


def test_keep_alive_keeps_the_embedder_and_the_chat_model_loaded_side_by_side(
    fresh_ollama: LocalOllama, tmp_path: Path
) -> None:
    with RagIndex(
        tmp_path / "db", model="bge-m3", base_url=fresh_ollama.url, keep_alive="30m"
    ) as index:
        index.add_texts([SOURCES["fuji.md"]], source="fuji.md")
        llm = ChatOllama(model="qwen2.5", base_url=fresh_ollama.url, keep_alive="30m")
        rag_chain(index.as_retriever(), llm).invoke("日本で一番高い山は？")
    with ollama.Client(host=fresh_ollama.url) as client:
        loaded = {m.model for m in client.ps().models}
    assert loaded == {"bge-m3:latest", "qwen2.5:latest"}


def test_format_docs_labels_folds_blank_lines_and_numbers_sourceless_docs() -> None:
    docs = [
        Document("第一段。\n\n第二段。", metadata={"source": "a.md"}),
        Document("No source here."),
    ]
    assert format_docs(docs) == "[a.md] 第一段。\n第二段。\n\n[2] No source here."
    assert format_docs(docs, citations="number") == "[1] 第一段。\n第二段。\n\n[2] No source here."
    assert format_docs([]) == NO_CONTEXT


def test_an_unknown_citation_style_is_refused(index: RagIndex, llm: ChatOllama) -> None:
    with pytest.raises(ValueError, match='citations must be "source" or "number"'):
        rag_chain(index.as_retriever(), llm, citations="page")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 'numbers'"):
        format_docs([], citations="numbers")  # type: ignore[arg-type]


def test_default_prompt_takes_context_and_question() -> None:
    assert set(DEFAULT_PROMPT.input_variables) == {"context", "question"}
    messages = DEFAULT_PROMPT.format_messages(context="[a.md] x", question="q?")
    assert [m.type for m in messages] == ["system", "human"]
    assert "language" in str(messages[0].content)
    assert str(messages[0].content).endswith("[a.md] x")


def test_doctests() -> None:
    assert doctest.testmod(chat_module).failed == 0


def test_chat_chain_sends_the_history_and_searches_with_the_last_question(
    index: RagIndex, llm: ChatOllama, ollama: LocalOllama
) -> None:
    searched: list[str] = []
    retriever = index.as_retriever(search_kwargs={"k": 1})
    spy = RunnableLambda(lambda text: searched.append(text) or text) | retriever
    chain = chat_chain(spy, llm)
    history: list[BaseMessage] = []
    for question in ["日本で一番高い山は？", "標高は何メートル？"]:
        answer = chain.invoke({"question": question, "history": history})
        history += [HumanMessage(question), AIMessage(answer)]
    assert searched == ["日本で一番高い山は？", "日本で一番高い山は？ 標高は何メートル？"]
    assert history[1].content == "富士山は日本で一番高い山です。[fuji.md]"
    assert history[3].content == "標高は3776メートルです。[fuji.md]"
    # The model read the first turn as messages between the passages and the new question.
    system, first_q, first_a, second_q = ollama.received("qwen2.5")[-4:]
    assert system.startswith("Answer the question using only the passages below.")
    assert (first_q, first_a, second_q) == (
        "日本で一番高い山は？",
        "富士山は日本で一番高い山です。[fuji.md]",
        "標高は何メートル？",
    )


def test_chat_chain_search_turns_and_sources(index: RagIndex, llm: ChatOllama) -> None:
    searched: list[str] = []
    spy = RunnableLambda(lambda text: searched.append(text) or text) | index.as_retriever()
    history: list[BaseMessage] = [HumanMessage("a"), AIMessage("x"), HumanMessage("b")]
    chat_chain(spy, llm, search_turns=0).invoke({"question": "c", "history": history})
    chat_chain(spy, llm, search_turns=2).invoke({"question": "c", "history": history})
    chat_chain(spy, llm).invoke({"question": "c"})  # no history at all
    assert searched == ["c", "a b c", "c"]
    result = chat_chain(index.as_retriever(search_kwargs={"k": 2}), llm, with_sources=True).invoke(
        {"question": "中国最长的河流是哪条？", "history": []}
    )
    assert set(result) == {"question", "history", "context", "answer"}
    assert result["context"][0].metadata["source"] == "yangtze.md"
    assert result["answer"].endswith("[yangtze.md]")
    with pytest.raises(ConfigError, match="search_turns must be 0 or more"):
        chat_chain(index.as_retriever(), llm, search_turns=-1)


def test_chat_prompt_is_the_default_prompt_with_a_history() -> None:
    assert set(CHAT_PROMPT.input_variables) == {"context", "question"}
    assert CHAT_PROMPT.optional_variables == ["history"]
    messages = CHAT_PROMPT.format_messages(
        context="[a.md] x", question="q?", history=[HumanMessage("h"), AIMessage("a")]
    )
    assert [m.type for m in messages] == ["system", "human", "ai", "human"]
    assert (
        messages[0].content
        == DEFAULT_PROMPT.format_messages(context="[a.md] x", question="")[0].content
    )
