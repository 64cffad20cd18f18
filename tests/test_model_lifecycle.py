"""Model lifecycle in RagIndex: prefixes, the English-only warning, pull=True, keep_alive."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ollama_rag import ConfigError, ModelNotFoundError, RagIndex
from ollama_rag.ollama import parse_keep_alive
from ollama_rag.testing import HashEmbeddingModel, LocalOllama

JA = "富士山は日本で一番高い山です。標高は3776メートルで、山梨県と静岡県にまたがっています。"
EN = "The bicycle was invented in the nineteenth century and changed how people travel."


@pytest.mark.parametrize(
    ("model", "document_prefix", "query_prefix"),
    [
        ("nomic-embed-text", "search_document: ", "search_query: "),
        (
            "mxbai-embed-large",
            "",
            "Represent this sentence for searching relevant passages: ",
        ),
        ("bge-m3", "", ""),
        ("use-multilingual", "", ""),  # not in the registry: no prefixes
    ],
)
def test_prefixes_are_applied_and_recorded(
    tmp_path: Path, ollama: LocalOllama, model: str, document_prefix: str, query_prefix: str
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nomic/mxbai on Japanese would warn; not this test
        with RagIndex(tmp_path, model=model, base_url=ollama.url) as index:
            ollama.reset_counters()
            index.add_texts([EN], source="bike")
            index.search("Who invented the bicycle?")
            manifest = index.manifest
    assert ollama.received(model) == [
        document_prefix + EN,
        query_prefix + "Who invented the bicycle?",
    ]
    assert (manifest.document_prefix, manifest.query_prefix) == (document_prefix, query_prefix)
    with RagIndex(tmp_path, base_url=ollama.url) as again:  # the recorded prefixes stay in force
        assert again.manifest.query_prefix == query_prefix


def test_prefixes_can_be_overridden_and_then_stay_recorded(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with RagIndex(
        tmp_path,
        model="nomic-embed-text",
        base_url=ollama.url,
        document_prefix="",
        query_prefix="q: ",
    ) as index:
        ollama.reset_counters()
        index.add_texts([EN])
        index.search("bicycle")
    assert ollama.received("nomic-embed-text") == [EN, "q: bicycle"]
    with pytest.raises(ConfigError, match="query_prefix='q: '"):
        RagIndex(tmp_path, base_url=ollama.url, query_prefix="search_query: ")


def test_english_only_model_on_cjk_text_warns_with_the_fix(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with RagIndex(tmp_path, model="nomic-embed-text", base_url=ollama.url) as index:
        with pytest.warns(UserWarning, match=r"English-only.*ollama pull bge-m3.*migrate"):
            index.add_texts([JA])
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            index.add_texts([EN])  # English text: no warning


def test_multilingual_model_on_cjk_text_does_not_warn(tmp_path: Path, ollama: LocalOllama) -> None:
    with (
        RagIndex(tmp_path, model="bge-m3", base_url=ollama.url) as index,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error", UserWarning)
        index.add_texts([JA])


def test_english_only_warning_on_files(tmp_path: Path, ollama: LocalOllama) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "fuji.txt").write_text(JA, encoding="utf-8")
    with (
        RagIndex(tmp_path / "db", model="mxbai-embed-large", base_url=ollama.url) as index,
        pytest.warns(UserWarning, match="English-only"),
    ):
        index.add_files(folder, progress=False)


def test_pull_true_pulls_a_missing_model(tmp_path: Path) -> None:
    with LocalOllama({"bge-m3": HashEmbeddingModel(dimension=64)}) as server:
        server.add_model("nomic-embed-text", HashEmbeddingModel(dimension=32), installed=False)
        with pytest.raises(ModelNotFoundError, match='ollama pull nomic-embed-text"'):
            RagIndex(tmp_path / "a", model="nomic-embed-text", base_url=server.url)
        with RagIndex(
            tmp_path / "b", model="nomic-embed-text", base_url=server.url, pull=True
        ) as index:
            assert index.manifest.dimension == 32
        assert "nomic-embed-text:latest" in server.models


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(300, 300.0), (-1, -1.0), ("30m", 1800.0), ("1h30m", 5400.0), ("-1", -1.0), ("1.5s", 1.5)],
)
def test_keep_alive_accepts_seconds_and_durations(value: object, seconds: float) -> None:
    assert parse_keep_alive(value) == seconds  # type: ignore[arg-type]


def test_keep_alive_is_sent_to_ollama(tmp_path: Path, ollama: LocalOllama) -> None:
    with RagIndex(tmp_path, model="bge-m3", base_url=ollama.url, keep_alive="1h") as index:
        assert index.embeddings.pool.keep_alive == 3600.0
        assert index.embeddings.keep_alive == 3600
        index.add_texts([EN])  # the server accepts (and validates) the value
    with pytest.raises(ConfigError, match="keep_alive='soon'"):
        RagIndex(tmp_path, base_url=ollama.url, keep_alive="soon")
