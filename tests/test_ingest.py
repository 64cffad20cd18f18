"""The ingestion pipeline: no silent truncation, scale-out, bounded concurrency, crash safety."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from ollama_rag import (
    ContextLengthExceededError,
    EmbeddingModelMismatchError,
    OllamaUnavailableError,
    RagIndex,
)
from ollama_rag.fusion import Calibration
from ollama_rag.testing import HashEmbeddingModel, LocalOllama

pytestmark = pytest.mark.usefixtures("store_kind")

SMALL_CONTEXT = HashEmbeddingModel(dimension=64, context_length=48, seed=7)


def long_japanese(paragraphs: int, marker: str = "", *, volume: int = 0) -> str:
    body = [
        f"第{volume}巻第{i}節では、地域の歴史と文化について詳しく説明する。"
        f"人々の暮らしは季節とともに変わってきた。"
        for i in range(paragraphs)
    ]
    return "".join(body) + marker


def test_over_long_chunks_are_split_further_never_truncated(tmp_path: Path) -> None:
    marker = "最後の一文には秘密の合言葉ペンギン饅頭が書かれている。"
    text = long_japanese(6, marker)
    with (
        LocalOllama({"tiny": SMALL_CONTEXT}) as server,
        # chunk_size far beyond the 48-token context: Ollama would cut each chunk silently.
        RagIndex(tmp_path, model="tiny", base_url=server.url, chunk_size=400) as index,
    ):
        index.add_texts([text], source="long.txt")
        stored = index.vectorstore.get(include=["documents", "metadatas"])
        hits = index.search("ペンギン饅頭", k=10, where_document={"$contains": "ペンギン饅頭"})
    pieces = stored["documents"]
    assert len(pieces) > 3
    assert all(SMALL_CONTEXT.count_tokens(p) <= 48 for p in pieces)
    for piece, meta in zip(pieces, stored["metadatas"], strict=True):
        assert text[meta["start_index"] : meta["end_index"]] == piece
    covered = "".join(
        p
        for _, p in sorted(
            zip((m["start_index"] for m in stored["metadatas"]), pieces, strict=True)
        )
    )
    assert "ペンギン饅頭" in covered  # the text beyond the context limit is stored
    assert hits
    assert "ペンギン饅頭" in hits[0].page_content
    assert sorted(m["chunk_index"] for m in stored["metadatas"]) == list(range(len(pieces)))


def test_re_adding_split_chunks_is_stable(tmp_path: Path) -> None:
    text = long_japanese(4)
    with (
        LocalOllama({"tiny": SMALL_CONTEXT}) as server,
        RagIndex(tmp_path, model="tiny", base_url=server.url, chunk_size=300) as index,
    ):
        first = index.add_texts([text], source="a")
        second = index.add_texts([text], source="a")
        assert first == second
        assert index.count() == len(first)


def test_a_query_longer_than_the_context_is_refused_clearly(tmp_path: Path) -> None:
    with (
        LocalOllama({"tiny": SMALL_CONTEXT}) as server,
        RagIndex(tmp_path, model="tiny", base_url=server.url, chunk_size=100) as index,
    ):
        index.add_texts(["短い文章です。"])
        with pytest.raises(ContextLengthExceededError, match="shorten it"):
            index.search(long_japanese(3))


def test_batches_are_spread_over_several_hosts(tmp_path: Path) -> None:
    spec = HashEmbeddingModel(dimension=128, context_length=512, seed=11)
    texts = [f"文書{i}番の内容。テーマは{i % 7}。" for i in range(120)]
    with (
        LocalOllama({"bge-m3": spec}) as one,
        LocalOllama({"bge-m3": spec}) as two,
        RagIndex(tmp_path, model="bge-m3", base_url=[one.url, two.url], batch_size=8) as index,
    ):
        one.set_delay(per_request=0.01)
        two.set_delay(per_request=0.01)
        index.add_texts(texts)
        assert index.count() == 120
        assert index.base_urls == (one.url, two.url)
        served = (len(one.received("bge-m3")), len(two.received("bge-m3")))
        calibration = Calibration.from_text(index.manifest.fusion)
    # Every chunk once, and hybrid search's calibration queries once (after the ingest).
    assert calibration is not None
    assert sum(served) == 120 + calibration.queries
    assert min(served) >= 24  # both hosts did a real share of the work


def test_hosts_serving_different_weights_are_refused(tmp_path: Path) -> None:
    with (
        LocalOllama({"bge-m3": HashEmbeddingModel(dimension=64, seed=1)}) as one,
        LocalOllama({"bge-m3": HashEmbeddingModel(dimension=64, seed=2)}) as two,
    ):
        with pytest.raises(EmbeddingModelMismatchError, match="hosts disagree") as err:
            RagIndex(tmp_path, model="bge-m3", base_url=[one.url, two.url])
        assert 'ollama pull bge-m3" on every host' in str(err.value)


def test_concurrency_per_host_is_bounded(tmp_path: Path, fresh_ollama: LocalOllama) -> None:
    fresh_ollama.set_delay(per_request=0.02, slots=8)
    texts = [f"並行処理の確認用の文章{i}。" for i in range(64)]
    with RagIndex(
        tmp_path, model="bge-m3", base_url=fresh_ollama.url, batch_size=4, concurrency=3
    ) as index:
        index.add_texts(texts)
    assert fresh_ollama.peak_concurrency <= 3
    assert fresh_ollama.peak_concurrency >= 2  # and it really overlapped requests


def test_ollama_going_away_mid_ingest_leaves_a_resumable_index(
    tmp_path: Path, fresh_ollama: LocalOllama
) -> None:
    texts = {f"doc{i}.txt": long_japanese(3) + f"文書番号{i}。" for i in range(12)}
    with RagIndex(
        tmp_path,
        model="bge-m3",
        base_url=fresh_ollama.url,
        batch_size=4,
        retries=1,
        retry_backoff=0.01,
        chunk_size=60,
    ) as index:
        for source in list(texts)[:3]:
            index.add_texts([texts[source]], source=source)
        fresh_ollama.fail_next(1000, status="drop")
        with pytest.raises(OllamaUnavailableError):
            index.add_documents(
                [Document(page_content=t, metadata={"source": s}) for s, t in texts.items()]
            )
        fresh_ollama.reset()  # Ollama is back
        for source, text in texts.items():
            index.add_texts([text], source=source)
        sources = {m["source"] for m in index.vectorstore.get(include=["metadatas"])["metadatas"]}
        expected = sum(len(index.splitter.split_text(t)) for t in texts.values())
        assert sources == set(texts)
        assert index.count() == expected  # no duplicates, nothing missing
    # the three sources finished before the outage were not embedded again
    assert len(fresh_ollama.received("bge-m3")) < expected


@pytest.mark.reliability
@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_killed_ingestion_is_completed_by_running_it_again(
    tmp_path: Path, fresh_ollama: LocalOllama, how: str
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(30):
        text = long_japanese(4, volume=i)
        (corpus / f"doc{i:02d}.txt").write_text(text, encoding="utf-8")
    db = tmp_path / "db"
    fresh_ollama.set_delay(per_input=0.02)
    script = textwrap.dedent(
        f"""
        from ollama_rag import RagIndex
        with RagIndex({str(db)!r}, model="bge-m3", base_url={fresh_ollama.url!r},
                      chunk_size=80, batch_size=4) as index:
            index.add_files({str(corpus)!r}, progress=False)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(fresh_ollama.received("bge-m3")) < 60:  # > 1 s in: some sources are written
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGINT)
    child.wait(timeout=60)
    assert child.returncode != 0
    first_run = len(fresh_ollama.received("bge-m3"))

    fresh_ollama.set_delay(per_input=0.0)
    fresh_ollama.reset_counters()
    with RagIndex(db, base_url=fresh_ollama.url) as index:
        report = index.add_files(corpus, progress=False)
        again = index.add_files(corpus, progress=False)
        metas = index.vectorstore.get(include=["metadatas"])["metadatas"]
        expected = sum(
            len(index.splitter.split_text(p.read_text(encoding="utf-8"))) for p in corpus.iterdir()
        )
    assert report.files_added + report.files_updated + report.files_unchanged == 30
    assert len(metas) == expected  # every chunk once: no duplicates, nothing missing
    assert {m["source"] for m in metas} == {f"doc{i:02d}.txt" for i in range(30)}
    assert report.files_unchanged > 0  # files finished before the kill were kept
    assert report.chunks_embedded < expected  # and not embedded again
    assert first_run + report.chunks_embedded >= expected
    assert again.files_unchanged == 30
    assert again.embedding_requests == 0


