"""RagIndex end to end: a real LocalOllama over HTTP and a real embedded Chroma under tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from ollama_rag import (
    ConfigError,
    EmbeddingModelMismatchError,
    IndexClosedError,
    IndexLockedError,
    IndexNotFoundError,
    ModelNotFoundError,
    NotAnEmbeddingModelError,
    OllamaResponseError,
    OllamaUnavailableError,
    RagIndex,
    RagIndexError,
)
from ollama_rag.testing import HashEmbeddingModel, LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

JA = (
    "富士山は日本で一番高い山で、標高は3776メートルです。山梨県と静岡県にまたがっています。\n\n"
    "東京から新幹線に乗ると、晴れた日には車窓から富士山が見えます。"
)
ZH = "长江是中国最长的河流，全长约6300公里。它流经青海、西藏、四川等十一个省区市。"
EN = "The bicycle was invented in the nineteenth century. Early models had no pedals at all."


def open_index(path: Path | None, server: LocalOllama, **kwargs: object) -> RagIndex:
    return RagIndex(path, base_url=server.url, **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- create, reopen, manifest


def test_create_add_search_returns_cited_documents(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path / "db", ollama, model="bge-m3", chunk_size=60) as index:
        index.add_texts([JA], source="fuji.md")
        index.add_texts([ZH, EN], metadatas=[{"lang": "zh"}, {"lang": "en"}])
        hits = index.search("富士山の標高は何メートル？", k=2)

    top = hits[0]
    assert top.metadata["source"] == "fuji.md"
    assert "3776" in top.page_content
    # Offsets point into the original text exactly.
    assert JA[top.metadata["start_index"] : top.metadata["end_index"]] == top.page_content
    assert 0.0 < top.metadata["score"] <= 1.0
    assert top.id == top.metadata["id"]
    assert hits[0].metadata["score"] >= hits[1].metadata["score"]


def test_manifest_records_model_digest_dimension_and_splitter(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    tags = {m["model"]: m for m in _tags(ollama)}
    with open_index(tmp_path, ollama, model="mxbai-embed-large") as index:
        m = index.manifest
    assert m.model == "mxbai-embed-large:latest"
    assert m.digest == tags["mxbai-embed-large:latest"]["digest"]
    assert m.dimension == 1024
    assert m.context_length == 512
    assert 0 < m.chunk_overlap < m.chunk_size <= 512
    assert m.library_version
    assert m.created_at <= m.updated_at


def test_reopen_without_model_uses_the_recorded_one(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="nomic-embed-text") as index:
        index.add_texts([EN], source="bike.txt")
    ollama.reset_counters()
    with open_index(tmp_path, ollama) as again:
        assert again.model == "nomic-embed-text:latest"
        assert again.count() == 1
        assert again.search("Who invented the bicycle?", k=1)[0].metadata["source"] == "bike.txt"
    assert ollama.request_count("nomic-embed-text") == 1  # the query, nothing else
    assert ollama.request_count("bge-m3") == 0


def test_reopen_with_tagged_name_of_the_same_model_is_accepted(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    open_index(tmp_path, ollama, model="bge-m3").close()
    with open_index(tmp_path, ollama, model="bge-m3:latest") as index:
        assert index.model == "bge-m3:latest"


def test_missing_index_without_model_says_how_to_create_one(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with pytest.raises(IndexNotFoundError, match=r"model='bge-m3'") as err:
        open_index(tmp_path / "nothing", ollama)
    assert isinstance(err.value, LookupError)


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``folder`` with its size and modification time."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_opening_what_is_not_an_index_creates_nothing(tmp_path: Path, ollama: LocalOllama) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "papers").mkdir()
    (tmp_path / "papers" / "notes.txt").write_text("not an index", encoding="utf-8")
    before = tree(tmp_path)
    for name in ("missing", "empty", "papers"):
        for kwargs in ({}, {"read_only": True}, {"model": "bge-m3", "create": False}):
            with pytest.raises(IndexNotFoundError) as err:
                RagIndex(tmp_path / name, base_url=ollama.url, **kwargs)  # type: ignore[arg-type]
            assert err.value.fix is not None
            assert err.value.fix.action == "create"
            assert tree(tmp_path) == before, (name, kwargs)


def test_a_missing_collection_names_the_ones_there(tmp_path: Path, ollama: LocalOllama) -> None:
    with RagIndex(tmp_path, model="bge-m3", base_url=ollama.url, collection="docs") as index:
        index.add_texts(["富士山は日本で一番高い山です。"], source="fuji.md")
    for read_only in (False, True):
        with pytest.raises(IndexNotFoundError) as err:
            RagIndex(tmp_path, base_url=ollama.url, read_only=read_only)
        assert "the directory holds the index(es) 'docs'" in str(err.value)
        assert f"RagIndex({str(tmp_path.resolve())!r}, collection='docs')" in str(err.value)
        assert err.value.fix is not None
        assert err.value.fix.choices == ("docs",)
    with pytest.raises(IndexNotFoundError):  # create=False refuses even with a model
        RagIndex(tmp_path, model="bge-m3", base_url=ollama.url, create=False)
    with RagIndex(tmp_path, base_url=ollama.url, collection="docs") as reopened:
        assert [c.name for c in reopened.collections()] == ["docs"]


# ---------------------------------------------------------------- the guard


def test_same_dimension_different_model_is_refused_before_anything_is_touched(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([JA], source="fuji.md")
        stored = index.count()
    ollama.reset_counters()

    with pytest.raises(EmbeddingModelMismatchError) as err:
        open_index(tmp_path, ollama, model="mxbai-embed-large")

    message = str(err.value)
    assert "bge-m3:latest" in message
    assert "mxbai-embed-large:latest" in message
    assert "migrate('mxbai-embed-large:latest')" in message
    assert isinstance(err.value, ValueError)
    assert err.value.recorded == "bge-m3:latest"
    assert ollama.request_count("mxbai-embed-large") == 0  # nothing embedded with it
    with open_index(tmp_path, ollama) as index:
        assert index.count() == stored


def test_digest_change_of_the_same_tag_is_refused(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    open_index(tmp_path, fresh_ollama, model="bge-m3").close()
    fresh_ollama.set_digest("bge-m3", "ab" * 32)

    with pytest.raises(EmbeddingModelMismatchError, match="re-pulled") as err:
        open_index(tmp_path, fresh_ollama)
    assert "abababababab" in str(err.value)


def test_dimension_change_under_the_same_name_is_refused(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    open_index(tmp_path, fresh_ollama, model="bge-m3").close()
    fresh_ollama.remove_model("bge-m3")
    fresh_ollama.add_model("bge-m3", HashEmbeddingModel(dimension=384, context_length=512))

    with pytest.raises(EmbeddingModelMismatchError, match="384 dimensions, the index 1024"):
        open_index(tmp_path, fresh_ollama, model="bge-m3")


def test_collections_in_one_directory_are_guarded_independently(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    open_index(tmp_path, ollama, model="bge-m3").close()
    with open_index(tmp_path, ollama, model="nomic-embed-text", collection="english") as other:
        assert other.manifest.dimension == 768
    with pytest.raises(EmbeddingModelMismatchError):
        open_index(tmp_path, ollama, model="nomic-embed-text")


def test_foreign_chroma_collection_is_not_adopted(tmp_path: Path, ollama: LocalOllama) -> None:
    import chromadb

    client = chromadb.PersistentClient(path=str(tmp_path))
    client.create_collection("default").add(ids=["x"], embeddings=[[0.1, 0.2]])
    client.close()
    with pytest.raises(RagIndexError, match="not created by ollama-rag"):
        open_index(tmp_path, ollama, model="bge-m3")


def test_changing_chunk_size_of_an_existing_index_is_refused(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    open_index(tmp_path, ollama, model="bge-m3", chunk_size=300).close()
    with pytest.raises(ConfigError, match="chunk_size=300"):
        open_index(tmp_path, ollama, chunk_size=500)


# ---------------------------------------------------------------- nothing embedded twice


def test_re_adding_unchanged_text_makes_no_embedding_request(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with open_index(tmp_path, ollama, model="bge-m3", chunk_size=40) as index:
        first = index.add_texts([JA, ZH])
        ollama.reset_counters()
        second = index.add_texts([JA, ZH])
        assert second == first
        assert index.count() == len(first)
    assert ollama.request_count("bge-m3") == 0


def test_changed_source_replaces_exactly_its_own_chunks(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    paragraphs = [f"第{i}段落の文章です。内容は{i}番目のものです。" for i in range(5)]
    with open_index(tmp_path, ollama, model="bge-m3", chunk_size=30, chunk_overlap=0) as index:
        index.add_texts(["\n\n".join(paragraphs)], source="a.md")
        index.add_texts([ZH], source="b.md")
        before_b = index.vectorstore.get(where={"source": "b.md"})["ids"]
        ollama.reset_counters()

        paragraphs[2] = "ここは書き換えた段落です。新しい内容になりました。"
        index.add_texts(["\n\n".join(paragraphs)], source="a.md")

        received = ollama.received("bge-m3")
        stored_a = index.vectorstore.get(where={"source": "a.md"})["documents"]
        assert index.vectorstore.get(where={"source": "b.md"})["ids"] == before_b
    assert received == ["ここは書き換えた段落です。新しい内容になりました。"]
    assert len(stored_a) == 5
    assert not any("第2段落" in text for text in stored_a)


def test_renamed_source_reuses_stored_vectors(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([EN], source="old-name.txt")
        ollama.reset_counters()
        index.add_texts([EN], source="new-name.txt")
        index.delete(source="old-name.txt")
        hit = index.search("bicycle pedals", k=1)[0]
    assert ollama.request_count("bge-m3") == 1  # only the query
    assert hit.metadata["source"] == "new-name.txt"


def test_metadata_change_updates_without_re_embedding(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([EN], metadatas=[{"lang": "en", "draft": True}], source="bike.txt")
        ollama.reset_counters()
        index.add_texts([EN], metadatas=[{"lang": "en-GB"}], source="bike.txt")
        meta = index.vectorstore.get(where={"source": "bike.txt"})["metadatas"][0]
    assert ollama.request_count("bge-m3") == 0
    assert meta["lang"] == "en-GB"
    assert "draft" not in meta


@pytest.mark.chroma_only
def test_writes_respect_the_chroma_batch_limit(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ollama_rag.storage.chroma as chroma_module

    monkeypatch.setattr(chroma_module, "WRITE_BATCH", 7)
    texts = [f"文書{i}の本文です。" for i in range(30)]
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        sizes: list[int] = []
        collection = index._store.vectors.collection
        for name in ("add", "upsert", "update", "get", "delete"):
            real = getattr(collection, name)

            def spy(_real: Any = real, **kwargs: Any) -> Any:
                if kwargs.get("ids") is not None:
                    sizes.append(len(kwargs["ids"]))
                return _real(**kwargs)

            monkeypatch.setattr(collection, name, spy)
        index.add_texts(texts, source="many.txt")
        assert index.count() == 30
        # A rewrite of the source: metadata updates (moved chunks), deletions, new rows.
        index.add_texts(texts[5:] + [f"新しい文{i}です。" for i in range(12)], source="many.txt")
        assert index.count() == 37
    assert sizes
    assert max(sizes) <= 7


# ---------------------------------------------------------------- delete, count, close


def test_delete_by_source_and_by_ids(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="bge-m3", chunk_size=40) as index:
        ids_a = index.add_texts([JA], source="a")
        index.add_texts([ZH], source="b")
        total = index.count()
        assert index.delete(source="a") == len(ids_a)
        assert index.count() == total - len(ids_a)
        b_ids = index.vectorstore.get(where={"source": "b"})["ids"]
        assert index.delete(ids=b_ids[:1]) == 1
        assert index.delete(ids=["no-such-id"]) == 0
        with pytest.raises(ConfigError, match="exactly one"):
            index.delete()


def test_in_memory_indexes_are_isolated(ollama: LocalOllama) -> None:
    with (
        open_index(None, ollama, model="bge-m3") as one,
        open_index(None, ollama, model="bge-m3") as two,
    ):
        one.add_texts([JA])
        assert one.count() > 0
        assert two.count() == 0
        assert one.path is None


def test_use_after_close_is_a_clear_error_and_reopen_works(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    index = open_index(tmp_path, ollama, model="bge-m3")
    index.add_texts([EN])
    index.close()
    index.close()  # twice is fine
    with pytest.raises(IndexClosedError, match="closed"):
        index.search("bicycle")
    assert "closed" in repr(index)
    with open_index(tmp_path, ollama) as again:
        assert again.count() == 1


def test_two_handles_in_one_process_share_the_directory(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as one:
        with open_index(tmp_path, ollama) as two:
            two.add_texts([EN])
        # closing the second handle keeps the first usable and sees its write
        assert one.count() == 1


@pytest.mark.reliability
def test_a_second_process_cannot_open_an_index_that_is_open(
    tmp_path: Path, ollama: LocalOllama, store_kind: str
) -> None:
    db = tmp_path / "db"
    open_index(db, ollama, model="bge-m3").close()
    script = textwrap.dedent(
        f"""
        import sys
        from ollama_rag import RagIndex
        index = RagIndex({str(db)!r}, base_url={ollama.url!r})
        print("opened", flush=True)
        sys.stdin.readline()
        index.close()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "opened"
        with pytest.raises(IndexLockedError, match=rf"pid {holder.pid}") as err:
            open_index(db, ollama)
        # The fix names what works with each store: a Chroma server, or a read-only open.
        assert ("chroma run" if store_kind == "chroma" else "read_only=True") in str(err.value)
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    with open_index(db, ollama) as index:  # released on close
        assert index.count() == 0


