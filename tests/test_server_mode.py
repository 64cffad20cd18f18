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


def _lexical(index: RagIndex, query: str) -> list[str]:
    return [d.metadata["source"] for d in index.search(query, k=3, mode="lexical")]


def test_hybrid_search_catches_up_with_another_clients_writes(
    chroma_server: int, ollama: LocalOllama, tmp_path: Path
) -> None:
    import chromadb

    def client() -> chromadb.api.ClientAPI:
        return chromadb.HttpClient(host="127.0.0.1", port=chroma_server)

    # Two clients with lexical indexes of their own, as on two machines.
    first = RagIndex(
        client=client(), model="bge-m3", base_url=ollama.url, lexical_dir=tmp_path / "one"
    )
    second = RagIndex(client=client(), base_url=ollama.url, lexical_dir=tmp_path / "two")
    with first, second:
        first.add_texts(["富士山は日本で一番高い山です。"], source="fuji.md")
        assert _lexical(second, "富士山")[0] == "fuji.md"
        second.add_texts(["琵琶湖は日本最大の湖です。"], source="biwa.md")
        assert _lexical(first, "琵琶湖")[0] == "biwa.md"
        first.add_texts(["富士山は静岡県と山梨県の県境にある。"], source="fuji.md")  # replaced
        assert _lexical(second, "山梨県")[0] == "fuji.md"
        assert "fuji.md" not in _lexical(second, "一番高い")
        second.delete(source="biwa.md")
        assert "biwa.md" not in _lexical(first, "琵琶湖")
        assert second.search("山梨県", k=1)[0].metadata["found_by"] == "both"
        for index in (first, second):
            store = index.searcher.store
            assert store.lexical_ids() == {i for page in store.iter_ids() for i in page}
    assert len(list((tmp_path / "one").iterdir())) == 1
    assert len(list((tmp_path / "two").iterdir())) == 1


def test_a_servers_lexical_index_lives_in_the_cache_folder(
    chroma_server: int, ollama: LocalOllama, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chromadb

    monkeypatch.setenv("OLLAMA_RAG_CACHE", str(tmp_path / "cache"))
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server)
    with RagIndex(client=client, model="bge-m3", base_url=ollama.url) as index:
        index.add_texts(["长江是中国最长的河流。"], source="yangtze.md")
        assert _lexical(index, "长江")[0] == "yangtze.md"
        uid = index.searcher.store.uid
    assert (tmp_path / "cache" / "lexical" / str(uid) / "meta.json").is_file()