def test_re_adding_text_with_split_chunks_makes_no_request(tmp_path: Path) -> None:
    text = long_japanese(4)
    with (
        LocalOllama({"tiny": SMALL_CONTEXT}) as server,
        RagIndex(tmp_path, model="tiny", base_url=server.url, chunk_size=300) as index,
    ):
        index.add_texts([text], metadatas=[{"draft": True}], source="a")
        server.reset_counters()
        index.add_texts([text], source="a")
        metas = index.vectorstore.get(include=["metadatas"])["metadatas"]
    assert server.request_count("tiny") == 0  # the stored parts were recognised
    assert all("draft" not in m for m in metas)  # and a removed key is really gone
    assert all("split_of" in m for m in metas)


@pytest.mark.reliability
def test_a_rewrite_interrupted_mid_write_is_not_taken_for_complete(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch, store_kind: str
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    doc = folder / "a.md"
    v1 = "First paragraph is here.\n\nSecond paragraph stays.\n\nThird paragraph: v1."
    v2 = "First paragraph is here.\n\nSecond paragraph stays.\n\nThird paragraph: DRAFT v2."
    doc.write_text(v1, encoding="utf-8")
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url, chunk_size=30) as index:
        index.add_files(folder, progress=False)
        doc.write_text(v2, encoding="utf-8")

        # A crash between writing v2's new chunks and deleting v1's stale ones cannot be timed
        # for real from outside; raising from the delete stands in for it.
        def crash(*_: object, **__: object) -> None:
            raise KeyboardInterrupt

        if store_kind == "faiss":  # one transaction per write: the crash rolls it all back
            from ollama_rag.storage.docstore import DocStore

            monkeypatch.setattr(DocStore, "delete_fids", crash)
        else:
            monkeypatch.setattr(index._store.vectors.collection, "delete", crash)
        with pytest.raises(KeyboardInterrupt):
            index.add_files(folder, progress=False)
        monkeypatch.undo()

        doc.write_text(v1, encoding="utf-8")  # e.g. `git checkout a.md`
        report = index.add_files(folder, progress=False)
        stored = index.vectorstore.get(where={"source": "a.md"})["documents"]
    # Chroma: the half-written source was not taken for v1. FAISS: nothing was written.
    assert report.files_unchanged == (1 if store_kind == "faiss" else 0)
    assert sorted(stored) == sorted(index.splitter.split_text(v1))


