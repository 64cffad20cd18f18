"""The model registry: lookups by name/tag/namespace, every entry's sanity, language helpers.

The registry is checked against the reference table (values spelled out below), against the
docs table in docs/models.md, and against a real LocalOllama serving the stand-ins.
"""

from __future__ import annotations

import re
from pathlib import Path

import ollama
import pytest

from ollama_rag.errors import ConfigError
from ollama_rag.models import (
    KNOWN_MODELS,
    MULTILINGUAL,
    KnownModel,
    is_english_only,
    known_model,
    recommended_model,
)
from ollama_rag.ollama import probe_model
from ollama_rag.testing import LocalOllama

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"
QWEN3_QUERY = (
    "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery:"
)


@pytest.mark.parametrize(
    ("name", "entry", "dimension"),
    [
        ("bge-m3", "bge-m3", 1024),
        ("bge-m3:latest", "bge-m3", 1024),
        ("bge-m3:567m-fp16", "bge-m3", 1024),
        ("BGE-M3:Latest", "bge-m3", 1024),
        (" bge-m3 ", "bge-m3", 1024),
        ("library/bge-m3", "bge-m3", 1024),
        ("registry.ollama.ai/library/bge-m3:latest", "bge-m3", 1024),
        ("nomic-embed-text:v1.5", "nomic-embed-text", 768),
        ("nomic-embed-text:137m-v1.5-fp16", "nomic-embed-text", 768),
        ("mxbai-embed-large:335m", "mxbai-embed-large", 1024),
        ("all-minilm", "all-minilm", 384),
        ("all-minilm:33m-l12-v2-fp16", "all-minilm:33m", 384),
        ("all-minilm:l12-v2", "all-minilm:33m", 384),
        ("snowflake-arctic-embed", "snowflake-arctic-embed", 1024),
        ("snowflake-arctic-embed:22m", "snowflake-arctic-embed:22m", 384),
        ("snowflake-arctic-embed:xs", "snowflake-arctic-embed:22m", 384),
        ("snowflake-arctic-embed:33m", "snowflake-arctic-embed:33m", 384),
        ("snowflake-arctic-embed:m", "snowflake-arctic-embed:110m", 768),
        ("snowflake-arctic-embed:m-long", "snowflake-arctic-embed:137m", 768),
        ("snowflake-arctic-embed:137m-m-long-fp16", "snowflake-arctic-embed:137m", 768),
        ("snowflake-arctic-embed:335m-l-fp16", "snowflake-arctic-embed", 1024),
        ("snowflake-arctic-embed2:568m", "snowflake-arctic-embed2", 1024),
        ("granite-embedding:30m-en", "granite-embedding", 384),
        ("granite-embedding:278m-fp16", "granite-embedding:278m", 768),
        ("qwen3-embedding:0.6b", "qwen3-embedding:0.6b", 1024),
        ("qwen3-embedding:0.6b-q8_0", "qwen3-embedding:0.6b", 1024),
        ("qwen3-embedding:4b", "qwen3-embedding:4b", 2560),
        ("qwen3-embedding:8b-fp16", "qwen3-embedding", 4096),
        ("qwen3-embedding", "qwen3-embedding", 4096),
        ("embeddinggemma:300m-qat-q4_0", "embeddinggemma", 768),
    ],
)
def test_known_model_resolves_tags_and_namespaces(name: str, entry: str, dimension: int) -> None:
    found = known_model(name)
    assert found is KNOWN_MODELS[entry]
    assert found.dimension == dimension


@pytest.mark.parametrize(
    "name",
    [
        "llama3.2",
        "qwen2.5:7b",
        "someone/bge-m3",  # a user's upload: its weights can be anything
        "hf.co/BAAI/bge-m3-gguf:Q8_0",
        "registry.example.com/library/bge-m3",
        "qwen3-embedding:16b",  # an unknown size of a multi-size family is not guessed
        "snowflake-arctic-embed:fp16",
        "",
        "   ",
        "bge m3",
    ],
)
def test_unknown_names_are_not_matched(name: str) -> None:
    assert known_model(name) is None
    assert is_english_only(name) is False


def test_effective_and_trained_context_follow_the_reference() -> None:
    bge = KNOWN_MODELS["bge-m3"]
    assert (bge.context_length, bge.trained_context_length) == (2048, 8192)
    nomic = KNOWN_MODELS["nomic-embed-text"]
    assert (nomic.context_length, nomic.trained_context_length) == (2048, 2048)
    assert KNOWN_MODELS["mxbai-embed-large"].context_length == 512
    assert KNOWN_MODELS["snowflake-arctic-embed:137m"].context_length == 2048
    assert KNOWN_MODELS["qwen3-embedding:4b"].trained_context_length == 32768
    assert KNOWN_MODELS["embeddinggemma"].context_length == 2048


