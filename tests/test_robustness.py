"""Faults a user meets in practice: slow, wrong or dead servers, and misused arguments."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_rag import (
    ConfigError,
    OllamaResponseError,
    OllamaUnavailableError,
    RagIndex,
)
from ollama_rag.testing import HashEmbeddingModel, LocalOllama

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("store_kind")]


@pytest.fixture
def plain_web_server(tmp_path: Path) -> Iterator[str]:
    """Something that is not Ollama listening where Ollama was expected (404 HTML pages)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_is_not_ollama_is_named_as_such(
    tmp_path: Path, plain_web_server: str
) -> None:
    with pytest.raises(OllamaResponseError, match="not like Ollama's API") as err:
        RagIndex(tmp_path / "db", model="bge-m3", base_url=plain_web_server)
    assert "check base_url" in str(err.value)
    assert "ollama pull" not in str(err.value)


def test_a_server_that_does_not_answer_in_time_says_so(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    with RagIndex(
        tmp_path, model="bge-m3", base_url=fresh_ollama.url, timeout=0.5, retries=0
    ) as index:
        fresh_ollama.set_delay(per_request=2.0)
        with pytest.raises(OllamaUnavailableError, match=r"did not answer within 0.5 s") as err:
            index.add_texts(["遅いサーバーです。"])
    assert "timeout=" in str(err.value)


def test_a_dead_host_is_skipped_while_a_healthy_one_works(tmp_path: Path) -> None:
    spec = HashEmbeddingModel(dimension=32, seed=5)
    with LocalOllama({"bge-m3": spec}) as healthy, LocalOllama({"bge-m3": spec}) as dying:
        with RagIndex(
            tmp_path,
            model="bge-m3",
            base_url=[dying.url, healthy.url],
            batch_size=2,
            retry_backoff=0.5,
        ) as index:
            dying.stop()
            ids = index.add_texts([f"文書{i}です。" for i in range(20)])
            assert index.count() == len(ids) == 20
        assert len(healthy.received("bge-m3")) == 20


def test_misused_arguments_get_config_errors(tmp_path: Path, ollama: LocalOllama) -> None:
    with RagIndex(tmp_path, model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(["本文です。"], source="a")
        with pytest.raises(ConfigError, match=r"delete\(ids=\['abc'\]\)"):
            index.delete(ids="abc")
        with pytest.raises(ConfigError, match="reserved"):
            index.add_texts(["本文"], metadatas=[{"chunk_index": 3}])
        with pytest.raises(ConfigError, match="k must be"):
            index.search("本文", k="5")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="k must be"):
            index.max_marginal_relevance_search("本文", k=0)
        assert index.as_retriever(search_kwargs=None).invoke("本文")
