"""ensure_model and pull_model (pulling through /api/pull), against real LocalOllama servers."""

from __future__ import annotations

from collections.abc import Iterator

import ollama as ollama_client
import pytest

from ollama_rag.errors import ModelNotFoundError, NotAnEmbeddingModelError, OllamaUnavailableError
from ollama_rag.pull import ensure_model, pull_model
from ollama_rag.testing import ChatOnlyModel, HashEmbeddingModel, LocalOllama


@pytest.fixture
def pull_server() -> Iterator[LocalOllama]:
    """bge-m3 installed; all-minilm (an embedder) and llama3.2 (chat) only pullable."""
    with LocalOllama(
        {"bge-m3": HashEmbeddingModel(dimension=1024, context_length=8192, seed=1)},
        pullable={
            "all-minilm": HashEmbeddingModel(dimension=384, context_length=256),
            "llama3.2": ChatOnlyModel(),
        },
    ) as server:
        yield server


def listed(server: LocalOllama) -> set[str]:
    with ollama_client.Client(host=server.url, timeout=10) as client:
        return {m.model for m in client.list().models if m.model}


# ----------------------------------------------------------------------------- ensure_model


def test_ensure_model_returns_a_present_model_without_pulling(
    ollama: LocalOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    info = ensure_model("bge-m3", base_url=ollama.url)
    assert (info.name, info.dimension, info.context_length) == ("bge-m3:latest", 1024, 2048)
    assert info.digest == ollama.digest("bge-m3")
    assert capsys.readouterr().err == ""


def test_ensure_model_pulls_a_missing_model_with_a_progress_bar(
    pull_server: LocalOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "all-minilm:latest" not in listed(pull_server)
    info = ensure_model("all-minilm", base_url=pull_server.url)
    assert "all-minilm:latest" in listed(pull_server)
    assert info.name == "all-minilm:latest"
    assert info.dimension == 384
    assert info.context_length == 256
    assert info.digest == pull_server.digest("all-minilm")
    err = capsys.readouterr().err
    assert "all-minilm: pulling manifest" in err
    assert "all-minilm: success" in err
    # One bytes bar per layer, labelled with the digest's first 12 hex digits, run to 100%.
    assert err.count("pulling ") >= 3
    assert "100%" in err
    assert "B/s" in err


def test_ensure_model_without_progress_prints_nothing(
    pull_server: LocalOllama, capsys: pytest.CaptureFixture[str]
) -> None:
    info = ensure_model("all-minilm", base_url=pull_server.url, progress=False)
    assert info.dimension == 384
    assert capsys.readouterr() == ("", "")


def test_ensure_model_reads_ollama_host(
    pull_server: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", pull_server.url)
    assert ensure_model("all-minilm:latest", progress=False).name == "all-minilm:latest"


def test_ensure_model_unknown_name_points_at_the_library(pull_server: LocalOllama) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        ensure_model("bge-m4", base_url=pull_server.url, progress=False)
    err = caught.value
    assert isinstance(err, LookupError)
    assert err.model == "bge-m4"
    assert '"bge-m4"' in str(err)
    assert "pull model manifest: file does not exist" in str(err)
    assert "https://ollama.com/library" in str(err)
    assert listed(pull_server) == {"bge-m3:latest"}


def test_pull_model_error_line_is_model_not_found(pull_server: LocalOllama) -> None:
    with pytest.raises(ModelNotFoundError, match=r"ollama\.com/library"):
        pull_model("nope", base_url=pull_server.url, progress=False)


def test_pull_model_of_a_present_model_is_harmless(pull_server: LocalOllama) -> None:
    pull_model("bge-m3", base_url=pull_server.url, progress=False)
    assert listed(pull_server) == {"bge-m3:latest"}


def test_ensure_model_unreachable_server(closed_port_url: str) -> None:
    url = closed_port_url
    with pytest.raises(OllamaUnavailableError, match="ollama serve") as caught:
        ensure_model("bge-m3", base_url=url, progress=False)
    assert caught.value.url == url


def test_ensure_model_pulled_chat_model_cannot_embed(pull_server: LocalOllama) -> None:
    with pytest.raises(NotAnEmbeddingModelError) as caught:
        ensure_model("llama3.2", base_url=pull_server.url, progress=False)
    assert "llama3.2:latest" in listed(pull_server)  # it was pulled, then refused
    assert "ollama rm llama3.2" in str(caught.value)
    assert "ollama pull bge-m3" in str(caught.value)


def test_ensure_model_present_chat_model_cannot_embed(ollama: LocalOllama) -> None:
    with pytest.raises(NotAnEmbeddingModelError, match="chat/completion"):
        ensure_model("qwen2.5", base_url=ollama.url, progress=False)