def test_prefixes_are_exactly_what_the_model_cards_say() -> None:
    nomic = KNOWN_MODELS["nomic-embed-text"]
    assert (nomic.document_prefix, nomic.query_prefix) == ("search_document: ", "search_query: ")
    mxbai = KNOWN_MODELS["mxbai-embed-large"]
    assert mxbai.document_prefix == ""
    assert mxbai.query_prefix == "Represent this sentence for searching relevant passages: "
    assert KNOWN_MODELS["snowflake-arctic-embed:22m"].query_prefix == mxbai.query_prefix
    bge = KNOWN_MODELS["bge-m3"]
    assert (bge.document_prefix, bge.query_prefix) == ("", "")
    gemma = KNOWN_MODELS["embeddinggemma"]
    assert gemma.document_prefix == "title: none | text: "
    assert gemma.query_prefix == "task: search result | query: "
    for size in ("qwen3-embedding:0.6b", "qwen3-embedding:4b", "qwen3-embedding"):
        assert KNOWN_MODELS[size].query_prefix == QWEN3_QUERY
        assert KNOWN_MODELS[size].document_prefix == ""


@pytest.mark.parametrize("model", list(KNOWN_MODELS.values()), ids=lambda m: m.name)
def test_every_entry_is_sane(model: KnownModel) -> None:
    assert known_model(model.name) is model
    assert model.dimension > 0
    assert 0 < model.context_length <= model.trained_context_length
    assert model.context_length <= 2048  # Ollama's embedding batch cap (reference §1.8)
    assert model.languages
    for language in model.languages:
        assert language == MULTILINGUAL or re.fullmatch(r"[a-z]{2}", language), language
    for prefix in (model.document_prefix, model.query_prefix):
        # Prefixes are glued to the text, so they end in a separator; Qwen3's official
        # template is the one exception: "...\nQuery:" followed directly by the query.
        assert prefix == "" or prefix.endswith((" ", "\nQuery:")), prefix
        assert prefix == prefix.lstrip()
    for tag in model.tags:
        assert known_model(f"{model.family}:{tag}") is model
    assert model.source
    assert model.notes
    assert model.parameters


def test_no_two_entries_claim_the_same_tag() -> None:
    claimed: dict[str, str] = {}
    for model in KNOWN_MODELS.values():
        for tag in model.tags:
            key = f"{model.family}:{tag}"
            assert key not in claimed, f"{key} claimed by {claimed.get(key)} and {model.name}"
            claimed[key] = model.name


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        KNOWN_MODELS["bge-m3"] = KNOWN_MODELS["nomic-embed-text"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("name", "english_only"),
    [
        ("nomic-embed-text", True),
        ("mxbai-embed-large:latest", True),
        ("all-minilm", True),
        ("snowflake-arctic-embed:22m", True),
        ("granite-embedding", True),
        ("granite-embedding:278m", False),
        ("bge-m3", False),
        ("snowflake-arctic-embed2", False),
        ("qwen3-embedding:0.6b", False),
        ("embeddinggemma", False),
        ("my-private-model", False),
    ],
)
def test_is_english_only(name: str, english_only: bool) -> None:
    assert is_english_only(name) is english_only


def test_language_support() -> None:
    granite = KNOWN_MODELS["granite-embedding:278m"]
    assert granite.supports("ja")
    assert granite.supports("zh-CN")
    assert not granite.supports("th")
    assert not granite.multilingual
    assert KNOWN_MODELS["bge-m3"].supports("ko")
    assert KNOWN_MODELS["bge-m3"].multilingual
    assert not KNOWN_MODELS["nomic-embed-text"].supports("ja")
    assert KNOWN_MODELS["nomic-embed-text"].supports("en-GB")


@pytest.mark.parametrize(
    ("language", "model"),
    [
        ("ja", "bge-m3"),
        ("zh", "bge-m3"),
        ("zh-Hant", "bge-m3"),
        ("ko_KR", "bge-m3"),
        ("multilingual", "bge-m3"),
        ("fr", "bge-m3"),
        ("en", "nomic-embed-text"),
        ("EN-us", "nomic-embed-text"),
        ("english", "nomic-embed-text"),
    ],
)
def test_recommended_model(language: str, model: str) -> None:
    assert recommended_model(language) == model
    assert known_model(model) is not None


def test_recommended_model_needs_a_language() -> None:
    with pytest.raises(ConfigError, match="language code"):
        recommended_model(" ")


def test_docs_table_lists_every_model_with_its_figures() -> None:
    section = DOCS.read_text(encoding="utf-8").split("## The known models", 1)[1]
    table = section.split("\n#", 1)[0]
    rows = {
        cells[0].strip("` "): cells
        for line in table.splitlines()
        if line.startswith("| `")
        for cells in [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]]
    }
    assert set(rows) == set(KNOWN_MODELS)
    for name, model in KNOWN_MODELS.items():
        cells = rows[name]
        assert cells[1] == str(model.dimension), name
        assert cells[2].startswith(str(model.context_length)), name


@pytest.mark.parametrize("name", ["bge-m3", "mxbai-embed-large", "nomic-embed-text"])
def test_registry_agrees_with_what_the_server_reports(ollama: LocalOllama, name: str) -> None:
    with ollama_client(ollama) as client:
        info = probe_model(client, name, url=ollama.url)
    known = known_model(info.name)
    assert known is not None
    assert known.dimension == info.dimension
    assert known.context_length == info.context_length


def ollama_client(server: LocalOllama) -> ollama.Client:
    return ollama.Client(host=server.url, timeout=10)