def test_repr_and_html_repr(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([EN])
        assert "model='bge-m3:latest'" in repr(index)
        assert "chunks=1" in repr(index)
        html = index._repr_html_()
    assert "<table>" in html
    assert "bge-m3:latest" in html


# ---------------------------------------------------------------- errors with the fix


def test_unreachable_ollama_names_url_and_fix(tmp_path: Path) -> None:
    server = LocalOllama()
    server.start()
    url = server.url
    server.stop()  # nothing listens on that port now
    with pytest.raises(OllamaUnavailableError) as err:
        RagIndex(tmp_path, model="bge-m3", base_url=url)
    assert str(err.value) == f'Ollama is not reachable at {url} — start it with "ollama serve"'
    assert isinstance(err.value, ConnectionError)


def test_ollama_host_environment_variable_is_used(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama.url.removeprefix("http://"))
    with RagIndex(tmp_path, model="bge-m3") as index:
        assert index.base_url == ollama.url


def test_model_not_pulled_names_pull_command_and_available_models(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    with pytest.raises(ModelNotFoundError) as err:
        open_index(tmp_path, ollama, model="snowflake-arctic-embed2")
    message = str(err.value)
    assert 'run "ollama pull snowflake-arctic-embed2"' in message
    assert "bge-m3:latest" in message
    assert isinstance(err.value, LookupError)
    assert "bge-m3:latest" in err.value.available


def test_chat_model_is_refused_as_embedder(tmp_path: Path, ollama: LocalOllama) -> None:
    with pytest.raises(NotAnEmbeddingModelError, match=r'"qwen2.5".*ollama pull bge-m3'):
        open_index(tmp_path, ollama, model="qwen2.5")


@pytest.mark.reliability
def test_transient_server_errors_are_retried(tmp_path: Path, fresh_ollama: LocalOllama) -> None:
    with open_index(tmp_path, fresh_ollama, model="bge-m3", retry_backoff=0.01) as index:
        fresh_ollama.fail_next(2, status=503)
        index.add_texts([EN], source="a")
        assert index.count() == 1
    assert fresh_ollama.request_count("bge-m3") == 3  # two failures, then success


@pytest.mark.reliability
def test_server_error_after_the_last_retry_leaves_index_unchanged(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    with open_index(tmp_path, fresh_ollama, model="bge-m3", retries=2, retry_backoff=0.01) as index:
        index.add_texts([EN], source="a")
        fresh_ollama.fail_next(3, status=500)
        with pytest.raises(OllamaResponseError, match="after 3 attempts") as err:
            index.add_texts([JA], source="b")
        assert err.value.status_code == 500
        assert index.count() == 1
        index.add_texts([JA], source="b")  # re-running completes the work
        assert index.vectorstore.get(where={"source": "b"})["ids"]


def test_dropped_connection_is_reported_as_unavailable(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    with open_index(tmp_path, fresh_ollama, model="bge-m3", retries=0) as index:
        fresh_ollama.fail_next(1, status="drop")
        with pytest.raises(OllamaUnavailableError, match="ollama serve"):
            index.search("anything")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"collection": "x"}, "Invalid collection name"),
        ({"chunk_size": 100, "chunk_overlap": 100}, "100"),
        ({"base_url": "ftp://host"}, "http or https"),
        ({"model": "bad name"}, "Invalid Ollama model name"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_raise_config_error(
    tmp_path: Path, ollama: LocalOllama, kwargs: dict[str, object], pattern: str
) -> None:
    options: dict[str, object] = {"model": "bge-m3", "base_url": ollama.url, **kwargs}
    with pytest.raises(ConfigError, match=pattern):
        RagIndex(tmp_path, **options)  # type: ignore[arg-type]


def test_bad_inputs_to_add_and_search(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        with pytest.raises(ConfigError, match=r"add_texts\(\[text\]\)"):
            index.add_texts("a single string")
        with pytest.raises(ConfigError, match="'tags' is a dict"):
            index.add_texts([EN], metadatas=[{"tags": {"a": 1}}])
        with pytest.raises(ConfigError, match="2 texts but 1 metadatas"):
            index.add_texts([EN, JA], metadatas=[{}])
        with pytest.raises(ConfigError, match="not a str"):
            index.add_texts([b"bytes"])  # type: ignore[list-item]
        with pytest.raises(ConfigError, match="non-empty query"):
            index.search("   ")
        with pytest.warns(UserWarning, match="empty and was skipped"):
            assert index.add_texts(["  ", EN]) != []
        assert index.count() == 1


def test_search_on_empty_index_returns_nothing(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        assert index.search("anything", k=10) == []


# ---------------------------------------------------------------- filters, MMR, retriever


def test_filter_and_where_document(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([JA, ZH, EN], metadatas=[{"lang": "ja"}, {"lang": "zh"}, {"lang": "en"}])
        only_zh = index.search("河流", k=5, filter={"lang": "zh"})
        containing = index.search("山", k=5, where_document={"$contains": "bicycle"})
    assert {d.metadata["lang"] for d in only_zh} == {"zh"}
    assert [d.metadata["lang"] for d in containing] == ["en"]


def test_mmr_prefers_diverse_results(tmp_path: Path, ollama: LocalOllama) -> None:
    near_duplicates = [f"富士山は日本一高い山です。{i}" for i in range(4)]
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([*near_duplicates, EN, ZH])
        plain = index.search("富士山は日本一高い山", k=2)
        diverse = index.max_marginal_relevance_search("富士山は日本一高い山", k=2, lambda_mult=0.1)
    assert all("富士山" in d.page_content for d in plain)
    assert "富士山" in diverse[0].page_content
    assert "富士山" not in diverse[1].page_content


def test_retriever_search_types(tmp_path: Path, ollama: LocalOllama) -> None:
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([JA, ZH, EN], metadatas=[{"lang": "ja"}, {"lang": "zh"}, {"lang": "en"}])
        similar = index.as_retriever(search_kwargs={"k": 2}).invoke("富士山")
        mmr = index.as_retriever(search_type="mmr", search_kwargs={"k": 2, "fetch_k": 3}).invoke(
            "富士山"
        )
        strict = index.as_retriever(
            search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99}
        ).invoke("富士山")
        filtered = index.as_retriever(search_kwargs={"filter": {"lang": "en"}}).invoke("富士山")
        with pytest.raises(ConfigError, match="search_type='nope'"):
            index.as_retriever(search_type="nope")
        with pytest.raises(ConfigError, match="score_threshold"):
            index.as_retriever(search_type="similarity_score_threshold")
        with pytest.raises(ConfigError, match="fetch_k"):
            index.as_retriever(search_kwargs={"fetch_k": 3})
    assert len(similar) == 2
    assert "score" in similar[0].metadata
    assert len(mmr) == 2
    assert strict == []
    assert [d.metadata["lang"] for d in filtered] == ["en"]


def test_retriever_in_a_langchain_chain(tmp_path: Path, ollama: LocalOllama) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([JA, ZH, EN], metadatas=[{"source": s} for s in ("ja", "zh", "en")])
        prompts: list[str] = []

        def format_docs(docs: list[Document]) -> str:
            return "\n".join(f"[{d.metadata['source']}] {d.page_content}" for d in docs)

        def remember(value: object) -> object:
            prompts.append(value.to_string())  # type: ignore[attr-defined]
            return value

        prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
        chain = (
            {
                "context": index.as_retriever(search_kwargs={"k": 1}) | format_docs,
                "question": RunnablePassthrough(),
            }
            | prompt
            | RunnableLambda(remember)
            | FakeListChatModel(responses=["3776 m"])
            | StrOutputParser()
        )
        answer = chain.invoke("富士山の標高は？")
    assert answer == "3776 m"
    assert "[ja] 富士山" in prompts[0]


@pytest.mark.chroma_only
def test_vectorstore_is_a_langchain_chroma_on_the_same_collection(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    from langchain_chroma import Chroma

    with open_index(tmp_path, ollama, model="bge-m3") as index:
        index.add_texts([EN], source="bike")
        store = index.vectorstore
        assert isinstance(store, Chroma)
        assert store.similarity_search("bicycle", k=1)[0].metadata["source"] == "bike"


# ---------------------------------------------------------------- the real multilingual model


@pytest.mark.slow
def test_multilingual_search_with_the_real_model(tmp_path: Path, ollama: LocalOllama) -> None:
    docs = {
        "fuji.md": JA,
        "yangtze.md": ZH,
        "bicycle.md": EN,
        "hangul.md": "한글은 1443년에 세종대왕이 창제한 문자입니다. 자음과 모음으로 되어 있습니다.",
    }
    queries = {
        "日本で一番高い山はどれですか？": "fuji.md",
        "中国最长的河是哪一条？": "yangtze.md",
        "When did bicycles first appear?": "bicycle.md",
        "한글은 누가 만들었나요?": "hangul.md",
        "How tall is Mount Fuji?": "fuji.md",  # cross-lingual
    }
    with open_index(tmp_path, ollama, model="use-multilingual") as index:
        for source, text in docs.items():
            index.add_texts([text], source=source)
        found = {q: index.search(q, k=1)[0].metadata["source"] for q in queries}
    assert found == queries


def _tags(server: LocalOllama) -> list[dict[str, object]]:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/api/tags") as response:
        return json.load(response)["models"]  # type: ignore[no-any-return]


def test_adding_one_sources_documents_in_batches_with_replace_false(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    pages = [
        Document(
            page_content=f"{n}ページ目の本文です。", metadata={"source": "book.pdf", "page": n}
        )
        for n in range(1, 7)
    ]
    with open_index(tmp_path, ollama, model="bge-m3") as index:
        for start in range(0, 6, 2):
            index.add_documents(pages[start : start + 2], replace=False)
        kept = sorted(m["page"] for m in index.vectorstore.get(include=["metadatas"])["metadatas"])
        index.add_documents(pages[4:])  # the default replaces the source's content
        replaced = sorted(
            m["page"] for m in index.vectorstore.get(include=["metadatas"])["metadatas"]
        )
    assert kept == [1, 2, 3, 4, 5, 6]
    assert replaced == [5, 6]
