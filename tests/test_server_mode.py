"""Server mode: a real `chroma run` process shared by several clients, guarded the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ollama_rag import EmbeddingModelMismatchError, RagIndex
from ollama_rag.testing import LocalOllama
from ollama_rag.testing import chroma_server as run_chroma

pytestmark = [pytest.mark.slow, pytest.mark.reliability]


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    with run_chroma(tmp_path / "server") as port:
        yield port


def test_two_clients_share_one_guarded_index(chroma_server: int, ollama: LocalOllama) -> None:
    import chromadb

    first = chromadb.HttpClient(host="127.0.0.1", port=chroma_server)
    second = chromadb.HttpClient(host="127.0.0.1", port=chroma_server)
    with RagIndex(client=first, model="bge-m3", base_url=ollama.url) as writer:
        writer.add_texts(["富士山は日本で一番高い山です。"], source="fuji.md")
        assert writer.path is None

    with RagIndex(client=second, base_url=ollama.url) as reader:
        assert reader.model == "bge-m3:latest"
        assert reader.search("日本一高い山", k=1)[0].metadata["source"] == "fuji.md"

    with pytest.raises(EmbeddingModelMismatchError, match="mxbai-embed-large"):
        RagIndex(client=second, model="mxbai-embed-large", base_url=ollama.url)


def test_the_docs_server_example_works_against_a_real_server(
    chroma_server: int, ollama: LocalOllama
) -> None:
    import chromadb

    index = RagIndex(
        client=chromadb.HttpClient(host="localhost", port=chroma_server),
        model="bge-m3",
        base_url=ollama.url,
    )
    index.add_texts(["长江是中国最长的河流。"])
    assert index.count() == 1
    index.close()