def _spy_calls(
    monkeypatch: pytest.MonkeyPatch, collection: Any, names: tuple[str, ...]
) -> dict[str, list[dict[str, Any]]]:
    """Record the keyword arguments of each Chroma call named (and still make it)."""
    calls: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for name in names:
        real = getattr(collection, name)

        def spy(_real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name].append(kwargs)
            return _real(**kwargs)

        monkeypatch.setattr(collection, name, spy)
    return calls


@pytest.mark.chroma_only
def test_new_sources_are_looked_up_in_groups_and_marked_in_their_own_write(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"doc{i:02d}.txt").write_text(long_japanese(3, volume=i), encoding="utf-8")
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url, chunk_size=80) as index:
        calls = _spy_calls(monkeypatch, index._store.vectors.collection, ("get", "add", "update"))
        report = index.add_files(corpus, progress=False)
        monkeypatch.undo()
        firsts = index.vectorstore.get(where={"chunk_index": 0}, include=["metadatas"])
        again = index.add_files(corpus, progress=False)
    assert report.files_added == 40
    # A handful of lookups per group of sources, not four per source (the calibration of hybrid
    # search after the ingest reads chunks by id, which are not lookups of sources).
    lookups = [c for c in calls["get"] if c.get("where") is not None]
    assert len(lookups) < 40
    # Each new source's completion marker went in with its rows: no separate marker update.
    assert calls["update"] == []
    markers = [m for c in calls["add"] for m in c["metadatas"] if "complete_hash" in m]
    assert len(markers) == 40
    assert all("complete_hash" in m for m in firsts["metadatas"])
    assert again.files_unchanged == 40
    assert again.embedding_requests == 0


