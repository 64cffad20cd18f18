"""Contract: every behaviour of ollama-api.md sections 1 and 6 that LocalOllama models.

Each test is named after the behaviour and checks it through the official ``ollama`` client
(exact ``ResponseError.error`` / ``status_code`` / ``str()``) or, where the client hides the
wire (content types, HEAD, streamed lines, omitted keys), through raw httpx.

=====================  =====================================================================
Doc section            Test
=====================  =====================================================================
1.1 embed request      test_embed_accepts_a_string_input
                       test_embed_accepts_a_list_and_keeps_input_order
                       test_embed_rejects_other_input_types
                       test_embed_dimensions_keeps_prefix_and_renormalises
                       test_embed_dimensions_out_of_range_is_ignored
                       test_embed_accepts_keep_alive_as_number_or_duration_string
                       test_embed_rejects_malformed_keep_alive
                       test_embed_ignores_null_options_and_unknown_fields
1.1 embed response     test_json_responses_use_gin_content_type
                       test_embed_echoes_model_name_as_sent
                       test_embed_vectors_are_l2_normalised
                       test_embed_reports_durations_and_prompt_eval_count
                       test_embed_empty_input_returns_empty_list_without_counts
                       test_embed_embeds_an_empty_string_inside_a_list
                       test_embed_failure_of_one_input_fails_whole_request
1.2 legacy embeddings  test_legacy_embeddings_returns_one_raw_vector
                       test_legacy_embeddings_empty_prompt_returns_empty_vector
                       test_legacy_embeddings_unknown_model_is_404
                       test_legacy_embeddings_runner_failure_is_500
1.3 tags               test_tags_lists_models_with_tagged_names_and_full_fields
                       test_bare_name_resolves_to_latest_tag
1.4 show               test_show_has_model_info_with_architecture_lengths_and_pooling
                       test_show_has_details_parameters_template_and_modified_at
                       test_show_chat_model_has_completion_capability_and_no_pooling
                       test_show_unknown_model_is_404_with_single_quotes
                       test_show_requires_body_and_model
                       test_show_accepts_legacy_name_field
1.5 health, version    test_root_says_ollama_is_running
                       test_version_reports_a_version_with_current_error_texts
                       test_head_is_accepted_on_root_version_and_tags
                       test_unknown_route_is_plain_text_404
                       test_wrong_method_on_known_route_is_405
1.6 pull               test_pull_streams_status_lines_ending_in_success
                       test_pull_unknown_model_streams_error_line_with_http_200
                       test_pull_without_stream_returns_single_object
                       test_pull_unknown_model_without_stream_is_500
1.7 error table        test_embed_unknown_model_is_404_with_double_quoted_name
                       test_embed_requires_a_json_body
                       test_embed_truncate_false_rejects_over_long_input
                       test_embed_chat_only_model_is_501
                       test_busy_server_answers_503_with_ollama_text
                       (input type: test_embed_rejects_other_input_types)
1.8 context, truncate  test_embed_truncates_head_silently_by_default
                       test_embed_truncate_true_behaves_like_default
                       test_embed_context_limit_is_min_of_num_ctx_and_trained_context
                       test_embed_truncation_impossible_is_400
1.9 keep_alive         test_embed_accepts_keep_alive_as_number_or_duration_string
6   server checklist   every bullet is one of the rows above
=====================  =====================================================================

Not modelled (no test): NaN vectors (1.7), 499 on client disconnect, cloud model references,
reloads on option changes (1.8), eviction (1.9). The chat and generate routes and ``/api/ps``
are pinned by tests/test_local_chat.py.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import ollama
import pytest

from ollama_rag.testing import ChatOnlyModel, HashEmbeddingModel, LocalOllama

TINY_CONTEXT = 16


def models() -> dict[str, Any]:
    return {
        "bge-m3": HashEmbeddingModel(dimension=1024, context_length=8192, seed=1),
        "nomic-embed-text": HashEmbeddingModel(dimension=768, context_length=2048, seed=3),
        "tiny": HashEmbeddingModel(dimension=32, context_length=TINY_CONTEXT, seed=4),
        "llama3.2": ChatOnlyModel(),
    }


@pytest.fixture(scope="module")
def server() -> Iterator[LocalOllama]:
    with LocalOllama(
        models(), pullable={"all-minilm": HashEmbeddingModel(dimension=384, context_length=256)}
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def _reset(server: LocalOllama) -> None:
    server.reset()


@pytest.fixture(scope="module")
def client(server: LocalOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=server.url) as c:
        yield c


@pytest.fixture(scope="module")
def http(server: LocalOllama) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as c:
        yield c


def norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def words(n: int) -> str:
    """A text of exactly ``n`` hash-model tokens plus BOS/EOS (each 'wNNN' word is 1 token)."""
    return " ".join(f"w{i:03d}" for i in range(n))


# ----- 1.1 /api/embed request -----------------------------------------------------------------


def test_embed_accepts_a_string_input(client: ollama.Client) -> None:
    response = client.embed(model="bge-m3", input="hello world")
    assert len(response.embeddings) == 1
    assert len(response.embeddings[0]) == 1024


def test_embed_accepts_a_list_and_keeps_input_order(
    client: ollama.Client, server: LocalOllama
) -> None:
    texts = ["first text", "second", "第三の文"]
    response = client.embed(model="bge-m3", input=texts)
    expected = server.spec("bge-m3").embed(texts)
    assert len(response.embeddings) == 3
    for got, want in zip(response.embeddings, expected, strict=True):
        assert got == pytest.approx(want.tolist(), abs=1e-6)


@pytest.mark.parametrize("bad_input", [5, [1, 2], ["ok", None], {"text": "x"}, True])
def test_embed_rejects_other_input_types(http: httpx.Client, bad_input: object) -> None:
    response = http.post("/api/embed", json={"model": "bge-m3", "input": bad_input})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid input type"}


def test_embed_dimensions_keeps_prefix_and_renormalises(client: ollama.Client) -> None:
    full = client.embed(model="bge-m3", input="matryoshka").embeddings[0]
    cut = client.embed(model="bge-m3", input="matryoshka", dimensions=256).embeddings[0]
    assert len(cut) == 256
    assert norm(cut) == pytest.approx(1.0, abs=1e-5)
    scale = norm(full[:256])
    assert cut == pytest.approx([x / scale for x in full[:256]], abs=1e-6)


@pytest.mark.parametrize("dimensions", [1024, 4096, 0, -5])
def test_embed_dimensions_out_of_range_is_ignored(client: ollama.Client, dimensions: int) -> None:
    response = client.embed(model="bge-m3", input="x", dimensions=dimensions)
    assert len(response.embeddings[0]) == 1024


@pytest.mark.parametrize("keep_alive", ["5m", "1h30m", "0", "-1s", 300, 0, -1, 2.5])
def test_embed_accepts_keep_alive_as_number_or_duration_string(
    client: ollama.Client, keep_alive: str | float
) -> None:
    response = client.embed(model="bge-m3", input="x", keep_alive=keep_alive)
    assert len(response.embeddings) == 1


@pytest.mark.parametrize(
    ("keep_alive", "message"),
    [
        ("5x", 'time: invalid duration "5x"'),
        ("5", 'time: missing unit in duration "5"'),
        (True, "Unsupported type: 'bool'"),
        ([1], "Unsupported type: '[]interface {}'"),
    ],
)
def test_embed_rejects_malformed_keep_alive(
    http: httpx.Client, keep_alive: object, message: str
) -> None:
    body = {"model": "bge-m3", "input": "x", "keep_alive": keep_alive}
    response = http.post("/api/embed", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_embed_ignores_null_options_and_unknown_fields(http: httpx.Client) -> None:
    # langchain-ollama sends all 13 option keys, unset ones as null.
    options = {"num_ctx": None, "temperature": None, "mirostat": None, "stop": None}
    body = {"model": "bge-m3", "input": ["x"], "options": options, "future_field": {"a": 1}}
    response = http.post("/api/embed", json=body)
    assert response.status_code == 200
    assert len(response.json()["embeddings"]) == 1


# ----- 1.1 /api/embed response -------------------------------------------------------------


def test_json_responses_use_gin_content_type(http: httpx.Client) -> None:
    for response in (
        http.post("/api/embed", json={"model": "bge-m3", "input": "x"}),
        http.post("/api/embed", json={"model": "nope", "input": "x"}),
        http.get("/api/tags"),
        http.get("/api/version"),
    ):
        assert response.headers["content-type"] == "application/json; charset=utf-8"
        assert int(response.headers["content-length"]) == len(response.content)


def test_embed_echoes_model_name_as_sent(client: ollama.Client) -> None:
    assert client.embed(model="bge-m3", input="x").model == "bge-m3"
    assert client.embed(model="bge-m3:latest", input="x").model == "bge-m3:latest"
    assert client.embed(model="BGE-M3", input="x").model == "BGE-M3"


def test_embed_vectors_are_l2_normalised(client: ollama.Client) -> None:
    texts = ["short", "a much longer text " * 20, "日本語のテキスト", "!!!", ""]
    for vector in client.embed(model="nomic-embed-text", input=texts).embeddings:
        assert norm(vector) == pytest.approx(1.0, abs=1e-5)


def test_embed_reports_durations_and_prompt_eval_count(
    client: ollama.Client, server: LocalOllama
) -> None:
    texts = ["hello world", "東京"]
    response = client.embed(model="bge-m3", input=texts)
    spec = server.spec("bge-m3")
    assert response.prompt_eval_count == sum(spec.count_tokens(t) for t in texts) == 10
    assert response.total_duration is not None
    assert response.load_duration is not None
    assert 0 < response.load_duration <= response.total_duration < 10**10  # ns, not s


@pytest.mark.parametrize("body", [{"input": ""}, {"input": []}, {}, {"input": None}])
def test_embed_empty_input_returns_empty_list_without_counts(
    http: httpx.Client, server: LocalOllama, body: dict[str, Any]
) -> None:
    response = http.post("/api/embed", json={"model": "bge-m3", **body})
    assert response.status_code == 200
    assert response.json() == {"model": "bge-m3", "embeddings": []}  # omitempty: no counts
    assert server.request_count("bge-m3") == 1  # it still reached (and "loaded") the model


def test_embed_embeds_an_empty_string_inside_a_list(client: ollama.Client) -> None:
    response = client.embed(model="bge-m3", input=["", "x"])
    assert len(response.embeddings) == 2
    assert norm(response.embeddings[0]) == pytest.approx(1.0, abs=1e-5)
    assert response.prompt_eval_count == 2 + 3


def test_embed_failure_of_one_input_fails_whole_request(http: httpx.Client) -> None:
    body = {"model": "tiny", "input": ["short", words(40)], "truncate": False}
    response = http.post("/api/embed", json=body)
    assert response.status_code == 400
    assert "embeddings" not in response.json()


# ----- 1.2 legacy /api/embeddings ----------------------------------------------------------


def test_legacy_embeddings_returns_one_raw_vector(client: ollama.Client) -> None:
    legacy = client.embeddings(model="bge-m3", prompt="hello world").embedding
    current = client.embed(model="bge-m3", input="hello world").embeddings[0]
    assert len(legacy) == 1024
    assert norm(legacy) != pytest.approx(1.0, abs=1e-3)  # not normalised by the handler
    assert [x / norm(legacy) for x in legacy] == pytest.approx(current, abs=1e-5)


def test_legacy_embeddings_empty_prompt_returns_empty_vector(http: httpx.Client) -> None:
    response = http.post("/api/embeddings", json={"model": "bge-m3", "prompt": ""})
    assert response.status_code == 200
    assert response.json() == {"embedding": []}


def test_legacy_embeddings_unknown_model_is_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.embeddings(model="nope", prompt="x")
    assert info.value.status_code == 404
    assert info.value.error == 'model "nope" not found, try pulling it first'


def test_legacy_embeddings_runner_failure_is_500(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.embeddings(model="llama3.2", prompt="x")
    assert (info.value.status_code, info.value.error) == (
        500,
        "this model does not support embeddings",
    )


# ----- 1.3 /api/tags -----------------------------------------------------------------------


def test_tags_lists_models_with_tagged_names_and_full_fields(
    http: httpx.Client, client: ollama.Client, server: LocalOllama
) -> None:
    entries = http.get("/api/tags").json()["models"]
    by_name = {entry["name"]: entry for entry in entries}
    assert set(by_name) == {
        "bge-m3:latest",
        "nomic-embed-text:latest",
        "tiny:latest",
        "llama3.2:latest",
    }
    bge = by_name["bge-m3:latest"]
    assert bge["model"] == "bge-m3:latest"
    assert re.fullmatch(r"[0-9a-f]{64}", bge["digest"])
    assert bge["digest"] == server.digest("bge-m3")
    assert bge["size"] > 0
    assert bge["details"] == {
        "parent_model": "",
        "format": "gguf",
        "family": "bert",
        "families": ["bert"],
        "parameter_size": bge["details"]["parameter_size"],
        "quantization_level": "F16",
        "context_length": 8192,
        "embedding_length": 1024,
    }
    assert bge["capabilities"] == ["embedding"]
    assert by_name["llama3.2:latest"]["capabilities"] == ["completion"]
    # The official client validates the same payload.
    listed = {m.model for m in client.list().models}
    assert listed == set(by_name)


def test_bare_name_resolves_to_latest_tag(client: ollama.Client, server: LocalOllama) -> None:
    for name in ("bge-m3", "bge-m3:latest", "library/bge-m3", "registry.ollama.ai/library/bge-m3"):
        assert len(client.embed(model=name, input="x").embeddings[0]) == 1024
    assert server.request_count("bge-m3:latest") == 4


# ----- 1.4 /api/show -----------------------------------------------------------------------


def test_show_has_model_info_with_architecture_lengths_and_pooling(client: ollama.Client) -> None:
    shown = client.show("nomic-embed-text")
    info = shown.modelinfo
    assert info is not None
    arch = info["general.architecture"]
    assert arch == "bert"
    assert info[f"{arch}.embedding_length"] == 768
    assert info[f"{arch}.context_length"] == 2048
    assert f"{arch}.pooling_type" in info
    assert shown.capabilities == ["embedding"]


def test_show_has_details_parameters_template_and_modified_at(http: httpx.Client) -> None:
    body = http.post("/api/show", json={"model": "bge-m3"}).json()
    assert body["details"]["format"] == "gguf"
    assert body["details"]["family"] == "bert"
    assert body["details"]["parameter_size"]
    assert body["details"]["quantization_level"] == "F16"
    assert re.fullmatch(r"num_ctx\s+8192", body["parameters"])
    assert body["template"] == "{{ .Prompt }}"
    assert body["modified_at"].endswith("Z")
    assert body["modelfile"].startswith('# Modelfile generated by "ollama show"')


def test_show_chat_model_has_completion_capability_and_no_pooling(client: ollama.Client) -> None:
    shown = client.show("llama3.2")
    info = shown.modelinfo
    assert info is not None
    assert shown.capabilities == ["completion"]
    assert info["general.architecture"] == "llama"
    assert "llama.pooling_type" not in info
    assert info["llama.embedding_length"] == 3072  # chat models report a hidden size too


def test_show_unknown_model_is_404_with_single_quotes(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.show("nope")
    assert str(info.value) == "model 'nope' not found (status code: 404)"


def test_show_requires_body_and_model(http: httpx.Client) -> None:
    empty = http.post("/api/show")
    assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})
    nameless = http.post("/api/show", json={})
    assert (nameless.status_code, nameless.json()) == (400, {"error": "model is required"})


def test_show_accepts_legacy_name_field(http: httpx.Client) -> None:
    response = http.post("/api/show", json={"name": "bge-m3"})
    assert response.status_code == 200
    assert response.json()["model_info"]["bert.embedding_length"] == 1024


# ----- 1.5 health, version, routing --------------------------------------------------------


def test_root_says_ollama_is_running(http: httpx.Client) -> None:
    response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Ollama is running"


def test_version_reports_a_version_with_current_error_texts(http: httpx.Client) -> None:
    version = http.get("/api/version").json()["version"]
    parts = tuple(int(p) for p in version.split("."))
    # "the input length exceeds the context length" is the v0.13.3+ text, and 0.13.5-0.15.x
    # ignored truncate:true (ollama#14186), which this server honours.
    assert parts >= (0, 16, 0)


@pytest.mark.parametrize("path", ["/", "/api/version", "/api/tags"])
def test_head_is_accepted_on_root_version_and_tags(http: httpx.Client, path: str) -> None:
    head = http.head(path)
    get = http.get(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]


def test_unknown_route_is_plain_text_404(http: httpx.Client, server: LocalOllama) -> None:
    response = http.post("/api/nope", json={})
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "404 page not found"
    # A host with a stray path (OLLAMA_HOST=http://host:port/v0) meets the same 404.
    with (
        ollama.Client(host=f"{server.url}/v0") as misrouted,
        pytest.raises(ollama.ResponseError) as info,
    ):
        misrouted.list()
    assert (info.value.error, info.value.status_code) == ("404 page not found", 404)


@pytest.mark.parametrize(("method", "path"), [("GET", "/api/embed"), ("POST", "/api/tags")])
def test_wrong_method_on_known_route_is_405(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert response.status_code == 405
    assert response.text == "405 method not allowed"


# ----- 1.6 /api/pull -----------------------------------------------------------------------


def pull_lines(http: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, list[Any]]:
    with http.stream("POST", "/api/pull", json=body) as response:
        lines = [json.loads(line) for line in response.iter_lines() if line]
    return response, lines


def test_pull_streams_status_lines_ending_in_success(http: httpx.Client) -> None:
    response, lines = pull_lines(http, {"model": "bge-m3"})
    assert response.headers["content-type"] == "application/x-ndjson"
    statuses = [line["status"] for line in lines]
    assert statuses[0] == "pulling manifest"
    assert statuses[-4:] == [
        "verifying sha256 digest",
        "writing manifest",
        "removing any unused layers",
        "success",
    ]
    layers = [line for line in lines if line["status"].startswith("pulling ")][1:]
    assert layers
    for line in layers:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", line["digest"])
        assert line["status"] == f"pulling {line['digest'][7:19]}"
        assert line["total"] >= line.get("completed", 0)
    assert "completed" not in layers[0]  # Go omits a zero "completed"


def test_pull_unknown_model_streams_error_line_with_http_200(
    http: httpx.Client, client: ollama.Client
) -> None:
    response, lines = pull_lines(http, {"model": "no-such-model"})
    assert response.status_code == 200
    assert lines == [
        {"status": "pulling manifest"},
        {"error": "pull model manifest: file does not exist"},
    ]
    with pytest.raises(ollama.ResponseError) as info:
        list(client.pull("no-such-model", stream=True))
    assert (info.value.error, info.value.status_code) == (
        "pull model manifest: file does not exist",
        -1,
    )


def test_pull_without_stream_returns_single_object(client: ollama.Client) -> None:
    assert client.pull("bge-m3").status == "success"


def test_pull_unknown_model_without_stream_is_500(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.pull("no-such-model")
    assert str(info.value) == "pull model manifest: file does not exist (status code: 500)"


# ----- 1.7 error table ---------------------------------------------------------------------


def test_embed_unknown_model_is_404_with_double_quoted_name(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="nomic-embed-text:v1.5", input="x")
    assert info.value.status_code == 404
    assert info.value.error == 'model "nomic-embed-text:v1.5" not found, try pulling it first'
    assert str(info.value) == (
        'model "nomic-embed-text:v1.5" not found, try pulling it first (status code: 404)'
    )


def test_embed_requires_a_json_body(http: httpx.Client) -> None:
    missing = http.post("/api/embed")
    assert (missing.status_code, missing.json()) == (400, {"error": "missing request body"})
    broken = http.post("/api/embed", content=b'{"model": ')
    assert (broken.status_code, broken.json()) == (400, {"error": "unexpected EOF"})
    wrong = http.post("/api/embed", json={"model": "bge-m3", "truncate": "yes"})
    assert wrong.status_code == 400
    assert wrong.json()["error"] == (
        "json: cannot unmarshal string into Go struct field EmbedRequest.truncate of type bool"
    )


def test_embed_truncate_false_rejects_over_long_input(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="tiny", input=words(TINY_CONTEXT), truncate=False)
    assert str(info.value) == "the input length exceeds the context length (status code: 400)"
    fits = client.embed(model="tiny", input=words(TINY_CONTEXT - 2), truncate=False)
    assert fits.prompt_eval_count == TINY_CONTEXT


def test_embed_chat_only_model_is_501(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="llama3.2", input="x")
    assert str(info.value) == "this model does not support embeddings (status code: 501)"


def test_busy_server_answers_503_with_ollama_text(
    client: ollama.Client, server: LocalOllama
) -> None:
    server.fail_next(1, status=503)
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="bge-m3", input="x")
    assert info.value.status_code == 503
    assert info.value.error == "server busy, please try again.  maximum pending requests exceeded"


# ----- 1.8 context length and truncation ---------------------------------------------------


def test_embed_truncates_head_silently_by_default(
    client: ollama.Client, server: LocalOllama
) -> None:
    text = words(100)
    response = client.embed(model="tiny", input=text)
    assert response.prompt_eval_count == TINY_CONTEXT
    spec = server.spec("tiny")
    head = spec.truncate(text, TINY_CONTEXT)
    assert text.startswith(head)
    assert spec.count_tokens(head) == TINY_CONTEXT
    assert response.embeddings[0] == pytest.approx(spec.embed([head])[0].tolist(), abs=1e-6)
    assert server.received("tiny") == [text]  # recorded before truncation


def test_embed_truncate_true_behaves_like_default(client: ollama.Client) -> None:
    text = words(50)
    explicit = client.embed(model="tiny", input=text, truncate=True)
    default = client.embed(model="tiny", input=text)
    assert explicit.embeddings == default.embeddings
    assert explicit.prompt_eval_count == default.prompt_eval_count == TINY_CONTEXT


def test_embed_context_limit_is_min_of_num_ctx_and_trained_context(client: ollama.Client) -> None:
    text = words(100)
    assert client.embed(model="tiny", input=text, options={"num_ctx": 8}).prompt_eval_count == 8
    bigger = client.embed(model="tiny", input=text, options={"num_ctx": 4096})
    assert bigger.prompt_eval_count == TINY_CONTEXT  # capped by the trained context


def test_embed_truncation_impossible_is_400(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        client.embed(model="tiny", input="some words here", options={"num_ctx": 2})
    assert str(info.value) == (
        "input after truncation exceeds maximum context length (status code: 400)"
    )
