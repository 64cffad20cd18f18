"""LocalOllama's chat and generate routes, through the unmodified clients and raw HTTP.

What Ollama 0.20 does (``server/routes.go`` ChatHandler/GenerateHandler, ``api/types.go``) is
pinned here: NDJSON framing, the records and their metrics, load/unload, keep_alive and
``/api/ps``, the error texts; and the answers of :class:`ExtractiveChatModel`, the test double.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import ollama
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_ollama import ChatOllama

from ollama_rag.testing import NO_ANSWER, ExtractiveChatModel, LocalOllama

PASSAGES = (
    "Answer from the passages only.\n\n"
    "[fuji.md] 富士山は日本で一番高い山です。標高は3776メートルです。\n\n"
    "[tokyo.md] 東京は日本の首都です。 Tokyo is the capital of Japan.\n\n"
    "[yangtze.md] 长江是中国最长的河流。"
)
FUJI = "富士山は日本で一番高い山です。[fuji.md]"


def ask(question: str, passages: str = PASSAGES) -> list[dict[str, str]]:
    return [{"role": "system", "content": passages}, {"role": "user", "content": question}]


@pytest.fixture
def server(ollama: LocalOllama) -> LocalOllama:
    """The shared server of conftest.py (qwen2.5 is an ExtractiveChatModel, bge-m3 a hash model)."""
    return ollama


@pytest.fixture
def client(server: LocalOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=server.url) as c:
        yield c


def post(server: LocalOllama, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(server.url + path, content=content)


# ----- the test double's answers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("日本で一番高い山は何ですか？", FUJI),
        # The passage names 富士山, so its height sentence is quoted with it, one citation.
        ("富士山の標高は？", "富士山は日本で一番高い山です。標高は3776メートルです。[fuji.md]"),
        ("What is the capital of Japan?", "Tokyo is the capital of Japan. [tokyo.md]"),
        ("中国最长的河流是哪条？", "长江是中国最长的河流。[yangtze.md]"),
        ("What is the boiling point of mercury?", NO_ANSWER),
        ("火星の重力は？", NO_ANSWER),
        # The instructions are not a marked passage, so they are never quoted.
        ("Answer from the passages only?", NO_ANSWER),
    ],
)
def test_answers_quote_the_best_sentence_with_its_markers(question: str, answer: str) -> None:
    assert ExtractiveChatModel().reply(ask(question)) == answer


@pytest.mark.parametrize(
    ("prompt", "answer"),
    [
        # One user message: the labelled line is the question, even with a line after it.
        (
            "Context:\nTokyo is the capital of Japan. Paris is in France.\n"
            "Question: What is the capital of Japan?\nAnswer:",
            "Tokyo is the capital of Japan.",
        ),
        # No label: the last line ending in a question mark.
        (
            "[a] 北京是中国的首都。\n[b] 上海很大。\n中国的首都是哪里？\n请用中文回答。",
            "北京是中国的首都。[a]",
        ),
        # A marker after a sentence cites that sentence; the passage's own marker is added.
        (
            "[1] 서울은 한국의 수도입니다. [s.md]\n질문: 한국의 수도는 어디입니까?",
            "서울은 한국의 수도입니다. [s.md] [1]",
        ),
    ],
)
def test_question_and_context_come_from_one_user_message(prompt: str, answer: str) -> None:
    reply = ExtractiveChatModel().reply([{"role": "user", "content": prompt}])
    assert reply == answer


def test_a_sentence_repeated_by_overlapping_chunks_is_quoted_once_with_both_markers() -> None:
    passages = "[a.md#1] 富士山は日本で一番高い山です。\n\n[a.md#2] 富士山は日本で一番高い山です。"
    assert ExtractiveChatModel().reply(ask("日本で一番高い山は？", passages)) == (
        "富士山は日本で一番高い山です。[a.md#1] [a.md#2]"
    )


def test_assistant_turns_are_not_evidence_and_roles_are_case_insensitive() -> None:
    messages = [
        {"role": "ASSISTANT", "content": "[x] 富士山は日本で一番高い山です。"},
        {"role": "USER", "content": "日本で一番高い山は？"},
    ]
    assert ExtractiveChatModel().reply(messages) == NO_ANSWER


def test_knobs_and_their_validation() -> None:
    two = "[a] Tokyo is the capital of Japan.\n[b] Tokyo is the capital city of Japan."
    assert ExtractiveChatModel(max_sentences=1).reply(ask("capital of Japan?", two)) == (
        "Tokyo is the capital of Japan. [a]"
    )
    assert ExtractiveChatModel(min_score=1.0).reply(ask("富士山の標高は？")) == NO_ANSWER
    assert ExtractiveChatModel(no_answer="不明").reply(ask("火星は？")) == "不明"
    with pytest.raises(ValueError, match="min_score"):
        ExtractiveChatModel(min_score=0)
    with pytest.raises(ValueError, match="max_sentences"):
        ExtractiveChatModel(max_sentences=0)


def test_tokens_join_to_the_text_and_count_special_tokens_once() -> None:
    spec = ExtractiveChatModel()
    assert spec.pieces("Tokyo is 東京。") == ["Toky", "o", " is", " 東", "京", "。"]
    assert "".join(spec.pieces(FUJI + "  ")) == FUJI + "  "
    assert spec.count_tokens("<|eot_id|>") == 3  # the special token, BOS and EOS
    rendered = spec.render([{"role": "user", "content": "hi"}])
    assert rendered == (
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


# ----- the official clients ------------------------------------------------------------------


def test_client_chat_answers_with_ollamas_metrics(
    client: ollama.Client, server: LocalOllama
) -> None:
    messages = ask("日本で一番高い山は？")
    response = client.chat(model="qwen2.5", messages=messages)
    spec = ExtractiveChatModel()
    assert response.message.role == "assistant"
    assert response.message.content == FUJI
    assert (response.done, response.done_reason, response.model) == (True, "stop", "qwen2.5")
    assert response.eval_count == len(spec.pieces(FUJI))
    assert response.prompt_eval_count == spec.count_tokens(spec.render(messages))
    durations = [
        response.total_duration,
        response.load_duration,
        response.prompt_eval_duration,
        response.eval_duration,
    ]
    assert all(d is not None and d > 0 for d in durations)
    assert response.total_duration >= response.load_duration  # type: ignore[operator]
    assert server.request_count("qwen2.5") == 1
    assert server.received("qwen2.5") == [PASSAGES, "日本で一番高い山は？"]


def test_client_chat_streams_one_token_per_record(client: ollama.Client) -> None:
    parts = list(client.chat(model="qwen2.5", messages=ask("日本で一番高い山は？"), stream=True))
    assert len(parts) == len(ExtractiveChatModel().pieces(FUJI)) + 1
    assert "".join(p.message.content or "" for p in parts) == FUJI
    assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
    assert parts[-1].message.content == ""
    assert parts[-1].done_reason == "stop"
    assert parts[0].eval_count is None  # metrics come with the last record only
    assert parts[-1].eval_count == len(parts) - 1


def test_async_client_streams(server: LocalOllama) -> None:
    async def run() -> list[str]:
        stream = await ollama.AsyncClient(host=server.url).chat(
            model="qwen2.5", messages=ask("What is the capital of Japan?"), stream=True
        )
        return [part.message.content or "" async for part in stream]

    pieces = asyncio.run(run())
    assert len(pieces) > 5
    assert "".join(pieces) == "Tokyo is the capital of Japan. [tokyo.md]"


def test_client_generate_returns_response_and_context(client: ollama.Client) -> None:
    spec = ExtractiveChatModel()
    first = client.generate(model="qwen2.5", prompt=PASSAGES + "\n日本で一番高い山は？")
    assert first.response == FUJI
    assert first.done_reason == "stop"
    prompt = spec.render([{"role": "user", "content": PASSAGES + "\n日本で一番高い山は？"}])
    assert first.prompt_eval_count == spec.count_tokens(prompt)
    assert first.context == spec.token_ids(prompt + FUJI)
    # A context sent back is part of the prompt, as Ollama prepends its detokenised text.
    assert first.context is not None
    second = client.generate(model="qwen2.5", prompt="火星は？", context=first.context)
    assert second.response == NO_ANSWER
    again = spec.render([{"role": "user", "content": "火星は？"}])
    assert second.prompt_eval_count == len(first.context) + spec.count_tokens(again)
    assert second.context is not None
    assert second.context[: len(first.context)] == first.context
    raw = client.generate(model="qwen2.5", prompt="x", raw=True)
    assert raw.context is None  # raw answers carry no context


def test_client_generate_streams_and_takes_a_system_prompt(client: ollama.Client) -> None:
    parts = list(
        client.generate(model="qwen2.5", system=PASSAGES, prompt="富士山の標高は？", stream=True)
    )
    assert len(parts) > 10
    assert "".join(p.response or "" for p in parts).endswith("3776メートルです。[fuji.md]")
    assert parts[-1].done
    assert parts[-1].context


def test_chat_ollama_invoke_stream_ainvoke_astream(server: LocalOllama) -> None:
    llm = ChatOllama(model="qwen2.5", base_url=server.url, validate_model_on_init=True)
    messages = [("system", PASSAGES), ("human", "日本で一番高い山は？")]
    message = llm.invoke(messages)
    assert message.content == FUJI
    assert message.response_metadata["done_reason"] == "stop"
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] > 5
    chunks = list(llm.stream(messages))
    assert len(chunks) > 5
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == FUJI

    async def run() -> tuple[str, list[str]]:
        answer = await llm.ainvoke([("human", PASSAGES + "\n火星の重力は？")])
        pieces = [str(c.content) async for c in llm.astream(messages)]
        return str(answer.content), pieces

    answer, pieces = asyncio.run(run())
    assert answer == NO_ANSWER
    assert len(pieces) > 5
    assert "".join(pieces) == FUJI


def test_chat_ollama_options_reach_the_model(server: LocalOllama) -> None:
    short = ChatOllama(model="qwen2.5", base_url=server.url, num_predict=3)
    message = short.invoke([("system", PASSAGES), ("human", "What is the capital of Japan?")])
    assert message.content == "Tokyo is"
    assert message.response_metadata["done_reason"] == "length"
    stopped = ChatOllama(model="qwen2.5", base_url=server.url, stop=["。"])
    assert stopped.invoke([("system", PASSAGES), ("human", "日本で一番高い山は？")]).content == (
        "富士山は日本で一番高い山です"
    )
    as_json = ChatOllama(model="qwen2.5", base_url=server.url, format="json")
    reply = as_json.invoke([("system", PASSAGES), ("human", "日本で一番高い山は？")])
    assert json.loads(str(reply.content)) == {"answer": FUJI}


# ----- the wire --------------------------------------------------------------------------------


def test_stream_is_ndjson_with_go_field_order(server: LocalOllama) -> None:
    with httpx.stream(
        "POST", server.url + "/api/chat", json={"model": "qwen2.5", "messages": ask("山？")}
    ) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["transfer-encoding"] == "chunked"
        raw = b"".join(response.iter_raw())
    assert raw.endswith(b"\n")
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert list(lines[0]) == ["model", "created_at", "message", "done"]
    assert lines[0]["message"]["role"] == "assistant"
    assert list(lines[-1]) == [
        "model",
        "created_at",
        "message",
        "done",
        "done_reason",
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ]
    assert lines[-1]["created_at"].endswith("Z")


def test_generate_final_record_has_context_before_the_metrics(server: LocalOllama) -> None:
    response = post(
        server, "/api/generate", {"model": "qwen2.5", "prompt": "山？", "stream": False}
    )
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    record = response.json()
    assert list(record)[:6] == ["model", "created_at", "response", "done", "done_reason", "context"]
    assert record["response"] == NO_ANSWER
    assert record["done"] is True


def test_stream_false_is_one_object_with_the_whole_answer(server: LocalOllama) -> None:
    body = {"model": "qwen2.5", "messages": ask("日本で一番高い山は？"), "stream": False}
    response = post(server, "/api/chat", body)
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.json()["message"] == {"role": "assistant", "content": FUJI}


def test_unknown_fields_are_ignored_and_think_false_accepted(server: LocalOllama) -> None:
    body = {
        "model": "qwen2.5",
        "messages": ask("日本で一番高い山は？"),
        "stream": False,
        "think": False,
        "truncate": True,
        "options": {"temperature": 0, "seed": None},
        "whatever": [1, 2],
    }
    assert post(server, "/api/chat", body).json()["message"]["content"] == FUJI


@pytest.mark.parametrize("route", ["/api/chat", "/api/generate"])
def test_an_empty_request_loads_and_keep_alive_zero_unloads(
    route: str, server: LocalOllama
) -> None:
    text = "message" if route == "/api/chat" else "response"
    loaded = post(server, route, {"model": "qwen2.5"})
    assert loaded.status_code == 200
    record = loaded.json()
    assert (record["done"], record["done_reason"]) == (True, "load")
    assert text in record
    assert "eval_count" not in record
    unloaded = post(server, route, {"model": "qwen2.5", "keep_alive": 0}).json()
    assert unloaded["done_reason"] == "unload"


CHAT, GENERATE, Q = "/api/chat", "/api/generate", "qwen2.5"
USER = [{"role": "user", "content": "x"}]
UNMARSHAL = "json: cannot unmarshal"
FULL_NAME = "registry.ollama.ai/library/qwen2.5:latest"
THINK_VALUES = '(must be "high", "medium", "low", true, or false)'
RAW = "raw mode does not support template, system, or context"
INVALID_XML = 'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'
MESSAGES = "Go struct field ChatRequest.messages of type []api.Message"
CONTENT = "Go struct field Alias.content of type string"
STREAM = "Go struct field ChatRequest.stream of type bool"
CONTEXT_ITEM = "Go struct field GenerateRequest.context of type int"
ERRORS = [
    (CHAT, b"", 400, "missing request body"),
    (CHAT, b"{", 400, "unexpected EOF"),
    (CHAT, {"messages": []}, 400, "model is required"),
    (GENERATE, {"prompt": "x"}, 404, "model '' not found"),
    (CHAT, {"model": "llama3"}, 404, "model 'llama3' not found"),
    (GENERATE, {"model": "llama3", "prompt": "x"}, 404, "model 'llama3' not found"),
    (CHAT, {"model": "bge-m3", "messages": []}, 400, '"bge-m3" does not support chat'),
    (GENERATE, {"model": "bge-m3"}, 400, '"bge-m3" does not support generate'),
    (CHAT, {"model": Q, "think": "high"}, 400, '"qwen2.5" does not support thinking'),
    (CHAT, {"model": Q, "think": "max"}, 400, f'invalid think value: "max" {THINK_VALUES}'),
    (CHAT, {"model": Q, "tools": [{}], "messages": []}, 400, f"{FULL_NAME} does not support tools"),
    (
        GENERATE,
        {"model": Q, "prompt": "f(", "suffix": ")"},
        400,
        f"{FULL_NAME} does not support insert",
    ),
    (GENERATE, {"model": Q, "prompt": "x", "raw": True, "system": "s"}, 400, RAW),
    (CHAT, {"model": Q, "keep_alive": "soon"}, 400, 'time: invalid duration "soon"'),
    (CHAT, {"model": Q, "top_logprobs": 21}, 400, "top_logprobs must be between 0 and 20"),
    (CHAT, {"model": Q, "format": "xml", "messages": USER}, 500, INVALID_XML),
    (CHAT, {"model": Q, "messages": "hi"}, 400, f"{UNMARSHAL} string into {MESSAGES}"),
    (CHAT, {"model": Q, "messages": [{"content": 1}]}, 400, f"{UNMARSHAL} number into {CONTENT}"),
    (CHAT, {"model": Q, "stream": "yes"}, 400, f"{UNMARSHAL} string into {STREAM}"),
    (GENERATE, {"model": Q, "context": ["a"]}, 400, f"{UNMARSHAL} string into {CONTEXT_ITEM}"),
]


@pytest.mark.parametrize(("route", "body", "status", "error"), ERRORS)
def test_errors_are_ollamas(
    server: LocalOllama, route: str, body: Any, status: int, error: str
) -> None:
    response = post(server, route, body)
    assert (response.status_code, response.json()) == (status, {"error": error})
    assert response.headers["content-type"] == "application/json; charset=utf-8"


def test_the_client_raises_them_like_ollamas(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="llama3", messages=[{"role": "user", "content": "x"}])
    assert str(info.value) == "model 'llama3' not found (status code: 404)"
    with pytest.raises(ollama.ResponseError) as info:
        list(client.generate(model="bge-m3", prompt="x", stream=True))
    assert (info.value.status_code, info.value.error) == (400, '"bge-m3" does not support generate')


def test_a_schema_format_fills_its_first_string_property(server: LocalOllama) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "text": {"type": "string"}},
    }
    body = {"model": "qwen2.5", "messages": ask("日本で一番高い山は？"), "format": schema}
    lines = post(server, "/api/chat", body).text.splitlines()
    content = "".join(json.loads(line)["message"]["content"] for line in lines)
    assert json.loads(content) == {"text": FUJI}


# ----- hooks: counts, failures, delays, keep_alive -------------------------------------------


def test_failures_and_counts_apply_to_chat(fresh_ollama: LocalOllama) -> None:
    server = fresh_ollama
    with ollama.Client(host=server.url) as client:
        server.fail_next(1, 503)
        with pytest.raises(ollama.ResponseError) as info:
            client.chat(model="qwen2.5", messages=ask("山？"))
        assert info.value.status_code == 503
        server.fail_next(1, "drop")
        with pytest.raises(httpx.RemoteProtocolError):
            client.generate(model="qwen2.5", prompt="山？")
        assert client.chat(model="qwen2.5", messages=ask("山？")).done
    assert server.request_count("qwen2.5") == 3
    assert server.received("qwen2.5")[-1] == "山？"


def test_a_delay_holds_chat_requests_too(fresh_ollama: LocalOllama) -> None:
    server = fresh_ollama
    server.set_delay(per_request=0.2)
    started = time.monotonic()
    ollama.Client(host=server.url).chat(model="qwen2.5", messages=ask("山？"))
    assert time.monotonic() - started >= 0.2
    assert server.busy_seconds >= 0.2


def test_ps_lists_models_loaded_side_by_side_until_keep_alive_ends(
    fresh_ollama: LocalOllama,
) -> None:
    with ollama.Client(host=fresh_ollama.url) as client:
        assert client.ps().models == []
        client.embed(model="bge-m3", input="x", keep_alive=-1)
        client.chat(model="qwen2.5", messages=ask("山？"), keep_alive="10m")
        models = client.ps().models
        assert [m.model for m in models] == ["bge-m3:latest", "qwen2.5:latest"]  # longest first
        now = datetime.now(timezone.utc)
        assert models[0].expires_at is not None
        assert models[0].expires_at.year > now.year + 200
        remaining = models[1].expires_at - now  # type: ignore[operator]
        assert timedelta(minutes=9) < remaining <= timedelta(minutes=10)
        assert models[1].details is not None
        assert models[1].details.family == "llama"
        client.chat(model="qwen2.5", messages=[], keep_alive=0)  # unload
        client.embed(model="bge-m3", input="x", keep_alive=0)  # unloaded after the request
        assert client.ps().models == []
        client.generate(model="qwen2.5")  # load with the default 5m
        assert [m.model for m in client.ps().models] == ["qwen2.5:latest"]


def test_tags_and_show_report_capabilities(client: ollama.Client) -> None:
    assert {"qwen2.5:latest", "bge-m3:latest"} <= {m.model for m in client.list().models}
    assert client.show("qwen2.5").capabilities == ["completion"]
    assert client.show("bge-m3").capabilities == ["embedding"]


def test_wire_doctests() -> None:
    import doctest

    from ollama_rag.testing import _wire

    assert doctest.testmod(_wire).failed == 0