@pytest.mark.chroma_only
def test_a_source_written_over_several_calls_is_marked_only_after_all_of_them(
    tmp_path: Path, ollama: LocalOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ollama_rag.storage.chroma as chroma

    monkeypatch.setattr(chroma, "UPSERT_ROWS", 5)  # the source's chunks need several calls
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "big.txt").write_text(long_japanese(12), encoding="utf-8")
    with RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url, chunk_size=80) as index:
        collection = index._store.vectors.collection
        real_add = collection.add
        adds: list[int] = []

        def add(**kwargs: Any) -> None:
            adds.append(len(kwargs["ids"]))
            assert not any("complete_hash" in m for m in kwargs["metadatas"])
            if len(adds) == 2:  # a crash between two calls of one source
                raise KeyboardInterrupt
            real_add(**kwargs)

        monkeypatch.setattr(collection, "add", add)
        with pytest.raises(KeyboardInterrupt):
            index.add_files(folder, progress=False)
        monkeypatch.setattr(collection, "add", real_add)
        ollama.reset_counters()
        report = index.add_files(folder, progress=False)  # not taken for complete
        stored = index.vectorstore.get(include=["documents", "metadatas"])
        again = index.add_files(folder, progress=False)
    assert len(adds) == 2  # the crash came in the source's second call
    assert adds[0] == 5
    assert len(stored["documents"]) > 5
    assert report.files_unchanged == 0
    assert sorted(stored["documents"]) == sorted(
        index.splitter.split_text((folder / "big.txt").read_text(encoding="utf-8"))
    )
    assert sum("complete_hash" in m for m in stored["metadatas"]) == 1
    assert again.files_unchanged == 1
    assert again.embedding_requests == 0


def _one_file_index(tmp_path: Path, ollama: LocalOllama, text: str) -> tuple[Path, RagIndex]:
    """A folder holding a.txt (``text``), and an index of 80-character chunks for it."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text(text, encoding="utf-8")
    return folder, RagIndex(tmp_path / "db", model="bge-m3", base_url=ollama.url, chunk_size=80)


def _append_and_resync(index: RagIndex, folder: Path) -> tuple[Any, Any, Any]:
    """Add a sentence to a.txt and add the folder again, twice; (report, stored, second report)."""
    doc = folder / "a.txt"
    doc.write_text(doc.read_text(encoding="utf-8") + "最後に一文を足した。", encoding="utf-8")
    report = index.add_files(folder, progress=False)
    stored = index.vectorstore.get(include=["documents", "metadatas"])
    return report, stored, index.add_files(folder, progress=False)


def test_a_source_whose_first_chunk_was_deleted_is_rewritten_without_duplicates(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    folder, opened = _one_file_index(tmp_path, ollama, long_japanese(6))
    doc = folder / "a.txt"
    with opened as index:
        index.add_files(folder, progress=False)
        total = index.count()
        first = index.vectorstore.get(where={"chunk_index": 0}, include=[])["ids"]
        index.delete(ids=first)  # the chunk the completion marker and lookups start from
        report, stored, again = _append_and_resync(index, folder)
    expected = index.splitter.split_text(doc.read_text(encoding="utf-8"))
    assert total > 3
    assert report.files_failed == 0
    assert sorted(stored["documents"]) == sorted(expected)  # every chunk once, none missing
    assert sorted(m["chunk_index"] for m in stored["metadatas"]) == list(range(len(expected)))
    assert again.files_unchanged == 1
    assert again.embedding_requests == 0


def test_the_source_hash_is_kept_on_the_first_chunk_only(
    tmp_path: Path, ollama: LocalOllama
) -> None:
    folder, opened = _one_file_index(tmp_path, ollama, long_japanese(8))
    with opened as index:
        index.add_files(folder, progress=False)
        first = index.vectorstore.get(include=["metadatas"])["metadatas"]
        report, stored, again = _append_and_resync(index, folder)
    after = stored["metadatas"]
    assert len(first) > 3
    for metas in (first, after):
        hashed = [m for m in metas if "unit_hash" in m]
        assert [m["chunk_index"] for m in hashed] == [0]
        assert hashed[0]["unit_hash"] == hashed[0]["complete_hash"]
    assert report.files_updated == 1
    old_hash = next(m["unit_hash"] for m in first if "unit_hash" in m)
    assert next(m["unit_hash"] for m in after if "unit_hash" in m) != old_hash
    assert again.files_unchanged == 1
    assert again.embedding_requests == 0
